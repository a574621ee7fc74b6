//! SQLite's own behaviour: its file, schema and migrations, connections from several
//! threads, configuration keys, study versions. What every store does is the conformance
//! suite's (`tests/store_suite/`, run against SQLite and PostgreSQL by `tests/store.rs`).

use super::*;
use crate::ir::Value;
use crate::trial::FailKind;

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
        let s = crate::store::connect(&url, 1, crate::store::DEFAULT_RETRY).expect("connect");
        s.open(&spec("a", "x")).expect("open the study");
        assert_eq!(s.studies().expect("studies").len(), 1, "{url}");
    }
    let err = |url: &str| {
        crate::store::connect(url, 1, crate::store::DEFAULT_RETRY).err().map(|e| e.to_string()).unwrap_or_default()
    };
    assert!(err("mysql://u@h/db").contains("unknown store `mysql://`"));
    assert!(err("").contains("empty"));
    assert!(err(&dir.path().join("no/such/dir/s.db").display().to_string()).contains("is not a folder"));
    assert!(err("postgres://u@h:notaport/db").contains("bad PostgreSQL URL"));
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

#[test]
fn a_version_2_file_gets_failure_kinds_and_its_refused_points_become_infeasible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("study.db");
    {
        // A file as bma wrote it before failure kinds: schema 2, failures told apart only by
        // their text, a point refused before training stored as failed.
        let conn = rusqlite::Connection::open(&path).expect("open the database file");
        conn.execute_batch(MIGRATIONS[0]).expect("create the version-1 schema");
        conn.execute_batch(MIGRATIONS[1]).expect("migrate it to version 2");
        conn.execute_batch(
            "PRAGMA user_version = 2;
             INSERT INTO studies (name, experiment, spec_text, spec_hash, objectives, constraints, seed, state, created, next_number)
             VALUES ('a', 'a', 'x', 'h', '[[\"loss\",\"minimize\"]]', '[]', 7, 'finished', 0, 7);
             INSERT INTO trials (study, number, state, params, seed, objective_values, error) VALUES
             (1, 0, 'complete', '{}', 3, '[2.0]', NULL),
             (1, 1, 'failed', '{}', 3, '[]', 'infeasible before training: params <= 100 (is 515)'),
             (1, 2, 'failed', '{}', 3, '[]', 'interrupted (Ctrl-C)'),
             (1, 3, 'failed', '{}', 3, '[]', 'cancelled: the file was saved during the run'),
             (1, 4, 'failed', '{}', 3, '[]', 'ran out of time: the trial limit is 1.0s'),
             (1, 5, 'failed', '{}', 3, '[]', 'stopped: the study''s time budget ran out'),
             (1, 6, 'failed', '{}', 3, '[]', 'loss is NaN');",
        )
        .expect("write a version-2 database");
    }
    let s = Sqlite::open(&path).expect("open the old file");
    assert_eq!(s.schema_version().expect("schema_version"), MIGRATIONS.len() as u32);
    let h = s.history(1).expect("history");
    let read: Vec<(TrialState, Option<FailKind>)> = h.iter().map(|t| (t.state, t.failure)).collect();
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
    assert_eq!(h[0].values, vec![2.0]);
}

#[test]
fn a_version_3_file_opens_with_empty_options_and_new_studies_keep_theirs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("study.db");
    {
        // A file as bma wrote it before SQLite kept a study's options: schema 3.
        let conn = rusqlite::Connection::open(&path).expect("open the database file");
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).expect("migrate");
        }
        conn.execute_batch(
            "PRAGMA user_version = 3;
             INSERT INTO studies (name, experiment, spec_text, spec_hash, objectives, constraints, seed, state, created, next_number)
             VALUES ('a', 'a', 'x', 'h', '[[\"loss\",\"minimize\"]]', '[]', 7, 'finished', 0, 0);",
        )
        .expect("write a version-3 database");
    }
    let s = Sqlite::open(&path).expect("open the old file");
    assert_eq!(s.schema_version().expect("schema_version"), MIGRATIONS.len() as u32);
    let old = s.open(&StudySpec { spec_hash: "h".into(), ..spec("a", "x") }).expect("reopen the old study");
    assert!(!old.created_now);
    assert_eq!(old.spec.options, "", "a study stored before options has none");
    let new = StudySpec { options: r#"{"data_files":[]}"#.into(), ..spec("b", "y") };
    assert!(s.open(&new).expect("create").created_now);
    let reopened = s.open(&spec("b", "y")).expect("reopen");
    assert_eq!(reopened.spec.options, new.options, "the creating run's options are read back");
}

#[test]
fn a_damaged_chunk_is_refused_by_its_hash() {
    let s = Sqlite::in_memory().expect("an in-memory store");
    let study = s.open(&spec("a", "x")).expect("open the study");
    s.claim(study.id, "w", None).expect("claim").expect("a trial to claim");
    let dir = tempfile::tempdir().expect("a temp folder");
    std::fs::write(dir.path().join("model.json"), "{\"weights\": [1, 2, 3]}").expect("write");
    let a = crate::store::artifacts::pack(dir.path()).expect("pack");
    s.put_artifact(study.id, 0, "w", &a).expect("upload");
    assert_eq!(s.artifact(study.id, 0).expect("read").expect("stored"), a);
    s.conn()
        .execute("UPDATE artifact_chunks SET data = CAST(REPLACE(CAST(data AS TEXT), '2', '9') AS BLOB)", [])
        .expect("damage the chunk");
    match s.artifact(study.id, 0) {
        Err(StoreError::Backend(m)) => {
            assert!(m.contains("the stored model of trial 0 is damaged: chunk 0 has SHA-256"), "{m}")
        }
        other => panic!("a damaged chunk must be refused, got {other:?}"),
    }
}
