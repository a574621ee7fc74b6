use std::sync::atomic::AtomicBool;

use super::*;
use crate::search::prune::NoPruner;
use crate::store::Sqlite;
use crate::{Compiled, Source};

const BRANIN: &str = "
fn branin(x: float, y: float) -> float =
  (y - 5.1 / (4 * pi ^ 2) * x ^ 2 + 5 / pi * x - 6) ^ 2 + 10 * (1 - 1 / (8 * pi)) * cos(x) + 10

experiment b {
  space {
    x: float in -5.0..=10.0
    y: float in 0.0..=15.0
  }
  objective { minimize branin(x, y) }
  search { strategy = random  trials = 20  seed = 3 }
}
";

fn compiled(text: &str) -> Compiled {
    let c = crate::compile(&Source::new("t.bma", text));
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    c
}

/// The lowered program even where the checker objects (test-only metric names like `acc`).
fn lenient(text: &str) -> Compiled {
    crate::compile(&Source::new("t.bma", text))
}

fn study<'a>(c: &'a Compiled, store: &'a dyn Store, strategy: &str, settings: Settings, seed: u64) -> TrialLoop<'a> {
    let exp = &c.program.experiments[0];
    let spec = TrialLoop::spec(&exp.name, exp, BRANIN, seed);
    let stored = store.open(&spec).unwrap();
    let ctx = space::Context { fns: &c.program.fns, data: None };
    let strategy = crate::search::strategy(&Value::sym(strategy), &exp.space, ctx, &Point::new()).unwrap();
    TrialLoop {
        store,
        study: stored,
        experiment: exp,
        fns: &c.program.fns,
        data: None,
        objectives: Objectives::new(exp),
        strategy,
        pruner: Box::new(NoPruner),
        pins: Point::new(),
        rank: Rank::Lexicographic,
        settings,
        worker: "test".into(),
    }
}

fn settings(trials: u64, parallel: usize) -> Settings {
    Settings { trials: Some(trials), parallel, ..Settings::default() }
}

fn branin(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    (y - 5.1 / (4.0 * PI * PI) * x * x + 5.0 / PI * x - 6.0).powi(2) + 10.0 * (1.0 - 1.0 / (8.0 * PI)) * x.cos() + 10.0
}

fn xy(t: &Trial) -> (f64, f64) {
    (t.params["x"].as_f64().unwrap(), t.params["y"].as_f64().unwrap())
}

#[test]
fn a_function_study_evaluates_the_objective_on_every_point() {
    let c = compiled(BRANIN);
    let store = Sqlite::in_memory().unwrap();
    let mut s = study(&c, &store, "random", settings(20, 1), 3);
    let (history, ended) = s.run(&FunctionEvaluator, &Quiet, &AtomicBool::new(false)).unwrap();
    assert_eq!(ended, Ended::Budget);
    assert_eq!(history.trials.len(), 20);
    for t in &history.trials {
        assert_eq!(t.state, TrialState::Complete);
        let (x, y) = xy(t);
        assert!((t.values[0] - branin(x, y)).abs() < 1e-9);
        assert_eq!(t.seed, trial_seed(3, t.number));
    }
    let stored = store.history(s.study.id).unwrap();
    assert_eq!(stored, history.trials, "the store holds exactly what the loop saw");
    // Running again asks for nothing more: the budget is the study's.
    let (again, ended) = s.run(&FunctionEvaluator, &Quiet, &AtomicBool::new(false)).unwrap();
    assert_eq!((again.trials.len(), ended), (20, Ended::Budget));
}

#[test]
fn a_seed_and_parallel_give_the_same_study_whatever_the_timing() {
    let c = compiled(BRANIN);
    let run = |jitter: bool| {
        let store = Sqlite::in_memory().unwrap();
        let mut s = study(&c, &store, "tpe", settings(24, 3), 11);
        struct Jitter(bool);
        impl Evaluator for Jitter {
            fn evaluate(&self, t: TrialRef<'_>, _: &mut StepFn<'_>) -> Outcome {
                if self.0 {
                    std::thread::sleep(Duration::from_millis((t.seed % 7) * 3));
                }
                Outcome { status: Status::Complete, metrics: Metrics::new() }
            }
        }
        let (h, _) = s.run(&Jitter(jitter), &Quiet, &AtomicBool::new(false)).unwrap();
        h.trials.iter().map(|t| (t.number, xy(t), t.values.clone())).collect::<Vec<_>>()
    };
    let a = run(false);
    assert_eq!(a.len(), 24);
    assert_eq!(a, run(true));
}

struct Flaky;

impl Evaluator for Flaky {
    fn evaluate(&self, t: TrialRef<'_>, on_step: &mut StepFn<'_>) -> Outcome {
        match t.number {
            2 => panic!("boom in trial 2"),
            4 => Outcome { status: Status::Failed("loss is NaN at epoch 3".into()), metrics: Metrics::new() },
            _ => {
                for step in 1..=3 {
                    let m = Metrics::from([("acc".to_string(), step as f64 / 10.0)]);
                    if on_step(step, &m) == Control::Stop {
                        return Outcome { status: Status::Stopped, metrics: m };
                    }
                }
                Outcome { status: Status::Complete, metrics: Metrics::from([("acc".to_string(), 0.3)]) }
            }
        }
    }
}

#[test]
fn failures_and_panics_are_recorded_and_the_study_goes_on() {
    let c = compiled(BRANIN);
    let store = Sqlite::in_memory().unwrap();
    let mut s = study(&c, &store, "random", settings(8, 2), 1);
    let (h, _) = s.run(&Flaky, &Quiet, &AtomicBool::new(false)).unwrap();
    assert_eq!(h.trials.len(), 8);
    assert_eq!(h.get(2).unwrap().state, TrialState::Failed);
    assert!(h.get(2).unwrap().error.as_deref().unwrap().contains("boom in trial 2"));
    assert_eq!(h.get(4).unwrap().error.as_deref(), Some("loss is NaN at epoch 3"));
    assert_eq!(h.completed().count(), 6);
}

/// Prunes odd trials at step 2.
struct OddPruner;

impl Pruner for OddPruner {
    fn report(&self, trial: u64, step: u32, _loss: f64) -> Verdict {
        if trial % 2 == 1 && step == 2 { Verdict::Prune } else { Verdict::Continue }
    }
}

const STEPS: &str = "
experiment s {
  space { x: float in 0.0..=1.0 }
  objective {
    maximize acc + x * 0
    require x <= 0.5
  }
}
";

#[test]
fn the_pruner_stops_trials_at_once_and_constraints_are_measured() {
    let c = lenient(STEPS);
    let store = Sqlite::in_memory().unwrap();
    let mut s = study(&c, &store, "random", settings(6, 1), 5);
    s.pruner = Box::new(OddPruner);
    let (h, _) = s.run(&Flaky, &Quiet, &AtomicBool::new(false)).unwrap();
    for t in &h.trials {
        if t.number == 2 || t.number == 4 {
            continue;
        }
        if t.number % 2 == 1 {
            assert_eq!(t.state, TrialState::Pruned, "trial {}", t.number);
            assert_eq!(t.steps, vec![(1, 0.1), (2, 0.2)]);
        } else {
            assert_eq!(t.state, TrialState::Complete);
            assert_eq!(t.steps.len(), 3);
        }
        let x = t.params["x"].as_f64().unwrap();
        assert_eq!(t.constraints, vec![x]);
        assert_eq!(t.is_feasible(), x <= 0.5);
    }
    assert_eq!(store.history(s.study.id).unwrap()[1].steps.len(), 2, "steps are stored");
}

struct Sized;

impl Evaluator for Sized {
    fn static_metrics(&self, t: TrialRef<'_>) -> Result<Metrics, String> {
        Ok(Metrics::from([("params".to_string(), t.point["x"].as_f64().unwrap_or(0.0) * 1000.0)]))
    }
    fn evaluate(&self, _: TrialRef<'_>, _: &mut StepFn<'_>) -> Outcome {
        Outcome { status: Status::Complete, metrics: Metrics::from([("acc".to_string(), 1.0)]) }
    }
}

const STATIC: &str = "
experiment s {
  space { x: float in 0.0..=1.0 }
  objective {
    maximize acc
    require params <= 500
  }
}
";

#[test]
fn static_constraints_reject_a_point_before_it_is_evaluated() {
    let c = lenient(STATIC);
    let store = Sqlite::in_memory().unwrap();
    let mut s = study(&c, &store, "random", settings(12, 1), 2);
    let (h, _) = s.run(&Sized, &Quiet, &AtomicBool::new(false)).unwrap();
    let mut rejected = 0;
    for t in &h.trials {
        let x = t.params["x"].as_f64().unwrap();
        if x * 1000.0 > 500.0 {
            rejected += 1;
            assert_eq!(t.state, TrialState::Infeasible);
            assert!(t.error.as_deref().unwrap().starts_with("infeasible before training"), "{:?}", t.error);
        } else {
            assert_eq!(t.state, TrialState::Complete);
        }
    }
    assert!(rejected > 0);
}

#[test]
fn the_stop_flag_ends_the_study_with_everything_recorded() {
    let c = compiled(BRANIN);
    let store = Sqlite::in_memory().unwrap();
    let stop = AtomicBool::new(false);
    struct StopAt<'a>(&'a AtomicBool);
    impl Evaluator for StopAt<'_> {
        fn evaluate(&self, t: TrialRef<'_>, on_step: &mut StepFn<'_>) -> Outcome {
            if t.number == 3 {
                self.0.store(true, Ordering::SeqCst);
            }
            for step in 1..=2 {
                if on_step(step, &Metrics::new()) == Control::Stop {
                    return Outcome { status: Status::Stopped, metrics: Metrics::new() };
                }
            }
            Outcome { status: Status::Complete, metrics: Metrics::new() }
        }
    }
    let mut s = study(&c, &store, "random", settings(50, 1), 2);
    let (h, ended) = s.run(&StopAt(&stop), &Quiet, &stop).unwrap();
    assert_eq!(ended, Ended::Interrupted);
    assert_eq!(h.trials.len(), 4);
    // The trial stopped mid-way is queued again with its point, not failed.
    let stopped = h.get(3).unwrap().clone();
    assert_eq!(stopped.state, TrialState::Queued);
    assert!(!stopped.params.is_empty());
    let stored = store.history(s.study.id).unwrap();
    assert!(stored.iter().filter(|t| t.number != 3).all(|t| t.state == TrialState::Complete));
    assert_eq!(store.studies().unwrap()[0].state, StudyState::Interrupted);
    // The next run reruns it at the same point.
    stop.store(false, Ordering::SeqCst);
    s.settings.trials = Some(5);
    let (h, ended) = s.run(&FunctionEvaluator, &Quiet, &stop).unwrap();
    assert_eq!(ended, Ended::Budget);
    let rerun = h.get(3).unwrap();
    assert_eq!((rerun.state, &rerun.params), (TrialState::Complete, &stopped.params));
}

/// An evaluator whose one step never ends by itself: it only stops at the deadline it
/// is given, mid-step, as the trainer does between batches.
#[test]
fn the_trial_deadline_reaches_the_evaluator_mid_step() {
    let c = compiled(BRANIN);
    let store = Sqlite::in_memory().expect("an in-memory store");
    struct UntilDeadline;
    impl Evaluator for UntilDeadline {
        fn evaluate(&self, t: TrialRef<'_>, _on_step: &mut StepFn<'_>) -> Outcome {
            let Some(deadline) = t.deadline else {
                return Outcome { status: Status::Failed("no deadline given".into()), metrics: Metrics::new() };
            };
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            Outcome { status: Status::Stopped, metrics: Metrics::new() }
        }
    }
    let settings = Settings { trial_time: Some(Duration::from_millis(30)), ..settings(3, 1) };
    let mut s = study(&c, &store, "random", settings, 2);
    let (h, _) = s.run(&UntilDeadline, &Quiet, &AtomicBool::new(false)).expect("the study runs");
    assert_eq!(h.trials.len(), 3);
    for t in &h.trials {
        assert_eq!(t.state, TrialState::Failed);
        assert!(t.error.as_deref().is_some_and(|e| e.starts_with("ran out of time")), "{:?}", t.error);
    }
}

#[test]
fn a_dead_workers_trials_are_rerun_with_their_params() {
    let c = compiled(BRANIN);
    let store = Sqlite::in_memory().unwrap();
    let mut s = study(&c, &store, "random", settings(5, 1), 9);
    // A worker claimed trial 0, started it and died.
    let claim = store.claim(s.study.id, "host:1:1", Some(5)).unwrap().unwrap();
    let mut p = Point::new();
    p.insert("x".into(), Value::Float(1.0));
    p.insert("y".into(), Value::Float(2.0));
    store.start(s.study.id, claim.number, &p, 77, "host:1:1").unwrap();
    assert_eq!(store.requeue_worker(s.study.id, "host:1:1").unwrap(), vec![0]);
    let (h, _) = s.run(&FunctionEvaluator, &Quiet, &AtomicBool::new(false)).unwrap();
    assert_eq!(h.trials.len(), 5);
    assert_eq!(h.get(0).unwrap().params, p);
    assert!(h.trials.iter().all(|t| t.state == TrialState::Complete));
}

/// Reuses even trials (with a step), replays a point as trial 0, seeds every trial 42.
struct EvenReuse {
    finished: std::sync::Mutex<Vec<u64>>,
}

impl Reuse for EvenReuse {
    fn replay(&self, number: u64) -> Option<Point> {
        (number == 0).then(|| Point::from([("x".to_string(), Value::Float(1.0)), ("y".to_string(), Value::Float(2.0))]))
    }

    fn seed(&self, _study_seed: u64, _number: u64) -> u64 {
        42
    }

    fn reuse(&self, number: u64, _point: &Point, seed: u64) -> Result<Option<Reused>, String> {
        assert_eq!(seed, 42);
        Ok(number.is_multiple_of(2).then(|| Reused { metrics: Metrics::new(), steps: vec![(1, 7.0)], duration: 3.0 }))
    }

    fn finished(&self, trial: &Trial) {
        self.finished.lock().expect("ok").push(trial.number);
    }
}

/// Records every report; never prunes.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(u64, u32, f64)>>);

impl Pruner for Recorder {
    fn report(&self, trial: u64, step: u32, loss: f64) -> Verdict {
        self.0.lock().expect("ok").push((trial, step, loss));
        Verdict::Prune
    }
}

#[test]
fn reused_trials_are_measured_not_evaluated_and_replayed_points_come_first() {
    struct Counting(std::sync::Mutex<Vec<u64>>);
    impl Evaluator for Counting {
        fn evaluate(&self, t: TrialRef<'_>, _: &mut StepFn<'_>) -> Outcome {
            self.0.lock().expect("ok").push(t.number);
            Outcome { status: Status::Complete, metrics: Metrics::new() }
        }
    }
    let c = compiled(BRANIN);
    let store = Sqlite::in_memory().expect("ok");
    let mut s = study(&c, &store, "random", settings(6, 2), 3);
    let recorder = std::sync::Arc::new(Recorder::default());
    struct Shared(std::sync::Arc<Recorder>);
    impl Pruner for Shared {
        fn report(&self, trial: u64, step: u32, loss: f64) -> Verdict {
            self.0.report(trial, step, loss)
        }
    }
    s.pruner = Box::new(Shared(recorder.clone()));
    let reuse = EvenReuse { finished: std::sync::Mutex::new(Vec::new()) };
    let evaluated = Counting(std::sync::Mutex::new(Vec::new()));
    let (h, ended) = s.run_with(&evaluated, &Quiet, &AtomicBool::new(false), Some(&reuse)).expect("ok");
    assert_eq!(ended, Ended::Budget);
    let mut evaluated = evaluated.0.into_inner().expect("ok");
    evaluated.sort_unstable();
    assert_eq!(evaluated, vec![1, 3, 5], "only the trials not reused are evaluated");
    assert_eq!(xy(&h.trials[0]), (1.0, 2.0), "the replayed point is trial 0's");
    for t in &h.trials {
        assert_eq!((t.state, t.seed), (TrialState::Complete, 42), "trial {}", t.number);
        let (x, y) = xy(t);
        assert!((t.values[0] - branin(x, y)).abs() < 1e-9, "measured by the current objective");
        if t.number % 2 == 0 {
            assert_eq!((t.steps.clone(), t.duration), (vec![(1, 7.0)], 3.0));
        }
    }
    // The reused steps reach the pruner, whose verdict a trained trial ignores.
    assert_eq!(recorder.0.lock().expect("ok").clone(), vec![(0, 1, 7.0), (2, 1, 7.0), (4, 1, 7.0)]);
    let mut finished = reuse.finished.into_inner().expect("ok");
    finished.sort_unstable();
    assert_eq!(finished, (0..6).collect::<Vec<_>>());
    assert_eq!(store.history(s.study.id).expect("ok"), h.trials, "recorded as seen");
}

/// A panic on the loop's own thread (here an observer's) reaches the caller as a panic;
/// before, the heartbeat thread kept the scope, and the process, waiting forever.
///
/// What the loop guarantees whatever the threads' timing: a trial is recorded finished
/// before its `Finished` event (so trial 2, whose event panics, is), and trial 2 only
/// starts once trial 0 has been recorded (trial n sees exactly the trials <= n - parallel).
/// Trial 1 may still be running when the panic ends the loop, so it is not asserted.
#[test]
fn a_panicking_observer_ends_the_run_instead_of_hanging_it() {
    struct Boom;
    impl Observer for Boom {
        fn event(&self, event: Event<'_>) {
            if let Event::Finished { trial, .. } = event
                && trial.number == 2
            {
                panic!("observer failed");
            }
        }
    }
    let c = compiled(BRANIN);
    let store = Sqlite::in_memory().expect("ok");
    let mut s = study(&c, &store, "random", settings(8, 2), 1);
    let stop = AtomicBool::new(false);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| s.run(&FunctionEvaluator, &Boom, &stop)));
    let payload = outcome.expect_err("the observer's panic is not swallowed");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"observer failed"));
    let history = store.history(s.study.id).expect("history");
    let finished = |n: u64| history.iter().any(|t| t.number == n && t.state.is_finished());
    assert!(finished(2), "the trial whose event panicked was recorded first: {history:?}");
    assert!(finished(0), "trial 0 was recorded before trial 2 started: {history:?}");
}
