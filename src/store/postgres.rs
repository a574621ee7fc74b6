//! The shared store: one PostgreSQL database that any number of workers, on any
//! machines, use as their only coordinator (`--store postgres://user@host/db`).
//!
//! Takes the trial loop's writes through [`Store`], gives every worker the same
//! history. There is no scheduler: a claim is one transaction that takes the lowest
//! queued trial (`FOR UPDATE SKIP LOCKED`) or allocates the next number from the
//! study row (`UPDATE ... RETURNING`, which row-locks it), so two workers never get
//! the same trial and no number is skipped.
//!
//! **Invariants:**
//! - a write returns `Ok` only after its transaction committed;
//! - a trial number is handed out exactly once per study; every write about a
//!   trial is guarded by the worker and attempt that claimed it, so a worker that
//!   was presumed dead (its trial requeued and re-claimed) can no longer touch it;
//! - a silent worker's trial is requeued once per silence: the `running -> queued`
//!   update re-checks the state under the row lock, so concurrent sweeps requeue it
//!   once; after [`MAX_REQUEUES`] silences it is marked failed instead, so a trial
//!   that kills every worker that runs it cannot loop forever;
//! - heartbeats and timeouts use the server's clock, never a worker's, so skewed
//!   clocks across machines cannot requeue a live trial;
//! - a lost connection is retried with exponential backoff (up to
//!   [`Postgres::retry_for`]); a retried claim recognises its own first attempt by a
//!   token, so a commit whose acknowledgement was lost never allocates twice.
//!
//! The schema is versioned in `bma_migrations`; [`MIGRATIONS`] run in order inside
//! one transaction under an advisory lock (workers starting together migrate once),
//! and a database from a newer bma is refused. Tables are prefixed `bma_` so the
//! database may be shared with other applications.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, NoTls, Row, Transaction};

use super::codec::{floats_to_text, metrics_to_text, point_to_text, text_to_floats, text_to_metrics, text_to_point};
use super::{Claim, Finished, Store, StoreError, Study, StudyId, StudySpec, StudyState, StudySummary};
use crate::ir::Point;
use crate::search::{Direction, Trial, TrialState};

/// Schema migrations: `MIGRATIONS[i]` brings the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "studies, trials, per-step values",
        "CREATE TABLE bma_studies (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        experiment TEXT NOT NULL,
        spec_text TEXT NOT NULL,
        spec_hash TEXT NOT NULL,
        objectives JSONB NOT NULL,
        constraints JSONB NOT NULL,
        seed BIGINT NOT NULL,
        state TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        next_number BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE bma_trials (
        study BIGINT NOT NULL REFERENCES bma_studies(id) ON DELETE CASCADE,
        number BIGINT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'complete', 'pruned', 'failed')),
        params JSONB,
        seed BIGINT,
        objective_values JSONB NOT NULL DEFAULT '[]',
        constraint_values JSONB NOT NULL DEFAULT '[]',
        violations JSONB NOT NULL DEFAULT '[]',
        metrics JSONB NOT NULL DEFAULT '{}',
        error TEXT,
        duration DOUBLE PRECISION NOT NULL DEFAULT 0,
        worker TEXT,
        attempt INTEGER NOT NULL DEFAULT 1,
        claim_token TEXT,
        heartbeat DOUBLE PRECISION,
        started DOUBLE PRECISION,
        finished DOUBLE PRECISION,
        requeues INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (study, number)
    );
    CREATE INDEX bma_trials_queued ON bma_trials (study, number) WHERE state = 'queued';
    CREATE INDEX bma_trials_running ON bma_trials (study, worker) WHERE state = 'running';
    CREATE TABLE bma_steps (
        study BIGINT NOT NULL,
        number BIGINT NOT NULL,
        step INTEGER NOT NULL,
        value DOUBLE PRECISION,
        PRIMARY KEY (study, number, step),
        FOREIGN KEY (study, number) REFERENCES bma_trials (study, number) ON DELETE CASCADE
    );",
    ),
    (
        "the creating run's options, for workers that join by name",
        "ALTER TABLE bma_studies ADD COLUMN options TEXT NOT NULL DEFAULT ''",
    ),
];

/// After this many silences a trial is marked failed instead of requeued again.
pub const MAX_REQUEUES: i32 = 3;

/// The advisory lock key that serialises migrations (`"bma"` in ASCII).
const MIGRATION_LOCK: i64 = 0x0062_6d61;

/// The server's clock, in Unix seconds.
const NOW: &str = "extract(epoch from clock_timestamp())::double precision";

/// The PostgreSQL store. One value per process; its methods take `&self` and may be
/// called from many threads (each borrows one of a small pool of connections).
pub struct Postgres {
    config: postgres::Config,
    pool: Vec<Mutex<Option<Client>>>,
    next: AtomicU64,
    tokens: AtomicU64,
    /// How long a call keeps retrying a lost server before it gives up.
    retry_for: Duration,
    /// `(study, number) -> (worker, attempt)` of the trials this process claimed.
    claims: Mutex<HashMap<(StudyId, u64), (String, i32)>>,
    /// Finished trials already read, by study: they never change again.
    cache: Mutex<HashMap<StudyId, BTreeMap<u64, Trial>>>,
    /// Per study, the numbers of `cache` in the order they were cached (for [`Store::finished_since`]).
    log: Mutex<HashMap<StudyId, Vec<u64>>>,
    nonce: u64,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("postgres: {e}"))
}

/// Whether an error means "the server or the connection went away; try again".
fn transient(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // No SQLSTATE: an I/O error, a refused or reset connection.
        None => true,
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::TOO_MANY_CONNECTIONS,
                ]
                .contains(code)
        }
    }
}

/// A failure inside an operation: the database's (maybe transient) or the store's own verdict.
enum OpError {
    Pg(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for OpError {
    fn from(e: postgres::Error) -> OpError {
        OpError::Pg(e)
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> OpError {
        OpError::Store(e)
    }
}

/// Hides the password of a connection URL for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Postgres {
    /// Connects (retrying a server that is not up yet) and migrates the schema.
    pub fn connect(url: &str) -> Result<Postgres, StoreError> {
        Postgres::connect_with(url, 1, Duration::from_secs(120))
    }

    /// Like [`Postgres::connect`] with `connections` pooled connections (one per
    /// thread that may call at once) and a retry window for a lost server.
    pub fn connect_with(url: &str, connections: usize, retry_for: Duration) -> Result<Postgres, StoreError> {
        let mut config: postgres::Config =
            url.parse().map_err(|e| StoreError::Backend(format!("bad PostgreSQL URL `{}`: {e}", redact(url))))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.keepalives(true).keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("bma");
        }
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()) << 32;
        let store = Postgres {
            config,
            pool: (0..connections.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            retry_for,
            claims: Mutex::new(HashMap::new()),
            cache: Mutex::new(HashMap::new()),
            log: Mutex::new(HashMap::new()),
            nonce,
        };
        store.op(migrate)?;
        Ok(store)
    }

    /// How long a call keeps retrying a lost server.
    pub fn retry_for(&self) -> Duration {
        self.retry_for
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.op(|c| {
            let row = c.query_one("SELECT COALESCE(MAX(version), 0) FROM bma_migrations", &[])?;
            Ok(row.get::<_, i32>(0) as u32)
        })
    }

    /// The study named `name`, if any (what a worker joins before it has the spec).
    pub fn study_by_name(&self, name: &str) -> Result<Option<Study>, StoreError> {
        self.op(|c| {
            let row = c.query_opt(&format!("SELECT {STUDY_COLUMNS} FROM bma_studies WHERE name = $1"), &[&name])?;
            Ok(match row {
                None => None,
                Some(r) => {
                    let (id, spec, state, created) = study_from_row(&r)?;
                    Some(Study { id, spec, state, created, created_now: false })
                }
            })
        })
    }

    /// How many trials of the study are in each state.
    pub fn counts(&self, study: StudyId) -> Result<BTreeMap<String, u64>, StoreError> {
        self.op(|c| {
            let rows = c.query("SELECT state, COUNT(*) FROM bma_trials WHERE study = $1 GROUP BY state", &[&study])?;
            Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64)).collect())
        })
    }

    /// Numbers allocated so far in the study (the next claim of a new trial gets this one).
    pub fn allocated(&self, study: StudyId) -> Result<u64, StoreError> {
        self.op(|c| {
            let row = c
                .query_opt("SELECT next_number FROM bma_studies WHERE id = $1", &[&study])?
                .ok_or_else(|| StoreError::NotFound(format!("no study with id {study}")))?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    /// [`Store::claim`] with a budget: takes the lowest queued trial, or allocates
    /// the next number only while fewer than `budget` numbers were allocated;
    /// `None` when neither is possible (every number handed out, none queued).
    pub fn claim_within(&self, study: StudyId, worker: &str, budget: Option<u64>) -> Result<Option<Claim>, StoreError> {
        let budget = budget.map(|b| b.min(i64::MAX as u64) as i64);
        let token = format!("{:x}.{}", self.nonce, self.tokens.fetch_add(1, Ordering::Relaxed));
        let mut retry = false;
        let claimed = self.op(|c| {
            let mut tx = c.transaction()?;
            let first = !std::mem::replace(&mut retry, true);
            // A retry after a lost acknowledgement: the first attempt may have committed
            // (on the first attempt the token was never sent: nothing to look for).
            if !first
                && let Some(r) =
                tx.query_opt("SELECT number, attempt FROM bma_trials WHERE study = $1 AND claim_token = $2", &[
                    &study, &token,
                ])?
            {
                let (number, attempt): (i64, i32) = (r.get(0), r.get(1));
                let requeued = if attempt > 1 { Some(load_trial(&mut tx, study, number)?) } else { None };
                tx.commit()?;
                return Ok(Some((number, attempt, requeued)));
            }
            let queued = tx.query_opt(
                &format!(
                    "UPDATE bma_trials t SET state = 'running', worker = $2, claim_token = $3, attempt = t.attempt + 1, \
                     heartbeat = {NOW}, started = {NOW} \
                     FROM (SELECT number FROM bma_trials WHERE study = $1 AND state = 'queued' \
                           ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED) q \
                     WHERE t.study = $1 AND t.number = q.number RETURNING t.number, t.attempt"
                ),
                &[&study, &worker, &token],
            )?;
            if let Some(r) = queued {
                let (number, attempt): (i64, i32) = (r.get(0), r.get(1));
                let trial = load_trial(&mut tx, study, number)?;
                tx.commit()?;
                return Ok(Some((number, attempt, Some(trial))));
            }
            let row = tx.query_opt(
                &format!(
                    "WITH n AS (UPDATE bma_studies SET next_number = next_number + 1 \
                                WHERE id = $1 AND ($4::bigint IS NULL OR next_number < $4) \
                                RETURNING next_number - 1 AS number) \
                     INSERT INTO bma_trials (study, number, state, worker, claim_token, attempt, heartbeat, started) \
                     SELECT $1, number, 'running', $2, $3, 1, {NOW}, {NOW} FROM n RETURNING number"
                ),
                &[&study, &worker, &token, &budget],
            )?;
            let Some(row) = row else {
                let exists = tx.query_opt("SELECT 1 FROM bma_studies WHERE id = $1", &[&study])?.is_some();
                return if exists {
                    Ok(None)
                } else {
                    Err(StoreError::NotFound(format!("no study with id {study}")).into())
                };
            };
            tx.commit()?;
            Ok(Some((row.get::<_, i64>(0), 1, None)))
        })?;
        let Some((number, attempt, requeued)) = claimed else { return Ok(None) };
        let number = number as u64;
        self.remember(study, number, worker, attempt);
        Ok(Some(Claim { number, requeued }))
    }

    fn slot(&self) -> MutexGuard<'_, Option<Client>> {
        for m in &self.pool {
            if let Ok(g) = m.try_lock() {
                return g;
            }
        }
        let i = (self.next.fetch_add(1, Ordering::Relaxed) as usize) % self.pool.len();
        // A panic while holding a connection cannot leave a transaction open (the
        // driver rolls back on drop); the slot is still usable.
        self.pool[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on a connection, reconnecting with exponential backoff while the
    /// server is unreachable, for up to `retry_for`. `f` must be safe to run again
    /// after a failure whose commit may or may not have happened.
    fn op<R>(&self, mut f: impl FnMut(&mut Client) -> Result<R, OpError>) -> Result<R, StoreError> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(50);
        let mut slot = self.slot();
        loop {
            let err = match slot.as_mut() {
                Some(client) if !client.is_closed() => match f(client) {
                    Ok(r) => return Ok(r),
                    Err(OpError::Store(e)) => return Err(e),
                    Err(OpError::Pg(e)) => e,
                },
                _ => match self.config.connect(NoTls) {
                    Ok(client) => {
                        *slot = Some(client);
                        continue;
                    }
                    Err(e) => e,
                },
            };
            if !transient(&err) {
                return Err(backend(err));
            }
            *slot = None;
            if start.elapsed() + delay > self.retry_for {
                let cause = std::error::Error::source(&err).map(|c| format!(" ({c})")).unwrap_or_default();
                return Err(StoreError::Backend(format!(
                    "postgres: the server has been unreachable for {:.0} s: {err}{cause}",
                    start.elapsed().as_secs_f64()
                )));
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// One incremental read of the study's trials: newly finished ones go into the
    /// cache (and its log); the unfinished ones are returned.
    fn fetch(&self, study: StudyId) -> Result<Vec<Trial>, StoreError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let known = cache.entry(study).or_default();
        // Every number below `lo` is cached; above it, skip those cached.
        let mut lo: i64 = 0;
        while known.contains_key(&(lo as u64)) {
            lo += 1;
        }
        let skip: Vec<i64> = known.range(lo as u64..).map(|(n, _)| *n as i64).collect();
        let fresh = self.op(|c| {
            // Two statements, no transaction (two round trips fewer): a trial read as
            // finished had its steps committed with that state, and requeues never touch
            // finished trials, so its steps are all there for the second read; a running
            // trial's steps may be one step newer than its row, which is harmless.
            let rows = c.query(
                &format!(
                    "SELECT {TRIAL_COLUMNS} FROM bma_trials WHERE study = $1 AND number >= $2 \
                     AND NOT (number = ANY($3)) ORDER BY number"
                ),
                &[&study, &lo, &skip],
            )?;
            let mut trials = rows.iter().map(trial_from_row).collect::<Result<Vec<_>, _>>()?;
            let numbers: Vec<i64> = trials.iter().map(|t| t.number as i64).collect();
            let steps = if numbers.is_empty() {
                Vec::new()
            } else {
                c.query(
                    "SELECT number, step, value FROM bma_steps WHERE study = $1 AND number = ANY($2) \
                     ORDER BY number, step",
                    &[&study, &numbers],
                )?
            };
            let mut i = 0;
            for r in &steps {
                let (number, step, value): (i64, i32, Option<f64>) = (r.get(0), r.get(1), r.get(2));
                while i < trials.len() && (trials[i].number as i64) < number {
                    i += 1;
                }
                if let Some(t) = trials.get_mut(i).filter(|t| t.number as i64 == number) {
                    t.steps.push((step as u32, value.unwrap_or(f64::NAN)));
                }
            }
            Ok(trials)
        })?;
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let order = log.entry(study).or_default();
        let mut unfinished = Vec::new();
        for t in fresh {
            if t.state.is_finished() {
                order.push(t.number);
                known.insert(t.number, t);
            } else {
                unfinished.push(t);
            }
        }
        Ok(unfinished)
    }

    fn claimed(&self, study: StudyId, number: u64) -> Option<(String, i32)> {
        self.claims.lock().unwrap_or_else(|p| p.into_inner()).get(&(study, number)).cloned()
    }

    fn remember(&self, study: StudyId, number: u64, worker: &str, attempt: i32) {
        self.claims.lock().unwrap_or_else(|p| p.into_inner()).insert((study, number), (worker.to_string(), attempt));
    }

    fn forget(&self, study: StudyId, number: u64) {
        self.claims.lock().unwrap_or_else(|p| p.into_inner()).remove(&(study, number));
    }
}

fn migrate(c: &mut Client) -> Result<(), OpError> {
    let latest = MIGRATIONS.len() as i32;
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS bma_migrations (
            version INTEGER PRIMARY KEY,
            description TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )?;
    let version: i32 = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM bma_migrations", &[])?.get(0);
    if version > latest {
        return Err(OpError::Store(StoreError::Backend(format!(
            "the database has bma schema version {version}, newer than this bma knows ({latest}); upgrade bma"
        ))));
    }
    for (i, (description, sql)) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).map_err(|e| backend(format!("migration {}: {e}", i + 1)))?;
        tx.execute(
            "INSERT INTO bma_migrations (version, description) VALUES ($1, $2)",
            &[&(i as i32 + 1), description],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn study_from_row(r: &Row) -> Result<(StudyId, StudySpec, StudyState, f64), OpError> {
    // JSONB columns are selected as text (`STUDY_COLUMNS`): the driver reads JSONB only with a feature.
    let objectives: String = r.try_get("objectives_text")?;
    let constraints: String = r.try_get("constraints_text")?;
    let spec = StudySpec {
        name: r.try_get("name")?,
        experiment: r.try_get("experiment")?,
        spec_text: r.try_get("spec_text")?,
        spec_hash: r.try_get("spec_hash")?,
        objectives: serde_json::from_str::<Vec<(String, Direction)>>(&objectives)
            .map_err(|e| backend(format!("stored objectives do not parse: {e}")))?,
        constraints: serde_json::from_str(&constraints)
            .map_err(|e| backend(format!("stored constraints do not parse: {e}")))?,
        seed: r.try_get::<_, i64>("seed")? as u64,
        options: r.try_get("options")?,
    };
    let state: String = r.try_get("state")?;
    Ok((r.try_get("id")?, spec, StudyState::parse(&state).unwrap_or(StudyState::Running), r.try_get("created")?))
}

const STUDY_COLUMNS: &str = "id, name, experiment, spec_text, spec_hash, objectives::text AS objectives_text, \
                             constraints::text AS constraints_text, seed, state, created, options";

const TRIAL_COLUMNS: &str = "number, state, params::text, seed, objective_values::text, constraint_values::text, \
                             violations::text, metrics::text, error, duration";

fn trial_from_row(r: &Row) -> Result<Trial, OpError> {
    let state: String = r.try_get(1)?;
    Ok(Trial {
        number: r.try_get::<_, i64>(0)? as u64,
        state: TrialState::parse(&state).unwrap_or(TrialState::Failed),
        params: text_to_point(r.try_get(2)?)?,
        seed: r.try_get::<_, Option<i64>>(3)?.unwrap_or(0) as u64,
        values: text_to_floats(&r.try_get::<_, String>(4)?),
        constraints: text_to_floats(&r.try_get::<_, String>(5)?),
        violations: text_to_floats(&r.try_get::<_, String>(6)?),
        steps: Vec::new(),
        metrics: text_to_metrics(&r.try_get::<_, String>(7)?),
        error: r.try_get(8)?,
        duration: r.try_get(9)?,
    })
}

fn load_trial(tx: &mut Transaction<'_>, study: StudyId, number: i64) -> Result<Trial, OpError> {
    let row = tx.query_one(
        &format!("SELECT {TRIAL_COLUMNS} FROM bma_trials WHERE study = $1 AND number = $2"),
        &[&study, &number],
    )?;
    trial_from_row(&row)
}

/// Requeues (or, past [`MAX_REQUEUES`], fails) the running trials matching `cond`
/// (`$1` is the study, `$2` the condition's argument); returns the requeued numbers.
fn requeue_where(
    c: &mut Client,
    study: StudyId,
    cond: &str,
    arg: &(dyn postgres::types::ToSql + Sync),
) -> Result<Vec<u64>, OpError> {
    let mut tx = c.transaction()?;
    tx.execute(
        &format!(
            "UPDATE bma_trials SET state = 'failed', finished = {NOW}, requeues = requeues + 1, \
             error = 'its worker went silent ' || (requeues + 1) || ' times; not requeued again' \
             WHERE study = $1 AND state = 'running' AND requeues + 1 >= {MAX_REQUEUES} AND {cond}"
        ),
        &[&study, arg],
    )?;
    let rows = tx.query(
        &format!(
            "UPDATE bma_trials SET state = 'queued', worker = NULL, heartbeat = NULL, claim_token = NULL, \
             requeues = requeues + 1 WHERE study = $1 AND state = 'running' AND {cond} RETURNING number"
        ),
        &[&study, arg],
    )?;
    let numbers: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    if !numbers.is_empty() {
        tx.execute("DELETE FROM bma_steps WHERE study = $1 AND number = ANY($2)", &[&study, &numbers])?;
    }
    tx.commit()?;
    let mut sorted: Vec<u64> = numbers.into_iter().map(|n| n as u64).collect();
    sorted.sort_unstable();
    Ok(sorted)
}

impl Store for Postgres {
    fn open(&self, spec: &StudySpec) -> Result<Study, StoreError> {
        let objectives = serde_json::to_string(&spec.objectives).map_err(backend)?;
        let constraints = serde_json::to_string(&spec.constraints).map_err(backend)?;
        self.op(|c| {
            let mut tx = c.transaction()?;
            // Two workers creating the same study at once: one inserts, the other finds it.
            let inserted = tx.query_opt(
                &format!(
                    "INSERT INTO bma_studies (name, experiment, spec_text, spec_hash, objectives, constraints, seed, \
                     state, created, options) \
                     VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7, 'running', {NOW}, $8) \
                     ON CONFLICT (name) DO NOTHING RETURNING id"
                ),
                &[
                    &spec.name,
                    &spec.experiment,
                    &spec.spec_text,
                    &spec.spec_hash,
                    &objectives,
                    &constraints,
                    &(spec.seed as i64),
                    &spec.options,
                ],
            )?;
            let row =
                tx.query_one(&format!("SELECT {STUDY_COLUMNS} FROM bma_studies WHERE name = $1"), &[&spec.name])?;
            let (id, stored, state, created) = study_from_row(&row)?;
            let created_now = inserted.is_some();
            tx.commit()?;
            if stored.spec_hash != spec.spec_hash {
                return Err(StoreError::SpecMismatch {
                    name: spec.name.clone(),
                    stored: stored.spec_hash,
                    given: spec.spec_hash.clone(),
                }
                .into());
            }
            Ok(Study { id, spec: stored, state, created, created_now })
        })
    }

    fn set_state(&self, study: StudyId, state: StudyState) -> Result<(), StoreError> {
        self.op(|c| {
            let n = c.execute("UPDATE bma_studies SET state = $2 WHERE id = $1", &[&study, &state.as_str()])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("no study with id {study}")).into());
            }
            Ok(())
        })
    }

    fn claim(&self, study: StudyId, worker: &str, limit: Option<u64>) -> Result<Option<Claim>, StoreError> {
        self.claim_within(study, worker, limit)
    }

    fn release(&self, study: StudyId, number: u64, worker: &str) -> Result<(), StoreError> {
        self.op(|c| {
            c.execute(
                "UPDATE bma_trials SET state = 'queued', worker = NULL, heartbeat = NULL, claim_token = NULL \
                 WHERE study = $1 AND number = $2 AND state = 'running' AND worker = $3",
                &[&study, &(number as i64), &worker],
            )?;
            Ok(())
        })
    }

    fn start(&self, study: StudyId, number: u64, params: &Point, seed: u64, worker: &str) -> Result<(), StoreError> {
        let text = point_to_text(params)?;
        let attempt = self.claimed(study, number).filter(|(w, _)| w == worker).map(|(_, a)| a);
        self.op(|c| {
            let n = c.execute(
                &format!(
                    "UPDATE bma_trials SET params = $3::text::jsonb, seed = $4, heartbeat = {NOW} \
                     WHERE study = $1 AND number = $2 AND state = 'running' AND worker = $5 \
                     AND ($6::int IS NULL OR attempt = $6)"
                ),
                &[&study, &(number as i64), &text, &(seed as i64), &worker, &attempt],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "trial {number} is no longer running under this worker (it was requeued after a silence)"
                ))
                .into());
            }
            Ok(())
        })
    }

    fn report(&self, study: StudyId, number: u64, step: u32, value: f64) -> Result<(), StoreError> {
        let v = if value.is_nan() { None } else { Some(value) };
        let (worker, attempt) = match self.claimed(study, number) {
            Some((w, a)) => (Some(w), Some(a)),
            None => (None, None),
        };
        let step = step as i32;
        self.op(|c| {
            let mut tx = c.transaction()?;
            let n = tx.execute(
                &format!(
                    "UPDATE bma_trials SET heartbeat = {NOW} WHERE study = $1 AND number = $2 AND state = 'running' \
                     AND ($3::text IS NULL OR worker = $3) AND ($4::int IS NULL OR attempt = $4)"
                ),
                &[&study, &(number as i64), &worker, &attempt],
            )?;
            if n == 1 {
                tx.execute(
                    "INSERT INTO bma_steps (study, number, step, value) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (study, number, step) DO UPDATE SET value = EXCLUDED.value",
                    &[&study, &(number as i64), &step, &v],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn heartbeat(&self, study: StudyId, worker: &str) -> Result<(), StoreError> {
        self.op(|c| {
            c.execute(
                &format!(
                    "UPDATE bma_trials SET heartbeat = {NOW} WHERE study = $1 AND worker = $2 AND state = 'running'"
                ),
                &[&study, &worker],
            )?;
            Ok(())
        })
    }

    fn finish(&self, study: StudyId, trial: &Finished) -> Result<(), StoreError> {
        if !trial.state.is_finished() {
            return Err(backend(format!("trial {} finished in state {}", trial.number, trial.state.as_str())));
        }
        let params = point_to_text(&trial.params)?;
        let values = floats_to_text(&trial.values);
        let constraints = floats_to_text(&trial.constraints);
        let violations = floats_to_text(&trial.violations);
        let metrics = metrics_to_text(&trial.metrics);
        let claim = self.claimed(study, trial.number);
        let (worker, attempt) = match &claim {
            Some((w, a)) => (Some(w.clone()), Some(*a)),
            None => (None, None),
        };
        let number = trial.number as i64;
        let sql = format!(
            "UPDATE bma_trials SET state = $3, params = $4::text::jsonb, seed = $5, \
             objective_values = $6::text::jsonb, constraint_values = $7::text::jsonb, \
             violations = $8::text::jsonb, metrics = $9::text::jsonb, error = $10, duration = $11, \
             finished = {NOW}, heartbeat = NULL \
             WHERE study = $1 AND number = $2 AND state IN ('running', 'queued') \
             AND ($12::text IS NULL OR (state = 'running' AND worker = $12 AND attempt = $13))"
        );
        let seed = trial.seed as i64;
        let args: [&(dyn postgres::types::ToSql + Sync); 13] = [
            &study,
            &number,
            &trial.state.as_str(),
            &params,
            &seed,
            &values,
            &constraints,
            &violations,
            &metrics,
            &trial.error,
            &trial.duration,
            &worker,
            &attempt,
        ];
        self.op(|c| {
            // No steps to add: the one guarded update is the whole write (one round trip,
            // no BEGIN/COMMIT). Otherwise, or when it matched nothing, the transaction below.
            if trial.steps.is_empty() && c.execute(&sql, &args)? == 1 {
                return Ok(());
            }
            let mut tx = c.transaction()?;
            let n = tx.execute(&sql, &args)?;
            if n == 0 {
                let row = tx.query_opt(
                    "SELECT state, worker, attempt FROM bma_trials WHERE study = $1 AND number = $2",
                    &[&study, &number],
                )?;
                return match row {
                    None => Err(StoreError::NotFound(format!("no trial {number} in study {study}")).into()),
                    Some(r) => {
                        let (state, w, a): (String, Option<String>, i32) = (r.get(0), r.get(1), r.get(2));
                        let finished = TrialState::parse(&state).is_some_and(TrialState::is_finished);
                        if finished && w.is_some() && w == worker && Some(a) == attempt {
                            // This very write, retried after its acknowledgement was lost.
                            Ok(())
                        } else {
                            Err(StoreError::NotFound(format!(
                                "trial {number} was requeued after its worker went silent and is now {state} under \
                                 another claim; this result is discarded"
                            ))
                            .into())
                        }
                    }
                };
            }
            for (step, value) in &trial.steps {
                let v = if value.is_nan() { None } else { Some(*value) };
                tx.execute(
                    "INSERT INTO bma_steps (study, number, step, value) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (study, number, step) DO NOTHING",
                    &[&study, &number, &(*step as i32), &v],
                )?;
            }
            tx.commit()?;
            Ok(())
        })?;
        self.forget(study, trial.number);
        Ok(())
    }

    fn requeue_stale(&self, study: StudyId, timeout_s: f64) -> Result<Vec<u64>, StoreError> {
        self.op(|c| {
            requeue_where(
                c,
                study,
                &format!("(heartbeat IS NULL OR heartbeat < {NOW} - $2::double precision)"),
                &timeout_s,
            )
        })
    }

    fn requeue_worker(&self, study: StudyId, worker: &str) -> Result<Vec<u64>, StoreError> {
        let worker = worker.to_string();
        self.op(|c| requeue_where(c, study, "worker = $2::text", &worker))
    }

    fn running_workers(&self, study: StudyId) -> Result<Vec<(String, f64)>, StoreError> {
        self.op(|c| {
            let rows = c.query(
                "SELECT worker, MAX(COALESCE(heartbeat, 0)) FROM bma_trials \
                 WHERE study = $1 AND state = 'running' AND worker IS NOT NULL GROUP BY worker ORDER BY worker",
                &[&study],
            )?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn study(&self, name: &str) -> Result<Option<Study>, StoreError> {
        self.study_by_name(name)
    }

    /// Reads only what changed: finished trials never change again, so they are
    /// cached and only unfinished or newly finished ones travel.
    fn history(&self, study: StudyId) -> Result<Vec<Trial>, StoreError> {
        let unfinished = self.fetch(study)?;
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: BTreeMap<u64, Trial> = unfinished.into_iter().map(|t| (t.number, t)).collect();
        if let Some(known) = cache.get(&study) {
            out.extend(known.iter().map(|(n, t)| (*n, t.clone())));
        }
        Ok(out.into_values().collect())
    }

    /// Only the trials finished since `cursor`: the cache's log, after one incremental read.
    fn finished_since(&self, study: StudyId, cursor: u64) -> Result<(Vec<Trial>, u64), StoreError> {
        self.fetch(study)?;
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let (Some(known), Some(order)) = (cache.get(&study), log.get(&study)) else { return Ok((Vec::new(), 0)) };
        let from = (cursor as usize).min(order.len());
        let fresh = order[from..].iter().filter_map(|n| known.get(n).cloned()).collect();
        Ok((fresh, order.len() as u64))
    }

    fn studies(&self) -> Result<Vec<StudySummary>, StoreError> {
        let rows = self.op(|c| {
            let rows = c.query(&format!("SELECT {STUDY_COLUMNS} FROM bma_studies ORDER BY id"), &[])?;
            rows.iter().map(study_from_row).collect::<Result<Vec<_>, _>>()
        })?;
        let mut out = Vec::new();
        for (id, spec, state, created) in rows {
            let counts = self.counts(id)?;
            let complete: Vec<Trial> = self.op(|c| {
                let rows = c.query(
                    &format!(
                        "SELECT {TRIAL_COLUMNS} FROM bma_trials WHERE study = $1 AND state = 'complete' ORDER BY number"
                    ),
                    &[&id],
                )?;
                rows.iter().map(trial_from_row).collect::<Result<Vec<_>, _>>()
            })?;
            let refs: Vec<&Trial> = complete.iter().collect();
            let best = crate::search::rank::order(&refs, &spec.directions(), &crate::search::Rank::Lexicographic)
                .first()
                .map(|&i| (refs[i].number, refs[i].values.clone()));
            out.push(StudySummary {
                id,
                name: spec.name,
                experiment: spec.experiment,
                state,
                objectives: spec.objectives,
                counts,
                best,
                created,
            });
        }
        Ok(out)
    }
}
