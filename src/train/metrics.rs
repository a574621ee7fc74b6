//! Metrics computed from a model's outputs, in plain Rust (no tensors).
//!
//! Takes row-major outputs (`n x k`), targets and the loss; gives named values:
//! - classification: `accuracy`, macro `precision`, `recall`, `f1`, `balanced_accuracy`
//!   (the mean recall over the classes present in the split: equal to `recall`, named as
//!   scikit-learn names it), and from the class probabilities (softmax of logits, the
//!   sigmoid of one logit, or the head's own probabilities, rows renormalised to sum 1):
//!   `auc` (ROC AUC, ties counted by average rank; several classes: the macro mean of
//!   one-vs-rest AUCs over the classes that have both positives and negatives; left out
//!   when no class does), `log_loss` (mean −ln p of the true class, p clipped to
//!   [1e-15, 1 − 1e-15] as scikit-learn did), and `top_k(k)` for k from 1 to
//!   min(classes, [`TOP_K_MAX`]) (the share of rows whose true class is among the k most
//!   probable; classes tied with the true one do not push it out);
//! - regression, in the target's own units (outputs and targets given so; the
//!   [`TargetScale`] the model trained with is applied only for `loss`): `mse`, `rmse`,
//!   `mae`, `r2`, `mape` (mean |y − ŷ| / |y| as a fraction, over the rows whose target is
//!   not 0; left out when every target is 0);
//! - `loss`, and the NASWOT kernel score.
//!
//! **Invariant:** `loss` here equals the training loss of the same outputs (mean over
//! samples), so valid and train losses compare: for regression it is measured on the
//! scaled target the network trains on, not in the target's units.

use std::collections::BTreeMap;

use super::config::Loss;
use crate::data::TargetScale;

/// Named metric values (`accuracy`, `loss`, `latency`, ...).
pub type Metrics = BTreeMap<String, f64>;

/// How the network's last layer relates to the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Raw scores.
    Logits,
    /// Ends in softmax: outputs are probabilities.
    Softmax,
    /// Ends in sigmoid: outputs are probabilities.
    Sigmoid,
}

pub use crate::limits::TOP_K_MAX;

/// Metrics of outputs `out` (`y.len()` rows of `k`) against `y` (class index or value); a
/// regression's outputs and targets in the target's own units, `target` the scaling the
/// network trained with (for `loss`).
pub fn evaluate(
    out: &[f32],
    k: usize,
    y: &[f32],
    loss: Loss,
    head: Head,
    classification: bool,
    target: TargetScale,
) -> Metrics {
    let mut m = Metrics::new();
    if classification {
        m.insert("loss".into(), mean_loss(out, k, y, loss, head, classification));
        let pred: Vec<usize> = out.chunks(k.max(1)).map(|r| argmax(r, k, head)).collect();
        let truth: Vec<usize> = y.iter().map(|v| *v as usize).collect();
        m.extend(classification_metrics(&pred, &truth, k.max(2)));
        m.extend(probability_metrics(&probabilities(out, k, head), &truth));
    } else {
        let scaled = |v: &[f32]| v.iter().map(|x| target.apply(*x)).collect::<Vec<f32>>();
        m.insert("loss".into(), mean_loss(&scaled(out), k, &scaled(y), loss, head, classification));
        let pred: Vec<f32> = out.chunks(k.max(1)).map(|r| r[0]).collect();
        m.extend(regression_metrics(&pred, y));
    }
    m
}

/// Rows of class probabilities from outputs: the sigmoid of one logit (two classes), a
/// softmax of logits, or the head's probabilities renormalised to sum 1.
pub fn probabilities(out: &[f32], k: usize, head: Head) -> Vec<Vec<f64>> {
    out.chunks(k.max(1))
        .map(|row| {
            let row: Vec<f64> = row.iter().map(|v| f64::from(*v)).collect();
            if row.len() == 1 {
                let p = if head == Head::Logits { 1.0 / (1.0 + (-row[0]).exp()) } else { row[0].clamp(0.0, 1.0) };
                return vec![1.0 - p, p];
            }
            if head == Head::Logits {
                let mx = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = row.iter().map(|v| (v - mx).exp()).collect();
                let sum: f64 = e.iter().sum();
                return e.iter().map(|v| v / sum).collect();
            }
            let sum: f64 = row.iter().map(|v| v.max(0.0)).sum();
            if sum > 0.0 {
                row.iter().map(|v| v.max(0.0) / sum).collect()
            } else {
                vec![1.0 / row.len() as f64; row.len()]
            }
        })
        .collect()
}

/// `auc`, `log_loss` and `top_k(k)` of class probabilities `probs` (one row per sample)
/// against the true classes; see the module header.
pub fn probability_metrics(probs: &[Vec<f64>], truth: &[usize]) -> Metrics {
    let mut m = Metrics::new();
    let classes = probs.first().map_or(0, Vec::len);
    if classes < 2 || probs.is_empty() {
        return m;
    }
    let n = probs.len() as f64;
    let p_true = |row: &Vec<f64>, t: usize| row.get(t).copied().unwrap_or(0.0);
    let ll = probs.iter().zip(truth).map(|(row, t)| -p_true(row, *t).clamp(1e-15, 1.0 - 1e-15).ln()).sum::<f64>();
    m.insert("log_loss".into(), ll / n);
    // The true class's rank: how many classes are strictly more probable.
    let ranks: Vec<usize> = probs
        .iter()
        .zip(truth)
        .map(|(row, t)| {
            let p = p_true(row, *t);
            row.iter().filter(|q| **q > p).count()
        })
        .collect();
    for k in 1..=classes.min(TOP_K_MAX) {
        let hits = ranks.iter().filter(|r| **r < k).count();
        m.insert(format!("top_k({k})"), hits as f64 / n);
    }
    let auc = if classes == 2 {
        binary_auc(&probs.iter().map(|r| r[1]).collect::<Vec<_>>(), &truth.iter().map(|t| *t == 1).collect::<Vec<_>>())
    } else {
        let aucs: Vec<f64> = (0..classes)
            .filter_map(|c| {
                let scores: Vec<f64> = probs.iter().map(|r| r[c]).collect();
                binary_auc(&scores, &truth.iter().map(|t| *t == c).collect::<Vec<_>>())
            })
            .collect();
        (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
    };
    if let Some(auc) = auc {
        m.insert("auc".into(), auc);
    }
    m
}

/// The area under the ROC curve of `scores` for `positive` samples: the Mann–Whitney
/// statistic, `(R₊ − P(P+1)/2) / (P·N)` with R₊ the sum of the positives' ranks, tied
/// scores sharing their average rank. `None` without positives or negatives.
pub fn binary_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let pos = positive.iter().filter(|p| **p).count();
    let neg = positive.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += rank * order[i..=j].iter().filter(|s| positive[**s]).count() as f64;
        i = j + 1;
    }
    let (p, q) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
}

/// accuracy, macro precision, recall, f1, and balanced accuracy (the macro recall) over
/// `classes` (a class never predicted has precision 0; a class absent from the truth is
/// left out of the macro mean).
pub fn classification_metrics(pred: &[usize], truth: &[usize], classes: usize) -> Metrics {
    let n = truth.len().max(1) as f64;
    let correct = pred.iter().zip(truth).filter(|(p, t)| p == t).count() as f64;
    let (mut ps, mut rs, mut fs, mut present) = (0.0, 0.0, 0.0, 0.0);
    for c in 0..classes {
        let tp = pred.iter().zip(truth).filter(|(p, t)| **p == c && **t == c).count() as f64;
        let predicted = pred.iter().filter(|p| **p == c).count() as f64;
        let actual = truth.iter().filter(|t| **t == c).count() as f64;
        if actual == 0.0 {
            continue;
        }
        present += 1.0;
        let p = if predicted > 0.0 { tp / predicted } else { 0.0 };
        let r = tp / actual;
        ps += p;
        rs += r;
        fs += if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
    }
    let present = f64::max(present, 1.0);
    Metrics::from([
        ("accuracy".to_string(), correct / n),
        ("precision".to_string(), ps / present),
        ("recall".to_string(), rs / present),
        ("balanced_accuracy".to_string(), rs / present),
        ("f1".to_string(), fs / present),
    ])
}

/// mse, rmse, mae, r2 (1 - SS_res / SS_tot; 0 when the targets are constant) and mape
/// (over the non-zero targets; left out when there are none).
pub fn regression_metrics(pred: &[f32], truth: &[f32]) -> Metrics {
    let n = truth.len().max(1) as f64;
    let mean = truth.iter().map(|t| f64::from(*t)).sum::<f64>() / n;
    let (mut se, mut ae, mut tot, mut pe, mut nonzero) = (0.0, 0.0, 0.0, 0.0, 0usize);
    for (p, t) in pred.iter().zip(truth) {
        let (p, t) = (f64::from(*p), f64::from(*t));
        let d = p - t;
        se += d * d;
        ae += d.abs();
        tot += (t - mean).powi(2);
        if t != 0.0 {
            pe += (d / t).abs();
            nonzero += 1;
        }
    }
    let r2 = if tot > 0.0 { 1.0 - se / tot } else { 0.0 };
    let mut m = Metrics::from([
        ("mse".to_string(), se / n),
        ("rmse".to_string(), (se / n).sqrt()),
        ("mae".to_string(), ae / n),
        ("r2".to_string(), r2),
    ]);
    if nonzero > 0 {
        m.insert("mape".to_string(), pe / nonzero as f64);
    }
    m
}

/// The mean loss of `out` against `y`, as the training loop defines it.
pub fn mean_loss(out: &[f32], k: usize, y: &[f32], loss: Loss, head: Head, classification: bool) -> f64 {
    let k = k.max(1);
    let mut total = 0.0;
    for (row, t) in out.chunks(k).zip(y) {
        let target = |j: usize| -> f64 {
            if classification && k > 1 { f64::from(u8::from(j == *t as usize)) } else { f64::from(*t) }
        };
        total += match loss {
            Loss::CrossEntropy => {
                let c = (*t as usize).min(k - 1);
                match head {
                    Head::Softmax => -(f64::from(row[c]).max(1e-7)).ln(),
                    _ => {
                        let mx = row.iter().fold(f32::NEG_INFINITY, |a, b| a.max(*b)) as f64;
                        let lse = mx + row.iter().map(|v| (f64::from(*v) - mx).exp()).sum::<f64>().ln();
                        lse - f64::from(row[c])
                    }
                }
            }
            Loss::Bce => {
                row.iter()
                    .enumerate()
                    .map(|(j, z)| {
                        let (z, t) = (f64::from(*z), target(j));
                        match head {
                            Head::Sigmoid | Head::Softmax => {
                                let p = z.clamp(1e-7, 1.0 - 1e-7);
                                -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
                            }
                            Head::Logits => z.max(0.0) - z * t + (-z.abs()).exp().ln_1p(),
                        }
                    })
                    .sum::<f64>()
                    / k as f64
            }
            Loss::Mse | Loss::Mae | Loss::Huber => {
                row.iter()
                    .enumerate()
                    .map(|(j, z)| {
                        let d = (f64::from(*z) - target(j)).abs();
                        match loss {
                            Loss::Mse => d * d,
                            Loss::Mae => d,
                            _ => {
                                let q = d.min(1.0);
                                0.5 * q * q + (d - q)
                            }
                        }
                    })
                    .sum::<f64>()
                    / k as f64
            }
        };
    }
    total / y.len().max(1) as f64
}

fn argmax(row: &[f32], k: usize, head: Head) -> usize {
    if k == 1 {
        // One output for two classes: a logit or probability, thresholded.
        let threshold = if head == Head::Logits { 0.0 } else { 0.5 };
        return usize::from(row[0] > threshold);
    }
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// The NASWOT score (Mellor et al., ICML 2021): `log |det K|` with
/// `K[i][j] = N_A - hamming(c_i, c_j)` over the binary ReLU codes `c` of one mini-batch.
/// `codes` holds one row of `units` 0/1 values per sample. `None` when there are no
/// ReLU units; `-inf` when K is singular (two samples share a code), as the paper's
/// `slogdet` gives: the network cannot tell those samples apart at initialisation.
pub fn naswot(codes: &[Vec<bool>]) -> Option<f64> {
    let n = codes.len();
    let units = codes.first()?.len();
    if units == 0 {
        return None;
    }
    let mut k = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            let ham = codes[i].iter().zip(&codes[j]).filter(|(a, b)| a != b).count();
            k[i * n + j] = (units - ham) as f64;
        }
    }
    Some(log_abs_det(&mut k, n).unwrap_or(f64::NEG_INFINITY))
}

/// `log |det A|` by LU with partial pivoting (`a` is destroyed); `None` if singular.
pub fn log_abs_det(a: &mut [f64], n: usize) -> Option<f64> {
    let mut sum = 0.0;
    for col in 0..n {
        let piv = (col..n).max_by(|&x, &y| a[x * n + col].abs().total_cmp(&a[y * n + col].abs()))?;
        let p = a[piv * n + col];
        if p.abs() < 1e-12 {
            return None;
        }
        if piv != col {
            for j in 0..n {
                a.swap(piv * n + j, col * n + j);
            }
        }
        sum += p.abs().ln();
        for r in col + 1..n {
            let f = a[r * n + col] / p;
            for j in col..n {
                a[r * n + j] -= f * a[col * n + j];
            }
        }
    }
    Some(sum)
}

#[cfg(test)]
mod tests;
