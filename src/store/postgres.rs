//! The shared store: one PostgreSQL database that any number of workers, on any
//! machines, use as their only coordinator (`--store postgres://user@host/db`).
//!
//! Takes the trial loop's writes through [`Store`], gives every worker the same
//! history. There is no scheduler: a claim is one statement (so one transaction) that
//! takes the lowest queued trial (`FOR UPDATE SKIP LOCKED`) or allocates the next
//! number from the study row (`UPDATE ... RETURNING`, which row-locks it), so two
//! workers never get the same trial and no number is skipped.
//!
//! A trial costs a worker three round trips: the claim (which also reads the trials
//! finished since this process last looked, for the sampler: [`Store::finished_since`]
//! after a claim needs no read of its own), `start` and `finish`, each one prepared
//! statement (prepared once per connection) committing on its own; a model trial of a
//! shared study also stores its model before `finish` (`pg_artifacts.rs`: one transaction).
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, Row, Statement};

use super::codec::{floats_to_text, metrics_to_text, point_to_text, text_to_floats, text_to_metrics, text_to_point};
use super::{
    Artifact, ArtifactInfo, Claim, Finished, Store, StoreError, Study, StudyId, StudySpec, StudyState, StudySummary,
};
use crate::ir::Point;
use crate::trial::{Direction, FailKind, Trial, TrialState};

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
    (
        "failure kinds in their own column; points refused before training are infeasible",
        // The error texts matched here are those earlier versions wrote (`INFEASIBLE`,
        // `CANCELLED`, `INTERRUPTED`, the time-outs); a new trial's kind is written with it.
        "ALTER TABLE bma_trials ADD COLUMN fail_kind TEXT;
    ALTER TABLE bma_trials DROP CONSTRAINT IF EXISTS bma_trials_state_check;
    ALTER TABLE bma_trials ADD CONSTRAINT bma_trials_state_check
        CHECK (state IN ('queued', 'running', 'complete', 'pruned', 'failed', 'infeasible'));
    UPDATE bma_trials SET state = 'infeasible'
        WHERE state = 'failed' AND error LIKE 'infeasible before training%';
    UPDATE bma_trials SET fail_kind = CASE
            WHEN error = 'interrupted (Ctrl-C)' THEN 'interrupted'
            WHEN error = 'cancelled: the file was saved during the run' THEN 'cancelled'
            WHEN error LIKE 'ran out of time: %' THEN 'timed_out'
            WHEN error = 'stopped: the study''s time budget ran out' THEN 'study_time'
            ELSE 'error' END
        WHERE state = 'failed';",
    ),
    ("the device a command trial ran on", "ALTER TABLE bma_trials ADD COLUMN device TEXT"),
    (
        "trained models in the store: one header and 1 MiB chunks per trial, with SHA-256",
        // Chunks are stored uncompressed and out of line (weights do not compress) and are
        // written with their header in one transaction; both go with their trial.
        "CREATE TABLE bma_artifacts (
        study BIGINT NOT NULL,
        number BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        size BIGINT NOT NULL,
        chunks INTEGER NOT NULL,
        files INTEGER NOT NULL,
        worker TEXT,
        created DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (study, number),
        FOREIGN KEY (study, number) REFERENCES bma_trials (study, number) ON DELETE CASCADE
    );
    CREATE TABLE bma_artifact_chunks (
        study BIGINT NOT NULL,
        number BIGINT NOT NULL,
        idx INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (study, number, idx),
        FOREIGN KEY (study, number) REFERENCES bma_trials (study, number) ON DELETE CASCADE
    );
    ALTER TABLE bma_artifact_chunks ALTER COLUMN data SET STORAGE EXTERNAL;",
    ),
    // `worker` is only the claim, cleared at the end.
    ("the worker that ran a trial to its end", "ALTER TABLE bma_trials ADD COLUMN ran_by TEXT"),
    (
        "study-wide records: a DARTS phase's lease and result",
        "CREATE TABLE bma_study_records (
        study BIGINT NOT NULL REFERENCES bma_studies (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (study, key)
    )",
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
    /// The URL's `sslmode`/`sslrootcert` ([`super::postgres_tls`]) and their connector.
    tls: super::postgres_tls::Tls,
    connector: tokio_postgres_rustls::MakeRustlsConnect,
    pool: Vec<Mutex<Option<Conn>>>,
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
    /// Studies whose cache a claim has just brought up to date (it reads the newly
    /// finished trials in the same statement): the next [`Store::finished_since`]
    /// answers from the cache without a round trip.
    fresh: Mutex<HashSet<StudyId>>,
    nonce: u64,
}

/// One pooled connection and its prepared statements (by SQL text): a hot statement
/// is parsed and planned once per connection, then costs one round trip
/// (Bind/Execute/Sync) instead of two (Parse/Describe, then Bind/Execute).
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    /// The prepared statement for `sql` on this connection (prepared on first use).
    fn prep(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

impl Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
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
pub(super) enum OpError {
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
        let bad = |e: String| StoreError::Backend(format!("bad PostgreSQL URL `{}`: {e}", redact(url)));
        let (rest, tls) = super::postgres_tls::split(url).map_err(bad)?;
        let mut config: postgres::Config = rest.parse().map_err(|e: postgres::Error| bad(e.to_string()))?;
        config.ssl_mode(tls.ssl_mode());
        let connector = tls.connector().map_err(|e| StoreError::Backend(format!("postgres: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.keepalives(true).keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("bma");
        }
        // Every statement here looks rows up by key, and the hot ones are prepared once
        // per connection: plan each once. Left to itself the server re-plans the claim
        // (a statement of several CTEs) on every execution, because a custom plan for
        // the given cursor looks cheaper than the generic one; that planning made the
        // claim ten times slower (bench/distributed/RESULTS.md). PostgreSQL 12 or newer.
        let options = match config.get_options() {
            Some(o) if !o.trim().is_empty() => format!("{o} -c plan_cache_mode=force_generic_plan"),
            _ => "-c plan_cache_mode=force_generic_plan".to_string(),
        };
        config.options(&options);
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()) << 32;
        let store = Postgres {
            config,
            tls,
            connector,
            pool: (0..connections.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            retry_for,
            claims: Mutex::new(HashMap::new()),
            cache: Mutex::new(HashMap::new()),
            log: Mutex::new(HashMap::new()),
            fresh: Mutex::new(HashSet::new()),
            nonce,
        };
        store.op(|c| migrate(c))?;
        Ok(store)
    }

    /// How long a call keeps retrying a lost server.
    pub fn retry_for(&self) -> Duration {
        self.retry_for
    }

    /// The first host of the URL, for messages.
    fn host(&self) -> String {
        match self.config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "the server".into(),
        }
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
        let (lo, skip) = self.cursor(study);
        let mut retry = false;
        let (claimed, finished) = self.op(|c| {
            let first = !std::mem::replace(&mut retry, true);
            // A retry after a lost acknowledgement: the first attempt may have committed
            // (on the first attempt the token was never sent: nothing to look for).
            if !first {
                let st = c.prep(&CLAIMED_BY_TOKEN)?;
                if let Some(r) = c.query_opt(&st, &[&study, &token])? {
                    let attempt: i32 = r.try_get(1)?;
                    let trial = trial_at(&r, 2)?;
                    let requeued = (attempt > 1).then(|| trial.clone());
                    // Nothing was read about the others' trials: the cache is not fresh.
                    return Ok((Some((trial.number as i64, attempt, requeued)), None));
                }
            }
            // One statement, one round trip, its own transaction: the claim (a queued
            // trial or a new number) and the trials finished since this store's last read.
            let st = c.prep(&CLAIM)?;
            let rows = c.query(&st, &[&study, &worker, &token, &budget, &lo, &skip])?;
            let mut claimed = None;
            let mut finished = Vec::new();
            for r in &rows {
                let kind: i32 = r.try_get(0)?;
                let attempt: i32 = r.try_get(1)?;
                match kind {
                    0 => {
                        let t = trial_at(r, 2)?;
                        claimed = Some((t.number as i64, attempt, Some(t)));
                    }
                    1 => claimed = Some((r.try_get::<_, i64>(2)?, 1, None)),
                    _ => finished.push(trial_at(r, 2)?),
                }
            }
            if claimed.is_none() {
                let st = c.prep("SELECT 1 FROM bma_studies WHERE id = $1")?;
                if c.query_opt(&st, &[&study])?.is_none() {
                    return Err(StoreError::NotFound(format!("no study with id {study}")).into());
                }
            }
            Ok((claimed, Some(finished)))
        })?;
        if let Some(finished) = finished {
            self.absorb(study, finished, true);
        }
        let Some((number, attempt, requeued)) = claimed else { return Ok(None) };
        let number = number as u64;
        self.remember(study, number, worker, attempt);
        Ok(Some(Claim { number, requeued }))
    }

    /// Where an incremental read of the study's trials starts: every number below
    /// `lo` is cached (finished); above it, the cached numbers to skip.
    fn cursor(&self, study: StudyId) -> (i64, Vec<i64>) {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let Some(known) = cache.get(&study) else { return (0, Vec::new()) };
        let mut lo: u64 = 0;
        while known.contains_key(&lo) {
            lo += 1;
        }
        (lo as i64, known.range(lo..).map(|(n, _)| *n as i64).collect())
    }

    /// Puts newly read trials into the cache and its log (finished ones; they never
    /// change again) and returns the unfinished ones. `fresh`: the read was a claim's,
    /// so the next [`Store::finished_since`] needs no read of its own.
    fn absorb(&self, study: StudyId, mut trials: Vec<Trial>, fresh: bool) -> Vec<Trial> {
        trials.sort_by_key(|t| t.number);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let known = cache.entry(study).or_default();
        let order = log.entry(study).or_default();
        let mut unfinished = Vec::new();
        for t in trials {
            if !t.state.is_finished() {
                unfinished.push(t);
            } else if let std::collections::btree_map::Entry::Vacant(slot) = known.entry(t.number) {
                order.push(t.number);
                slot.insert(t);
            }
        }
        let mut fresh_set = self.fresh.lock().unwrap_or_else(|p| p.into_inner());
        if fresh {
            fresh_set.insert(study);
        } else {
            fresh_set.remove(&study);
        }
        unfinished
    }

    fn slot(&self) -> MutexGuard<'_, Option<Conn>> {
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
    fn op<R>(&self, mut f: impl FnMut(&mut Conn) -> Result<R, OpError>) -> Result<R, StoreError> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(50);
        let mut slot = self.slot();
        loop {
            let err = match slot.as_mut() {
                Some(conn) if !conn.client.is_closed() => match f(conn) {
                    Ok(r) => return Ok(r),
                    Err(OpError::Store(e)) => return Err(e),
                    Err(OpError::Pg(e)) => {
                        // A statement prepared before (say) a schema change may be what
                        // failed: prepare afresh next time.
                        conn.statements.clear();
                        e
                    }
                },
                _ => match self.config.connect(self.connector.clone()) {
                    Ok(client) => {
                        *slot = Some(Conn { client, statements: HashMap::new() });
                        continue;
                    }
                    // A certificate or a server without TLS does not get better by waiting.
                    Err(e) => match super::postgres_tls::explain(&e, &self.tls, &self.host()) {
                        Some(message) => return Err(StoreError::Backend(message)),
                        None => e,
                    },
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

    /// One incremental read of the study's trials (one statement, steps included):
    /// newly finished ones go into the cache (and its log); the unfinished ones are returned.
    fn fetch(&self, study: StudyId) -> Result<Vec<Trial>, StoreError> {
        let (lo, skip) = self.cursor(study);
        let fresh = self.op(|c| {
            let st = c.prep(&FETCH)?;
            let rows = c.query(&st, &[&study, &lo, &skip])?;
            rows.iter().map(|r| trial_at(r, 2)).collect::<Result<Vec<_>, _>>()
        })?;
        Ok(self.absorb(study, fresh, false))
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
                             violations::text, metrics::text, error, duration, fail_kind, device, started, finished, ran_by";

/// A trial row's columns for a table aliased `t`, as [`trial_at`] reads them.
const T_COLUMNS: &str = "t.number, t.state, t.params::text AS params, t.seed, \
                         t.objective_values::text AS objective_values, t.constraint_values::text AS constraint_values, \
                         t.violations::text AS violations, t.metrics::text AS metrics, t.error, t.duration, \
                         t.fail_kind, t.device, t.started, t.finished, t.ran_by";

/// A trial's steps and their values (in step order) as two arrays, `s.steps` and
/// `s.step_values` (NULL without steps): a join for a table aliased `t` of the study
/// `$1`, from trial number `lo` (a parameter) up. One aggregate over the steps, not a
/// subquery per trial (a full history read was 20x slower that way).
fn steps_join(lo: &str) -> String {
    format!(
        "LEFT JOIN (SELECT number, array_agg(step ORDER BY step) AS steps, \
                           array_agg(value ORDER BY step) AS step_values \
                    FROM bma_steps WHERE study = $1 AND number >= {lo} GROUP BY number) s \
         ON s.number = t.number"
    )
}

/// The claim, in one statement: the lowest queued trial (`FOR UPDATE SKIP LOCKED`), or
/// else the next number below the budget (`$4`; the study row's update locks it, so
/// numbers are handed out once), and the study's trials finished since the reader's
/// cursor (`$5`, `$6`: see [`Postgres::cursor`]), read first, before the study row is
/// locked. Rows: `kind` (0 a requeued trial, 1 a new number, 2 a finished trial),
/// `attempt`, [`T_COLUMNS`], steps and their values ([`steps_join`]).
static CLAIM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH q AS (
           UPDATE bma_trials t SET state = 'running', worker = $2, claim_token = $3, attempt = t.attempt + 1,
                  heartbeat = {NOW}, started = {NOW}
           FROM (SELECT number FROM bma_trials WHERE study = $1 AND state = 'queued'
                 ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED) k
           WHERE t.study = $1 AND t.number = k.number
           RETURNING 0 AS kind, t.attempt, {T_COLUMNS}, NULL::int4[] AS steps, NULL::float8[] AS step_values
         ), n AS (
           UPDATE bma_studies SET next_number = next_number + 1
           WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM q) AND ($4::bigint IS NULL OR next_number < $4)
           RETURNING next_number - 1 AS number
         ), i AS (
           INSERT INTO bma_trials (study, number, state, worker, claim_token, attempt, heartbeat, started)
           SELECT $1, number, 'running', $2, $3, 1, {NOW}, {NOW} FROM n RETURNING number
         )
         SELECT 2 AS kind, t.attempt, {T_COLUMNS}, s.steps, s.step_values FROM bma_trials t {steps}
           WHERE t.study = $1 AND t.number >= $5 AND NOT (t.number = ANY($6))
             AND t.state IN ('complete', 'pruned', 'failed', 'infeasible')
         UNION ALL SELECT * FROM q
         UNION ALL SELECT 1, 1, number, 'running', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
         NULL, NULL, NULL, NULL \
         FROM i",
        steps = steps_join("$5")
    )
});

/// A retried claim's first attempt, found by its token (rows as [`CLAIM`]'s).
/// [`Store::start`]: the point and seed of a trial still running under its claim.
static START: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE bma_trials SET params = $3::text::jsonb, seed = $4, heartbeat = {NOW} \
         WHERE study = $1 AND number = $2 AND state = 'running' AND worker = $5 \
         AND ($6::int IS NULL OR attempt = $6)"
    )
});

/// [`Store::report`]: the heartbeat, and the step only when the trial is still running
/// under its claim (`$3`, `$4`: worker and attempt, or NULL when not claimed here).
static REPORT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH u AS (UPDATE bma_trials SET heartbeat = {NOW} WHERE study = $1 AND number = $2 \
                    AND state = 'running' AND ($3::text IS NULL OR worker = $3) \
                    AND ($4::int IS NULL OR attempt = $4) RETURNING number) \
         INSERT INTO bma_steps (study, number, step, value) SELECT $1, number, $5::int4, $6::float8 FROM u \
         ON CONFLICT (study, number, step) DO UPDATE SET value = EXCLUDED.value"
    )
});

/// [`Store::heartbeat`].
static HEARTBEAT: LazyLock<String> = LazyLock::new(|| {
    format!("UPDATE bma_trials SET heartbeat = {NOW} WHERE study = $1 AND worker = $2 AND state = 'running'")
});

/// [`Store::finish`]: the guarded update of the trial's row and its steps not yet
/// stored (`$14`, `$15`: step numbers and values), one statement; gives how many
/// trials it updated (0: not running under this claim any more, or already finished).
static FINISH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH u AS (
           UPDATE bma_trials SET state = $3, params = $4::text::jsonb, seed = $5,
                  objective_values = $6::text::jsonb, constraint_values = $7::text::jsonb,
                  violations = $8::text::jsonb, metrics = $9::text::jsonb, error = $10, duration = $11,
                  fail_kind = $16, device = $17, ran_by = $18, finished = {NOW}, heartbeat = NULL
           WHERE study = $1 AND number = $2 AND state IN ('running', 'queued')
             AND ($12::text IS NULL OR (state = 'running' AND worker = $12 AND attempt = $13))
           RETURNING number
         ), s AS (
           INSERT INTO bma_steps (study, number, step, value)
           SELECT $1, u.number, x.step, x.value FROM u, unnest($14::int4[], $15::float8[]) AS x(step, value)
           ON CONFLICT (study, number, step) DO NOTHING
         )
         SELECT COUNT(*) FROM u"
    )
});

static CLAIMED_BY_TOKEN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT 0, t.attempt, {T_COLUMNS}, NULL::int4[], NULL::float8[] FROM bma_trials t \
         WHERE t.study = $1 AND t.claim_token = $2"
    )
});

/// The study's trials from number `$2` up, but those in `$3` (rows as [`CLAIM`]'s).
static FETCH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT 2, t.attempt, {T_COLUMNS}, s.steps, s.step_values FROM bma_trials t {steps} \
         WHERE t.study = $1 AND t.number >= $2 AND NOT (t.number = ANY($3)) ORDER BY t.number",
        steps = steps_join("$2")
    )
});

fn trial_from_row(r: &Row) -> Result<Trial, OpError> {
    trial_at(r, 0)
}

/// The trial whose [`TRIAL_COLUMNS`] start at column `at`; when the row has two more
/// columns after them, they are its steps and their values ([`steps_join`]).
fn trial_at(r: &Row, at: usize) -> Result<Trial, OpError> {
    let state: String = r.try_get(at + 1)?;
    let mut steps = Vec::new();
    if r.len() >= at + 17 {
        let numbers: Option<Vec<i32>> = r.try_get(at + 15)?;
        let values: Option<Vec<Option<f64>>> = r.try_get(at + 16)?;
        if let (Some(numbers), Some(values)) = (numbers, values) {
            steps = numbers.iter().zip(values).map(|(s, v)| (*s as u32, v.unwrap_or(f64::NAN))).collect();
        }
    }
    let state = TrialState::parse(&state).unwrap_or(TrialState::Failed);
    let kind: Option<String> = r.try_get(at + 10)?;
    Ok(Trial {
        number: r.try_get::<_, i64>(at)? as u64,
        state,
        params: text_to_point(r.try_get(at + 2)?)?,
        seed: r.try_get::<_, Option<i64>>(at + 3)?.unwrap_or(0) as u64,
        values: text_to_floats(&r.try_get::<_, String>(at + 4)?),
        constraints: text_to_floats(&r.try_get::<_, String>(at + 5)?),
        violations: text_to_floats(&r.try_get::<_, String>(at + 6)?),
        steps,
        metrics: text_to_metrics(&r.try_get::<_, String>(at + 7)?),
        error: r.try_get(at + 8)?,
        failure: super::fail_kind(state, kind.as_deref()),
        duration: r.try_get(at + 9)?,
        device: r.try_get(at + 11)?,
        started: r.try_get(at + 12)?,
        finished: r.try_get(at + 13)?,
        worker: r.try_get(at + 14)?,
    })
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
            "UPDATE bma_trials SET state = 'failed', fail_kind = 'error', finished = {NOW}, requeues = requeues + 1, \
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
        super::pg_artifacts::delete(&mut tx, study, &numbers)?;
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

    fn record(&self, study: StudyId, key: &str) -> Result<Option<String>, StoreError> {
        self.op(|c| {
            let row =
                c.query_opt("SELECT value FROM bma_study_records WHERE study = $1 AND key = $2", &[&study, &key])?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// A retry after a lost answer may find its own write done and say `false`: the caller
    /// reads the record back ([`Store::swap_record`]'s users do).
    fn swap_record(&self, study: StudyId, key: &str, expected: Option<&str>, value: &str) -> Result<bool, StoreError> {
        self.op(|c| {
            let n = match expected {
                None => c.execute(
                    "INSERT INTO bma_study_records (study, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&study, &key, &value],
                )?,
                Some(old) => c.execute(
                    "UPDATE bma_study_records SET value = $3 WHERE study = $1 AND key = $2 AND value = $4",
                    &[&study, &key, &value, &old],
                )?,
            };
            Ok(n == 1)
        })
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

    fn requeue(&self, study: StudyId, number: u64, worker: &str) -> Result<(), StoreError> {
        self.op(|c| {
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE bma_trials SET state = 'queued', worker = NULL, heartbeat = NULL, claim_token = NULL \
                 WHERE study = $1 AND number = $2 AND state = 'running' AND worker = $3",
                &[&study, &(number as i64), &worker],
            )?;
            if n > 0 {
                tx.execute("DELETE FROM bma_steps WHERE study = $1 AND number = $2", &[&study, &(number as i64)])?;
                super::pg_artifacts::delete(&mut tx, study, &[number as i64])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn start(&self, study: StudyId, number: u64, params: &Point, seed: u64, worker: &str) -> Result<(), StoreError> {
        let text = point_to_text(params)?;
        let attempt = self.claimed(study, number).filter(|(w, _)| w == worker).map(|(_, a)| a);
        self.op(|c| {
            let st = c.prep(&START)?;
            let n = c.execute(&st, &[&study, &(number as i64), &text, &(seed as i64), &worker, &attempt])?;
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
            // One statement: the heartbeat, and the step only if the trial is still ours.
            let st = c.prep(&REPORT)?;
            c.execute(&st, &[&study, &(number as i64), &worker, &attempt, &step, &v])?;
            Ok(())
        })
    }

    fn heartbeat(&self, study: StudyId, worker: &str) -> Result<(), StoreError> {
        self.op(|c| {
            let st = c.prep(&HEARTBEAT)?;
            c.execute(&st, &[&study, &worker])?;
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
        let seed = trial.seed as i64;
        let step_numbers: Vec<i32> = trial.steps.iter().map(|(s, _)| *s as i32).collect();
        let step_values: Vec<Option<f64>> =
            trial.steps.iter().map(|(_, v)| if v.is_nan() { None } else { Some(*v) }).collect();
        // This trial finished after the last claim's read: the next `finished_since` reads.
        self.fresh.lock().unwrap_or_else(|p| p.into_inner()).remove(&study);
        let kind = trial.failure.map(FailKind::as_str);
        let args: [&(dyn postgres::types::ToSql + Sync); 18] = [
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
            &step_numbers,
            &step_values,
            &kind,
            &trial.device,
            &trial.worker,
        ];
        self.op(|c| {
            // The guarded update and the steps not yet stored: one statement, one round trip.
            let st = c.prep(&FINISH)?;
            let updated: i64 = c.query_one(&st, &args)?.try_get(0)?;
            if updated == 1 {
                return Ok(());
            }
            let st = c.prep("SELECT state, worker, attempt FROM bma_trials WHERE study = $1 AND number = $2")?;
            match c.query_opt(&st, &[&study, &number])? {
                None => Err(StoreError::NotFound(format!("no trial {number} in study {study}")).into()),
                Some(r) => {
                    let (state, w, a): (String, Option<String>, i32) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
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
            }
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

    fn put_artifact(&self, study: StudyId, number: u64, worker: &str, artifact: &Artifact) -> Result<(), StoreError> {
        let attempt = self.claimed(study, number).filter(|(w, _)| w == worker).map(|(_, a)| a);
        self.op(|c| super::pg_artifacts::put(c, study, number, worker, attempt, artifact))
    }

    fn artifact(&self, study: StudyId, number: u64) -> Result<Option<Artifact>, StoreError> {
        self.op(|c| super::pg_artifacts::get(c, study, number))
    }

    fn artifacts(&self, study: StudyId) -> Result<Vec<ArtifactInfo>, StoreError> {
        self.op(|c| super::pg_artifacts::list(c, study))
    }

    fn delete_artifacts(&self, study: StudyId, numbers: &[u64]) -> Result<u64, StoreError> {
        let numbers: Vec<i64> = numbers.iter().map(|n| *n as i64).collect();
        self.op(|c| {
            let mut tx = c.transaction()?;
            let n = super::pg_artifacts::delete(&mut tx, study, &numbers)?;
            tx.commit()?;
            Ok(n)
        })
    }

    fn delete_study(&self, name: &str) -> Result<bool, StoreError> {
        // Trials, steps and stored models go with the study (ON DELETE CASCADE).
        let n = self.op(|c| Ok(c.execute("DELETE FROM bma_studies WHERE name = $1", &[&name])?))?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.clear();
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(n > 0)
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

    /// Only the trials finished since `cursor`: the cache's log, after one incremental
    /// read, or with none when a claim has just read them (the trial loop claims, then
    /// asks this before each proposal: one round trip for both).
    fn finished_since(&self, study: StudyId, cursor: u64) -> Result<(Vec<Trial>, u64), StoreError> {
        let fresh = self.fresh.lock().unwrap_or_else(|p| p.into_inner()).remove(&study);
        if !fresh {
            self.fetch(study)?;
        }
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
            let best = crate::trial::rank::order(&refs, &spec.directions(), &crate::trial::Rank::Lexicographic)
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
