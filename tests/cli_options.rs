//! The command line's own surface, on the real binary: `bma completions SHELL` and `bma
//! man`, the global `-q/--quiet`, `-v/--verbose` and `--color`, flags with a fixed set of
//! values (a bad one lists the choices), and the environment variables in `--help`.

mod common;

use std::process::Output;

use common::{bma, temp_dir, write};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = bma();
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR")).env_remove("NO_COLOR").env_remove("BMA_STORE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the bma binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

const SHELLS: [&str; 5] = ["bash", "zsh", "fish", "elvish", "powershell"];

#[test]
fn completions_name_every_subcommand_in_every_shell() {
    for shell in SHELLS {
        let out = run(&["completions", shell], &[]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        // fish spells a long flag `-l trials`; the others `--trials`.
        let long = |f: &str| if shell == "fish" { format!("-l {f}") } else { format!("--{f}") };
        let flags = [long("trials"), long("color"), long("format")];
        for word in ["check", "run", "watch", "worker", "completions", "man"]
            .iter()
            .copied()
            .chain(flags.iter().map(String::as_str))
        {
            assert!(script.contains(word), "the {shell} script lacks `{word}`");
        }
    }
}

#[test]
fn bash_completion_script_parses_and_completes_subcommands() {
    let dir = temp_dir();
    let out = run(&["completions", "bash"], &[]);
    let script = write(dir.path(), "bma.bash", &text(&out.stdout));
    // Source the script, then ask its function for the words after `bma ru`.
    let probe = format!(
        "source {}; COMP_WORDS=(bma ru); COMP_CWORD=1; COMP_LINE='bma ru'; COMP_POINT=6; _bma bma ru bma; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = std::process::Command::new("bash").arg("-c").arg(&probe).output().expect("bash runs");
    assert!(out.status.success(), "bash: {}", text(&out.stderr));
    let words: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(words, vec!["run".to_string()], "completions of `bma ru`");
}

#[test]
fn a_bad_shell_lists_the_shells() {
    let out = run(&["completions", "tcsh"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("possible values: bash, elvish, fish, powershell, zsh"), "{err}");
}

#[test]
fn man_page_is_roff_with_every_subcommand() {
    let out = run(&["man"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH bma 1"), "{}", &page[..200.min(page.len())]);
    assert!(page.contains(".TH bma 1"), "no title header");
    assert!(page.contains(".SH SUBCOMMANDS"), "no subcommands section");
    for sub in ["bma\\-check", "bma\\-run", "bma\\-watch", "bma\\-completions"] {
        assert!(page.contains(sub), "the man page lacks {sub}");
    }
    assert!(page.contains("\\-\\-quiet") && page.contains("\\-\\-color"), "the global flags are missing");
}

#[test]
fn fixed_sets_list_their_choices() {
    let cases: [(&[&str], &str); 5] = [
        (&["run", "examples/digits.bma", "--device", "tpu"], "unknown device `tpu`: one of cpu, wgpu[:N], cuda[:N]"),
        (&["worker", "--study", "s", "--device", "tpu"], "unknown device `tpu`: one of cpu, wgpu[:N], cuda[:N]"),
        (&["eval", "runs/x", "--split", "holdout"], "possible values: train, valid, test"),
        (&["--color", "sometimes", "check", "examples/digits.bma"], "possible values: auto, always, never"),
        (&["run", "examples/digits.bma", "--progress", "loud"], "possible values: auto, plain, none"),
    ];
    for (args, choices) in cases {
        let out = run(args, &[]);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(choices), "{args:?}: {err}");
    }
}

#[test]
fn help_shows_the_environment_variables() {
    let top = text(&run(&["--help"], &[]).stdout);
    for var in ["BMA_STORE", "BMA_STORE_RETRY", "NO_COLOR", "COLUMNS"] {
        assert!(top.contains(var), "bma --help lacks {var}:\n{top}");
    }
    for sub in ["run", "worker"] {
        let help = text(&run(&[sub, "--help"], &[]).stdout);
        assert!(help.contains("[env: BMA_STORE"), "bma {sub} --help:\n{help}");
    }
}

const BROKEN: &str = "tests/fixtures/check/err/unknown_layer.bma";
const ESC: &str = "\u{1b}[";

#[test]
fn color_always_never_and_no_color() {
    // stderr is a pipe here: `auto` gives no colour, `always` does even with NO_COLOR.
    let auto = run(&["check", BROKEN], &[]);
    assert_eq!(auto.status.code(), Some(1));
    assert!(!text(&auto.stderr).contains(ESC), "auto into a pipe coloured");
    let always = run(&["--color", "always", "check", BROKEN], &[("NO_COLOR", "1")]);
    assert_eq!(always.status.code(), Some(1));
    assert!(text(&always.stderr).contains(ESC), "--color always did not colour");
    // The flag is global: after the subcommand too.
    let never = run(&["check", BROKEN, "--color=never"], &[]);
    assert!(!text(&never.stderr).contains(ESC));
    assert_eq!(text(&never.stderr), text(&auto.stderr), "never and auto-into-a-pipe differ");
}

#[test]
fn quiet_and_verbose_check() {
    let plain = run(&["check", "examples/digits.bma"], &[]);
    assert_eq!(plain.status.code(), Some(0));
    assert_eq!(text(&plain.stderr), "examples/digits.bma: ok\n");
    let quiet = run(&["-q", "check", "examples/digits.bma"], &[]);
    assert_eq!(quiet.status.code(), Some(0));
    assert_eq!(text(&quiet.stderr), "", "-q printed");
    let verbose = run(&["check", "--verbose", "examples/digits.bma"], &[]);
    assert_eq!(text(&verbose.stderr), "checking examples/digits.bma\nexamples/digits.bma: ok\n");
    // Errors are never quiet.
    let broken = run(&["--quiet", "check", BROKEN], &[]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(text(&broken.stderr).contains("unknown_layer"), "-q hid an error");
    let both = run(&["-q", "-v", "check", "examples/digits.bma"], &[]);
    assert_eq!(both.status.code(), Some(1), "-q and -v together are refused");
}

const SPHERE: &str = "experiment sphere {
  space { x: float in -1.0..=1.0 }
  objective { minimize x * x }
  search { strategy = random trials = 4 seed = 3 }
}
";

#[test]
fn quiet_run_prints_only_results_and_verbose_says_where() {
    let dir = temp_dir();
    let file = write(dir.path(), "sphere.bma", SPHERE);
    let out = dir.path().join("out");
    let (f, o) = (file.to_str().expect("utf-8"), out.to_str().expect("utf-8"));
    let quiet = run(&["run", f, "--out", o, "--progress", "plain", "-q"], &[]);
    assert_eq!(quiet.status.code(), Some(0), "{}", text(&quiet.stderr));
    assert_eq!(text(&quiet.stderr), "", "-q run printed progress or notes");
    assert!(text(&quiet.stdout).contains("4 trials"), "{}", text(&quiet.stdout));
    let out2 = dir.path().join("out2");
    let verbose = run(&["run", f, "--out", out2.to_str().expect("utf-8"), "--progress", "plain", "-v"], &[]);
    assert_eq!(verbose.status.code(), Some(0), "{}", text(&verbose.stderr));
    let err = text(&verbose.stderr);
    let first = err.lines().next().unwrap_or_default();
    assert!(first.starts_with("experiment sphere: out folder ") && first.contains("seed 3"), "{err}");
    assert!(err.contains("trial 0 complete"), "progress lines are kept under -v: {err}");
}

#[test]
fn an_empty_bma_store_is_no_store() {
    let dir = temp_dir();
    let file = write(dir.path(), "sphere.bma", SPHERE);
    let out = dir.path().join("out");
    let r =
        run(&["run", file.to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8"), "-q"], &[("BMA_STORE", "")]);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
    assert!(out.join("study.db").is_file(), "the run did not use its folder's study.db");
}

const NAMED: &str = "experiment named {
  space {
    a: float in -1.0..=1.0
    b: float in -1.0..=1.0
  }

  objective {
    minimize loss = a ^ 2 + b ^ 2 + a * b + 0.5 * a ^ 4 + 0.25 * b ^ 4
  }

  search {
    strategy = random
    trials   = 3
    seed     = 2
  }
}
";

#[test]
fn a_named_objective_is_stored_and_shown_by_its_name_and_kept_by_fmt() {
    let dir = temp_dir();
    let file = write(dir.path(), "named.bma", NAMED);
    let out = dir.path().join("out");
    let r =
        run(&["run", file.to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8"), "--progress", "plain"], &[]);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
    let results = common::results(&out);
    assert_eq!(results["objectives"][0]["name"], "loss");
    let progress = text(&r.stderr);
    assert!(progress.contains("complete loss "), "{progress}");
    assert!(!progress.contains("a ^ 2"), "the expression is repeated in the progress lines: {progress}");
    assert!(text(&r.stdout).contains("loss ↓"), "{}", text(&r.stdout));
    // The canonical layout keeps the name: the file is already formatted.
    let fmt = run(&["fmt", "--check", file.to_str().expect("utf-8")], &[]);
    assert_eq!(fmt.status.code(), Some(0), "{}{}", text(&fmt.stdout), text(&fmt.stderr));
}

#[test]
fn an_unnamed_long_objective_is_shortened_in_progress_lines_only() {
    let dir = temp_dir();
    let file = write(dir.path(), "long.bma", &NAMED.replace("loss = ", ""));
    let out = dir.path().join("out");
    let r =
        run(&["run", file.to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8"), "--progress", "plain"], &[]);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
    let full = "a ^ 2 + b ^ 2 + a * b + 0.5 * a ^ 4 + 0.25 * b ^ 4";
    assert_eq!(common::results(&out)["objectives"][0]["name"], full);
    let progress = text(&r.stderr);
    let trial_lines: Vec<&str> = progress.lines().filter(|l| l.contains("] trial ")).collect();
    assert_eq!(trial_lines.len(), 3, "{progress}");
    for l in trial_lines {
        assert!(l.contains("complete a ^ 2 + b ^ 2 + a * b +…"), "{l}");
        assert!(!l.contains(full), "{l}");
    }
}

#[test]
fn the_ranked_table_fits_columns_and_is_whole_in_a_pipe() {
    let dir = temp_dir();
    let file = write(dir.path(), "long.bma", &NAMED.replace("loss = ", ""));
    let full = "a ^ 2 + b ^ 2 + a * b + 0.5 * a ^ 4 + 0.25 * b ^ 4";
    let table = |columns: Option<&str>, out: &str| -> Vec<String> {
        let out = dir.path().join(out);
        let args = ["run", file.to_str().expect("utf-8"), "--out", out.to_str().expect("utf-8"), "--progress", "none"];
        let r = match columns {
            Some(c) => run(&args, &[("COLUMNS", c)]),
            // The test's stdout is a pipe: no terminal width, and no COLUMNS.
            None => {
                let mut cmd = bma();
                cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR")).env_remove("COLUMNS");
                cmd.output().expect("the bma binary runs")
            }
        };
        assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
        let stdout = text(&r.stdout);
        // The table: from its header to the line before the trial counts.
        let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
        let end = lines.iter().position(|l| l.contains(" trials: ")).expect("the counts line");
        lines[..end].to_vec()
    };
    let whole = table(None, "piped");
    assert!(whole[0].contains(&format!("{full} ↓")), "{whole:?}");
    assert!(whole.iter().all(|l| !l.contains('…')), "{whole:?}");
    let narrow = table(Some("40"), "narrow");
    let rows: Vec<&String> = narrow.iter().filter(|l| !l.starts_with('(')).collect();
    assert!(rows.iter().all(|l| l.chars().count() <= 40), "{narrow:?}");
    assert!(narrow[0].contains('…') && !narrow[0].contains(full), "{narrow:?}");
    // The same trials, ranked the same: the trial column of every row agrees.
    let trials = |t: &[String]| -> Vec<String> {
        t[2..]
            .iter()
            .filter(|l| !l.starts_with('('))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(trials(&whole), trials(&narrow));
}
