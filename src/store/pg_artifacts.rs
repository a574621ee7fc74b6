//! [`Postgres`](super::Postgres)'s stored models (see [`super::artifacts`]): the header in
//! `bma_artifacts`, the content in `bma_artifact_chunks` (`bytea`, [`CHUNK`] bytes a row,
//! stored uncompressed out of line), both keyed by `(study, number)` and deleted with their
//! trial.
//!
//! **Invariant:** an upload is one transaction that first locks the trial's row and checks
//! that it runs under the uploader's claim, replaces any earlier artifact, sends the chunks
//! and then the header: a reader sees the whole artifact or none, and a worker killed (or
//! presumed dead) mid-upload leaves nothing.

use postgres::Client;

use super::artifacts::{self, Artifact, ArtifactInfo, StoredChunk};
use super::postgres::OpError;
use super::{StoreError, StudyId};

#[cfg(doc)]
use super::artifacts::CHUNK;

/// Stores `artifact` for trial `number` if it runs under `worker` (and `attempt`, when this
/// process claimed it).
pub(super) fn put(
    c: &mut Client,
    study: StudyId,
    number: u64,
    worker: &str,
    attempt: Option<i32>,
    artifact: &Artifact,
) -> Result<(), OpError> {
    let n = number as i64;
    let mut tx = c.transaction()?;
    let mine = tx.query_opt(
        "SELECT 1 FROM bma_trials WHERE study = $1 AND number = $2 AND state = 'running' AND worker = $3 \
         AND ($4::int IS NULL OR attempt = $4) FOR UPDATE",
        &[&study, &n, &worker, &attempt],
    )?;
    if mine.is_none() {
        return Err(StoreError::NotFound(format!(
            "trial {number} is no longer running under this worker (it was requeued after a silence); \
             its model is not stored"
        ))
        .into());
    }
    delete(&mut tx, study, &[n])?;
    let insert =
        tx.prepare("INSERT INTO bma_artifact_chunks (study, number, idx, sha256, data) VALUES ($1, $2, $3, $4, $5)")?;
    let chunks = artifact.chunks();
    for (i, (data, sha)) in chunks.iter().enumerate() {
        tx.execute(&insert, &[&study, &n, &(i as i32), sha, data])?;
        artifacts::chunk_sent(number, i as u32);
    }
    tx.execute(
        "INSERT INTO bma_artifacts (study, number, sha256, size, chunks, files, worker, created) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, extract(epoch from clock_timestamp())::double precision)",
        &[
            &study,
            &n,
            &artifact.sha256,
            &(artifact.bytes.len() as i64),
            &(chunks.len() as i32),
            &(artifact.files as i32),
            &worker,
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// Trial `number`'s artifact, verified; `None` when none is stored.
pub(super) fn get(c: &mut Client, study: StudyId, number: u64) -> Result<Option<Artifact>, OpError> {
    let n = number as i64;
    // One snapshot for the header and the chunks: a concurrent replacement is seen whole or not.
    let mut tx = c.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).start()?;
    let Some(head) =
        tx.query_opt("SELECT sha256, chunks FROM bma_artifacts WHERE study = $1 AND number = $2", &[&study, &n])?
    else {
        return Ok(None);
    };
    let (sha, count): (String, i32) = (head.try_get(0)?, head.try_get(1)?);
    let rows = tx.query(
        "SELECT idx, sha256, data FROM bma_artifact_chunks WHERE study = $1 AND number = $2 ORDER BY idx",
        &[&study, &n],
    )?;
    tx.commit()?;
    let mut chunks = Vec::with_capacity(rows.len());
    for r in &rows {
        chunks.push(StoredChunk {
            index: r.try_get::<_, i32>(0)?.max(0) as u32,
            sha256: r.try_get(1)?,
            data: r.try_get(2)?,
        });
    }
    artifacts::assemble(number, &sha, count.max(0) as u32, chunks).map(Some).map_err(|e| StoreError::Backend(e).into())
}

/// The study's artifacts by trial number.
pub(super) fn list(c: &mut Client, study: StudyId) -> Result<Vec<ArtifactInfo>, OpError> {
    let rows = c.query(
        "SELECT number, size, sha256, chunks, files, worker FROM bma_artifacts WHERE study = $1 ORDER BY number",
        &[&study],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(ArtifactInfo {
            number: r.try_get::<_, i64>(0)? as u64,
            size: r.try_get::<_, i64>(1)?.max(0) as u64,
            sha256: r.try_get(2)?,
            chunks: r.try_get::<_, i32>(3)?.max(0) as u32,
            files: r.try_get::<_, i32>(4)?.max(0) as u32,
            worker: r.try_get(5)?,
        });
    }
    Ok(out)
}

/// Deletes the artifacts of trials `numbers` inside `tx`; gives how many there were.
pub(super) fn delete(tx: &mut postgres::Transaction<'_>, study: StudyId, numbers: &[i64]) -> Result<u64, OpError> {
    tx.execute("DELETE FROM bma_artifact_chunks WHERE study = $1 AND number = ANY($2)", &[&study, &numbers])?;
    Ok(tx.execute("DELETE FROM bma_artifacts WHERE study = $1 AND number = ANY($2)", &[&study, &numbers])?)
}
