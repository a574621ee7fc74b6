//! `strategy = darts(...)`: the setting read from the language, and the strategy that runs
//! after the architecture phase.
//!
//! Takes a `darts(epochs:, arch_lr:, arch_weight_decay:, stop_entropy:, patience:, then:)`
//! value; gives its [`Setting`] (the architecture phase's [`crate::train::darts::Config`]
//! and the sampled strategy `then:` names, if any) and [`ReadOff`], the strategy the trial
//! loop runs once DARTS has chosen: its first trial is the read-off sub-model (the point
//! DARTS trained at, each decision at its chosen value), then it asks `then:`'s strategy,
//! whose pins hold the chosen values, or says [`Ask::Done`] when there is none. The phase
//! itself (training the supernet) is `study::darts`'s, which has the data.
//!
//! **Invariant:** the read-off point is proposed at most once per run, and never when the
//! study already holds it (a resumed study).

use super::{Ask, AskContext, SearchError, Strategy};
use crate::ir::{Point, Value};
use crate::rng::Rng;
use crate::train::darts::Config;

/// Defaults: a few epochs on small data; DARTS' own `arch_weight_decay`.
pub const DEFAULT_EPOCHS: usize = 10;
pub const DEFAULT_ARCH_LR: f64 = 3e-3;
pub const DEFAULT_ARCH_WEIGHT_DECAY: f64 = 1e-3;
pub const DEFAULT_PATIENCE: usize = 3;

/// A `darts(...)` setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub config: Config,
    /// The sampled strategy that searches the other parameters afterwards (`then: tpe`).
    pub then: Option<Value>,
}

/// The setting of `value` when it is a `darts` strategy (`Ok(None)` for any other).
pub fn setting(value: &Value) -> Result<Option<Setting>, SearchError> {
    if value.head() != Some("darts") {
        return Ok(None);
    }
    let call = match value {
        Value::Call(c) => Some(c),
        _ => None,
    };
    let arg = |key: &str| call.and_then(|c| c.arg(key, usize::MAX));
    let bad =
        |key: &str, want: &str, v: &Value| SearchError::Setting(format!("`darts({key}: ...)` needs {want}, found {v}"));
    let int = |key: &str, default: usize| match arg(key) {
        None => Ok(default),
        Some(v) => match v.as_i64() {
            Some(i) if i >= 1 => Ok(i as usize),
            _ => Err(bad(key, "a positive int", v)),
        },
    };
    let number = |key: &str| match arg(key) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
            _ => Err(bad(key, "a finite number >= 0", v)),
        },
    };
    if let Some(c) = call
        && let Some((None, v)) = c.args.first()
    {
        return Err(SearchError::Setting(format!("`darts` takes named arguments (`epochs: 10`), found {v}")));
    }
    let arch_lr = number("arch_lr")?.unwrap_or(DEFAULT_ARCH_LR);
    if arch_lr <= 0.0 {
        return Err(SearchError::Setting("`darts(arch_lr: ...)` must be above 0".into()));
    }
    let stop_entropy = number("stop_entropy")?;
    if let Some(s) = stop_entropy
        && !(s > 0.0 && s < 1.0)
    {
        return Err(SearchError::Setting(format!(
            "`darts(stop_entropy: {s})` is the normalised entropy below which the phase stops: between 0 and 1 (exclusive)"
        )));
    }
    let then = arg("then").cloned();
    if let Some(t) = &then
        && t.head() == Some("darts")
    {
        return Err(SearchError::Setting("`darts(then: ...)` names a sampled strategy, not `darts` again".into()));
    }
    Ok(Some(Setting {
        config: Config {
            epochs: int("epochs", DEFAULT_EPOCHS)?,
            arch_lr,
            arch_weight_decay: number("arch_weight_decay")?.unwrap_or(DEFAULT_ARCH_WEIGHT_DECAY),
            stop_entropy,
            patience: int("patience", DEFAULT_PATIENCE)?,
        },
        then,
    }))
}

/// The strategy after the architecture phase: the read-off point, then `then`.
pub struct ReadOff {
    point: Point,
    proposed: bool,
    then: Option<Box<dyn Strategy>>,
}

impl ReadOff {
    /// `proposed`: the study already holds the read-off trial (a resumed study).
    pub fn new(point: Point, proposed: bool, then: Option<Box<dyn Strategy>>) -> ReadOff {
        ReadOff { point, proposed, then }
    }
}

impl Strategy for ReadOff {
    fn ask(&mut self, ctx: &AskContext<'_>, rng: &mut Rng) -> Result<Ask, SearchError> {
        if !self.proposed {
            self.proposed = true;
            return Ok(Ask::Point(self.point.clone()));
        }
        match &mut self.then {
            Some(s) => s.ask(ctx, rng),
            None => Ok(Ask::Done),
        }
    }
}

/// Nothing to propose: what `darts` without `then:` builds where no phase has run (the
/// plan's check that the setting builds).
pub struct Done;

impl Strategy for Done {
    fn ask(&mut self, _ctx: &AskContext<'_>, _rng: &mut Rng) -> Result<Ask, SearchError> {
        Ok(Ask::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::CallValue;

    fn call(args: Vec<(&str, Value)>) -> Value {
        Value::Call(CallValue {
            name: "darts".into(),
            args: args.into_iter().map(|(k, v)| (Some(k.to_string()), v)).collect(),
        })
    }

    #[test]
    fn a_darts_setting_reads_its_arguments_and_refuses_bad_ones() {
        let s = setting(&call(vec![
            ("epochs", Value::Int(4)),
            ("arch_lr", Value::Float(0.01)),
            ("stop_entropy", Value::Float(0.3)),
            ("then", Value::sym("tpe")),
        ]))
        .expect("reads")
        .expect("darts");
        assert_eq!(s.config.epochs, 4);
        assert_eq!(s.config.arch_lr, 0.01);
        assert_eq!(s.config.stop_entropy, Some(0.3));
        assert_eq!(s.config.patience, DEFAULT_PATIENCE);
        assert_eq!(s.then, Some(Value::sym("tpe")));
        assert_eq!(setting(&Value::sym("tpe")).expect("reads"), None);
        let plain = setting(&Value::sym("darts")).expect("reads").expect("darts");
        assert_eq!((plain.config.epochs, plain.then), (DEFAULT_EPOCHS, None));
        for bad in [
            call(vec![("epochs", Value::Int(0))]),
            call(vec![("stop_entropy", Value::Float(1.5))]),
            call(vec![("arch_lr", Value::Float(0.0))]),
            call(vec![("then", Value::sym("darts"))]),
        ] {
            assert!(setting(&bad).is_err(), "{bad}");
        }
    }
}
