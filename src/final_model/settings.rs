//! The data settings of a final model's members: one [`Dataset`] per distinct saved data
//! value, so that a member is measured on the rows its own settings prepare.
//!
//! Takes the members' saved configs ([`SavedConfig`]: the `data = ...` value, its base
//! folder and the tokenizer fitted when the member trained); gives each member the index of
//! its setting's dataset, loaded once per setting with that member's own tokenizer
//! (`data::load_with`), [`Settings::aligned`], which tells whether one setting's splits
//! hold the reference's rows in the same order, and [`Settings::check_aligned`], which
//! refuses a set of settings where one does not.
//!
//! **Invariant:** the first setting indexed is the reference that every other is compared
//! with; a final model blends predictions of different settings only after
//! [`Settings::aligned`] found every setting's targets equal to the reference's, row
//! by row, on each split it blends.

use crate::data::{self, Dataset, Part, Tokenizer};
use crate::ir::Value;
use crate::train::SavedConfig;

/// The datasets of the members' data settings; see the module header.
pub(super) struct Settings<'a> {
    /// Data that is not searched: every member reads this one dataset.
    fixed: Option<&'a Dataset>,
    sets: Vec<Setting>,
}

struct Setting {
    value: Value,
    tokenizer: Option<Tokenizer>,
    data: Dataset,
}

impl<'a> Settings<'a> {
    /// One dataset for every member (the experiment's data is not searched).
    pub(super) fn fixed(data: &'a Dataset) -> Settings<'a> {
        Settings { fixed: Some(data), sets: Vec::new() }
    }

    /// One dataset per distinct saved data value, loaded as members ask for them.
    pub(super) fn by_value() -> Settings<'a> {
        Settings { fixed: None, sets: Vec::new() }
    }

    /// The index of `config`'s setting, its data loaded (with its own tokenizer) the first
    /// time the setting is asked for.
    pub(super) fn index(&mut self, config: &SavedConfig) -> Result<usize, String> {
        if self.fixed.is_some() {
            return Ok(0);
        }
        if let Some(i) = self.sets.iter().position(|s| s.value == config.data && s.tokenizer == config.tokenizer) {
            return Ok(i);
        }
        let data = data::load_with(&config.data, &config.base, config.tokenizer.as_ref())
            .map_err(|e| format!("the data `{}`: {e}", config.data))?;
        self.sets.push(Setting { value: config.data.clone(), tokenizer: config.tokenizer.clone(), data });
        Ok(self.sets.len() - 1)
    }

    /// The dataset of setting `i` (from [`Settings::index`]).
    pub(super) fn get(&self, i: usize) -> Result<&Dataset, String> {
        match self.fixed {
            Some(d) => Ok(d),
            None => self.sets.get(i).map(|s| &s.data).ok_or_else(|| format!("no data setting {i}")),
        }
    }

    /// Every setting's `parts` hold the reference's rows in the same order (their targets
    /// equal row by row); else an error naming both settings, the split and the first row
    /// that differs: blending would mix predictions of different rows.
    pub(super) fn check_aligned(&self, parts: &[Part]) -> Result<(), String> {
        for i in 1..self.sets.len() {
            self.aligned(i, parts).map_err(|(rows, settings)| {
                format!(
                    "the members' data settings do not hold the same {rows}, so their predictions cannot be \
                     blended: {settings}"
                )
            })?;
        }
        Ok(())
    }

    /// Whether setting `i`'s `parts` hold the reference's (setting 0's) rows in the same
    /// order; else which split and the first row that differs (`valid rows (row 3 has ...)`),
    /// and how the two settings differ.
    pub(super) fn aligned(&self, i: usize, parts: &[Part]) -> Result<(), (String, String)> {
        let (Some(first), Some(other)) = (self.sets.first(), self.sets.get(i)) else { return Ok(()) };
        for &part in parts {
            let (a, b) = (first.data.part(part), other.data.part(part));
            if let Some(why) = misaligned(&a.y[..a.n.min(a.y.len())], &b.y[..b.n.min(b.y.len())]) {
                return Err((format!("{} rows ({why})", part_name(part)), data_difference(&first.value, &other.value)));
            }
        }
        Ok(())
    }
}

/// Why targets `a` (the reference's) and `b` are not the same rows, if they are not.
pub(super) fn misaligned(a: &[f32], b: &[f32]) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("{} rows against {}", a.len(), b.len()));
    }
    a.iter()
        .zip(b)
        .position(|(x, y)| x.to_bits() != y.to_bits())
        .map(|i| format!("row {} has target {} in one and {} in the other", i + 1, a[i], b[i]))
}

/// How two data values differ, for the user: the arguments of `b` that differ from `a`'s
/// (`max_len: 16` against `max_len: 8`), else both values whole.
pub(crate) fn data_difference(a: &Value, b: &Value) -> String {
    if let (Value::Call(x), Value::Call(y)) = (a, b)
        && x.name == y.name
        && x.args.len() == y.args.len()
        && x.args.iter().zip(&y.args).all(|((k, _), (l, _))| k == l)
    {
        let differ: Vec<String> = x
            .args
            .iter()
            .zip(&y.args)
            .filter(|((_, v), (_, w))| v != w)
            .map(|((k, v), (_, w))| match k {
                Some(k) => format!("`{k}: {v}` against `{k}: {w}`"),
                None => format!("`{v}` against `{w}`"),
            })
            .collect();
        if !differ.is_empty() {
            return format!("{}(...) with {}", x.name, differ.join(", "));
        }
    }
    format!("`{a}` against `{b}`")
}

fn part_name(part: Part) -> &'static str {
    match part {
        Part::Train => "train",
        Part::Valid => "valid",
        Part::Test => "test",
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// `iris(split: [0.6, 0.2, 0.2], seed: s)`.
    fn iris(seed: i64) -> Value {
        Value::Call(crate::ir::CallValue {
            name: "iris".into(),
            args: vec![
                (Some("split".into()), Value::List(vec![Value::Float(0.6), Value::Float(0.2), Value::Float(0.2)])),
                (Some("seed".into()), Value::Int(seed)),
            ],
        })
    }

    fn setting(value: Value) -> Setting {
        let data = data::load(&value, Path::new(".")).expect("loads");
        Setting { value, tokenizer: None, data }
    }

    #[test]
    fn settings_of_other_rows_are_refused_naming_both_and_the_row() {
        let same = Settings { fixed: None, sets: vec![setting(iris(3)), setting(iris(3))] };
        assert_eq!(same.check_aligned(&[Part::Valid, Part::Test]), Ok(()));
        // Another split seed draws other valid and test rows: never blended.
        let other = Settings { fixed: None, sets: vec![setting(iris(3)), setting(iris(4))] };
        let err = other.check_aligned(&[Part::Valid, Part::Test]).expect_err("refused");
        assert!(err.starts_with("the members' data settings do not hold the same valid rows (row "), "{err}");
        assert!(err.ends_with("cannot be blended: iris(...) with `seed: 3` against `seed: 4`"), "{err}");
        // Forced: one test row's target changed, the valid rows left alike.
        let mut forced = Settings { fixed: None, sets: vec![setting(iris(3)), setting(iris(3))] };
        let y = &mut forced.sets[1].data.test.y;
        y[5] = (y[5] + 1.0) % 3.0;
        assert_eq!(forced.check_aligned(&[Part::Valid]), Ok(()));
        let err = forced.check_aligned(&[Part::Valid, Part::Test]).expect_err("refused");
        assert!(err.contains("the same test rows (row 6 has target "), "{err}");
        // A split of another length.
        let mut short = Settings { fixed: None, sets: vec![setting(iris(3)), setting(iris(3))] };
        short.sets[1].data.valid.n -= 1;
        let err = short.check_aligned(&[Part::Valid]).expect_err("refused");
        assert!(err.contains("valid rows (30 rows against 29)"), "{err}");
    }

    #[test]
    fn a_difference_names_the_arguments_that_differ() {
        assert_eq!(data_difference(&iris(1), &iris(2)), "iris(...) with `seed: 1` against `seed: 2`");
        let wine = Value::Call(crate::ir::CallValue { name: "wine".into(), args: vec![] });
        assert_eq!(data_difference(&iris(1), &wine), format!("`{}` against `wine()`", iris(1)));
    }
}
