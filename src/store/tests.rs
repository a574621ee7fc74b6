use super::*;
use crate::ir::Value;

fn spec(name: &str, text: &str) -> StudySpec {
    StudySpec {
        name: name.into(),
        experiment: name.into(),
        spec_text: text.into(),
        spec_hash: crate::store::spec_hash(text),
        objectives: vec![("loss".into(), Direction::Minimize)],
        constraints: vec![],
        seed: 7,
        options: String::new(),
    }
}

fn point(x: f64) -> Point {
    let mut p = Point::new();
    p.insert("x".into(), Value::Float(x));
    p
}

fn finished(number: u64, x: f64, v: f64) -> Trial {
    let mut t = Trial::new(number, point(x), 100 + number);
    t.state = TrialState::Complete;
    t.values = vec![v];
    t.metrics.insert("loss".into(), v);
    t.duration = 0.5;
    t
}

#[test]
fn claims_are_numbered_and_history_reads_back() {
    let s = Sqlite::in_memory().expect("in-memory store");
    let study = s.open(&spec("a", "x")).expect("open the study");
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
    assert_eq!(summary[0].best, Some((2, vec![8.0])));
    assert_eq!(summary[0].counts.get("complete"), Some(&3));
}

#[test]
fn nan_and_infinite_values_survive() {
    let s = Sqlite::in_memory().expect("in-memory store");
    let study = s.open(&spec("a", "x")).expect("open the study");
    let c = s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
    let mut t = finished(c.number, 1.0, f64::INFINITY);
    t.state = TrialState::Failed;
    t.error = Some("loss is NaN".into());
    t.metrics.insert("acc".into(), f64::NAN);
    s.finish(study.id, &t).expect("finish");
    let h = s.history(study.id).expect("history");
    assert_eq!(h[0].values, vec![f64::INFINITY]);
    assert!(h[0].metrics["acc"].is_nan());
    assert_eq!(h[0].state, TrialState::Failed);
    assert_eq!(h[0].error.as_deref(), Some("loss is NaN"));
}

#[test]
fn joining_with_another_spec_is_refused() {
    let s = Sqlite::in_memory().expect("in-memory store");
    s.open(&spec("a", "x")).expect("open the study");
    let again = s.open(&spec("a", "x")).expect("open the study");
    assert!(!again.created_now);
    match s.open(&spec("a", "y")) {
        Err(StoreError::SpecMismatch { name, .. }) => assert_eq!(name, "a"),
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn silent_trials_are_requeued_once_and_reclaimed_with_their_number() {
    let s = Sqlite::in_memory().expect("in-memory store");
    let study = s.open(&spec("a", "x")).expect("open the study");
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

#[test]
fn stale_heartbeats_are_requeued() {
    let s = Sqlite::in_memory().expect("in-memory store");
    let study = s.open(&spec("a", "x")).expect("open the study");
    s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert_eq!(s.requeue_stale(study.id, 0.01).expect("requeue_stale"), vec![0]);
    assert!(s.requeue_stale(study.id, 0.01).expect("requeue_stale").is_empty());
}

#[test]
fn file_store_persists_and_refuses_a_newer_schema() {
    let dir = std::env::temp_dir().join(format!("bma-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("study.db");
    {
        let s = Sqlite::open(&path).expect("open the study");
        assert_eq!(s.schema_version().expect("schema_version"), MIGRATIONS.len() as u32);
        let study = s.open(&spec("a", "x")).expect("open the study");
        s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
        s.finish(study.id, &finished(0, 1.0, 2.0)).expect("finish");
    }
    {
        let s = Sqlite::open(&path).expect("open the study");
        let study = s.open(&spec("a", "x")).expect("open the study");
        assert_eq!(s.history(study.id).expect("history").len(), 1);
        s.conn().execute_batch("PRAGMA user_version = 99").expect("create the version-1 schema");
    }
    match Sqlite::open(&path) {
        Err(StoreError::Backend(m)) => assert!(m.contains("newer"), "{m}"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn threads_never_share_a_number() {
    let dir = std::env::temp_dir().join(format!("bma-store-threads-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("study.db");
    let s = std::sync::Arc::new(Sqlite::open(&path).expect("open the study"));
    let id = s.open(&spec("a", "x")).expect("open the study").id;
    // A second connection to the same file, as another process would have.
    let other = std::sync::Arc::new(Sqlite::open(&path).expect("open the study"));
    let mut handles = Vec::new();
    for (k, store) in [s.clone(), other.clone(), s.clone(), other].into_iter().enumerate() {
        handles.push(std::thread::spawn(move || {
            (0..25)
                .map(|_| store.claim(id, &format!("w{k}"), Some(90)).expect("claim").map(|c| c.number))
                .collect::<Vec<_>>()
        }));
    }
    let mut all: Vec<u64> = handles.into_iter().flat_map(|h| h.join().expect("join")).flatten().collect();
    all.sort_unstable();
    assert_eq!(all, (0..90).collect::<Vec<_>>(), "every number once, none past the budget");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_version_1_file_is_migrated_and_keeps_its_trials() {
    let dir = std::env::temp_dir().join(format!("bma-store-v1-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create_dir_all");
    let path = dir.join("study.db");
    {
        // A file as bma wrote it before configuration keys: schema 1, one complete trial.
        let conn = rusqlite::Connection::open(&path).expect("open the database file");
        conn.execute_batch(MIGRATIONS[0]).expect("create the version-1 schema");
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO studies (name, experiment, spec_text, spec_hash, objectives, constraints, seed, state, created, next_number)
             VALUES ('a', 'a', 'x', 'h', '[[\"loss\",\"minimize\"]]', '[]', 7, 'finished', 0, 1);
             INSERT INTO trials (study, number, state, params, seed, objective_values)
             VALUES (1, 0, 'complete', '{}', 3, '[2.0]');",
        )
        .expect("write a version-1 database");
    }
    let s = Sqlite::open(&path).expect("open the study");
    assert_eq!(s.schema_version().expect("schema_version"), MIGRATIONS.len() as u32);
    assert_eq!(s.history(1).expect("history")[0].values, vec![2.0]);
    assert!(s.config_keys(1).expect("config_keys").is_empty(), "old trials have no key");
    s.set_config_key(1, 0, "k0").expect("set_config_key");
    assert_eq!(s.config_keys(1).expect("config_keys"), BTreeMap::from([(0, "k0".to_string())]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_complete_trial_is_found_by_key_in_any_study_with_its_steps() {
    let s = Sqlite::in_memory().expect("in-memory store");
    let a = s.open(&spec("a", "x")).expect("open the study");
    for (n, x) in [(0u64, 1.0), (1, 2.0)] {
        s.claim(a.id, "w", None).expect("claim").expect("a trial to claim");
        s.start(a.id, n, &point(x), 9, "w").expect("start");
        s.set_config_key(a.id, n, &format!("k{n}")).expect("set_config_key");
        s.report(a.id, n, 1, 5.0).expect("report");
    }
    s.finish(a.id, &finished(0, 1.0, 2.0)).expect("finish");
    let mut failed = finished(1, 2.0, 3.0);
    failed.state = TrialState::Failed;
    s.finish(a.id, &failed).expect("finish");
    let b = s.open(&spec("b", "y")).expect("open the study");
    let found = s.complete_by_key("k0").expect("complete_by_key").expect("the complete trial");
    assert_eq!((found.study, found.trial.number, found.trial.params.clone()), (a.id, 0, point(1.0)));
    assert_eq!(found.trial.steps, vec![(1, 5.0)]);
    assert_eq!(found.objectives, vec![("loss".to_string(), Direction::Minimize)]);
    assert_eq!(s.complete_by_key("k1").expect("complete_by_key"), None, "a failed trial is not reused");
    assert_eq!(s.complete_by_key("nope").expect("complete_by_key"), None);
    assert!(s.set_config_key(b.id, 0, "k").is_err(), "no such trial");
}

#[test]
fn switching_versions_renames_the_old_study_and_switching_back_restores_it() {
    let s = Sqlite::in_memory().expect("in-memory store");
    let v1 = spec("e", "one");
    let v2 = spec("e", "two");
    s.switch_to(&v1).expect("switch_to");
    let first = s.open(&v1).expect("open the study");
    s.switch_to(&v1).expect("switch_to");
    assert_eq!(s.open(&v1).expect("open the study").id, first.id, "the same version joins its study");
    assert!(matches!(s.open(&v2), Err(StoreError::SpecMismatch { .. })));
    s.switch_to(&v2).expect("switch_to");
    let second = s.open(&v2).expect("open the study");
    assert!(second.created_now && second.id != first.id);
    let names: Vec<String> = s.studies().expect("studies").into_iter().map(|st| st.name).collect();
    assert_eq!(names, vec![format!("e@{}", v1.spec_hash), "e".to_string()]);
    // Back to the first version: its study takes the name back.
    s.switch_to(&v1).expect("switch_to");
    let again = s.open(&v1).expect("open the study");
    assert_eq!((again.id, again.created_now), (first.id, false));
    let names: Vec<String> = s.studies().expect("studies").into_iter().map(|st| st.name).collect();
    assert_eq!(names, vec!["e".to_string(), format!("e@{}", v2.spec_hash)]);
}

#[test]
fn connect_picks_the_backend_from_the_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    for url in [format!("sqlite://{}", path.display()), path.display().to_string()] {
        let s = crate::store::connect(&url, 1).expect("connect");
        s.open(&spec("a", "x")).expect("open the study");
        assert_eq!(s.studies().expect("studies").len(), 1, "{url}");
    }
    let err = |url: &str| crate::store::connect(url, 1).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err("mysql://u@h/db").contains("unknown store `mysql://`"));
    assert!(err("").contains("empty"));
    assert!(err(&dir.path().join("no/such/dir/s.db").display().to_string()).contains("is not a folder"));
    assert!(err("postgres://u@h:notaport/db").contains("bad PostgreSQL URL"));
}

#[test]
fn a_study_loads_by_name_from_any_store() {
    let s = Sqlite::in_memory().expect("in-memory store");
    let study = s.open(&spec("a", "x")).expect("open the study");
    s.open(&spec("b", "y")).expect("open the study");
    let c = s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
    s.start(study.id, c.number, &point(0.5), 100, "w").expect("start");
    s.finish(study.id, &finished(c.number, 0.5, 2.0)).expect("finish");
    let store: &dyn Store = &s;
    let (loaded, trials) = crate::store::load_study(store, "a").expect("load_study");
    assert_eq!((loaded.id, loaded.spec.name.as_str()), (study.id, "a"));
    assert_eq!(trials, vec![finished(0, 0.5, 2.0)]);
    let e = match crate::store::load_study(store, "zz") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a study that does not exist was loaded"),
    };
    assert!(e.contains("no study `zz`") && e.contains("a, b"), "{e}");
}

#[test]
fn claims_find_queued_trials_through_the_state_index() {
    let store = Sqlite::in_memory().expect("in-memory store");
    let conn = store.conn();
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {NEXT_QUEUED}"))
        .expect("prepare EXPLAIN")
        .query_map(params![1], |r| r.get::<_, String>(3))
        .expect("run EXPLAIN")
        .collect::<Result<_, _>>()
        .expect("read the plan");
    assert!(plan.iter().any(|p| p.contains("trials_state")), "{plan:?}");
}
