//! A text table laid out for a width: the ranked table that `bma run`, `bma worker` and
//! `bma report` print.
//!
//! Takes columns (a header and cells, each with how it may give way) and a width (the
//! terminal's, or none for a pipe or a file); gives the table as text, right-aligned,
//! columns two spaces apart, a dashed rule under the header.
//!
//! **Invariants:** with no width, or when the table fits, nothing is cut or dropped. Too
//! wide, the long cells of the columns that may be cut are cut first, all to one cap, a
//! cut marked with `…` and never below [`MIN_CUT`] characters; a number is never cut
//! (a cut number reads as another number). Still too wide, optional columns are dropped
//! from the right, and a last line names them. A table that cannot fit even then is
//! printed at its narrowest, wider than asked, rather than losing a number.

/// The narrowest a cut column becomes (its header and any text cell).
pub const MIN_CUT: usize = 8;

/// Columns apart.
const GAP: usize = 2;

/// How a column gives way when the table is too wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Never cut nor dropped (rank, trial number).
    Keep,
    /// Its long text may be cut (an objective written as an expression).
    Cut,
    /// May be cut, then dropped from the right (a parameter).
    Optional,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub header: String,
    pub cells: Vec<String>,
    pub fit: Fit,
}

/// A table with its columns in order; every column has as many cells as there are rows.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<Column>,
}

impl Table {
    /// The table as text, at most `width` characters a line where it can be (see the
    /// module's invariants); `None` lays it out whole.
    pub fn render(&self, width: Option<usize>) -> String {
        let limit = width.unwrap_or(usize::MAX);
        let mut shown: Vec<&Column> = self.columns.iter().collect();
        let mut dropped: Vec<&str> = Vec::new();
        let widths = loop {
            let natural: Vec<usize> = shown.iter().map(|c| natural(c)).collect();
            if total(&natural) <= limit {
                break natural;
            }
            let floors: Vec<usize> = shown.iter().map(|c| floor(c)).collect();
            if total(&floors) <= limit {
                break fill(&natural, &floors, limit);
            }
            match shown.iter().rposition(|c| c.fit == Fit::Optional) {
                Some(i) => dropped.insert(0, &shown.remove(i).header),
                None => break floors,
            }
        };
        let rows = shown.first().map_or(0, |c| c.cells.len());
        let mut out = String::new();
        let line = |cell: &dyn Fn(&Column) -> &str| -> String {
            let cells: Vec<String> =
                shown.iter().zip(&widths).map(|(c, w)| format!("{:>w$}", cut(cell(c), *w), w = *w)).collect();
            cells.join(&" ".repeat(GAP)).trim_end().to_string()
        };
        out.push_str(&line(&|c| &c.header));
        out.push('\n');
        out.push_str(&"-".repeat(total(&widths)));
        out.push('\n');
        for r in 0..rows {
            out.push_str(&line(&|c| c.cells.get(r).map_or("", String::as_str)));
            out.push('\n');
        }
        if !dropped.is_empty() {
            out.push_str(&format!("(not shown: {}; see results.csv)\n", dropped.join(", ")));
        }
        out
    }
}

/// `text` in at most `width` characters: whole, or cut with `…` at the end.
pub fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{}…", kept.trim_end())
}

fn natural(c: &Column) -> usize {
    std::iter::once(&c.header).chain(&c.cells).map(|s| s.chars().count()).max().unwrap_or(0)
}

/// The narrowest `c` may be: whole when kept, else [`MIN_CUT`] or its widest number.
fn floor(c: &Column) -> usize {
    if c.fit == Fit::Keep {
        return natural(c);
    }
    let numbers = c.cells.iter().filter(|s| is_number(s)).map(|s| s.chars().count()).max().unwrap_or(0);
    natural(c).min(MIN_CUT).max(numbers)
}

fn is_number(s: &str) -> bool {
    s.trim().parse::<f64>().is_ok()
}

fn total(widths: &[usize]) -> usize {
    widths.iter().sum::<usize>() + GAP * widths.len().saturating_sub(1)
}

/// Each column at `min(natural, cap)` but not below its floor, with the largest cap
/// that fits `limit` (the caller made sure the floors fit).
fn fill(natural: &[usize], floors: &[usize], limit: usize) -> Vec<usize> {
    let at = |cap: usize| -> Vec<usize> { natural.iter().zip(floors).map(|(n, f)| (*n).min(cap).max(*f)).collect() };
    let (mut lo, mut hi) = (0, natural.iter().copied().max().unwrap_or(0));
    // `total(at(cap))` grows with `cap`: the largest cap that fits, by bisection.
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if total(&at(mid)) <= limit { lo = mid } else { hi = mid - 1 }
    }
    at(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(header: &str, cells: &[&str], fit: Fit) -> Column {
        Column { header: header.into(), cells: cells.iter().map(|s| s.to_string()).collect(), fit }
    }

    /// rank, trial, two parameters (one a long choice), a long objective expression.
    fn sample() -> Table {
        Table {
            columns: vec![
                column("rank", &["1", "2"], Fit::Keep),
                column("trial", &["17", "3"], Fit::Keep),
                column("lr", &["1.0000e-03", "0.0300"], Fit::Optional),
                column("block", &["residual_bottleneck", "plain"], Fit::Optional),
                column("x ^ 2 + (y - 1) ^ 2 + (z + 2) ^ 2 ↓", &["0.0123", "1.5000"], Fit::Cut),
            ],
        }
    }

    /// The widest line of the table itself (not the note under it).
    fn widest(text: &str) -> usize {
        text.lines().filter(|l| !l.starts_with('(')).map(|l| l.chars().count()).max().unwrap_or(0)
    }

    #[test]
    fn without_a_width_or_with_room_nothing_is_cut() {
        let whole = sample().render(None);
        assert!(whole.contains("residual_bottleneck") && whole.contains("x ^ 2 + (y - 1) ^ 2 + (z + 2) ^ 2 ↓"));
        assert_eq!(widest(&whole), 4 + 2 + 5 + 2 + 10 + 2 + 19 + 2 + 35);
        assert_eq!(sample().render(Some(200)), whole);
        assert_eq!(sample().render(Some(widest(&whole))), whole);
    }

    #[test]
    fn a_narrower_terminal_cuts_long_text_to_one_cap_and_keeps_numbers() {
        for width in [80, 60, 50] {
            let text = sample().render(Some(width));
            assert!(widest(&text) <= width, "{width}: {text}");
            assert!(text.contains('…'), "{width}: {text}");
            for number in ["1.0000e-03", "0.0300", "0.0123", "1.5000", "17"] {
                assert!(text.contains(number), "{width}: {number} lost in {text}");
            }
            assert!(!text.contains("not shown"), "{width}: {text}");
        }
        // At 60: 4+5+10 kept whole, 2*4 gaps: 33 left for the two cut columns, a cap of 16.
        let text = sample().render(Some(60));
        assert!(text.contains("residual_bottle…"), "{text}");
        assert!(text.contains("x ^ 2 + (y - 1)…"), "{text}");
    }

    #[test]
    fn still_too_wide_drops_parameters_from_the_right_and_says_which() {
        // Floors: 4, 5, 10, 8, 8 with 4 gaps = 43; without `block` 33; without both 21.
        let text = sample().render(Some(40));
        assert!(widest(&text) <= 40, "{text}");
        assert!(!text.contains("residual") && !text.contains("block  "), "{text}");
        assert!(text.contains("1.0000e-03"), "{text}");
        assert!(text.ends_with("(not shown: block; see results.csv)\n"), "{text}");
        let text = sample().render(Some(30));
        assert!(text.contains("(not shown: lr, block;"), "{text}");
        assert!(text.contains("0.0123") && text.contains("1.5000"), "{text}");
    }

    #[test]
    fn a_table_that_cannot_fit_keeps_every_kept_column_and_number() {
        let text = sample().render(Some(10));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "rank  trial  x ^ 2 +…");
        assert_eq!(lines[2], "   1     17    0.0123");
        assert_eq!(lines[3], "   2      3    1.5000");
    }

    #[test]
    fn cut_marks_the_cut_and_counts_characters() {
        assert_eq!(cut("loss", 8), "loss");
        assert_eq!(cut("ééééé", 3), "éé…");
        assert_eq!(cut("ab cdef", 4), "ab…");
    }
}
