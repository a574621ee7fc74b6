//! `study::darts` against the store: the phase's record survives a read-off trial stopped
//! by Ctrl-C, a worker waits for the phase another runs, and takes it over when that one dies.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::search::study::{Ended, Quiet};
use crate::study::{Hooks, Opened, Overrides, open_local, resume, run};

const SPEC: &str = "experiment circles {
  data = synthetic.circles(n: 300, noise: 0.05, seed: 3)
  space {
    kind: in {lin, mlp}
  }
  model {
    flatten
    dense(16)
    match kind {
      lin => { }
      mlp => { relu dense(16) relu }
    }
    dense(data.classes)
  }
  train { optimizer = adam(0.01) epochs = 4 batch = 32 }
  objective { maximize accuracy }
  search { strategy = darts(epochs: 3, arch_lr: 0.03) trials = 3 seed = 1 }
}
";

/// The model evaluator, counting its architecture phases and, with `stop`, raising the
/// stop flag as a trial starts (Ctrl-C during it: the trainer stops after its first epoch).
struct Counting<'e> {
    inner: &'e dyn Evaluator,
    phases: AtomicUsize,
    stop: Option<&'e AtomicBool>,
}

impl Evaluator for Counting<'_> {
    fn static_metrics(&self, trial: TrialRef<'_>) -> Result<Metrics, String> {
        self.inner.static_metrics(trial)
    }

    fn evaluate(&self, trial: TrialRef<'_>, on_step: &mut StepFn<'_>) -> Outcome {
        if let Some(stop) = self.stop {
            stop.store(true, Ordering::SeqCst);
        }
        self.inner.evaluate(trial, on_step)
    }

    fn architecture(
        &self,
        point: &Point,
        seed: u64,
        decisions: &[Decision],
        config: &crate::train::darts::Config,
    ) -> Result<Vec<Choice>, String> {
        self.phases.fetch_add(1, Ordering::SeqCst);
        self.inner.architecture(point, seed, decisions, config)
    }
}

fn compiled() -> crate::Compiled {
    let c = crate::compile(&crate::Source::new("d.bma", SPEC));
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    c
}

fn plan<'c>(c: &'c crate::Compiled, out: &std::path::Path, stale: Option<Duration>) -> Plan<'c> {
    let overrides = Overrides {
        out: Some(out.to_path_buf()),
        stale_after: stale,
        heartbeat: stale.map(|s| s / 10),
        ..Overrides::default()
    };
    Plan::new(c, &overrides).expect("plans")
}

fn done_record(opened: &Opened) -> Done {
    let text = opened.store.record(opened.study.id, RECORD).expect("reads").expect("a record");
    match Record::read(&text).expect("parses") {
        Record::Done(d) => d,
        other => panic!("not done: {other:?}"),
    }
}

/// Ctrl-C during the read-off trial: the trial goes back to the queue, the phase's record
/// keeps the choice and the weights, and `--resume` trains the read-off trial without a
/// second phase, with the weights in its metrics.
#[test]
fn a_read_off_trial_stopped_by_ctrl_c_keeps_the_phase_and_resume_does_not_rerun_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = compiled();
    let plan = plan(&c, &dir.path().join("out"), None);
    let inner = crate::study::evaluator(&plan, None).expect("evaluator");
    let stop = AtomicBool::new(false);
    let first = Counting { inner: &*inner, phases: AtomicUsize::new(0), stop: Some(&stop) };
    let opened = open_local(&plan, "circles", false).expect("opens");
    let hooks = Hooks { observer: &Quiet, stop: &stop, reuse: None };
    let ran = run(&plan, &*opened.store, opened.study.clone(), &first, hooks).expect("runs");
    assert_eq!(ran.ended, Ended::Interrupted);
    assert_eq!(first.phases.load(Ordering::SeqCst), 1);
    let done = done_record(&opened);
    assert_eq!(done.decided, vec!["kind".to_string()]);
    assert!(done.metrics.keys().any(|k| k.starts_with(PREFIX)), "{:?}", done.metrics);
    let stored = opened.store.history(opened.study.id).expect("history");
    let t = stored.iter().find(|t| t.number == done.trial).expect("the read-off trial is stored");
    assert!(!t.state.is_finished(), "stopped, not finished: {t:?}");
    assert_eq!(t.params, done.point, "queued again with its point");
    drop(opened);

    let again = open_local(&plan, "circles", true).expect("reopens");
    resume(&plan, &again).expect("resumes");
    let calm = AtomicBool::new(false);
    let second = Counting { inner: &*inner, phases: AtomicUsize::new(0), stop: None };
    let hooks = Hooks { observer: &Quiet, stop: &calm, reuse: None };
    let ran = run(&plan, &*again.store, again.study.clone(), &second, hooks).expect("runs");
    assert_eq!(second.phases.load(Ordering::SeqCst), 0, "the resumed study did not run the phase again");
    assert_eq!(done_record(&again), done, "the record is unchanged");
    let finished: Vec<&Trial> = ran.history.trials.iter().filter(|t| t.state.is_finished()).collect();
    assert_eq!(finished.len(), 1, "the read-off trial alone: {:?}", ran.history.trials);
    let t = finished[0];
    assert_eq!((t.number, &t.params), (done.trial, &done.point));
    assert_eq!(t.state, TrialState::Complete, "{t:?}");
    for (k, v) in &done.metrics {
        assert_eq!(t.metrics.get(k), Some(v), "{k}");
    }
    assert!(read_off(t));
}

/// A worker finds the phase's lease held by another whose trial is running: it waits, and
/// when that worker goes silent (no heartbeat past `stale_after`: the store's usual sweep
/// requeues its trial) it takes the phase over, with a note; the phase then ran once here.
#[test]
fn a_worker_waits_for_the_phase_of_another_and_takes_it_over_when_that_one_goes_silent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = compiled();
    let plan = plan(&c, &dir.path().join("out"), Some(Duration::from_millis(600)));
    let inner = crate::study::evaluator(&plan, None).expect("evaluator");
    let opened = open_local(&plan, "circles", false).expect("opens");
    let (store, id) = (&*opened.store, opened.study.id);
    // A worker on another host (its death cannot be seen): it claims trial 0 and the lease, then goes silent.
    let ghost = "elsewhere:1:ghost";
    let claim = store.claim(id, ghost, None).expect("claims").expect("a number");
    let lease = Record::Running { worker: ghost.into(), trial: claim.number }.text();
    assert!(store.swap_record(id, RECORD, None, &lease).expect("writes"));
    assert!(!store.swap_record(id, RECORD, None, "{}").expect("writes"), "a second lease is refused");

    // While it holds the lease, a stopped worker gives up with a clear message and runs nothing.
    let stopped = AtomicBool::new(true);
    let counting = Counting { inner: &*inner, phases: AtomicUsize::new(0), stop: None };
    store.heartbeat(id, ghost).expect("beats");
    match prepare(&plan, store, &opened.study, &counting, "here:2:me", &stopped) {
        Err(Error::Input(m)) => {
            assert!(m.contains("stopped while worker elsewhere:1:ghost ran the DARTS phase"), "{m}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("did not wait"),
    }
    assert_eq!(counting.phases.load(Ordering::SeqCst), 0);

    let calm = AtomicBool::new(false);
    let hooks = Hooks { observer: &Quiet, stop: &calm, reuse: None };
    let ran = run(&plan, store, opened.study.clone(), &counting, hooks).expect("runs");
    assert_eq!(counting.phases.load(Ordering::SeqCst), 1, "taken over once");
    assert!(
        ran.notes.iter().any(|n| n.contains("worker elsewhere:1:ghost stopped during the DARTS phase")),
        "{:?}",
        ran.notes
    );
    let done = done_record(&opened);
    let t = ran.history.get(done.trial).expect("the read-off trial");
    assert_eq!(t.state, TrialState::Complete, "{t:?}");
    assert!(read_off(t));
}
