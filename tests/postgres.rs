//! The PostgreSQL store's own behaviour against a real server: migrations (an old schema
//! included), the cache and the pool, concurrent workers, requeues, restarts. What every
//! store does is the conformance suite's (`tests/store_suite/`, run by `tests/store.rs`).
//!
//! Needs `BMA_TEST_POSTGRES` (a URL such as `postgres://bma@127.0.0.1:5433/bma`);
//! `scripts/pg-test-server.sh start` starts a throwaway server and prints it. Without
//! it every test here fails when `CI` is set, and otherwise says so loudly and passes
//! without checking anything. The restart test also needs `BMA_PG_DIR` (printed by the
//! same script).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bma::store::postgres::{MAX_REQUEUES, MIGRATIONS};
use bma::store::{Postgres, Store, StoreError};
use bma::trial::{Direction, FailKind, TrialState};

mod common;
mod store_suite;

use common::{restart_server, unique};
use store_suite::{finished, point, spec};

fn url() -> Option<String> {
    common::url("the PostgreSQL tests")
}

#[test]
fn schema_is_migrated_once_and_versioned() {
    let Some(url) = url() else { return };
    // Several connections migrating at once: one does it, the others find it done.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Postgres::connect(&url).map(|s| s.schema_version()))
        })
        .collect();
    for h in handles {
        let v = h.join().expect("thread").expect("connect").expect("version");
        assert_eq!(v as usize, MIGRATIONS.len());
    }
}

#[test]
fn the_cache_and_a_fresh_connection_read_what_was_written() {
    let Some(url) = url() else { return };
    let s = Postgres::connect(&url).expect("connect");
    let name = unique("roundtrip");
    let study = s.open(&spec(&name, "experiment e {}")).expect("open");
    let found = s.study_by_name(&name).expect("lookup").expect("exists");
    assert_eq!(found.spec.spec_text, "experiment e {}");
    assert_eq!(found.spec.objectives, vec![("loss".to_string(), Direction::Minimize)]);
    for i in 0..3u64 {
        let c = s.claim(study.id, "w", None).expect("claim").expect("a trial");
        s.start(study.id, i, &point(i as f64), 100 + i, "w").expect("start");
        s.report(study.id, i, 1, 2.0).expect("report");
        s.report(study.id, i, 2, f64::NAN).expect("report");
        let mut t = finished(c.number, i as f64, 10.0 - i as f64);
        if i == 1 {
            t.values = vec![f64::INFINITY];
            t.fail(FailKind::TimedOut, "ran out of time: the trial limit is 1.0s".into());
        }
        s.finish(study.id, &t).expect("finish");
    }
    let h = s.history(study.id).expect("history");
    assert_eq!(h.len(), 3);
    assert_eq!((h[1].state, h[1].failure), (TrialState::Failed, Some(FailKind::TimedOut)));
    // A second read comes from the cache for finished trials and must agree.
    assert_eq!(format!("{:?}", s.history(study.id).expect("history")), format!("{h:?}"));
    // And a fresh connection (no cache) reads the same.
    let fresh = Postgres::connect(&url).expect("connect");
    assert_eq!(format!("{:?}", fresh.history(study.id).expect("history")), format!("{h:?}"));
}

/// A database as bma wrote it before failure kinds (schema 2, in a schema of its own so the
/// shared test database is left alone) opens: migrated, failures get their kinds from their
/// texts, and a point refused before training becomes infeasible.
#[test]
fn a_version_2_database_gets_failure_kinds_and_its_refused_points_become_infeasible() {
    let Some(url) = url() else { return };
    let schema = unique("old").replace('-', "_");
    let mut c = common::client(&url);
    c.batch_execute(&format!("CREATE SCHEMA {schema}; SET search_path TO {schema};")).expect("create a schema");
    c.batch_execute(
        "CREATE TABLE bma_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL,
                                      applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .expect("the migrations table");
    for (i, (description, sql)) in MIGRATIONS[..2].iter().enumerate() {
        c.batch_execute(sql).expect("an old migration");
        c.execute("INSERT INTO bma_migrations (version, description) VALUES ($1, $2)", &[&(i as i32 + 1), description])
            .expect("record it");
    }
    c.batch_execute(
        "INSERT INTO bma_studies (name, experiment, spec_text, spec_hash, objectives, constraints, seed, state, created, next_number)
         VALUES ('a', 'a', 'x', 'h', '[[\"loss\",\"minimize\"]]', '[]', 7, 'finished', 0, 7);
         INSERT INTO bma_trials (study, number, state, params, seed, objective_values, error)
         SELECT id, n, st, '{}', 3, v::jsonb, e FROM bma_studies, (VALUES
             (0, 'complete', '[2.0]', NULL),
             (1, 'failed', '[]', 'infeasible before training: params <= 100 (is 515)'),
             (2, 'failed', '[]', 'interrupted (Ctrl-C)'),
             (3, 'failed', '[]', 'cancelled: the file was saved during the run'),
             (4, 'failed', '[]', 'ran out of time: the trial limit is 1.0s'),
             (5, 'failed', '[]', 'stopped: the study''s time budget ran out'),
             (6, 'failed', '[]', 'loss is NaN')) AS t(n, st, v, e);",
    )
    .expect("write a version-2 database");
    let sep = if url.contains('?') { '&' } else { '?' };
    let old =
        Postgres::connect(&format!("{url}{sep}options=-c%20search_path%3D{schema}")).expect("open the old database");
    assert_eq!(old.schema_version().expect("version") as usize, MIGRATIONS.len());
    let study = old.study_by_name("a").expect("lookup").expect("the old study");
    let h = old.history(study.id).expect("history");
    let read: Vec<(TrialState, Option<FailKind>)> = h.iter().map(|t| (t.state, t.failure)).collect();
    let _ = c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
    assert_eq!(
        read,
        vec![
            (TrialState::Complete, None),
            (TrialState::Infeasible, None),
            (TrialState::Failed, Some(FailKind::Interrupted)),
            (TrialState::Failed, Some(FailKind::Cancelled)),
            (TrialState::Failed, Some(FailKind::TimedOut)),
            (TrialState::Failed, Some(FailKind::StudyTime)),
            (TrialState::Failed, Some(FailKind::Error)),
        ]
    );
    assert_eq!(h[1].error.as_deref(), Some("infeasible before training: params <= 100 (is 515)"), "texts are kept");
}

#[test]
fn concurrent_claims_hand_out_each_number_once() {
    let Some(url) = url() else { return };
    let name = unique("claims");
    let budget = 400u64;
    let setup = Postgres::connect(&url).expect("connect");
    let study = setup.open(&spec(&name, "claims")).expect("open");
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                let s = Postgres::connect(&url).expect("connect");
                let worker = format!("w{w}");
                let mut mine = Vec::new();
                while let Some(c) = s.claim_within(study.id, &worker, Some(budget)).expect("claim") {
                    s.start(study.id, c.number, &point(c.number as f64), c.number, &worker).expect("start");
                    s.finish(study.id, &finished(c.number, c.number as f64, c.number as f64)).expect("finish");
                    mine.push(c.number);
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().expect("thread"));
    }
    all.sort_unstable();
    assert_eq!(all, (0..budget).collect::<Vec<_>>(), "every number exactly once");
    let h = setup.history(study.id).expect("history");
    assert_eq!(h.len() as u64, budget);
    assert!(h.iter().all(|t| t.state == TrialState::Complete && t.values == vec![t.number as f64]));
    assert_eq!(setup.allocated(study.id).expect("allocated"), budget);
}

#[test]
fn a_silent_trial_is_requeued_once_and_the_stale_worker_is_shut_out() {
    let Some(url) = url() else { return };
    let name = unique("requeue");
    let a = Postgres::connect(&url).expect("connect");
    let b = Postgres::connect(&url).expect("connect");
    let study = a.open(&spec(&name, "requeue")).expect("open");
    let c = a.claim(study.id, "dead", None).expect("claim").expect("a trial");
    a.start(study.id, c.number, &point(0.5), 42, "dead").expect("start");
    a.report(study.id, c.number, 1, 3.0).expect("report");
    std::thread::sleep(Duration::from_millis(300));
    // Two sweeps at once: the trial is requeued by exactly one of them.
    let a2 = Arc::new(a);
    let sweeps: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Postgres::connect(&url).expect("connect").requeue_stale(study.id, 0.2))
        })
        .collect();
    let requeued: Vec<u64> = sweeps.into_iter().flat_map(|h| h.join().expect("thread").expect("sweep")).collect();
    assert_eq!(requeued, vec![c.number], "requeued exactly once");
    // The survivor gets it back with its params and seed; its steps are gone.
    let again = b.claim(study.id, "alive", None).expect("claim").expect("a trial");
    assert_eq!(again.number, c.number);
    let old = again.requeued.expect("requeued trial");
    assert_eq!(old.params, point(0.5));
    assert_eq!(old.seed, 42);
    assert!(old.steps.is_empty());
    // The presumed-dead worker wakes up: it can no longer write.
    assert!(a2.start(study.id, c.number, &point(0.5), 42, "dead").is_err());
    let late = a2.finish(study.id, &finished(c.number, 0.5, 99.0));
    assert!(matches!(late, Err(StoreError::NotFound(ref m)) if m.contains("discarded")), "{late:?}");
    b.finish(study.id, &finished(c.number, 0.5, 1.0)).expect("finish");
    let h = b.history(study.id).expect("history");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].values, vec![1.0]);
    // A fresh heartbeat protects a running trial.
    let c2 = b.claim(study.id, "alive", None).expect("claim").expect("a trial");
    b.heartbeat(study.id, "alive").expect("heartbeat");
    assert!(b.requeue_stale(study.id, 30.0).expect("sweep").is_empty());
    assert_eq!(b.running_workers(study.id).expect("workers").len(), 1);
    // A trial that silences its worker MAX_REQUEUES times is failed, not requeued forever.
    for _ in 1..MAX_REQUEUES {
        assert_eq!(b.requeue_worker(study.id, "alive").expect("requeue"), vec![c2.number]);
        assert_eq!(b.claim(study.id, "alive", None).expect("claim").expect("a trial").number, c2.number);
    }
    assert!(b.requeue_worker(study.id, "alive").expect("requeue").is_empty());
    let h = b.history(study.id).expect("history");
    assert_eq!((h[1].state, h[1].failure), (TrialState::Failed, Some(FailKind::Error)));
    assert!(h[1].error.as_deref().unwrap_or("").contains("silent"));
}

#[test]
fn calls_survive_a_server_restart() {
    let Some(url) = url() else { return };
    let Some(dir) = common::pg_dir("calls_survive_a_server_restart") else { return };
    let name = unique("restart");
    let s = Postgres::connect(&url).expect("connect");
    let study = s.open(&spec(&name, "restart")).expect("open");
    let c = s.claim(study.id, "w", None).expect("claim").expect("a trial");
    restart_server(&dir);
    // The pooled connection died with the server; the call reconnects and goes on.
    s.start(study.id, c.number, &point(1.0), 1, "w").expect("start after restart");
    s.finish(study.id, &finished(c.number, 1.0, 1.0)).expect("finish after restart");
    let numbers: BTreeSet<u64> = s.history(study.id).expect("history").iter().map(|t| t.number).collect();
    assert_eq!(numbers, BTreeSet::from([0]));
}

#[test]
fn finished_since_gives_each_finished_trial_once() {
    let Some(url) = url() else { return };
    let s = Postgres::connect(&url).expect("connect");
    let study = s.open(&spec(&unique("since"), "since")).expect("open");
    let run = |x: f64| {
        let c = s.claim(study.id, "w", None).expect("claim").expect("a trial");
        s.start(study.id, c.number, &point(x), 1, "w").expect("start");
        s.finish(study.id, &finished(c.number, x, x)).expect("finish");
        c.number
    };
    let first: Vec<u64> = (0..3).map(|i| run(f64::from(i))).collect();
    let (seen, cursor) = s.finished_since(study.id, 0).expect("read");
    assert_eq!(seen.iter().map(|t| t.number).collect::<Vec<_>>(), first);
    let n = run(9.0);
    let (seen, next) = s.finished_since(study.id, cursor).expect("read again");
    assert_eq!(seen.iter().map(|t| (t.number, t.values.clone())).collect::<Vec<_>>(), vec![(n, vec![9.0])]);
    assert!(s.finished_since(study.id, next).expect("nothing new").0.is_empty());
}

#[test]
fn a_claim_brings_the_trials_others_finished_with_their_steps() {
    let Some(url) = url() else { return };
    // Two stores: two workers (two processes in real use).
    let a = Postgres::connect(&url).expect("connect a");
    let b = Postgres::connect(&url).expect("connect b");
    let study = a.open(&spec(&unique("claimread"), "claimread")).expect("open");
    let (seen, cursor) = a.finished_since(study.id, 0).expect("read");
    assert!(seen.is_empty());
    let c = b.claim(study.id, "b", None).expect("claim").expect("a trial");
    b.start(study.id, c.number, &point(1.0), 5, "b").expect("start");
    let mut t = finished(c.number, 1.0, 3.0);
    t.steps = vec![(1, 0.5), (2, f64::NAN)];
    b.finish(study.id, &t).expect("finish with steps, one statement");
    // a's claim reads b's finished trial in the same statement; finished_since gives it.
    let mine = a.claim(study.id, "a", None).expect("claim").expect("a trial");
    assert_eq!(mine.number, 1);
    let (seen, cursor) = a.finished_since(study.id, cursor).expect("read after the claim");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0].number, seen[0].values.clone(), seen[0].seed), (0, vec![3.0], 100));
    let steps: Vec<u32> = seen[0].steps.iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, vec![1, 2]);
    assert_eq!(seen[0].steps[0].1, 0.5);
    assert!(seen[0].steps[1].1.is_nan(), "a NaN step is stored as NULL and read back as NaN");
    // Never twice, and the full history agrees.
    assert!(a.finished_since(study.id, cursor).expect("read again").0.is_empty());
    let h = a.history(study.id).expect("history");
    assert_eq!(
        h.iter().map(|t| (t.number, t.state)).collect::<Vec<_>>(),
        vec![(0, TrialState::Complete), (1, TrialState::Running)]
    );
    assert_eq!(h[0].steps.len(), 2);
}
