//! The embedded store: one SQLite file (`<out>/study.db`) in WAL mode.
//!
//! Every [`Store`] call is one transaction, committed before the call returns; a
//! process killed with `kill -9` loses at most the call in flight. With
//! `synchronous = NORMAL` (the default here) a committed transaction survives a
//! crash of the process; [`Sqlite::open_durable`] sets `synchronous = FULL` so it also
//! survives a power cut, at one fsync per write. Several processes may share a file
//! (SQLite's locking, a busy timeout); claims use `BEGIN IMMEDIATE`.
//!
//! The schema is versioned with `PRAGMA user_version`; [`MIGRATIONS`] run in order
//! inside one transaction, and a file from a newer bma is refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::codec::{floats_to_text, metrics_to_text, point_to_text, text_to_floats, text_to_metrics, text_to_point};
use super::{
    Artifact, ArtifactInfo, Claim, Finished, Store, StoreError, Study, StudyId, StudySpec, StudyState, StudySummary,
    now,
};
use crate::ir::Point;
use crate::trial::{Direction, FailKind, Trial, TrialState};

/// Schema migrations: `MIGRATIONS[i]` brings `user_version` from `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: studies, trials, per-step values.
    "CREATE TABLE studies (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        experiment TEXT NOT NULL,
        spec_text TEXT NOT NULL,
        spec_hash TEXT NOT NULL,
        objectives TEXT NOT NULL,
        constraints TEXT NOT NULL,
        seed INTEGER NOT NULL,
        state TEXT NOT NULL,
        created REAL NOT NULL,
        next_number INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE trials (
        study INTEGER NOT NULL REFERENCES studies(id),
        number INTEGER NOT NULL,
        state TEXT NOT NULL,
        params TEXT,
        seed INTEGER,
        objective_values TEXT NOT NULL DEFAULT '[]',
        constraint_values TEXT NOT NULL DEFAULT '[]',
        violations TEXT NOT NULL DEFAULT '[]',
        metrics TEXT NOT NULL DEFAULT '{}',
        error TEXT,
        duration REAL NOT NULL DEFAULT 0,
        worker TEXT,
        heartbeat REAL,
        started REAL,
        finished REAL,
        requeues INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (study, number)
    );
    CREATE INDEX trials_state ON trials(study, state);
    CREATE TABLE steps (
        study INTEGER NOT NULL,
        number INTEGER NOT NULL,
        step INTEGER NOT NULL,
        value REAL,
        PRIMARY KEY (study, number, step)
    );",
    // 2: each trial's configuration key (`reuse::ConfigKey`), so that `bma watch` finds
    // a complete trial of the same configuration in any study of the file.
    "ALTER TABLE trials ADD COLUMN config_key TEXT;
    CREATE INDEX trials_config_key ON trials(config_key, state);",
    // 3: failure kinds in their own column; points refused before training are `infeasible`.
    // The error texts matched are those earlier versions wrote (`INFEASIBLE`, `CANCELLED`,
    // `INTERRUPTED`, the time-outs); a new trial's kind is written with it.
    "ALTER TABLE trials ADD COLUMN fail_kind TEXT;
    UPDATE trials SET state = 'infeasible' WHERE state = 'failed' AND error LIKE 'infeasible before training%';
    UPDATE trials SET fail_kind = CASE
            WHEN error = 'interrupted (Ctrl-C)' THEN 'interrupted'
            WHEN error = 'cancelled: the file was saved during the run' THEN 'cancelled'
            WHEN error LIKE 'ran out of time: %' THEN 'timed_out'
            WHEN error = 'stopped: the study''s time budget ran out' THEN 'study_time'
            ELSE 'error' END
        WHERE state = 'failed';",
    // 4: the creating run's options (`StudySpec::options`: flags for workers, the data
    // files' fingerprints); a study stored before has none (`''`).
    "ALTER TABLE studies ADD COLUMN options TEXT NOT NULL DEFAULT '';",
    // 5: the device a command trial ran on (`devices`, `--devices`).
    "ALTER TABLE trials ADD COLUMN device TEXT;",
    // 6: trained models in the store (`store::artifacts`): a header and 1 MiB chunks per
    // trial, with their SHA-256, deleted with the trial.
    "CREATE TABLE artifacts (
        study INTEGER NOT NULL,
        number INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        chunks INTEGER NOT NULL,
        files INTEGER NOT NULL,
        worker TEXT,
        created REAL NOT NULL,
        PRIMARY KEY (study, number),
        FOREIGN KEY (study, number) REFERENCES trials (study, number) ON DELETE CASCADE
    );
    CREATE TABLE artifact_chunks (
        study INTEGER NOT NULL,
        number INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (study, number, idx),
        FOREIGN KEY (study, number) REFERENCES trials (study, number) ON DELETE CASCADE
    );",
    // 7: the worker that ran a trial to its end (`worker` is only its claim, cleared then).
    "ALTER TABLE trials ADD COLUMN ran_by TEXT;",
    // 8: study-wide records (`Store::record`: a DARTS phase's lease and result).
    "CREATE TABLE study_records (
        study INTEGER NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (study, key)
    );",
];

/// The lowest queued trial of a study. `+number`: SQLite looks the few queued rows up
/// through `trials_state` and sorts them, instead of walking the primary key over every
/// trial of the study (which made each claim O(n): 0.35 ms at 5,000 trials).
const NEXT_QUEUED: &str = "SELECT number FROM trials WHERE study = ?1 AND state = 'queued' ORDER BY +number LIMIT 1";

/// The SQLite store.
pub struct Sqlite {
    conn: Mutex<Connection>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("study store: {e}"))
}

impl Sqlite {
    /// Opens (creating) the database at `path`, migrating its schema.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        Self::open_with(path, "NORMAL")
    }

    /// Like [`Sqlite::open`], with `synchronous = FULL`: durable across power loss too.
    pub fn open_durable(path: &Path) -> Result<Sqlite, StoreError> {
        Self::open_with(path, "FULL")
    }

    /// A private in-memory store (tests, benchmarks).
    pub fn in_memory() -> Result<Sqlite, StoreError> {
        let conn = Connection::open_in_memory().map_err(backend)?;
        Self::init(conn, "OFF", false)
    }

    fn open_with(path: &Path, synchronous: &str) -> Result<Sqlite, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| backend(format!("cannot open {}: {e}", path.display())))?;
        // SQLite reads the file at the first statement: a damaged file is named here too.
        Self::init(conn, synchronous, true).map_err(|e| match e {
            StoreError::Backend(m) => {
                let m = m.strip_prefix("study store: ").unwrap_or(&m).to_string();
                backend(format!("{}: {m}", path.display()))
            }
            other => other,
        })
    }

    fn init(mut conn: Connection, synchronous: &str, wal: bool) -> Result<Sqlite, StoreError> {
        conn.busy_timeout(Duration::from_secs(30)).map_err(backend)?;
        if wal {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(backend)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(backend(format!("cannot switch to WAL mode (got {mode})")));
            }
        }
        conn.execute_batch(&format!("PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;"))
            .map_err(backend)?;
        migrate(&mut conn)?;
        Ok(Sqlite { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction half-applied
        // (rusqlite rolls back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.conn().query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)
    }

    /// The stored study `name` as it was created (spec text, seed, objectives), without
    /// joining or changing it; [`StoreError::NotFound`] when there is none.
    pub fn study(&self, name: &str) -> Result<Study, StoreError> {
        let row = self
            .conn()
            .query_row("SELECT * FROM studies WHERE name = ?1", params![name], study_from_row)
            .optional()
            .map_err(backend)?;
        let (id, spec, state, created) = row.ok_or_else(|| StoreError::NotFound(format!("no study `{name}`")))?;
        Ok(Study {
            id,
            spec,
            state: StudyState::parse(&state).unwrap_or(StudyState::Running),
            created,
            created_now: false,
        })
    }

    fn tx<R>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
        let r = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(r)
    }
}

/// A complete trial found by its configuration key, with the objectives its steps were measured by.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedTrial {
    pub study: StudyId,
    /// The objectives of the study that holds it (its `steps` are the first one's values).
    pub objectives: Vec<(String, Direction)>,
    pub trial: Trial,
}

/// What `bma watch` needs beyond [`Store`]: configuration keys and one study per spec version.
impl Sqlite {
    /// Records the configuration key of trial `number`.
    pub fn set_config_key(&self, study: StudyId, number: u64, key: &str) -> Result<(), StoreError> {
        self.tx(|tx| {
            let n = tx
                .execute(
                    "UPDATE trials SET config_key = ?3 WHERE study = ?1 AND number = ?2",
                    params![study, number as i64, key],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("no trial {number} in study {study}")));
            }
            Ok(())
        })
    }

    /// The configuration keys of a study's trials, by number (trials without one are absent).
    pub fn config_keys(&self, study: StudyId) -> Result<BTreeMap<u64, String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT number, config_key FROM trials WHERE study = ?1 AND config_key IS NOT NULL")
            .map_err(backend)?;
        stmt.query_map(params![study], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)))
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    /// The most recently finished complete trial with configuration key `key`, in any
    /// study of this file, with its steps.
    pub fn complete_by_key(&self, key: &str) -> Result<Option<KeyedTrial>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred).map_err(backend)?;
        let found = tx
            .query_row(
                "SELECT study, number FROM trials WHERE config_key = ?1 AND state = 'complete' \
                 ORDER BY finished DESC LIMIT 1",
                params![key],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64)),
            )
            .optional()
            .map_err(backend)?;
        let Some((study, number)) = found else { return Ok(None) };
        let mut trial = load_trial(&tx, study, number)?;
        {
            let mut stmt = tx
                .prepare("SELECT step, value FROM steps WHERE study = ?1 AND number = ?2 ORDER BY step")
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![study, number as i64], |r| {
                    Ok((r.get::<_, u32>(0)?, r.get::<_, Option<f64>>(1)?.unwrap_or(f64::NAN)))
                })
                .map_err(backend)?;
            for row in rows {
                trial.steps.push(row.map_err(backend)?);
            }
        }
        let objectives: String = tx
            .query_row("SELECT objectives FROM studies WHERE id = ?1", params![study], |r| r.get(0))
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(Some(KeyedTrial { study, objectives: serde_json::from_str(&objectives).unwrap_or_default(), trial }))
    }

    /// Makes the name `spec.name` belong to the version of the study given by
    /// `spec.spec_hash`, so that [`Store::open`] then joins or creates it: a study of
    /// that name started from another spec is renamed `NAME@HASH` (its hash), and a
    /// study `NAME@SPEC_HASH` (an earlier version switched back to) takes the name back.
    /// Nothing changes when the study of that name already has this hash.
    pub fn switch_to(&self, spec: &StudySpec) -> Result<(), StoreError> {
        self.tx(|tx| {
            let current: Option<(i64, String)> = tx
                .query_row("SELECT id, spec_hash FROM studies WHERE name = ?1", params![spec.name], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(backend)?;
            if let Some((id, hash)) = current {
                if hash == spec.spec_hash {
                    return Ok(());
                }
                let mut retired = format!("{}@{hash}", spec.name);
                let mut n = 1;
                while tx
                    .query_row("SELECT 1 FROM studies WHERE name = ?1", params![retired], |_| Ok(()))
                    .optional()
                    .map_err(backend)?
                    .is_some()
                {
                    n += 1;
                    retired = format!("{}@{hash}.{n}", spec.name);
                }
                tx.execute("UPDATE studies SET name = ?2 WHERE id = ?1", params![id, retired]).map_err(backend)?;
            }
            tx.execute(
                "UPDATE studies SET name = ?1 WHERE name = ?2 AND spec_hash = ?3",
                params![spec.name, format!("{}@{}", spec.name, spec.spec_hash), spec.spec_hash],
            )
            .map_err(backend)?;
            Ok(())
        })
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)?;
    let latest = MIGRATIONS.len() as u32;
    if version > latest {
        return Err(backend(format!(
            "the database has schema version {version}, newer than this bma knows ({latest}); upgrade bma"
        )));
    }
    if version == latest {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive).map_err(backend)?;
    // Another process may have migrated between the read and the lock.
    let version: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql).map_err(|e| backend(format!("migration {}: {e}", i + 1)))?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {latest}")).map_err(backend)?;
    tx.commit().map_err(backend)
}

fn objectives_to_text(o: &[(String, Direction)]) -> Result<String, StoreError> {
    serde_json::to_string(o).map_err(backend)
}

fn study_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(StudyId, StudySpec, String, f64)> {
    let objectives: String = r.get("objectives")?;
    let constraints: String = r.get("constraints")?;
    let spec = StudySpec {
        name: r.get("name")?,
        experiment: r.get("experiment")?,
        spec_text: r.get("spec_text")?,
        spec_hash: r.get("spec_hash")?,
        objectives: serde_json::from_str(&objectives).unwrap_or_default(),
        constraints: serde_json::from_str(&constraints).unwrap_or_default(),
        seed: r.get::<_, i64>("seed")? as u64,
        options: r.get("options")?,
    };
    Ok((r.get("id")?, spec, r.get("state")?, r.get("created")?))
}

const TRIAL_COLUMNS: &str = "number, state, params, seed, objective_values, constraint_values, violations, metrics, \
                             error, duration, fail_kind, device, started, finished, ran_by";

fn trial_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Trial, Option<String>)> {
    let state: String = r.get(1)?;
    let state = TrialState::parse(&state).unwrap_or(TrialState::Failed);
    let kind: Option<String> = r.get(10)?;
    let trial = Trial {
        number: r.get::<_, i64>(0)? as u64,
        state,
        params: Point::new(),
        seed: r.get::<_, Option<i64>>(3)?.unwrap_or(0) as u64,
        values: text_to_floats(&r.get::<_, String>(4)?),
        constraints: text_to_floats(&r.get::<_, String>(5)?),
        violations: text_to_floats(&r.get::<_, String>(6)?),
        steps: Vec::new(),
        metrics: text_to_metrics(&r.get::<_, String>(7)?),
        error: r.get(8)?,
        failure: super::fail_kind(state, kind.as_deref()),
        duration: r.get(9)?,
        device: r.get(11)?,
        started: r.get(12)?,
        finished: r.get(13)?,
        worker: r.get(14)?,
    };
    Ok((trial, r.get(2)?))
}

fn load_trial(tx: &Transaction<'_>, study: StudyId, number: u64) -> Result<Trial, StoreError> {
    let (mut trial, params) = tx
        .query_row(
            &format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE study = ?1 AND number = ?2"),
            params![study, number as i64],
            trial_from_row,
        )
        .map_err(backend)?;
    trial.params = text_to_point(params)?;
    Ok(trial)
}

fn requeue_where(
    tx: &Transaction<'_>,
    study: StudyId,
    cond: &str,
    arg: &dyn rusqlite::ToSql,
) -> Result<Vec<u64>, StoreError> {
    let mut stmt = tx
        .prepare(&format!(
            "UPDATE trials SET state = 'queued', worker = NULL, heartbeat = NULL, requeues = requeues + 1 \
             WHERE study = ?1 AND state = 'running' AND {cond} RETURNING number"
        ))
        .map_err(backend)?;
    let numbers: Vec<u64> = stmt
        .query_map(params![study, arg], |r| r.get::<_, i64>(0))
        .map_err(backend)?
        .map(|r| r.map(|n| n as u64))
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    drop(stmt);
    for n in &numbers {
        tx.execute("DELETE FROM steps WHERE study = ?1 AND number = ?2", params![study, *n as i64]).map_err(backend)?;
    }
    super::sqlite_artifacts::delete(tx, study, &numbers)?;
    let mut sorted = numbers;
    sorted.sort_unstable();
    Ok(sorted)
}

impl Store for Sqlite {
    fn put_artifact(&self, study: StudyId, number: u64, worker: &str, artifact: &Artifact) -> Result<(), StoreError> {
        self.tx(|tx| super::sqlite_artifacts::put(tx, study, number, worker, artifact))
    }

    fn artifact(&self, study: StudyId, number: u64) -> Result<Option<Artifact>, StoreError> {
        self.tx(|tx| super::sqlite_artifacts::get(tx, study, number))
    }

    fn artifacts(&self, study: StudyId) -> Result<Vec<ArtifactInfo>, StoreError> {
        self.tx(|tx| super::sqlite_artifacts::list(tx, study))
    }

    fn delete_artifacts(&self, study: StudyId, numbers: &[u64]) -> Result<u64, StoreError> {
        self.tx(|tx| super::sqlite_artifacts::delete(tx, study, numbers))
    }

    fn delete_study(&self, name: &str) -> Result<bool, StoreError> {
        self.tx(|tx| super::sqlite_artifacts::delete_study(tx, name))
    }

    fn study(&self, name: &str) -> Result<Option<Study>, StoreError> {
        self.tx(|tx| {
            let row = tx
                .query_row("SELECT * FROM studies WHERE name = ?1", params![name], study_from_row)
                .optional()
                .map_err(backend)?;
            Ok(row.map(|(id, spec, state, created)| Study {
                id,
                spec,
                state: StudyState::parse(&state).unwrap_or(StudyState::Running),
                created,
                created_now: false,
            }))
        })
    }

    fn open(&self, spec: &StudySpec) -> Result<Study, StoreError> {
        self.tx(|tx| {
            let existing = tx
                .query_row("SELECT * FROM studies WHERE name = ?1", params![spec.name], study_from_row)
                .optional()
                .map_err(backend)?;
            if let Some((id, stored, state, created)) = existing {
                if stored.spec_hash != spec.spec_hash {
                    return Err(StoreError::SpecMismatch {
                        name: spec.name.clone(),
                        stored: stored.spec_hash,
                        given: spec.spec_hash.clone(),
                    });
                }
                let state = StudyState::parse(&state).unwrap_or(StudyState::Running);
                return Ok(Study { id, spec: stored, state, created, created_now: false });
            }
            let created = now();
            tx.execute(
                "INSERT INTO studies (name, experiment, spec_text, spec_hash, objectives, constraints, seed, state, created, options) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?9)",
                params![
                    spec.name,
                    spec.experiment,
                    spec.spec_text,
                    spec.spec_hash,
                    objectives_to_text(&spec.objectives)?,
                    serde_json::to_string(&spec.constraints).map_err(backend)?,
                    spec.seed as i64,
                    created,
                    spec.options
                ],
            )
            .map_err(backend)?;
            Ok(Study { id: tx.last_insert_rowid(), spec: spec.clone(), state: StudyState::Running, created, created_now: true })
        })
    }

    fn set_state(&self, study: StudyId, state: StudyState) -> Result<(), StoreError> {
        self.tx(|tx| {
            let n = tx
                .execute("UPDATE studies SET state = ?2 WHERE id = ?1", params![study, state.as_str()])
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("no study with id {study}")));
            }
            Ok(())
        })
    }

    fn claim(&self, study: StudyId, worker: &str, limit: Option<u64>) -> Result<Option<Claim>, StoreError> {
        self.tx(|tx| {
            let t = now();
            // The hot statements of the trial loop are prepared once per connection.
            let queued: Option<i64> = tx
                .prepare_cached(NEXT_QUEUED)
                .and_then(|mut st| st.query_row(params![study], |r| r.get(0)).optional())
                .map_err(backend)?;
            if let Some(number) = queued {
                tx.execute(
                    "UPDATE trials SET state = 'running', worker = ?3, heartbeat = ?4, started = ?4 \
                     WHERE study = ?1 AND number = ?2",
                    params![study, number, worker, t],
                )
                .map_err(backend)?;
                let trial = load_trial(tx, study, number as u64)?;
                return Ok(Some(Claim { number: number as u64, requeued: Some(trial) }));
            }
            let limit = limit.map(|l| l.min(i64::MAX as u64) as i64).unwrap_or(i64::MAX);
            let number: Option<i64> = tx
                .prepare_cached(
                    "UPDATE studies SET next_number = next_number + 1 WHERE id = ?1 AND next_number < ?2 \
                     RETURNING next_number - 1",
                )
                .and_then(|mut st| st.query_row(params![study, limit], |r| r.get(0)).optional())
                .map_err(backend)?;
            let Some(number) = number else {
                let exists: Option<i64> = tx
                    .query_row("SELECT id FROM studies WHERE id = ?1", params![study], |r| r.get(0))
                    .optional()
                    .map_err(backend)?;
                return match exists {
                    Some(_) => Ok(None),
                    None => Err(StoreError::NotFound(format!("no study with id {study}"))),
                };
            };
            tx.prepare_cached(
                "INSERT INTO trials (study, number, state, worker, heartbeat, started) VALUES (?1, ?2, 'running', ?3, ?4, ?4)",
            )
            .and_then(|mut st| st.execute(params![study, number, worker, t]))
            .map_err(backend)?;
            Ok(Some(Claim { number: number as u64, requeued: None }))
        })
    }

    fn record(&self, study: StudyId, key: &str) -> Result<Option<String>, StoreError> {
        self.tx(|tx| {
            tx.query_row("SELECT value FROM study_records WHERE study = ?1 AND key = ?2", params![study, key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)
        })
    }

    fn swap_record(&self, study: StudyId, key: &str, expected: Option<&str>, value: &str) -> Result<bool, StoreError> {
        self.tx(|tx| {
            let n = match expected {
                None => tx.execute(
                    "INSERT INTO study_records (study, key, value) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![study, key, value],
                ),
                Some(old) => tx.execute(
                    "UPDATE study_records SET value = ?3 WHERE study = ?1 AND key = ?2 AND value = ?4",
                    params![study, key, value, old],
                ),
            }
            .map_err(backend)?;
            Ok(n == 1)
        })
    }

    fn release(&self, study: StudyId, number: u64, worker: &str) -> Result<(), StoreError> {
        self.tx(|tx| {
            tx.execute(
                "UPDATE trials SET state = 'queued', worker = NULL, heartbeat = NULL \
                 WHERE study = ?1 AND number = ?2 AND state = 'running' AND worker = ?3",
                params![study, number as i64, worker],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn requeue(&self, study: StudyId, number: u64, worker: &str) -> Result<(), StoreError> {
        self.tx(|tx| {
            let n = tx
                .execute(
                    "UPDATE trials SET state = 'queued', worker = NULL, heartbeat = NULL \
                     WHERE study = ?1 AND number = ?2 AND state = 'running' AND worker = ?3",
                    params![study, number as i64, worker],
                )
                .map_err(backend)?;
            if n > 0 {
                super::sqlite_artifacts::delete(tx, study, &[number])?;
                tx.execute("DELETE FROM steps WHERE study = ?1 AND number = ?2", params![study, number as i64])
                    .map_err(backend)?;
            }
            Ok(())
        })
    }

    fn start(&self, study: StudyId, number: u64, params: &Point, seed: u64, worker: &str) -> Result<(), StoreError> {
        let text = point_to_text(params)?;
        self.tx(|tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE trials SET params = ?3, seed = ?4, heartbeat = ?6 \
                     WHERE study = ?1 AND number = ?2 AND state = 'running' AND worker = ?5",
                )
                .and_then(|mut st| st.execute(params![study, number as i64, text, seed as i64, worker, now()]))
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("trial {number} is not running under this worker")));
            }
            Ok(())
        })
    }

    fn report(&self, study: StudyId, number: u64, step: u32, value: f64) -> Result<(), StoreError> {
        self.tx(|tx| {
            let v = if value.is_nan() { None } else { Some(value) };
            tx.execute(
                "INSERT OR REPLACE INTO steps (study, number, step, value) VALUES (?1, ?2, ?3, ?4)",
                params![study, number as i64, step, v],
            )
            .map_err(backend)?;
            tx.execute(
                "UPDATE trials SET heartbeat = ?3 WHERE study = ?1 AND number = ?2 AND state = 'running'",
                params![study, number as i64, now()],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn heartbeat(&self, study: StudyId, worker: &str) -> Result<(), StoreError> {
        self.tx(|tx| {
            tx.execute(
                "UPDATE trials SET heartbeat = ?3 WHERE study = ?1 AND worker = ?2 AND state = 'running'",
                params![study, worker, now()],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn finish(&self, study: StudyId, trial: &Finished) -> Result<(), StoreError> {
        if !trial.state.is_finished() {
            return Err(backend(format!("trial {} finished in state {}", trial.number, trial.state.as_str())));
        }
        let params_text = point_to_text(&trial.params)?;
        self.tx(|tx| {
            let n = tx
                .prepare_cached(
                    "UPDATE trials SET state = ?3, params = ?4, seed = ?5, objective_values = ?6, constraint_values = ?7, \
                     violations = ?8, metrics = ?9, error = ?10, duration = ?11, finished = ?12, worker = NULL, \
                     fail_kind = ?13, device = ?14, ran_by = ?15 \
                     WHERE study = ?1 AND number = ?2",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        study,
                        trial.number as i64,
                        trial.state.as_str(),
                        params_text,
                        trial.seed as i64,
                        floats_to_text(&trial.values),
                        floats_to_text(&trial.constraints),
                        floats_to_text(&trial.violations),
                        metrics_to_text(&trial.metrics),
                        trial.error,
                        trial.duration,
                        now(),
                        trial.failure.map(FailKind::as_str),
                        trial.device,
                        trial.worker
                    ])
                })
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("no trial {} in study {study}", trial.number)));
            }
            for (step, value) in &trial.steps {
                let v = if value.is_nan() { None } else { Some(*value) };
                tx.execute(
                    "INSERT OR IGNORE INTO steps (study, number, step, value) VALUES (?1, ?2, ?3, ?4)",
                    params![study, trial.number as i64, step, v],
                )
                .map_err(backend)?;
            }
            Ok(())
        })
    }

    fn requeue_stale(&self, study: StudyId, timeout_s: f64) -> Result<Vec<u64>, StoreError> {
        let cutoff = now() - timeout_s;
        self.tx(|tx| requeue_where(tx, study, "(heartbeat IS NULL OR heartbeat < ?2)", &cutoff))
    }

    fn requeue_worker(&self, study: StudyId, worker: &str) -> Result<Vec<u64>, StoreError> {
        let worker = worker.to_string();
        self.tx(|tx| requeue_where(tx, study, "worker = ?2", &worker))
    }

    fn running_workers(&self, study: StudyId) -> Result<Vec<(String, f64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT worker, MAX(COALESCE(heartbeat, 0)) FROM trials \
                 WHERE study = ?1 AND state = 'running' AND worker IS NOT NULL GROUP BY worker",
            )
            .map_err(backend)?;
        stmt.query_map(params![study], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    fn history(&self, study: StudyId) -> Result<Vec<Trial>, StoreError> {
        let mut conn = self.conn();
        // One read transaction: trials and steps from the same snapshot.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred).map_err(backend)?;
        let mut trials = Vec::new();
        {
            let mut stmt = tx
                .prepare(&format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE study = ?1 ORDER BY number"))
                .map_err(backend)?;
            let rows = stmt.query_map(params![study], trial_from_row).map_err(backend)?;
            for row in rows {
                let (mut t, params) = row.map_err(backend)?;
                t.params = text_to_point(params)?;
                trials.push(t);
            }
            let mut stmt = tx
                .prepare("SELECT number, step, value FROM steps WHERE study = ?1 ORDER BY number, step")
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![study], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, u32>(1)?, r.get::<_, Option<f64>>(2)?))
                })
                .map_err(backend)?;
            let mut i = 0;
            for row in rows {
                let (number, step, value) = row.map_err(backend)?;
                while i < trials.len() && trials[i].number < number {
                    i += 1;
                }
                if let Some(t) = trials.get_mut(i).filter(|t| t.number == number) {
                    t.steps.push((step, value.unwrap_or(f64::NAN)));
                }
            }
        }
        tx.commit().map_err(backend)?;
        Ok(trials)
    }

    fn studies(&self) -> Result<Vec<StudySummary>, StoreError> {
        let rows: Vec<(StudyId, StudySpec, String, f64)> = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT * FROM studies ORDER BY id").map_err(backend)?;
            stmt.query_map([], study_from_row).map_err(backend)?.collect::<Result<_, _>>().map_err(backend)?
        };
        let mut out = Vec::new();
        for (id, spec, state, created) in rows {
            let trials = self.history(id)?;
            let mut counts = BTreeMap::new();
            for t in &trials {
                *counts.entry(t.state.as_str().to_string()).or_insert(0) += 1;
            }
            let directions = spec.directions();
            let complete: Vec<&Trial> = trials.iter().filter(|t| t.state == TrialState::Complete).collect();
            let best = crate::trial::rank::order(&complete, &directions, &crate::trial::Rank::Lexicographic)
                .first()
                .map(|&i| (complete[i].number, complete[i].values.clone()));
            out.push(StudySummary {
                id,
                name: spec.name,
                experiment: spec.experiment,
                state: StudyState::parse(&state).unwrap_or(StudyState::Running),
                objectives: spec.objectives,
                counts,
                best,
                created,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
