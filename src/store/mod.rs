//! Where studies live: every trial's state change, committed before it is acted on.
//!
//! Takes the trial loop's writes (claims, starts, per-step reports, heartbeats,
//! finishes), gives back a study's full [`History`](crate::trial::History) after a
//! crash or on another worker. [`Store`] is the contract; [`Sqlite`] is the embedded
//! default (`<out>/study.db`); a shared PostgreSQL backend implements the same trait.
//!
//! **Invariant:** a write returns `Ok` only once it is durable (committed), so a
//! process killed at any instant leaves a store that [`Store::history`] reads back
//! consistently; a trial number is handed out exactly once per study, and a running
//! trial whose worker went silent is requeued exactly once (the transition is one
//! atomic `running -> queued` update guarded by the old state and heartbeat).
//!
//! Life of a trial, as the store sees it:
//!
//! ```text
//! claim ──> running ──finish──> complete | pruned | failed | infeasible
//!   ^          │
//!   │   (worker silent past the timeout: requeue_stale / requeue_worker)
//!   └─ queued <┘
//! ```
//!
//! A claim takes the lowest queued trial of the study (a requeued one keeps its
//! number, seed and, if it had them, params) or, when none is queued, allocates the
//! next number. Both happen in one transaction, so two workers never get the same
//! trial.

pub mod artifacts;
mod codec;
mod pg_artifacts;
pub mod postgres;
pub mod postgres_tls;
mod sqlite;
mod sqlite_artifacts;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ir::Point;
use crate::trial::{Direction, FailKind, Trial, TrialState};

pub use artifacts::{Artifact, ArtifactInfo};
pub use postgres::Postgres;
pub use sqlite::{KeyedTrial, Sqlite};

/// A study's row id in its store.
pub type StudyId = i64;

/// What a study is: fixed when it is created; joining it again must agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudySpec {
    /// The study's key in the store (by default the experiment's name).
    pub name: String,
    pub experiment: String,
    /// The `.bma` source the study was started from (the root file), kept for the record.
    pub spec_text: String,
    /// [`spec_hash`] of what determines the search (the source text).
    pub spec_hash: String,
    /// Objective names in the experiment's order, with their directions.
    pub objectives: Vec<(String, Direction)>,
    /// Constraint names (`require` clauses) in order.
    pub constraints: Vec<String>,
    pub seed: u64,
    /// The creating run's options (JSON: `bma run --store`'s trial budget, strategy,
    /// pins..., and every study's data-file fingerprints), read back by workers that join
    /// by name and by a resumed run; opaque to the store and not part of the hash. Both
    /// stores keep them; a study stored before they did reads back `""`.
    #[serde(default)]
    pub options: String,
}

impl StudySpec {
    pub fn directions(&self) -> Vec<Direction> {
        self.objectives.iter().map(|(_, d)| *d).collect()
    }
}

/// A study's state as last recorded by a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StudyState {
    /// Workers are (or were, until they were killed) running it.
    Running,
    /// Its budget (trials, time, or a finished grid) is spent.
    Finished,
    /// Stopped by the user (Ctrl-C) before the budget was spent; `--resume` continues.
    Interrupted,
}

impl StudyState {
    pub fn as_str(self) -> &'static str {
        match self {
            StudyState::Running => "running",
            StudyState::Finished => "finished",
            StudyState::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<StudyState> {
        Some(match s {
            "running" => StudyState::Running,
            "finished" => StudyState::Finished,
            "interrupted" => StudyState::Interrupted,
            _ => return None,
        })
    }
}

/// A study as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    pub id: StudyId,
    pub spec: StudySpec,
    pub state: StudyState,
    /// Unix seconds.
    pub created: f64,
    /// Whether [`Store::open`] created it now (false: an existing study was joined).
    pub created_now: bool,
}

/// One line of [`Store::studies`].
#[derive(Debug, Clone, PartialEq)]
pub struct StudySummary {
    pub id: StudyId,
    pub name: String,
    pub experiment: String,
    pub state: StudyState,
    pub objectives: Vec<(String, Direction)>,
    /// Trials by state name (`complete`, `pruned`, ...).
    pub counts: BTreeMap<String, u64>,
    /// The best complete trial's number and values, by the first objective (feasible first).
    pub best: Option<(u64, Vec<f64>)>,
    pub created: f64,
}

/// What [`Store::claim`] hands a worker: a trial that is now `running` under it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub number: u64,
    /// For a requeued trial, what was recorded for it before its worker went silent
    /// (its params are empty when it died before [`Store::start`]); `None` for a new number.
    pub requeued: Option<Trial>,
}

/// Why the store failed.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreError {
    /// The study exists with a different spec (hash shown); `--resume` refuses to mix them.
    SpecMismatch { name: String, stored: String, given: String },
    /// A study, or a trial, that does not exist.
    NotFound(String),
    /// The database said no (I/O, locking, corruption, a newer schema).
    Backend(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::SpecMismatch { name, stored, given } => write!(
                f,
                "study `{name}` was started from a different spec (stored hash {stored}, this file {given}); \
                 a study keeps the spec it started with: use the original file, or start the changed one as \
                 another study (another --study name, or another --out for a study.db)"
            ),
            StoreError::NotFound(m) | StoreError::Backend(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StoreError {}

/// What the finished trial records; `trial.state` must be finished.
pub type Finished = Trial;

/// A study store: the embedded SQLite one, or a server shared by many workers.
///
/// Every method is one atomic, durable operation; implementations are shared
/// between threads (`&self`), each call doing its own transaction.
pub trait Store: Send + Sync {
    /// Opens the study `spec.name`, creating it if absent. An existing study with
    /// another `spec_hash` is [`StoreError::SpecMismatch`]; its seed and objectives
    /// are the stored ones.
    fn open(&self, spec: &StudySpec) -> Result<Study, StoreError>;

    /// Records the study's state (`running` when a worker starts, `finished` or `interrupted` at the end).
    fn set_state(&self, study: StudyId, state: StudyState) -> Result<(), StoreError>;

    /// Atomically takes the lowest-numbered queued trial, or allocates the next
    /// number if it is below `limit` (the study's trial budget; `None`: no budget);
    /// either way the trial is `running` under `worker` with a fresh heartbeat.
    /// `Ok(None)`: nothing is queued and the budget is spent.
    fn claim(&self, study: StudyId, worker: &str, limit: Option<u64>) -> Result<Option<Claim>, StoreError>;

    /// Gives back a claimed trial that was not evaluated (the strategy had nothing
    /// to propose): it becomes `queued` again, keeping its number.
    fn release(&self, study: StudyId, number: u64, worker: &str) -> Result<(), StoreError>;

    /// Gives back a running trial of `worker` that was stopped before its end (Ctrl-C): it
    /// becomes `queued` again, keeping its number and point; its steps are dropped (it
    /// reruns from the start, like a requeued trial of a dead worker).
    fn requeue(&self, study: StudyId, number: u64, worker: &str) -> Result<(), StoreError>;

    /// Records the point and seed of a claimed trial (before it is evaluated).
    fn start(&self, study: StudyId, number: u64, params: &Point, seed: u64, worker: &str) -> Result<(), StoreError>;

    /// Records the first objective's value at `step` (an epoch) of a running trial.
    fn report(&self, study: StudyId, number: u64, step: u32, value: f64) -> Result<(), StoreError>;

    /// Proves `worker` alive: refreshes the heartbeat of every trial it runs.
    fn heartbeat(&self, study: StudyId, worker: &str) -> Result<(), StoreError>;

    /// Records a finished trial: state (complete, pruned, failed or infeasible), values,
    /// constraints, violations, metrics, error, failure kind and duration. Steps already reported
    /// are kept; `trial.steps` not yet stored are added.
    fn finish(&self, study: StudyId, trial: &Finished) -> Result<(), StoreError>;

    /// Turns `running` trials whose heartbeat is older than `timeout_s` seconds back
    /// into `queued` (their steps are dropped: the trial reruns from the start);
    /// returns their numbers. A trial is requeued once per silence: a concurrent
    /// sweep finds it queued and leaves it.
    fn requeue_stale(&self, study: StudyId, timeout_s: f64) -> Result<Vec<u64>, StoreError>;

    /// Like [`Store::requeue_stale`] for every running trial of a worker known to be dead.
    fn requeue_worker(&self, study: StudyId, worker: &str) -> Result<Vec<u64>, StoreError>;

    /// Workers with running trials in the study, with their last heartbeat (Unix seconds).
    fn running_workers(&self, study: StudyId) -> Result<Vec<(String, f64)>, StoreError>;

    /// Every trial of the study, by number, with its steps.
    fn history(&self, study: StudyId) -> Result<Vec<Trial>, StoreError>;

    /// Every study in the store.
    fn studies(&self) -> Result<Vec<StudySummary>, StoreError>;

    /// The study named `name`, if any (what a worker joins before it has the spec).
    fn study(&self, name: &str) -> Result<Option<Study>, StoreError>;

    /// Stores `artifact` as trial `number`'s saved model (replacing one stored before): its
    /// chunks and header in one transaction, refused ([`StoreError::NotFound`]) unless the
    /// trial is running under `worker`'s claim. Called before [`Store::finish`] records the
    /// trial complete; requeueing a trial drops its artifact ([`artifacts`]).
    fn put_artifact(&self, study: StudyId, number: u64, worker: &str, artifact: &Artifact) -> Result<(), StoreError>;

    /// Trial `number`'s stored model, every chunk and the whole verified by their SHA-256
    /// (a mismatch is an error naming the chunk); `None` when none is stored.
    fn artifact(&self, study: StudyId, number: u64) -> Result<Option<Artifact>, StoreError>;

    /// The study's stored models, by trial number (sizes and hashes, no content).
    fn artifacts(&self, study: StudyId) -> Result<Vec<ArtifactInfo>, StoreError>;

    /// Deletes the stored models of trials `numbers`; gives how many there were.
    fn delete_artifacts(&self, study: StudyId, numbers: &[u64]) -> Result<u64, StoreError>;

    /// Deletes the study `name` with its trials, steps and stored models; `false` when
    /// there is no such study.
    fn delete_study(&self, name: &str) -> Result<bool, StoreError>;

    /// The study-wide record under `key` (`study::darts` keeps its phase there), `None` when
    /// there is none.
    fn record(&self, study: StudyId, key: &str) -> Result<Option<String>, StoreError>;

    /// Writes `value` under `key` if the record there is `expected` (`None`: there is none),
    /// in one atomic statement; gives whether it wrote. What two workers race for (a lease)
    /// goes through here: exactly one of two writes expecting the same value wins. A record
    /// goes with its study.
    fn swap_record(&self, study: StudyId, key: &str, expected: Option<&str>, value: &str) -> Result<bool, StoreError>;

    /// The study's finished trials not yet seen by a reader at `cursor` (start at 0),
    /// and the cursor to pass next time: what a shared study's worker reads before each
    /// proposal. The default gives every finished trial each time (the caller skips
    /// those it has); a store that caches may give only the new ones.
    fn finished_since(&self, study: StudyId, cursor: u64) -> Result<(Vec<Trial>, u64), StoreError> {
        let _ = cursor;
        Ok((self.history(study)?.into_iter().filter(|t| t.state.is_finished()).collect(), 0))
    }
}

/// A stored trial's [`FailKind`] from its state and `fail_kind` column: `None` unless the
/// trial failed; a failed trial whose kind is missing or unknown (written by a newer bma)
/// reads as [`FailKind::Error`].
fn fail_kind(state: TrialState, column: Option<&str>) -> Option<FailKind> {
    (state == TrialState::Failed).then(|| column.and_then(FailKind::parse).unwrap_or(FailKind::Error))
}

/// Opens the store a `--store` value (or `BMA_STORE`) names: `postgres://...` or
/// `postgresql://...` is the shared [`Postgres`] store, `sqlite://PATH` or a plain path
/// a SQLite file. `connections` is how many threads may call at once (a worker's
/// `parallel` plus its heartbeat thread); a server that cannot be reached is retried
/// with backoff for `retry` (the CLI's `BMA_STORE_RETRY`, [`DEFAULT_RETRY`] by default) and
/// then refused with a message naming the URL (password hidden), never waited on forever.
pub fn connect(url: &str, connections: usize, retry: std::time::Duration) -> Result<Box<dyn Store>, StoreError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(StoreError::Backend("the store URL is empty (expected postgres://user@host/db or a file)".into()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pg = Postgres::connect_with(url, connections, retry).map_err(|e| match e {
            StoreError::Backend(m) => {
                StoreError::Backend(format!("cannot use the store {}: {m}", postgres::redact(url)))
            }
            other => other,
        })?;
        return Ok(Box::new(pg));
    }
    if let Some((scheme, _)) = url.split_once("://")
        && scheme != "sqlite"
    {
        return Err(StoreError::Backend(format!(
            "unknown store `{scheme}://` in `{}` (use postgres://user@host/db, sqlite://PATH or a file path)",
            postgres::redact(url)
        )));
    }
    let path = std::path::Path::new(url.strip_prefix("sqlite://").unwrap_or(url));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(StoreError::Backend(format!(
            "cannot open the store {}: {} is not a folder",
            path.display(),
            dir.display()
        )));
    }
    Ok(Box::new(Sqlite::open(path).map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?))
}

/// How long [`connect`] (and every later call) keeps retrying an unreachable server, unless
/// told otherwise.
pub const DEFAULT_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// A study's record and every trial (by number, with steps), looked up by name in
/// any store: what `bma report` and `bma ls` read.
pub fn load_study(store: &dyn Store, name: &str) -> Result<(Study, Vec<Trial>), StoreError> {
    let study = store.study(name)?.ok_or_else(|| {
        let known = store.studies().map(|s| s.into_iter().map(|s| s.name).collect::<Vec<_>>()).unwrap_or_default();
        StoreError::NotFound(if known.is_empty() {
            format!("no study `{name}` in this store (it holds none)")
        } else {
            format!("no study `{name}` in this store (it holds {})", known.join(", "))
        })
    })?;
    let trials = store.history(study.id)?;
    Ok((study, trials))
}

/// A stable hash (FNV-1a, 64-bit, hex) of a spec's text, line endings normalised.
pub fn spec_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.replace("\r\n", "\n").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Unix time in seconds.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// This process's worker id: `host:pid:nonce`, unique across restarts (fixed for the process).
/// The host is the kernel's host name (`/proc/sys/kernel/hostname`), or `localhost` where
/// that cannot be read (no `/proc`): the library reads no environment variable, and on such
/// a system [`local_worker_dead`] cannot tell anyway, so the pid and nonce keep ids apart.
pub fn worker_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(make_worker_id).clone()
}

fn make_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let nonce = (now() * 1e6) as u64 % 1_000_000;
    format!("{host}:{}:{nonce}", std::process::id())
}

/// For a worker id made by [`worker_id`] on this host: whether its process is gone.
/// `None` when that cannot be told (another host, no `/proc`).
pub fn local_worker_dead(worker: &str) -> Option<bool> {
    let mut parts = worker.rsplitn(3, ':');
    let _nonce = parts.next()?;
    let pid: u32 = parts.next()?.parse().ok()?;
    let host = parts.next()?;
    let me = worker_id();
    let my_host = me.rsplitn(3, ':').nth(2)?;
    if host != my_host || !std::path::Path::new("/proc/self").exists() {
        return None;
    }
    if pid == std::process::id() {
        // This process, or an earlier one that had its pid (and so is gone).
        return Some(worker != me);
    }
    Some(!std::path::Path::new(&format!("/proc/{pid}")).exists())
}
