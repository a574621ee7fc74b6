#!/bin/bash
# A Slurm job array of bma workers joining one study that lives in PostgreSQL.
# Not executed in CI. Submit with:
#   sbatch --export=ALL,BMA_STORE=postgres://bma:SECRET@db.example.org/bma docs/distributed/slurm-workers.sh
# Each array task is one worker process; each runs --parallel trials at once
# (one per CPU it was given). Tasks may start, die or be preempted at any time:
# a dead task's running trial is requeued after the heartbeat timeout and
# finished by another task. Each task writes its models into node-local scratch and
# into the database: no file system is shared; docs/distributed/slurm-final.sh builds
# the final model from the database afterwards.
#SBATCH --job-name=bma-workers
#SBATCH --array=0-15
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=bma-worker-%A_%a.log

set -euo pipefail
: "${BMA_STORE:?set BMA_STORE to the study database URL}"
STUDY="${BMA_STUDY:-digits}"

# The spec text is stored with the study: the worker needs no copy of the .bma file.
exec bma worker --store "$BMA_STORE" --study "$STUDY" --parallel "${SLURM_CPUS_PER_TASK:-1}" \
  --out "${TMPDIR:-/tmp}/bma-$STUDY-$SLURM_ARRAY_JOB_ID-$SLURM_ARRAY_TASK_ID"
