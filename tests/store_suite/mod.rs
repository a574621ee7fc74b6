//! The Store conformance suite: what every [`Store`] must do, written once against
//! `&dyn Store`; `tests/store.rs` runs each body against SQLite and PostgreSQL.
//!
//! Every body takes the store and a prefix for its study names (unique per run, since a
//! PostgreSQL test server outlives the tests) and asserts only through the trait, so a
//! backend passes exactly when it keeps the contract of `bma::store`. Backend-only
//! behaviour stays with its backend: SQLite's schema and configuration keys in
//! `src/store/tests.rs`, PostgreSQL's pool, cache and restarts in `tests/postgres.rs`.
//!
//! The rule for the PostgreSQL tests (`tests/common`'s `url`): with `BMA_TEST_POSTGRES`
//! they run; without it they fail when `CI` is set, and skip with a printed note otherwise.
#![allow(dead_code)] // `tests/postgres.rs` uses only some of it

use std::time::Duration;

use bma::ir::{Point, Value};
use bma::store::{Store, StoreError, StudySpec, load_study, spec_hash};
use bma::trial::{Direction, FailKind, Trial, TrialState};

/// A one-objective study spec (`loss`, minimized) named `name`.
pub fn spec(name: &str, text: &str) -> StudySpec {
    StudySpec {
        name: name.into(),
        experiment: name.into(),
        spec_text: text.into(),
        spec_hash: spec_hash(text),
        objectives: vec![("loss".into(), Direction::Minimize)],
        constraints: vec![],
        seed: 7,
        options: String::new(),
    }
}

/// The point `x = x`.
pub fn point(x: f64) -> Point {
    let mut p = Point::new();
    p.insert("x".into(), Value::Float(x));
    p
}

/// Trial `number` at `x`, complete with loss `v`.
pub fn finished(number: u64, x: f64, v: f64) -> Trial {
    let mut t = Trial::new(number, point(x), 100 + number);
    t.state = TrialState::Complete;
    t.values = vec![v];
    t.metrics.insert("loss".into(), v);
    t.duration = 0.5;
    t
}

/// Claims are numbered from 0; points, seeds, steps (NaN included) and values read back;
/// floats bit for bit; the summary counts states and names the best trial.
pub fn claims_are_numbered_and_history_reads_back(s: &dyn Store, p: &str) {
    let study = s.open(&spec(&format!("{p}a"), "x")).expect("open the study");
    assert!(study.created_now);
    for i in 0..3 {
        let c = s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
        assert_eq!(c.number, i);
        assert!(c.requeued.is_none());
        s.start(study.id, i, &point(i as f64), 100 + i, "w").expect("start");
        s.report(study.id, i, 1, 2.0).expect("report");
        s.report(study.id, i, 2, f64::NAN).expect("report");
        s.finish(study.id, &finished(i, i as f64, 10.0 - i as f64)).expect("finish");
    }
    let h = s.history(study.id).expect("history");
    assert_eq!(h.len(), 3);
    assert_eq!(h[2].params, point(2.0));
    assert_eq!(h[2].values, vec![8.0]);
    assert_eq!(h[2].seed, 102);
    assert_eq!(h[1].steps.len(), 2);
    assert!(h[1].steps[1].1.is_nan());
    let summary = s.studies().expect("studies");
    let mine = summary.iter().find(|x| x.id == study.id).expect("the study is listed");
    assert_eq!(mine.best, Some((2, vec![8.0])));
    assert_eq!(mine.counts.get("complete"), Some(&3));

    // Floats come back bit for bit: serde_json's own parsing reads this one back one ulp off,
    // which would change the points a resumed study asks with.
    let x = 2.0573495346771162_f64;
    let c = s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
    s.start(study.id, c.number, &point(x), 7, "w").expect("start");
    s.finish(study.id, &finished(c.number, x, x)).expect("finish");
    let h = s.history(study.id).expect("history");
    let t = h.iter().find(|t| t.number == c.number).expect("the trial");
    assert_eq!(t.params, point(x));
    assert_eq!(t.values[0].to_bits(), x.to_bits());
    assert_eq!(t.metrics["loss"].to_bits(), x.to_bits());
}

/// A failed trial keeps infinite values, NaN metrics and its error.
pub fn nan_and_infinite_values_survive(s: &dyn Store, p: &str) {
    let study = s.open(&spec(&format!("{p}a"), "x")).expect("open the study");
    let c = s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
    let mut t = finished(c.number, 1.0, f64::INFINITY);
    t.fail(FailKind::Error, "loss is NaN".into());
    t.metrics.insert("acc".into(), f64::NAN);
    s.finish(study.id, &t).expect("finish");
    let h = s.history(study.id).expect("history");
    assert_eq!(h[0].values, vec![f64::INFINITY]);
    assert!(h[0].metrics["acc"].is_nan());
    assert_eq!(h[0].state, TrialState::Failed);
    assert_eq!(h[0].error.as_deref(), Some("loss is NaN"));
}

/// Every failure kind is stored in its own right, an infeasible trial keeps its state, and
/// the text of each is kept as written; the summary counts the infeasible apart.
pub fn failure_kinds_and_infeasible_trials_read_back(s: &dyn Store, p: &str) {
    let study = s.open(&spec(&format!("{p}a"), "x")).expect("open the study");
    let mut written = Vec::new();
    for kind in FailKind::ALL {
        let c = s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
        s.start(study.id, c.number, &point(c.number as f64), 1, "w").expect("start");
        let mut t = Trial::new(c.number, point(c.number as f64), 1);
        t.fail(kind, format!("why: {}", kind.as_str()));
        s.finish(study.id, &t).expect("finish");
        written.push(t);
    }
    let c = s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
    s.start(study.id, c.number, &point(9.0), 1, "w").expect("start");
    let mut refused = Trial::new(c.number, point(9.0), 1);
    refused.state = TrialState::Infeasible;
    refused.error = Some("infeasible before training: params <= 100 (is 515)".into());
    refused.metrics.insert("params".into(), 515.0);
    refused.constraints = vec![515.0];
    refused.violations = vec![415.0];
    s.finish(study.id, &refused).expect("finish an infeasible trial");
    written.push(refused);
    assert_eq!(untimed(s.history(study.id).expect("history")), written);
    let summary = s.studies().expect("studies");
    let mine = summary.iter().find(|x| x.id == study.id).expect("the study is listed");
    assert_eq!((mine.counts.get("failed"), mine.counts.get("infeasible")), (Some(&5), Some(&1)));
}

/// Joining a study with the same spec joins it; another spec is refused, naming both hashes.
pub fn joining_with_another_spec_is_refused(s: &dyn Store, p: &str) {
    let name = format!("{p}a");
    let first = s.open(&spec(&name, "x")).expect("open the study");
    let again = s.open(&spec(&name, "x")).expect("open the study");
    assert!(!again.created_now);
    assert_eq!(again.id, first.id);
    match s.open(&spec(&name, "y")) {
        Err(StoreError::SpecMismatch { name: n, stored, given }) => {
            assert_eq!((n, stored, given), (name, spec_hash("x"), spec_hash("y")));
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

/// A dead worker's trial is requeued once and reclaimed with its number, point and seed
/// (its steps dropped); fresh numbers stay within the budget; a released claim is queued.
pub fn silent_trials_are_requeued_once_and_reclaimed_with_their_number(s: &dyn Store, p: &str) {
    let study = s.open(&spec(&format!("{p}a"), "x")).expect("open the study");
    let c0 = s.claim(study.id, "dead", None).expect("claim").expect("a trial to claim");
    s.start(study.id, c0.number, &point(0.5), 42, "dead").expect("start");
    s.report(study.id, c0.number, 1, 3.0).expect("report");
    let c1 = s.claim(study.id, "alive", None).expect("claim").expect("a trial to claim");
    assert_eq!(c1.number, 1);
    // Nothing is stale yet.
    assert!(s.requeue_stale(study.id, 60.0).expect("requeue_stale").is_empty());
    assert_eq!(s.requeue_worker(study.id, "dead").expect("requeue_worker"), vec![0]);
    // A second sweep finds nothing: requeued exactly once.
    assert!(s.requeue_worker(study.id, "dead").expect("requeue_worker").is_empty());
    let c = s.claim(study.id, "alive", None).expect("claim").expect("a trial to claim");
    assert_eq!(c.number, 0);
    let back = c.requeued.expect("requeued is set");
    assert_eq!(back.params, point(0.5));
    assert_eq!(back.seed, 42);
    assert!(s.history(study.id).expect("history")[0].steps.is_empty(), "steps of the lost run are dropped");
    // The next fresh number continues after the highest allocated, within the budget.
    assert_eq!(s.claim(study.id, "alive", Some(3)).expect("claim").expect("a trial to claim").number, 2);
    assert!(s.claim(study.id, "alive", Some(3)).expect("claim").is_none());
    s.release(study.id, 2, "alive").expect("release");
    assert_eq!(s.claim(study.id, "other", Some(3)).expect("claim").expect("a trial to claim").number, 2);
}

/// A trial stopped by its own worker (Ctrl-C) is queued again with its point, its steps
/// dropped; another worker's trial is left alone.
pub fn a_stopped_trial_is_requeued_by_its_worker(s: &dyn Store, p: &str) {
    let study = s.open(&spec(&format!("{p}a"), "x")).expect("open the study");
    let c = s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
    s.start(study.id, c.number, &point(0.25), 9, "w").expect("start");
    s.report(study.id, c.number, 1, 2.0).expect("report");
    s.requeue(study.id, c.number, "other").expect("requeue by another");
    assert_eq!(s.history(study.id).expect("history")[0].state, TrialState::Running);
    s.requeue(study.id, c.number, "w").expect("requeue");
    let h = s.history(study.id).expect("history");
    assert_eq!((h[0].state, h[0].steps.is_empty()), (TrialState::Queued, true));
    let again = s.claim(study.id, "v", Some(1)).expect("claim").expect("the queued trial");
    assert_eq!((again.number, again.requeued.map(|t| t.params)), (c.number, Some(point(0.25))));
}

/// A running trial whose heartbeat is older than the timeout is requeued, once.
pub fn stale_heartbeats_are_requeued(s: &dyn Store, p: &str) {
    let study = s.open(&spec(&format!("{p}a"), "x")).expect("open the study");
    let c = s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
    // Not a timing assumption: any wait longer than the 10 ms timeout makes it stale.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(s.requeue_stale(study.id, 0.01).expect("requeue_stale"), vec![c.number]);
    assert!(s.requeue_stale(study.id, 0.01).expect("requeue_stale").is_empty());
}

/// `load_study` finds a study by name with its trials, and names the known ones otherwise.
pub fn a_study_loads_by_name_from_any_store(s: &dyn Store, p: &str) {
    let (a, b) = (format!("{p}a"), format!("{p}b"));
    let study = s.open(&spec(&a, "x")).expect("open the study");
    s.open(&spec(&b, "y")).expect("open the study");
    let c = s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
    s.start(study.id, c.number, &point(0.5), 100, "w").expect("start");
    s.finish(study.id, &finished(c.number, 0.5, 2.0)).expect("finish");
    let (loaded, trials) = load_study(s, &a).expect("load_study");
    assert_eq!((loaded.id, loaded.spec.name.as_str()), (study.id, a.as_str()));
    assert_eq!(untimed(trials), vec![finished(0, 0.5, 2.0)]);
    let missing = format!("{p}zz");
    let e = match load_study(s, &missing) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a study that does not exist was loaded"),
    };
    assert!(e.contains(&format!("no study `{missing}`")) && e.contains(&a) && e.contains(&b), "{e}");
}

/// Trials as read back, without the times the store's own clock gave them (the trials
/// written have none).
fn untimed(mut trials: Vec<Trial>) -> Vec<Trial> {
    for t in &mut trials {
        t.started = None;
        t.finished = None;
    }
    trials
}

/// A finished trial reads back with when it started (its claim) and ended (its finish),
/// from the store's clock; a running one has no end yet.
pub fn trials_read_back_with_their_start_and_end_times(s: &dyn Store, p: &str) {
    let study = s.open(&spec(&format!("{p}a"), "x")).expect("open the study");
    let before = bma::store::now();
    let a = s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
    s.start(study.id, a.number, &point(0.5), 1, "w").expect("start");
    s.finish(study.id, &finished(a.number, 0.5, 2.0)).expect("finish");
    let b = s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
    s.start(study.id, b.number, &point(0.7), 1, "w").expect("start");
    let after = bma::store::now();
    let h = s.history(study.id).expect("history");
    let (started, ended) = (h[0].started.expect("a start"), h[0].finished.expect("an end"));
    // The server's clock may differ from this one by a little: a minute's slack.
    assert!(before - 60.0 <= started && started <= ended && ended <= after + 60.0, "{started} {ended}");
    assert!(h[1].started.is_some(), "a running trial has its start");
    assert_eq!(h[1].finished, None, "a running trial has no end");
}

/// Calls `$run!(name)` for every body of the suite (the backends' test files instantiate it).
#[allow(unused_macros)]
/// The device a trial ran on reads back with it (a trial without one has none), through the
/// history and the reads of finished trials alike.
pub fn a_trial_keeps_its_device(s: &dyn Store, p: &str) {
    let study = s.open(&spec(&format!("{p}a"), "x")).expect("open the study");
    for (i, device) in [Some("1"), None, Some("cuda:0,2")].into_iter().enumerate() {
        let c = s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
        assert_eq!(c.number, i as u64);
        s.start(study.id, c.number, &point(i as f64), 1, "w").expect("start");
        let mut t = finished(c.number, i as f64, 1.0);
        t.device = device.map(str::to_string);
        s.finish(study.id, &t).expect("finish");
    }
    let devices = |h: &[Trial]| h.iter().map(|t| t.device.clone()).collect::<Vec<_>>();
    let want = vec![Some("1".to_string()), None, Some("cuda:0,2".to_string())];
    assert_eq!(devices(&s.history(study.id).expect("history")), want);
    let (since, _) = s.finished_since(study.id, 0).expect("finished_since");
    let mut since = since;
    since.sort_by_key(|t| t.number);
    assert_eq!(devices(&since), want);
}

/// The worker that ran a trial to its end reads back (the claim's `worker` is cleared
/// then): a trial requeued from one worker and rerun by another is the other's.
pub fn a_trial_keeps_the_worker_that_ran_it(s: &dyn Store, p: &str) {
    let study = s.open(&spec(&format!("{p}a"), "x")).expect("open the study");
    let run = |worker: &str, recorded: Option<&str>| {
        let c = s.claim(study.id, worker, None).expect("claim").expect("a trial to claim");
        s.start(study.id, c.number, &point(c.number as f64), 1, worker).expect("start");
        let mut t = finished(c.number, c.number as f64, 1.0);
        t.worker = recorded.map(str::to_string);
        s.finish(study.id, &t).expect("finish");
        c.number
    };
    assert_eq!(run("host:1:1", Some("host:1:1")), 0);
    // Trial 1 is claimed by one worker, given back, and rerun by another.
    let c = s.claim(study.id, "host:2:2", None).expect("claim").expect("trial 1");
    s.requeue(study.id, c.number, "host:2:2").expect("requeue");
    assert_eq!(run("host:3:3", Some("host:3:3")), 1);
    assert_eq!(run("host:1:1", None), 2);
    let workers = |h: &[Trial]| h.iter().map(|t| t.worker.clone()).collect::<Vec<_>>();
    let want = vec![Some("host:1:1".to_string()), Some("host:3:3".to_string()), None];
    assert_eq!(workers(&s.history(study.id).expect("history")), want);
    let (mut since, _) = s.finished_since(study.id, 0).expect("finished_since");
    since.sort_by_key(|t| t.number);
    assert_eq!(workers(&since), want);
}

// `tests/postgres.rs` takes the helpers only, not the suite.
/// An artifact of `size` bytes of content (a model folder's packed form).
fn artifact(size: usize, salt: u8) -> bma::store::Artifact {
    let dir = tempfile::tempdir().expect("a temp folder");
    let data: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(7).wrapping_add(salt)).collect();
    std::fs::write(dir.path().join("model.safetensors"), data).expect("write");
    std::fs::write(dir.path().join("model.json"), b"{}").expect("write");
    bma::store::artifacts::pack(dir.path()).expect("pack")
}

/// A running trial's model is stored only under its claim, read back verified (several
/// chunks), listed with its size, replaced by a second upload, and deleted by request.
pub fn a_trial_model_round_trips_through_the_store(s: &dyn Store, p: &str) {
    let study = s.open(&spec(&format!("{p}a"), "x")).expect("open the study");
    let c = s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
    s.start(study.id, c.number, &point(0.5), 1, "w").expect("start");
    let big = artifact(bma::store::artifacts::CHUNK * 2 + 5, 1);
    match s.put_artifact(study.id, c.number, "intruder", &big) {
        Err(StoreError::NotFound(m)) => assert!(m.contains("no longer running under this worker"), "{m}"),
        other => panic!("another worker's upload must be refused, got {other:?}"),
    }
    assert_eq!(s.artifact(study.id, c.number).expect("read"), None, "a refused upload leaves nothing");
    s.put_artifact(study.id, c.number, "w", &artifact(10, 2)).expect("first upload");
    s.put_artifact(study.id, c.number, "w", &big).expect("a second upload replaces the first");
    let back = s.artifact(study.id, c.number).expect("read").expect("stored");
    assert_eq!(back, big);
    s.finish(study.id, &finished(c.number, 0.5, 1.0)).expect("finish");
    let list = s.artifacts(study.id).expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].number, list[0].size, list[0].chunks), (c.number, big.bytes.len() as u64, 3));
    assert_eq!(
        (list[0].sha256.as_str(), list[0].files, list[0].worker.as_deref()),
        (big.sha256.as_str(), 2, Some("w"))
    );
    // A finished trial is no longer anyone's: no upload replaces its model.
    assert!(s.put_artifact(study.id, c.number, "w", &artifact(3, 3)).is_err());
    assert_eq!(s.delete_artifacts(study.id, &[c.number, 99]).expect("delete"), 1);
    assert!(s.artifacts(study.id).expect("list").is_empty());
    assert_eq!(s.artifact(study.id, c.number).expect("read"), None);
}

/// A requeued trial (its worker went silent, or was stopped) loses the model it stored:
/// only the rerun's counts; deleting the study deletes its models.
pub fn requeueing_or_deleting_drops_stored_models(s: &dyn Store, p: &str) {
    let name = format!("{p}a");
    let study = s.open(&spec(&name, "x")).expect("open the study");
    let c0 = s.claim(study.id, "dead", None).expect("claim").expect("a trial to claim");
    s.put_artifact(study.id, c0.number, "dead", &artifact(100, 4)).expect("upload");
    assert_eq!(s.requeue_worker(study.id, "dead").expect("requeue_worker"), vec![c0.number]);
    assert_eq!(s.artifact(study.id, c0.number).expect("read"), None);
    let c = s.claim(study.id, "w", None).expect("claim").expect("the requeued trial");
    assert_eq!(c.number, c0.number);
    s.put_artifact(study.id, c.number, "w", &artifact(100, 5)).expect("upload");
    s.requeue(study.id, c.number, "w").expect("requeue");
    assert!(s.artifacts(study.id).expect("list").is_empty());
    let c = s.claim(study.id, "w", None).expect("claim").expect("the requeued trial");
    s.put_artifact(study.id, c.number, "w", &artifact(100, 6)).expect("upload");
    s.finish(study.id, &finished(c.number, 0.5, 1.0)).expect("finish");
    assert_eq!(s.artifacts(study.id).expect("list").len(), 1);
    assert!(s.delete_study(&name).expect("delete"));
    assert!(!s.delete_study(&name).expect("delete again"));
    assert!(s.study(&name).expect("look up").is_none());
    assert!(s.artifacts(study.id).expect("list").is_empty());
    assert_eq!(s.artifact(study.id, c.number).expect("read"), None);
}

/// A study-wide record: absent at first; `swap_record` writes it only over the value it
/// expects (one of two racing first writes wins), and it goes with its study.
pub fn records_swap_only_over_the_expected_value(s: &dyn Store, p: &str) {
    let name = format!("{p}r");
    let id = s.open(&spec(&name, "x")).expect("open the study").id;
    let other = s.open(&spec(&format!("{p}o"), "x")).expect("open another").id;
    assert_eq!(s.record(id, "k").expect("reads"), None);
    assert!(s.swap_record(id, "k", None, "a").expect("writes"));
    assert!(!s.swap_record(id, "k", None, "b").expect("writes"), "a second first write loses");
    assert!(!s.swap_record(id, "k", Some("b"), "c").expect("writes"), "not over another value");
    assert_eq!(s.record(id, "k").expect("reads").as_deref(), Some("a"));
    assert!(s.swap_record(id, "k", Some("a"), "c").expect("writes"));
    assert_eq!(s.record(id, "k").expect("reads").as_deref(), Some("c"));
    assert_eq!(s.record(other, "k").expect("reads"), None, "records are per study");
    assert!(s.swap_record(other, "k", None, "z").expect("writes"));
    assert!(s.delete_study(&name).expect("deletes"));
    let again = s.open(&spec(&name, "x")).expect("open again").id;
    assert_eq!(s.record(again, "k").expect("reads"), None, "the record went with its study");
    assert_eq!(s.record(other, "k").expect("reads").as_deref(), Some("z"));
}

#[allow(unused_macros)]
macro_rules! for_each_store_test {
    ($run:ident) => {
        $run!(trials_read_back_with_their_start_and_end_times);
        $run!(claims_are_numbered_and_history_reads_back);
        $run!(nan_and_infinite_values_survive);
        $run!(failure_kinds_and_infeasible_trials_read_back);
        $run!(joining_with_another_spec_is_refused);
        $run!(silent_trials_are_requeued_once_and_reclaimed_with_their_number);
        $run!(stale_heartbeats_are_requeued);
        $run!(a_stopped_trial_is_requeued_by_its_worker);
        $run!(a_study_loads_by_name_from_any_store);
        $run!(a_trial_keeps_its_device);
        $run!(a_trial_model_round_trips_through_the_store);
        $run!(requeueing_or_deleting_drops_stored_models);
        $run!(a_trial_keeps_the_worker_that_ran_it);
        $run!(records_swap_only_over_the_expected_value);
    };
}
