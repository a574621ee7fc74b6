#!/bin/bash
# Builds a shared study's final model once its workers are done, from the database alone:
# the members' models are fetched from the store (no shared file system needed).
# Not executed in CI. Submit after the workers' array:
#   jid=$(sbatch --parsable --export=ALL,BMA_STORE=... docs/distributed/slurm-workers.sh)
#   sbatch --dependency=afterany:$jid --export=ALL,BMA_STORE=... docs/distributed/slurm-final.sh
#SBATCH --job-name=bma-final
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=01:00:00
#SBATCH --output=bma-final-%j.log

set -euo pipefail
: "${BMA_STORE:?set BMA_STORE to the study database URL}"
STUDY="${BMA_STUDY:-digits}"

# best/, final/, results.json and report.html land in the submitting folder's results/.
exec bma final --store "$BMA_STORE" --study "$STUDY" --out "${SLURM_SUBMIT_DIR:-.}/results/$STUDY"
