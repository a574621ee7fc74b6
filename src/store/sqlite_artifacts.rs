//! [`Sqlite`](super::Sqlite)'s stored models (see [`super::artifacts`]): the same two tables
//! as PostgreSQL's (`artifacts`, `artifact_chunks` as BLOBs), written in one transaction
//! with the same claim guard, so a shared SQLite file (`--store sqlite://PATH`) carries
//! models between processes too.
//!
//! **Invariant:** as PostgreSQL's: the chunks and the header of an upload commit together,
//! only while the trial runs under the uploader, and go when the trial is requeued.

use rusqlite::{OptionalExtension, Transaction, params};

use super::artifacts::{self, Artifact, ArtifactInfo, StoredChunk};
use super::{StoreError, StudyId, now};

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("study store: {e}"))
}

/// Stores `artifact` for trial `number` if it runs under `worker`.
pub(super) fn put(
    tx: &Transaction<'_>,
    study: StudyId,
    number: u64,
    worker: &str,
    artifact: &Artifact,
) -> Result<(), StoreError> {
    let n = number as i64;
    let mine = tx
        .query_row(
            "SELECT 1 FROM trials WHERE study = ?1 AND number = ?2 AND state = 'running' AND worker = ?3",
            params![study, n, worker],
            |_| Ok(()),
        )
        .optional()
        .map_err(backend)?;
    if mine.is_none() {
        return Err(StoreError::NotFound(format!(
            "trial {number} is no longer running under this worker (it was requeued after a silence); \
             its model is not stored"
        )));
    }
    delete(tx, study, &[number])?;
    let chunks = artifact.chunks();
    for (i, (data, sha)) in chunks.iter().enumerate() {
        tx.execute(
            "INSERT INTO artifact_chunks (study, number, idx, sha256, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![study, n, i as i64, sha, data],
        )
        .map_err(backend)?;
        artifacts::chunk_sent(number, i as u32);
    }
    tx.execute(
        "INSERT INTO artifacts (study, number, sha256, size, chunks, files, worker, created) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            study,
            n,
            artifact.sha256,
            artifact.bytes.len() as i64,
            chunks.len() as i64,
            i64::from(artifact.files),
            worker,
            now()
        ],
    )
    .map_err(backend)?;
    Ok(())
}

/// Trial `number`'s artifact, verified; `None` when none is stored.
pub(super) fn get(tx: &Transaction<'_>, study: StudyId, number: u64) -> Result<Option<Artifact>, StoreError> {
    let n = number as i64;
    let head = tx
        .query_row("SELECT sha256, chunks FROM artifacts WHERE study = ?1 AND number = ?2", params![study, n], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .optional()
        .map_err(backend)?;
    let Some((sha, count)) = head else { return Ok(None) };
    let mut st = tx
        .prepare("SELECT idx, sha256, data FROM artifact_chunks WHERE study = ?1 AND number = ?2 ORDER BY idx")
        .map_err(backend)?;
    let chunks = st
        .query_map(params![study, n], |r| {
            Ok(StoredChunk { index: r.get::<_, i64>(0)?.max(0) as u32, sha256: r.get(1)?, data: r.get(2)? })
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    artifacts::assemble(number, &sha, count.max(0) as u32, chunks).map(Some).map_err(StoreError::Backend)
}

/// The study's artifacts by trial number.
pub(super) fn list(tx: &Transaction<'_>, study: StudyId) -> Result<Vec<ArtifactInfo>, StoreError> {
    let mut st = tx
        .prepare("SELECT number, size, sha256, chunks, files, worker FROM artifacts WHERE study = ?1 ORDER BY number")
        .map_err(backend)?;
    st.query_map(params![study], |r| {
        Ok(ArtifactInfo {
            number: r.get::<_, i64>(0)? as u64,
            size: r.get::<_, i64>(1)?.max(0) as u64,
            sha256: r.get(2)?,
            chunks: r.get::<_, i64>(3)?.max(0) as u32,
            files: r.get::<_, i64>(4)?.max(0) as u32,
            worker: r.get(5)?,
        })
    })
    .map_err(backend)?
    .collect::<Result<Vec<_>, _>>()
    .map_err(backend)
}

/// Deletes the artifacts of trials `numbers`; gives how many there were.
pub(super) fn delete(tx: &Transaction<'_>, study: StudyId, numbers: &[u64]) -> Result<u64, StoreError> {
    let mut n = 0;
    for number in numbers {
        tx.execute("DELETE FROM artifact_chunks WHERE study = ?1 AND number = ?2", params![study, *number as i64])
            .map_err(backend)?;
        n += tx
            .execute("DELETE FROM artifacts WHERE study = ?1 AND number = ?2", params![study, *number as i64])
            .map_err(backend)? as u64;
    }
    Ok(n)
}

/// Deletes the study `name` with its trials, steps and artifacts; `false` when there is none.
pub(super) fn delete_study(tx: &Transaction<'_>, name: &str) -> Result<bool, StoreError> {
    let id: Option<i64> = tx
        .query_row("SELECT id FROM studies WHERE name = ?1", params![name], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    let Some(id) = id else { return Ok(false) };
    for table in ["artifact_chunks", "artifacts", "steps", "trials"] {
        tx.execute(&format!("DELETE FROM {table} WHERE study = ?1"), params![id]).map_err(backend)?;
    }
    tx.execute("DELETE FROM studies WHERE id = ?1", params![id]).map_err(backend)?;
    Ok(true)
}
