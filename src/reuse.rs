//! Trial reuse: the resolved configuration key of a trial.
//!
//! Takes a checked program, one experiment, its data description, a resolved point
//! and a seed; gives a [`ConfigKey`], a stable 128-bit hash of everything that
//! determines the trial's training result: the data declaration (evaluated, at the point
//! when it reads searched parameters, plus the contents of the local data files it names),
//! the expanded sub-model at the point (every layer, shape and edge), the `train { }`
//! settings resolved at the point, the parameter values, the seed and the bma version. The `objective`, `require`, `rank`,
//! `average`, `report` and `search` sections are not part of it, so a change to them
//! re-ranks stored trials without training. Whitespace, comments and the position of
//! anything in the file never change a key: spans are never hashed.
//!
//! A command experiment (`trial { command }`) is keyed by its `trial` section and the
//! contents of the files its command names (its objectives re-rank, like a model's).
//! An experiment without a model (a pure-function search) has no training: its
//! "result" is its objectives and constraints evaluated at the point, so for it the key
//! also covers those expressions and every `fn` (span-free).
//!
//! **Invariant:** equal keys mean equal training inputs; the key of a point does not
//! depend on which other points exist or in which order they are asked.

use std::fmt::Write as _;
use std::path::Path;

use crate::ir::{self, DataInfo, Point, Value};
use crate::train::TrainConfig;

/// A trial's resolved configuration key, as 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigKey(pub String);

impl std::fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What every key of one experiment shares, computed once (data files are read here).
#[derive(Debug, Clone)]
pub struct KeyContext<'a> {
    program: &'a ir::Program,
    experiment: &'a ir::Experiment,
    data: Option<&'a DataInfo>,
    /// The canonical text of the parts shared by every trial.
    shared: String,
    /// The data reads searched parameters: its value is part of each point's key.
    searched: bool,
}

impl<'a> KeyContext<'a> {
    /// `base` is the folder that relative data paths are read from.
    pub fn new(
        program: &'a ir::Program,
        experiment: &'a ir::Experiment,
        data: Option<&'a DataInfo>,
        base: &Path,
    ) -> KeyContext<'a> {
        let mut shared = format!("bma {}\n", env!("CARGO_PKG_VERSION"));
        // Searched data settings: the value is the point's (in `key`), the files the first setting's.
        let searched = ir::data_search::data_searched(experiment);
        let (first, _) = ir::data_search::data_points(experiment, 1);
        let at = first.into_iter().next().unwrap_or_default();
        if let Some(value) = ir::data_search::data_value(experiment, &program.fns, &at) {
            match value {
                Ok(v) => {
                    if !searched {
                        let _ = writeln!(shared, "data {v:?}");
                    }
                    let mut files = Vec::new();
                    strings(&v, &mut files);
                    for s in files {
                        let path = base.join(s);
                        if let Some(fp) = fingerprint(&path) {
                            let _ = writeln!(shared, "file {s} {fp}");
                        }
                    }
                }
                Err(e) => {
                    let _ = writeln!(shared, "data error {}", e.message);
                }
            }
        }
        if let Some(trial) = &experiment.trial {
            // A command trial's result is its program's: the section, and the contents of
            // the files its arguments name (`train.py`), relative to its `cwd`.
            for s in &trial.settings {
                let _ = writeln!(shared, "trial {} {}", s.key, unspanned(&s.value));
            }
            for (name, _, value) in &trial.env {
                let _ = writeln!(shared, "env {name} {}", unspanned(value));
            }
            let cwd = match trial.setting("cwd").map(|s| ir::eval(&s.value, &std::collections::BTreeMap::new())) {
                Some(Ok(Value::Str(c))) => base.join(c),
                _ => base.to_path_buf(),
            };
            if let Some(Ok(Value::List(argv))) =
                trial.setting("command").map(|s| ir::eval(&s.value, &std::collections::BTreeMap::new()))
            {
                for arg in argv {
                    if let Value::Str(a) = arg
                        && cwd.join(&a).is_file()
                        && let Some(fp) = fingerprint(&cwd.join(&a))
                    {
                        let _ = writeln!(shared, "file {a} {fp}");
                    }
                }
            }
        }
        if experiment.model.is_none() && experiment.trial.is_none() {
            for o in &experiment.objectives {
                let _ = writeln!(shared, "objective {:?} {:?} {}", o.direction, o.split, unspanned(&o.metric));
            }
            for c in &experiment.constraints {
                let _ = writeln!(shared, "require {} {:?} {}", unspanned(&c.lhs), c.op, unspanned(&c.bound));
            }
            for (name, f) in &program.fns {
                let _ = writeln!(shared, "fn {name} {}", unspanned(f));
            }
        }
        KeyContext { program, experiment, data, shared, searched }
    }

    /// The key of the trial at `point` (resolved: derived and pinned values included) with `seed`.
    pub fn key(&self, point: &Point, seed: u64) -> ConfigKey {
        let mut text = self.shared.clone();
        for (name, v) in point {
            let _ = writeln!(text, "param {name} = {v:?}");
        }
        let _ = writeln!(text, "seed {seed}");
        if self.searched {
            match ir::data_search::data_value(self.experiment, &self.program.fns, point) {
                Some(Ok(v)) => {
                    let _ = writeln!(text, "data {v:?}");
                }
                Some(Err(e)) => {
                    let _ = writeln!(text, "data error {}", e.message);
                }
                None => {}
            }
        }
        if let (Some(body), Some(data)) = (&self.experiment.model, self.data) {
            match ir::expand(self.program, body, point, data) {
                Ok(sub) => {
                    for layer in sub.layers() {
                        let json = serde_json::to_string(layer).unwrap_or_default();
                        let _ = writeln!(text, "layer {json}");
                    }
                    let _ = writeln!(text, "output {}", sub.output.index());
                }
                Err(e) => {
                    let _ = writeln!(text, "model error {}", e.message);
                }
            }
            match TrainConfig::from_experiment(self.program, self.experiment, point, data, seed) {
                Ok(cfg) => {
                    let _ = writeln!(text, "train {}", serde_json::to_string(&cfg).unwrap_or_default());
                }
                Err(e) => {
                    let _ = writeln!(text, "train error {e}");
                }
            }
        } else if self.experiment.model.is_some() {
            // No data description (it did not load): the settings are still part of it.
            for s in &self.experiment.train {
                let _ = writeln!(text, "train {} {}", s.key, unspanned(&s.value));
            }
            let _ = writeln!(text, "model {}", self.experiment.model.as_ref().map(unspanned).unwrap_or_default());
        }
        ConfigKey(format!("{:032x}", fnv1a_128(text.as_bytes())))
    }
}

/// The key of one trial; see the module header. Builds a [`KeyContext`] each call:
/// use one context for many points.
pub fn config_key(
    program: &ir::Program,
    experiment: &ir::Experiment,
    data: Option<&DataInfo>,
    base: &Path,
    point: &Point,
    seed: u64,
) -> ConfigKey {
    KeyContext::new(program, experiment, data, base).key(point, seed)
}

/// What decides which points a study of `experiment` proposes, apart from its
/// objectives: everything in the experiment but `objective`, `require`, `rank`,
/// `average`, `report` and doc comments, plus the program's blocks and functions,
/// span-free, hashed. Two versions of a file with the same fingerprint differ only in
/// how trials are judged, so `bma watch` replays the earlier version's points (an
/// adaptive strategy would otherwise propose others after an objective edit).
pub fn search_fingerprint(program: &ir::Program, experiment: &ir::Experiment) -> String {
    let mut e = experiment.clone();
    e.doc = None;
    e.objectives.clear();
    e.constraints.clear();
    e.rank = None;
    e.average.clear();
    e.report.clear();
    e.sections.clear();
    let text = unspanned(&(e, &program.blocks, &program.fns));
    format!("{:032x}", fnv1a_128(text.as_bytes()))
}

/// FNV-1a, 128-bit: stable across runs, platforms and Rust versions.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    bytes.iter().fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME))
}

/// Every string inside a value (candidate data file paths).
fn strings<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::Str(s) => out.push(s),
        Value::List(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Call(c) => c.args.iter().for_each(|(_, a)| strings(a, out)),
        _ => {}
    }
}

/// A file's content hash (a folder: its entries' names and content hashes), or `None`.
fn fingerprint(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        let bytes = std::fs::read(path).ok()?;
        Some(format!("{:032x}", fnv1a_128(&bytes)))
    } else if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path).ok()?.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        let mut s = String::new();
        for e in entries.iter().filter(|e| e.is_file()) {
            let name = e.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let _ = write!(s, "{name}:{};", fingerprint(e).unwrap_or_default());
        }
        Some(format!("{:032x}", fnv1a_128(s.as_bytes())))
    } else {
        None
    }
}

/// The `Debug` text of an AST node with every span removed, so that moving code,
/// whitespace and comments do not change it.
fn unspanned<T: std::fmt::Debug>(node: &T) -> String {
    strip_spans(&format!("{node:?}"))
}

fn strip_spans(text: &str) -> String {
    const OPEN: &str = "Span { file: FileId(";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(OPEN) {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        match after.find(" }") {
            Some(j) => {
                out.push('_');
                rest = &after[j + 2..];
            }
            None => {
                rest = after;
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Source, compile_with};

    const MODEL: &str = r#"
experiment e {
  data = synthetic.moons(n: 64, noise: 0.1, seed: 1)
  space {
    width: int in {4, 8}
    lr: float in 0.001..0.1 log
  }
  model {
    dense(width)
    relu
    dense(data.classes)
  }
  train {
    optimizer = adam(lr)
    epochs = 2
  }
  objective {
    maximize accuracy
  }
}
"#;

    fn key_of(text: &str, point: &[(&str, Value)], seed: u64) -> Result<ConfigKey, String> {
        let c = compile_with(&Source::new("t.bma", text), &crate::ir::Disk);
        if c.has_errors() {
            return Err(format!("{:?}", c.diagnostics));
        }
        let e = c.program.experiments.first().ok_or("no experiment")?;
        let data = c.info(&e.name).and_then(|i| i.data.clone());
        let free: Point = point.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let resolved = e.space.resolve(&free, &c.program.fns, data.as_ref()).map_err(|e| e.message)?;
        Ok(config_key(&c.program, e, data.as_ref(), Path::new("."), &resolved, seed))
    }

    fn point(width: i64, lr: f64) -> Vec<(&'static str, Value)> {
        vec![("width", Value::Int(width)), ("lr", Value::Float(lr))]
    }

    #[test]
    fn the_same_trial_has_the_same_key() {
        let a = key_of(MODEL, &point(4, 0.01), 7).expect("compiles");
        let b = key_of(MODEL, &point(4, 0.01), 7).expect("compiles");
        assert_eq!(a, b);
        assert_eq!(a.0.len(), 32);
    }

    #[test]
    fn parameter_values_and_seed_change_the_key() {
        let base = key_of(MODEL, &point(4, 0.01), 7).expect("compiles");
        assert_ne!(base, key_of(MODEL, &point(4, 0.02), 7).expect("compiles"), "lr");
        assert_ne!(base, key_of(MODEL, &point(8, 0.01), 7).expect("compiles"), "width");
        assert_ne!(base, key_of(MODEL, &point(4, 0.01), 8).expect("compiles"), "seed");
    }

    #[test]
    fn training_model_and_data_change_the_key() {
        let base = key_of(MODEL, &point(4, 0.01), 7).expect("compiles");
        let epochs = MODEL.replace("epochs = 2", "epochs = 3");
        assert_ne!(base, key_of(&epochs, &point(4, 0.01), 7).expect("compiles"), "epochs");
        let model = MODEL.replace("    relu\n", "    tanh\n");
        assert_ne!(base, key_of(&model, &point(4, 0.01), 7).expect("compiles"), "model");
        let data = MODEL.replace("n: 64", "n: 80");
        assert_ne!(base, key_of(&data, &point(4, 0.01), 7).expect("compiles"), "data");
    }

    #[test]
    fn objective_average_report_and_layout_do_not_change_the_key() {
        let base = key_of(MODEL, &point(4, 0.01), 7).expect("compiles");
        let objective = MODEL.replace("maximize accuracy", "minimize loss");
        assert_eq!(base, key_of(&objective, &point(4, 0.01), 7).expect("compiles"), "objective");
        let report = MODEL.replace("  objective {", "  report {\n    top = 3\n  }\n  objective {");
        assert_eq!(base, key_of(&report, &point(4, 0.01), 7).expect("compiles"), "report");
        let layout = format!(
            "// a comment\n\n{}",
            MODEL
                .replace("    epochs = 2", "    // two epochs\n        epochs   =   2")
                .replace("  model {", "\n\n  model {")
        );
        assert_eq!(base, key_of(&layout, &point(4, 0.01), 7).expect("compiles"), "layout");
        // A wider domain does not change the key of a point it already had.
        let domain = MODEL.replace("{4, 8}", "{4, 8, 16}");
        assert_eq!(base, key_of(&domain, &point(4, 0.01), 7).expect("compiles"), "domain");
    }

    #[test]
    fn a_pure_function_key_covers_its_objective_but_not_its_layout() {
        let f = "fn f(x: float) -> float = x * x\nexperiment p {\n  space {\n    x: float in 0.0..1.0\n  }\n  objective {\n    minimize f(x)\n  }\n}\n";
        let p = vec![("x", Value::Float(0.5))];
        let base = key_of(f, &p, 1).expect("compiles");
        let moved = format!("// moved\n\n{}", f.replace("x * x", "x  *  x"));
        assert_eq!(base, key_of(&moved, &p, 1).expect("compiles"));
        assert_ne!(base, key_of(&f.replace("x * x", "x * x + 1.0"), &p, 1).expect("compiles"));
    }

    fn fingerprint_of(text: &str) -> String {
        let c = compile_with(&Source::new("t.bma", text), &crate::ir::Disk);
        let e = c.program.experiments.first().expect("an experiment");
        search_fingerprint(&c.program, e)
    }

    #[test]
    fn the_search_fingerprint_ignores_how_trials_are_judged_but_not_what_is_searched() {
        let base = fingerprint_of(MODEL);
        let judged = MODEL.replace("maximize accuracy", "minimize loss").replace(
            "  objective {",
            "  average {\n    ensemble(top: 2)\n  }\n  report {\n    top = 3\n  }\n  objective {",
        );
        assert_eq!(base, fingerprint_of(&format!("// moved\n{judged}")));
        assert_ne!(base, fingerprint_of(&MODEL.replace("{4, 8}", "{4, 8, 16}")), "space");
        assert_ne!(base, fingerprint_of(&MODEL.replace("epochs = 2", "epochs = 3")), "train");
        assert_ne!(base, fingerprint_of(&MODEL.replace("    relu\n", "    tanh\n")), "model");
    }

    #[test]
    fn spans_are_stripped() {
        assert_eq!(strip_spans("A { span: Span { file: FileId(0), start: 1, end: 2 }, x: 1 }"), "A { span: _, x: 1 }");
    }
}
