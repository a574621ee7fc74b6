//! Metrics computed from a model's outputs, in plain Rust (no tensors).
//!
//! Takes row-major outputs (`n x k`), targets and the loss; gives named values:
//! classification `accuracy`, macro `precision`, `recall`, `f1`, and `loss`;
//! regression `mse`, `mae`, `r2`, and `loss`. Also the NASWOT kernel score.
//!
//! **Invariant:** `loss` here equals the training loss of the same outputs (mean over
//! samples), so valid and train losses compare.

use std::collections::BTreeMap;

use super::config::Loss;

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

/// Metrics of outputs `out` (`y.len()` rows of `k`) against `y` (class index or value).
pub fn evaluate(out: &[f32], k: usize, y: &[f32], loss: Loss, head: Head, classification: bool) -> Metrics {
    let mut m = Metrics::new();
    m.insert("loss".into(), mean_loss(out, k, y, loss, head, classification));
    if classification {
        let pred: Vec<usize> = out.chunks(k.max(1)).map(|r| argmax(r, k, head)).collect();
        let truth: Vec<usize> = y.iter().map(|v| *v as usize).collect();
        m.extend(classification_metrics(&pred, &truth, k.max(2)));
    } else {
        let pred: Vec<f32> = out.chunks(k.max(1)).map(|r| r[0]).collect();
        m.extend(regression_metrics(&pred, y));
    }
    m
}

/// accuracy and macro precision, recall, f1 over `classes` (a class never predicted
/// has precision 0; a class absent from the truth is left out of the macro mean).
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
        ("f1".to_string(), fs / present),
    ])
}

/// mse, mae and r2 (1 - SS_res / SS_tot; 0 when the targets are constant).
pub fn regression_metrics(pred: &[f32], truth: &[f32]) -> Metrics {
    let n = truth.len().max(1) as f64;
    let mean = truth.iter().map(|t| f64::from(*t)).sum::<f64>() / n;
    let (mut se, mut ae, mut tot) = (0.0, 0.0, 0.0);
    for (p, t) in pred.iter().zip(truth) {
        let d = f64::from(*p) - f64::from(*t);
        se += d * d;
        ae += d.abs();
        tot += (f64::from(*t) - mean).powi(2);
    }
    let r2 = if tot > 0.0 { 1.0 - se / tot } else { 0.0 };
    Metrics::from([("mse".to_string(), se / n), ("mae".to_string(), ae / n), ("r2".to_string(), r2)])
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
