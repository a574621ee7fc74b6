//! Command trials: the user's own program is the trial (`trial { command = [...] }`).
//!
//! Takes a checked experiment's `trial` section; gives a [`CommandEvaluator`] that runs the
//! program once per trial, protocol 1 (`docs/command-trials.md`):
//! - in: the argv template filled from the point (each value one argv element, never a
//!   shell), and `BMA_PARAMS` (a JSON file of the point in the trial's folder), `BMA_TRIAL`,
//!   `BMA_SEED`, `BMA_TRIAL_DIR` (`<out>/trials/<n>/`, kept), `BMA_DEVICE`,
//!   `BMA_PROTOCOL`, and `CUDA_VISIBLE_DEVICES` when `devices` (or `--devices`) is set:
//!   each trial takes the device with the fewest running trials, the next in turn among
//!   equals ([`CommandEvaluator`]), and the loop records it with the trial
//!   ([`Evaluator::device`]);
//! - out: stdout JSON lines, `{"step": 3, ...}` an intermediate report fed to the pruner, one
//!   without `step` the final metrics (else the last step's); every stdout line is kept in
//!   `<trial dir>/stdout.log`, stderr in `stderr.log`.
//!
//! **Invariants:** the program runs in its own process group, and every way a trial ends
//! early (pruned, over its `timeout` or the study's deadline, the stop flag, a malformed
//! line) sends SIGTERM to the whole group, then SIGKILL after `grace`, and reaps the
//! program: no orphan or zombie is left by a trial that this module saw end. A trial that
//! exits non-zero, misses a declared metric, reports NaN or prints a malformed JSON line
//! fails with the reason and the last lines of its stderr; the study goes on. The stop flag
//! ends a trial with [`Status::Stopped`], which the loop requeues.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::trial_dir;
use crate::ir::{self, Point, Value, command::Piece};
use crate::search::study::{Control, Evaluator, Metrics, Outcome, Status, StepFn, TrialRef};

/// The protocol version this runner speaks (`BMA_PROTOCOL`).
pub const PROTOCOL: u32 = 1;

/// How long a program has between SIGTERM and SIGKILL when `grace` is not set.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// How many lines of stderr a failed trial's reason ends with.
const STDERR_TAIL: usize = 10;

/// How often the runner looks at the stop flag and the clocks while the program is silent.
const POLL: Duration = Duration::from_millis(20);

/// A `trial { }` section, evaluated once: what every trial runs.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub argv: Vec<Vec<Piece>>,
    pub env: Vec<(String, Vec<Piece>)>,
    /// Where the program runs: `cwd` relative to the spec's folder, else that folder.
    pub cwd: PathBuf,
    pub timeout: Option<Duration>,
    pub grace: Duration,
    /// The metrics the program must report (`reports`).
    pub reports: Vec<String>,
    /// `devices` (or `--devices`): a running trial holds one ([`Devices::take`]), given to
    /// it in `CUDA_VISIBLE_DEVICES` and `BMA_DEVICE`, and recorded with the trial.
    pub devices: Vec<String>,
}

impl CommandSpec {
    /// Reads a checked `trial` section; `base` is the spec's folder. An error is the user's
    /// (a section the checker would have refused).
    pub fn new(trial: &ir::Trial, base: &Path) -> Result<CommandSpec, String> {
        let constant = |key: &str| -> Result<Option<Value>, String> {
            trial
                .setting(key)
                .map(|s| ir::eval(&s.value, &BTreeMap::new()).map_err(|e| format!("`{key}`: {}", e.message)))
                .transpose()
        };
        let pieces = |text: &str| ir::command::parse(text);
        let argv = match constant("command")? {
            Some(Value::List(items)) if !items.is_empty() => items
                .iter()
                .map(|v| match v {
                    Value::Str(s) => pieces(s),
                    other => Err(format!("a command argument is a string, not `{other}`")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err("`trial` needs `command = [\"program\", \"arg\", ...]`".into()),
        };
        let mut env = Vec::new();
        for (name, _, e) in &trial.env {
            match ir::eval(e, &BTreeMap::new()) {
                Ok(Value::Str(s)) => env.push((name.clone(), pieces(&s)?)),
                _ => return Err(format!("`env` value `{name}` is not a string")),
            }
        }
        let duration = |key: &str| -> Result<Option<Duration>, String> {
            match constant(key)? {
                None => Ok(None),
                Some(Value::Duration(d)) if d.seconds > 0.0 => {
                    Duration::try_from_secs_f64(d.seconds).map(Some).map_err(|e| format!("`{key}`: {e}"))
                }
                Some(v) => Err(format!("`{key}` is a positive duration, not `{v}`")),
            }
        };
        let cwd = match constant("cwd")? {
            Some(Value::Str(s)) => base.join(s),
            _ => base.to_path_buf(),
        };
        let devices = match constant("devices")? {
            Some(Value::List(items)) => items.iter().map(ir::command::arg_text).collect(),
            _ => Vec::new(),
        };
        Ok(CommandSpec {
            argv,
            env,
            cwd,
            timeout: duration("timeout")?,
            grace: duration("grace")?.unwrap_or(DEFAULT_GRACE),
            reports: trial.reports().into_iter().map(|(n, _)| n).collect(),
            devices,
        })
    }
}

/// Runs a [`CommandSpec`] per trial, in `<out>/trials/<n>/`.
pub struct CommandEvaluator {
    spec: CommandSpec,
    out: PathBuf,
    /// The device a trial gets when `devices` is not set (`--device`).
    device: String,
    devices: Mutex<Devices>,
}

/// Which of `spec.devices` the running trials hold ([`Devices::take`] states the rule); also
/// a model study's `--devices` (`super::evaluator`).
#[derive(Debug, Default)]
pub(super) struct Devices {
    /// Running trials per entry of `devices`.
    pub(super) running: Vec<usize>,
    /// Where the next search for a device starts: ties go round the list in turn.
    pub(super) next: usize,
    /// The entry each running or just-finished trial holds, by trial number.
    pub(super) held: BTreeMap<u64, usize>,
}

impl Devices {
    /// The rule: a trial takes the device with the fewest running trials, the first such
    /// from `next` on (round the list). With `parallel = P` and `D` devices no device ever
    /// runs more than `ceil(P / D)` trials at once, and with `P <= D` never two. `None`
    /// when there are no devices.
    pub(super) fn take(&mut self, number: u64) -> Option<usize> {
        let n = self.running.len();
        let fewest = *self.running.iter().min()?;
        let i = (0..n).map(|k| (self.next + k) % n).find(|&i| self.running[i] == fewest)?;
        self.running[i] += 1;
        self.next = (i + 1) % n;
        self.held.insert(number, i);
        Some(i)
    }

    pub(super) fn free(&mut self, slot: usize) {
        if let Some(r) = self.running.get_mut(slot) {
            *r = r.saturating_sub(1);
        }
    }
}

impl CommandEvaluator {
    pub fn new(spec: CommandSpec, out: PathBuf, device: String) -> CommandEvaluator {
        let devices = Mutex::new(Devices { running: vec![0; spec.devices.len()], ..Devices::default() });
        CommandEvaluator { spec, out, device, devices }
    }

    fn devices(&self) -> std::sync::MutexGuard<'_, Devices> {
        self.devices.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Evaluator for CommandEvaluator {
    fn evaluate(&self, trial: TrialRef<'_>, on_step: &mut StepFn<'_>) -> Outcome {
        let slot = self.devices().take(trial.number);
        let device = slot.and_then(|i| self.spec.devices.get(i)).cloned().unwrap_or_else(|| self.device.clone());
        let outcome = run(&self.spec, &self.out, &device, slot.is_some(), trial, on_step);
        if let Some(i) = slot {
            self.devices().free(i);
        }
        outcome
    }

    fn device(&self, number: u64) -> Option<String> {
        let slot = self.devices().held.remove(&number)?;
        self.spec.devices.get(slot).cloned()
    }
}

/// One line of the program's stdout, as the runner reads it.
enum Line {
    Step(u32, Metrics),
    Final(Metrics),
    Malformed(String),
    /// stdout closed (the program ended or closed it).
    End,
}

fn failed(reason: String) -> Outcome {
    Outcome { status: Status::Failed(reason), metrics: Metrics::new() }
}

/// Runs the program for `trial` and watches it to its end.
fn run(
    spec: &CommandSpec,
    out: &Path,
    device: &str,
    visible: bool,
    trial: TrialRef<'_>,
    on_step: &mut StepFn<'_>,
) -> Outcome {
    let dir = trial_dir(out, trial.number);
    let prepared = prepare(spec, &dir, device, visible, trial);
    let (mut cmd, stderr_path) = match prepared {
        Ok(p) => p,
        // The out folder cannot be written: every trial would meet it.
        Err(Prep::Io(why)) => return Outcome { status: Status::Abort(why), metrics: Metrics::new() },
        Err(Prep::Input(why)) => return failed(why),
    };
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot start `{}`: {e}", cmd.get_program().to_string_lossy())),
    };
    let Some(stdout) = child.stdout.take() else {
        end(&mut child, spec.grace);
        return failed("the program's stdout could not be read".into());
    };
    let log = match File::create(dir.join("stdout.log")) {
        Ok(f) => f,
        Err(e) => {
            end(&mut child, spec.grace);
            return Outcome {
                status: Status::Abort(format!("cannot write {}: {e}", dir.join("stdout.log").display())),
                metrics: Metrics::new(),
            };
        }
    };
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || read_stdout(stdout, log, &tx));
    let timeout = spec.timeout.and_then(|t| started.checked_add(t));
    let mut last_step: Option<Metrics> = None;
    let mut final_metrics: Option<Metrics> = None;
    // A stopped trial keeps its last step's metrics (a pruned trial is ranked by them).
    let stop_early = |child: &mut Child, last: &Option<Metrics>| {
        end(child, spec.grace);
        Outcome { status: Status::Stopped, metrics: last.clone().unwrap_or_default() }
    };
    let timed_out = || {
        let secs = spec.timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0);
        failed(with_tail(format!("ran past its timeout of {secs}s and was killed"), &stderr_path))
    };
    let mut closed = false;
    let mut nap = Duration::from_micros(200);
    let outcome = loop {
        if trial.stop.load(Ordering::SeqCst) || trial.deadline.is_some_and(|d| Instant::now() >= d) {
            break stop_early(&mut child, &last_step);
        }
        if timeout.is_some_and(|d| Instant::now() >= d) {
            end(&mut child, spec.grace);
            break timed_out();
        }
        let line = if closed {
            // A program that closed stdout usually exits at once: look again soon, then less often.
            std::thread::sleep(nap);
            nap = (nap * 2).min(POLL);
            None
        } else {
            match rx.recv_timeout(POLL) {
                Ok(line) => Some(line),
                Err(RecvTimeoutError::Disconnected) => Some(Line::End),
                Err(RecvTimeoutError::Timeout) => None,
            }
        };
        match line {
            Some(Line::Step(step, metrics)) => {
                let control = on_step(step, &metrics);
                last_step = Some(metrics);
                if control == Control::Stop {
                    break stop_early(&mut child, &last_step);
                }
                continue;
            }
            Some(Line::Final(metrics)) => {
                final_metrics = Some(metrics);
                continue;
            }
            Some(Line::Malformed(why)) => {
                end(&mut child, spec.grace);
                break failed(with_tail(why, &stderr_path));
            }
            // stdout is closed; the program may still run (it closed stdout itself).
            Some(Line::End) => closed = true,
            None => {}
        }
        match child.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => {
                // What the program left running in its group is an orphan now: end it, so
                // that stdout closes and every line the program wrote can be read.
                end_group(&child);
                let _ = reader.join();
                let mut malformed = None;
                for line in rx.try_iter() {
                    match line {
                        Line::Step(step, metrics) => {
                            let _ = on_step(step, &metrics);
                            last_step = Some(metrics);
                        }
                        Line::Final(metrics) => final_metrics = Some(metrics),
                        Line::Malformed(why) => malformed = malformed.or(Some(why)),
                        Line::End => {}
                    }
                }
                return match malformed {
                    Some(why) => failed(with_tail(why, &stderr_path)),
                    None => finish(spec, status, final_metrics.or(last_step), &stderr_path),
                };
            }
            Err(e) => {
                end(&mut child, spec.grace);
                break failed(format!("cannot wait for the program: {e}"));
            }
        }
    };
    // The group is ended, so stdout is closed and the reader finishes.
    let _ = reader.join();
    outcome
}

enum Prep {
    /// The trial's folder cannot be written.
    Io(String),
    /// The command cannot be built for this point.
    Input(String),
}

/// The trial's folder, its `params.json`, and the command ready to spawn.
fn prepare(
    spec: &CommandSpec,
    dir: &Path,
    device: &str,
    visible: bool,
    trial: TrialRef<'_>,
) -> Result<(Command, PathBuf), Prep> {
    let io = |what: &Path, e: std::io::Error| Prep::Io(format!("cannot write {}: {e}", what.display()));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let params = dir.join("params.json");
    let json = point_json(trial.point);
    std::fs::write(&params, format!("{json}\n")).map_err(|e| io(&params, e))?;
    let stderr_path = dir.join("stderr.log");
    let stderr = File::create(&stderr_path).map_err(|e| io(&stderr_path, e))?;
    let builtins: BTreeMap<&str, String> = [
        ("trial", trial.number.to_string()),
        ("seed", trial.seed.to_string()),
        ("dir", dir.display().to_string()),
        ("device", device.to_string()),
    ]
    .into_iter()
    .collect();
    let render = |pieces: &[Piece]| ir::command::render(pieces, trial.point, &builtins).map_err(Prep::Input);
    let argv: Vec<String> = spec.argv.iter().map(|p| render(p)).collect::<Result<_, _>>()?;
    let Some((program, args)) = argv.split_first() else {
        return Err(Prep::Input("the command is empty".into()));
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .env("BMA_PROTOCOL", PROTOCOL.to_string())
        .env("BMA_PARAMS", &params)
        .env("BMA_TRIAL", trial.number.to_string())
        .env("BMA_SEED", trial.seed.to_string())
        .env("BMA_TRIAL_DIR", dir)
        .env("BMA_DEVICE", device);
    if visible {
        cmd.env("CUDA_VISIBLE_DEVICES", device);
    }
    for (name, pieces) in &spec.env {
        cmd.env(name, render(pieces)?);
    }
    Ok((cmd, stderr_path))
}

/// The point as a JSON object: numbers, booleans, strings (symbols by name), lists.
pub fn point_json(point: &Point) -> serde_json::Value {
    fn one(v: &Value) -> serde_json::Value {
        match v {
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(x) => serde_json::Value::from(*x),
            Value::Bool(b) => serde_json::Value::from(*b),
            Value::Duration(d) => serde_json::Value::from(d.seconds),
            Value::List(items) => serde_json::Value::Array(items.iter().map(one).collect()),
            other => serde_json::Value::from(ir::command::arg_text(other)),
        }
    }
    serde_json::Value::Object(point.iter().map(|(k, v)| (k.clone(), one(v))).collect())
}

/// Reads stdout line by line into `log`, sending the protocol's lines to the runner.
fn read_stdout(stdout: impl Read, mut log: File, tx: &mpsc::Sender<Line>) {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let _ = log.write_all(&buf);
        let text = String::from_utf8_lossy(&buf);
        if let Some(line) = parse_line(text.trim())
            && tx.send(line).is_err()
        {
            return;
        }
    }
    let _ = tx.send(Line::End);
}

/// A stdout line as protocol 1 reads it: `None` for a line that is not JSON (a log line).
fn parse_line(text: &str) -> Option<Line> {
    if !text.starts_with('{') {
        return None;
    }
    let short: String = text.chars().take(80).collect();
    let malformed = |why: String| Some(Line::Malformed(format!("malformed report line `{short}`: {why}")));
    let object = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(o)) => o,
        Ok(_) => return malformed("not a JSON object".into()),
        Err(e) => return malformed(e.to_string()),
    };
    let mut step = None;
    let mut metrics = Metrics::new();
    for (k, v) in object {
        match (k.as_str(), v) {
            ("step", serde_json::Value::Number(n)) => match n.as_u64().and_then(|s| u32::try_from(s).ok()) {
                Some(s) => step = Some(s),
                None => return malformed(format!("`step` is a whole number from 0, not {n}")),
            },
            ("step", v) => return malformed(format!("`step` is a number, not {v}")),
            (_, serde_json::Value::Number(n)) => {
                metrics.insert(k, n.as_f64().unwrap_or(f64::NAN));
            }
            // JSON has no NaN; Python's `json.dumps` writes it as a bare `NaN`, which is
            // malformed JSON above. A string "nan" is read as what it says.
            (_, serde_json::Value::String(s)) if s.eq_ignore_ascii_case("nan") => {
                metrics.insert(k, f64::NAN);
            }
            // Other fields (a note, a path) are the program's own.
            _ => {}
        }
    }
    Some(match step {
        Some(s) => Line::Step(s, metrics),
        None => Line::Final(metrics),
    })
}

/// Kills what is left of the group of a program that has exited (and was reaped).
fn end_group(child: &Child) {
    if let Ok(raw) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
    }
}

/// Ends the program's process group: SIGTERM, then SIGKILL after `grace`; reaps the program.
fn end(child: &mut Child, grace: Duration) {
    let Ok(raw) = i32::try_from(child.id()) else {
        let _ = child.kill();
        let _ = child.wait();
        return;
    };
    // The program leads its own group (`process_group(0)`), so its pid is the group's id.
    let group = Pid::from_raw(raw);
    let _ = killpg(group, Signal::SIGTERM);
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            // The leader is gone; children that outlive it in the group get SIGKILL too.
            let _ = killpg(group, Signal::SIGKILL);
            return;
        }
        std::thread::sleep(POLL.min(grace));
    }
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
}

/// The outcome of a program that exited by itself.
fn finish(spec: &CommandSpec, status: std::process::ExitStatus, metrics: Option<Metrics>, stderr: &Path) -> Outcome {
    if !status.success() {
        let why = match (status.code(), status.signal()) {
            (Some(code), _) => format!("the program exited with code {code}"),
            (None, Some(sig)) => format!("the program was killed by signal {sig}"),
            _ => "the program failed".to_string(),
        };
        return failed(with_tail(why, stderr));
    }
    let Some(metrics) = metrics else {
        return failed(with_tail(
            format!("the program printed no metrics (expected a JSON line with {})", spec.reports.join(", ")),
            stderr,
        ));
    };
    let missing: Vec<&str> =
        spec.reports.iter().filter(|r| !metrics.contains_key(r.as_str())).map(String::as_str).collect();
    if !missing.is_empty() {
        return failed(with_tail(format!("the program did not report {}", missing.join(", ")), stderr));
    }
    if let Some((k, v)) = metrics.iter().find(|(k, v)| spec.reports.contains(k) && !v.is_finite()) {
        return failed(with_tail(format!("the program reported {k} = {v}"), stderr));
    }
    Outcome { status: Status::Complete, metrics }
}

/// `why`, then the last lines of the program's stderr when it wrote any.
fn with_tail(why: String, stderr: &Path) -> String {
    let tail = tail(stderr, STDERR_TAIL);
    if tail.is_empty() { why } else { format!("{why}; stderr ends with:\n{tail}") }
}

/// The last `n` lines of a file (at most its last 64 KiB).
fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 << 10)));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_go_to_the_least_busy_in_turn() {
        let mut d = Devices { running: vec![0; 2], ..Devices::default() };
        // Four at once on two devices: two each, alternating.
        let taken: Vec<_> = (0..4).map(|n| d.take(n)).collect();
        assert_eq!(taken, vec![Some(0), Some(1), Some(0), Some(1)]);
        assert_eq!(d.running, vec![2, 2]);
        // Device 1 frees a slot: the next trial goes there, not to the busier device 0.
        d.free(1);
        assert_eq!(d.take(4), Some(1));
        // One at a time still alternates, so every device is used.
        let mut d = Devices { running: vec![0; 3], ..Devices::default() };
        let mut used = Vec::new();
        for n in 0..6 {
            let i = d.take(n).expect("a device");
            used.push(i);
            d.free(i);
        }
        assert_eq!(used, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(d.held.get(&5), Some(&2));
        assert_eq!(Devices::default().take(0), None);
    }

    #[test]
    fn report_lines() {
        assert!(parse_line("epoch 3 done").is_none());
        match parse_line(r#"{"step": 2, "loss": 0.5}"#) {
            Some(Line::Step(2, m)) => assert_eq!(m.get("loss"), Some(&0.5)),
            _ => panic!("a step line"),
        }
        match parse_line(r#"{"accuracy": 0.9, "note": "x"}"#) {
            Some(Line::Final(m)) => assert_eq!(m.len(), 1),
            _ => panic!("a final line"),
        }
        assert!(matches!(parse_line(r#"{"loss": NaN}"#), Some(Line::Malformed(_))));
        assert!(matches!(parse_line(r#"{"step": -1}"#), Some(Line::Malformed(_))));
        assert!(matches!(parse_line("{oops"), Some(Line::Malformed(_))));
    }
}
