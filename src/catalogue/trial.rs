//! The `trial { }` section of a command experiment: its settings and the built-in
//! `{placeholders}` of its command strings, each with the line hover and completion show.
//!
//! Takes nothing; gives [`TRIAL_SETTINGS`] (read by `check::command` for the names it
//! accepts) and [`PLACEHOLDERS`] (the built-ins besides the parameters; `ir::command`
//! fills them and its test holds its list equal to this one). The protocol they describe
//! is `docs/command-trials.md`.

/// A name and its one-line doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doc {
    pub name: &'static str,
    pub doc: &'static str,
}

/// The settings of `trial { }`; `env` is the one record (`env = { NAME: "value" }`).
pub const TRIAL_SETTINGS: &[Doc] = &[
    Doc {
        name: "command",
        doc: "the program and its arguments, run without a shell: `[\"python\", \"train.py\", \"--lr\", \"{lr}\"]`",
    },
    Doc { name: "cwd", doc: "the folder the program runs in, relative to the spec's folder (default: that folder)" },
    Doc { name: "env", doc: "further environment variables, `{ NAME: \"value\" }`; values may hold placeholders" },
    Doc { name: "timeout", doc: "a trial's time limit: past it the program's process group is ended and it fails" },
    Doc { name: "grace", doc: "how long the program has between SIGTERM and SIGKILL (default 5s)" },
    Doc { name: "reports", doc: "the metrics the program prints as JSON lines: `[loss, accuracy]`" },
    Doc {
        name: "devices",
        doc: "`[\"0\", \"1\"]`: each running trial holds the least busy, given as CUDA_VISIBLE_DEVICES and BMA_DEVICE",
    },
];

/// The placeholders a command string may use besides the parameters of `space`.
pub const PLACEHOLDERS: &[Doc] = &[
    Doc { name: "trial", doc: "the trial's number" },
    Doc { name: "seed", doc: "the trial's seed (a u64)" },
    Doc { name: "dir", doc: "the trial's folder, `<out>/trials/<n>/`, created before the program starts and kept" },
    Doc { name: "device", doc: "the trial's device: its entry of `devices`, else `--device`" },
];

/// The doc of the `trial` setting `name`.
pub fn trial_setting(name: &str) -> Option<&'static Doc> {
    TRIAL_SETTINGS.iter().find(|d| d.name == name)
}

/// The doc of the built-in placeholder `name`.
pub fn placeholder(name: &str) -> Option<&'static Doc> {
    PLACEHOLDERS.iter().find(|d| d.name == name)
}
