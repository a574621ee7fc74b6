//! What `bma run`, `bma worker` and `bma watch` share around the library's study API
//! ([`bma::study`]): the flags that override a file's settings, durations, the store
//! URL, live progress, Ctrl-C, and running an opened study to its exit code.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bma::search::study::{Ended, Event, Observer};
use bma::store;
use bma::study::outputs::{self, fmt_num};
use bma::study::{self, Hooks, Note, Opened, Overrides, Plan};
use bma::trial::TrialState;

use super::{INPUT, INTERNAL, OK};

/// Exit code: stopped by Ctrl-C, SIGTERM or SIGHUP, everything recorded (`--resume`
/// continues). One code for the three: the run stopped the same way whichever it was.
pub const INTERRUPTED: u8 = 130;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ProgressMode {
    /// Live bars on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// One line per finished trial.
    Plain,
    /// Nothing until the final table.
    None,
}

/// The flags of `bma run` that override a file's settings; `bma watch` takes them too.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StudyFlags {
    /// The experiment to run (needed when the file has several).
    #[arg(long)]
    pub experiment: Option<String>,
    /// The study's trial budget (overrides `search { trials = }`; at least 1).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub trials: Option<u64>,
    /// The study seed (overrides `search { seed = }`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The strategy, e.g. `random`, `tpe(startup: 5)` (overrides `search { strategy = }`).
    #[arg(long)]
    pub strategy: Option<String>,
    /// Trials at once (overrides `search { parallel = }`).
    #[arg(long)]
    pub parallel: Option<usize>,
    /// The study's time budget, e.g. `90s`, `5m`, `1h30m` (overrides `search { time = }`).
    #[arg(long, value_parser = parse_duration)]
    pub time: Option<Duration>,
    /// One trial's time limit (checked between training batches; a trial over it fails;
    /// more than 0).
    #[arg(long = "trial-time", value_parser = parse_positive_duration)]
    pub trial_time: Option<Duration>,
    /// The output folder (default: `report { out = }`, else `runs/<experiment>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Pin a parameter: `--set depth=2` (repeatable; the value as the language writes it).
    #[arg(long = "set", value_name = "P=V")]
    pub set: Vec<String>,
    /// Where to train: cpu, wgpu[:N] or cuda[:N] (a GPU needs a build with its feature, README: GPU).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: bma::train::DeviceKind,
    /// Continue a stored study even if a data file changed since it started.
    #[arg(long = "allow-changed-data")]
    pub allow_changed_data: bool,
    /// The devices trials spread over, e.g. `0,1`: each running trial holds one. A command
    /// study's trials get theirs in CUDA_VISIBLE_DEVICES and BMA_DEVICE (overrides `trial {
    /// devices = }`); a trained model's, an index of `--device`'s backend (`0,0,1`: two at once
    /// on device 0) or a device name (`wgpu:1`).
    #[arg(long, value_name = "LIST", value_parser = parse_devices)]
    pub devices: Option<Devices>,
}

/// `--device cpu | wgpu[:N] | cuda[:N]` (also `bma predict`, `bma eval`): an unknown device,
/// or one this build has no backend for, is refused with the feature to build with.
pub fn parse_device(text: &str) -> Result<bma::train::DeviceKind, String> {
    text.parse()
}

/// `--devices 0,1`: the list, each entry non-empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Devices(pub Vec<String>);

pub fn parse_devices(text: &str) -> Result<Devices, String> {
    let list: Vec<String> = text.split(',').map(|d| d.trim().to_string()).collect();
    if list.iter().any(String::is_empty) {
        return Err(format!("`{text}` has an empty entry: write devices separated by commas, e.g. 0,1"));
    }
    Ok(Devices(list))
}

impl StudyFlags {
    /// These flags as the library's overrides (`shared`: the study lives in a shared store).
    pub fn overrides(&self, shared: bool) -> Result<Overrides, String> {
        Ok(Overrides {
            experiment: self.experiment.clone(),
            trials: self.trials,
            seed: self.seed,
            strategy: self.strategy.clone(),
            parallel: self.parallel,
            time: self.time,
            trial_time: self.trial_time,
            out: self.out.clone(),
            set: self.set.clone(),
            device: self.device,
            heartbeat: None,
            stale_after: None,
            shared,
            trial_stack: Some(super::trial_stack()),
            allow_changed_data: self.allow_changed_data,
            caller_finishes: false,
            devices: self.devices.clone().map(|d| d.0),
        })
    }
}

/// The `--store` URL: the flag, else a non-empty `BMA_STORE`.
pub fn store_url(flag: Option<&str>) -> Option<String> {
    // An empty value (`BMA_STORE=`, which clap hands in as the flag's value) is no store.
    flag.filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .or_else(|| std::env::var("BMA_STORE").ok().filter(|s| !s.trim().is_empty()))
}

/// `90`, `90s`, `5m`, `1h30m`, `2h`, `1.5m`, and the language's units: `500ms`, `30min`, `20us`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(s) = t.parse::<f64>() {
        return bma::seconds(s).ok_or_else(|| format!("bad duration `{t}`"));
    }
    let bad = || format!("bad duration `{t}` (use e.g. 90s, 5m, 30min, 1h30m, 500ms)");
    let mut total = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let letters = rest[digits..].find(|c: char| !c.is_alphabetic()).map_or(rest.len(), |i| digits + i);
        let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = match &rest[digits..letters] {
            "" => return Err(format!("bad duration `{t}`: a number without a unit at the end")),
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        total += n * unit;
        rest = &rest[letters..];
    }
    bma::seconds(total).ok_or_else(bad)
}

/// [`parse_duration`], refusing 0: a limit no trial can meet.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        return Err(format!("`{}` is no time at all: every trial would fail; give a positive duration", text.trim()));
    }
    Ok(d)
}

/// `BMA_TRIAL_DELAY` (a duration such as `200ms`, see [`parse_duration`]): how long each
/// pure-function trial takes ([`study::SlowFunction`]). Unset (the default): no delay.
fn trial_delay() -> Result<Option<Duration>, String> {
    match std::env::var("BMA_TRIAL_DELAY") {
        Ok(v) if !v.trim().is_empty() => parse_duration(&v).map(Some).map_err(|e| format!("BMA_TRIAL_DELAY: {e}")),
        _ => Ok(None),
    }
}

/// Prints a study error and gives its exit code.
pub fn fail(e: study::Error) -> ExitCode {
    match e {
        study::Error::Input(m) => super::fail(m, INPUT),
        study::Error::Internal(m) => super::fail(m, INTERNAL),
    }
}

/// Runs a study to its end with progress shown as `progress` says, then (unless
/// `worker`: a worker leaves them to `bma run`) writes its outputs; gives the exit code.
/// The study is opened (`open`) only once the data loads: a run that cannot start
/// leaves no study behind.
pub fn execute(
    plan: &Plan<'_>,
    open: impl FnOnce() -> Result<Opened, study::Error>,
    progress: ProgressMode,
    worker: bool,
    format: super::Format,
) -> ExitCode {
    let progress = if super::output::quiet() { ProgressMode::None } else { progress };
    if super::output::verbose() {
        eprintln!(
            "experiment {}: out folder {}; seed {}; strategy {}; device {}; {} trial(s) at once",
            plan.experiment.name,
            plan.out.display(),
            plan.seed,
            plan.auto.as_ref().map_or_else(|| plan.strategy.to_string(), |a| format!("auto: {a}")),
            plan.device,
            plan.settings.parallel
        );
    }
    match try_execute(plan, open, progress, worker, format) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

fn try_execute(
    plan: &Plan<'_>,
    open: impl FnOnce() -> Result<Opened, study::Error>,
    progress: ProgressMode,
    worker: bool,
    format: super::Format,
) -> Result<ExitCode, study::Error> {
    let quiet = progress == ProgressMode::None;
    let delay = trial_delay().map_err(study::Error::Input)?;
    let evaluator = study::evaluator(plan, delay)?;
    let opened = open()?;
    let requeued = study::resume(plan, &opened)?;
    if !requeued.is_empty() && !quiet {
        eprintln!("resume: requeued {} trial(s) of a stopped worker: {:?}", requeued.len(), requeued);
    }
    for note in &plan.notes {
        match note {
            Note::Warning(w) if !quiet => eprintln!("warning: {w}"),
            Note::Note(n) if !quiet => eprintln!("note: {n}"),
            _ => {}
        }
    }
    for n in evaluator.notes() {
        if !quiet {
            eprintln!("note: {n}");
        }
    }
    let stop = install_ctrlc();
    let mode = match progress {
        ProgressMode::Auto if std::io::stderr().is_terminal() => Mode::Bar,
        ProgressMode::Auto | ProgressMode::Plain => Mode::Plain,
        ProgressMode::None => Mode::None,
    };
    let history = opened.store.history(opened.study.id).map_err(|e| study::Error::Internal(e.to_string()))?;
    let done_before = history.iter().filter(|t| t.state.is_finished()).count();
    let progress = Progress::new(mode, plan.settings.trials, done_before, &opened.study.spec);
    // report.html follows the run (not a worker's: its results are in the store).
    let (out, spec) = (plan.out.join("report.html"), opened.study.spec.clone());
    let live = (!worker).then(|| bma::report::live::Observer::new(&progress, &out, &spec.experiment, spec.objectives));
    let hooks = Hooks { observer: live.as_ref().map_or(&progress as &dyn Observer, |l| l), stop, reuse: None };
    let ran = study::run(plan, &*opened.store, opened.study, &*evaluator, hooks);
    if let Some(live) = &live {
        // The final write below replaces it; a failure there is reported there.
        let _ = live.finish();
    }
    progress.finish();
    let ran = ran?;
    let (history, ended, spec) = (&ran.history, ran.ended, &ran.study.spec);
    for n in ran.notes.iter().filter(|_| !quiet) {
        eprintln!("note: {n}");
    }

    if worker {
        let table = outputs::table(history, spec, &plan.experiment.space, plan.top);
        print!("{}", outputs::table_text(table.as_ref(), super::output::table_width()));
        let mine = history.trials.iter().filter(|t| progress.ran.lock().is_ok_and(|r| r.contains(&t.number))).count();
        println!(
            "{}; {} ({}); this worker ran {mine}; results in the store",
            outputs::counts_line(history),
            ended.state().as_str(),
            why_ended(ended, "Ctrl-C; start the worker again to continue"),
        );
        return Ok(exit_code(ended));
    }

    // A shared study's models were trained elsewhere: bring what best/ and final/ need.
    if plan.settings.shared && plan.experiment.model.is_some() && ended != Ended::Interrupted {
        let fetched = study::artifacts::for_final(&*opened.store, ran.study.id, plan.experiment, history, &plan.out)?;
        if let Some(n) = fetched.note().filter(|_| !quiet) {
            eprintln!("note: {n}");
        }
    }
    // The best trial's model, then the results files, from the store's history.
    let written = outputs::write(plan, spec, history, ended, ran.extra())?;
    // (An interrupted run recorded its end itself: another worker may still run the study.)
    if plan.settings.caller_finishes && ended != Ended::Interrupted {
        study::finish(&*opened.store, &ran)?;
    }
    if format == super::Format::Json {
        let why = why_ended(ended, "Ctrl-C; --resume continues");
        super::json::print(&super::json::run_summary(plan, spec, history, ended, why, &written));
        return Ok(exit_code(ended));
    }
    print!("{}", written.terminal(super::output::table_width()));
    for n in written.notes.iter().filter(|_| !quiet) {
        eprintln!("note: {n}");
    }
    println!(
        "{}; {} ({}); results in {}",
        outputs::counts_line(history),
        ended.state().as_str(),
        why_ended(ended, "Ctrl-C; --resume continues"),
        plan.out.display()
    );
    Ok(exit_code(ended))
}

fn why_ended(ended: Ended, interrupted: &'static str) -> &'static str {
    match ended {
        Ended::Budget => "trial budget spent",
        Ended::Time => "time budget spent",
        Ended::Exhausted => "the strategy has nothing more to propose",
        Ended::Interrupted => interrupted,
    }
}

fn exit_code(ended: Ended) -> ExitCode {
    ExitCode::from(if ended == Ended::Interrupted { INTERRUPTED } else { OK })
}

/// Ctrl-C, SIGTERM or SIGHUP (ctrlc's `termination` feature) once: stop at the next epoch,
/// record, write the results (exit 130). A second signal: exit at once.
fn install_ctrlc() -> &'static AtomicBool {
    static STOP: AtomicBool = AtomicBool::new(false);
    static PRESSES: AtomicUsize = AtomicUsize::new(0);
    let _ = ctrlc::set_handler(|| {
        if PRESSES.fetch_add(1, Ordering::SeqCst) >= 1 {
            std::process::exit(i32::from(INTERRUPTED));
        }
        STOP.store(true, Ordering::SeqCst);
    });
    &STOP
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bar,
    Plain,
    None,
}

struct ProgressState {
    done: usize,
    pruned: usize,
    failed: usize,
    running: BTreeMap<u64, u32>,
    best: Option<(u64, Vec<f64>)>,
}

/// Live progress: an indicatif bar on a terminal, plain lines otherwise.
struct Progress {
    mode: Mode,
    bar: Option<indicatif::ProgressBar>,
    state: Mutex<ProgressState>,
    total: Option<u64>,
    names: Vec<String>,
    started: Instant,
    /// The numbers of the trials this process ran.
    ran: Mutex<std::collections::BTreeSet<u64>>,
}

impl Progress {
    fn new(mode: Mode, total: Option<u64>, done: usize, spec: &store::StudySpec) -> Progress {
        let bar = (mode == Mode::Bar).then(|| {
            let bar = match total {
                Some(t) => indicatif::ProgressBar::new(t),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let style = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} trials  eta {eta}  {wide_msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(done as u64);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            mode,
            bar,
            state: Mutex::new(ProgressState { done, pruned: 0, failed: 0, running: BTreeMap::new(), best: None }),
            total,
            names: spec.objectives.iter().map(|(n, _)| shorten(n, OBJECTIVE_WIDTH)).collect(),
            started: Instant::now(),
            ran: Mutex::new(std::collections::BTreeSet::new()),
        }
    }

    fn values(&self, values: &[f64]) -> String {
        self.names.iter().zip(values).map(|(n, v)| format!("{n} {}", fmt_num(*v))).collect::<Vec<_>>().join(", ")
    }

    fn message(&self, s: &ProgressState) -> String {
        let best = s.best.as_ref().map(|(n, v)| format!("best #{n}: {}", self.values(v))).unwrap_or_default();
        let running: Vec<String> =
            s.running.iter().map(|(n, e)| if *e > 0 { format!("#{n} ep {e}") } else { format!("#{n}") }).collect();
        format!("{best} | running {} | pruned {} failed {}", running.join(" "), s.pruned, s.failed)
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn event(&self, event: Event<'_>) {
        if let Event::Finished { trial, .. } = &event
            && let Ok(mut ran) = self.ran.lock()
        {
            ran.insert(trial.number);
        }
        if self.mode == Mode::None {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::Started { number, .. } => {
                s.running.insert(number, 0);
            }
            Event::Step { number, step, .. } => {
                s.running.insert(number, step);
            }
            Event::Note { text, .. } => match &self.bar {
                Some(b) => b.println(format!("note: {text}")),
                None => eprintln!("note: {text}"),
            },
            Event::Finished { trial, history } => {
                s.running.remove(&trial.number);
                s.done += 1;
                match trial.state {
                    TrialState::Pruned => s.pruned += 1,
                    // The bar counts points refused before training with the failures, as before.
                    TrialState::Failed | TrialState::Infeasible => s.failed += 1,
                    _ => {}
                }
                s.best = history.ranked().first().map(|t| (t.number, t.values.clone()));
                if self.mode == Mode::Plain {
                    let what = match (&trial.state, &trial.error) {
                        (TrialState::Failed, Some(e)) => format!("failed: {e}"),
                        (TrialState::Infeasible, Some(e)) => e.clone(),
                        (state, _) => format!("{} {}", state.as_str(), self.values(&trial.values)),
                    };
                    let total = self.total.map(|t| t.to_string()).unwrap_or_else(|| "?".into());
                    let best =
                        s.best.as_ref().map(|(n, v)| format!("best #{n} {}", self.values(v))).unwrap_or_default();
                    eprintln!(
                        "[{:>7.1}s] trial {} {} ({:.2}s) [{}/{}, {}]",
                        self.started.elapsed().as_secs_f64(),
                        trial.number,
                        what,
                        trial.duration,
                        s.done,
                        total,
                        best
                    );
                }
                if let Some(b) = &self.bar {
                    b.set_position(s.done as u64);
                }
            }
        }
        if let Some(b) = &self.bar {
            b.set_message(self.message(&s));
        }
    }
}

/// The widest an objective's name is shown in a progress line: an objective written as a
/// long expression (`minimize a^2 + b^2 + ...`) is shortened there, not repeated in full
/// on every line (the ranked table and results files keep it whole).
const OBJECTIVE_WIDTH: usize = 24;

/// `text` cut to `width` characters, the cut marked with `…`.
pub fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{}…", kept.trim_end())
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn shorten_keeps_short_names_and_marks_a_cut() {
        assert_eq!(shorten("loss", 24), "loss");
        assert_eq!(shorten("a ^ 2 + b ^ 2 + c ^ 2 + d ^ 2", 12), "a ^ 2 + b ^…");
        assert_eq!(shorten("a ^ 2 + b ^ 2 + c ^ 2 + d ^ 2", 12).chars().count(), 12);
        assert_eq!(shorten("ééééé", 3), "éé…");
    }
}
