//! The final model from many sub-models: prediction ensembles and weight soups.
//!
//! Takes the valid-split predictions (or the weights) of the best trials, gives
//! the mixing weights θ = Σ wᵢθᵢ. Everything here is plain numbers: `train`
//! turns modules into named flat parameter lists and back, so this module
//! never sees burn.
//!
//! **Invariant:** returned weights are non-negative and sum to 1.
//! **Invariant:** a greedy soup (and greedy ensemble selection) never scores
//! below its best single member on the split it was selected on.

use std::collections::BTreeMap;

/// Class probabilities (or regression outputs) of one model on one split: `[sample][output]`.
pub type Predictions = Vec<Vec<f64>>;

/// Named flat parameter tensors of one model.
pub type Params = BTreeMap<String, Vec<f32>>;

/// How ensemble members are weighted.
#[derive(Debug, Clone, PartialEq)]
pub enum Weighting {
    /// All members equal.
    Uniform,
    /// `wᵢ ∝ exp(scoreᵢ / temperature)`, for a score where higher is better.
    Softmax { temperature: f64 },
    /// Posterior-style weights `wᵢ ∝ exp(−n · lossᵢ)`: `n` valid samples, `lossᵢ`
    /// the member's mean valid negative log-likelihood. A member that explains
    /// the validation data better by Δ nats per sample gets e^(nΔ) more weight,
    /// as with a Bayesian model average under a flat prior.
    Bayes { n: f64 },
    /// Ensemble selection with replacement (Caruana et al., 2004) for `rounds` rounds.
    Greedy { rounds: usize },
}

/// Weights for `scores` (higher is better) under a closed-form weighting.
/// `Greedy` needs predictions: use [`ensemble_selection`].
pub fn closed_form_weights(weighting: &Weighting, scores: &[f64], losses: &[f64]) -> Vec<f64> {
    let n = scores.len().max(losses.len());
    if n == 0 {
        return Vec::new();
    }
    let logits: Vec<f64> = match weighting {
        Weighting::Uniform | Weighting::Greedy { .. } => vec![0.0; n],
        Weighting::Softmax { temperature } => scores.iter().map(|s| s / temperature.max(1e-12)).collect(),
        Weighting::Bayes { n: samples } => losses.iter().map(|l| -samples * l).collect(),
    };
    softmax(&logits)
}

/// A numerically stable softmax; non-finite logits get weight 0.
pub fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().filter(|x| x.is_finite()).fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return vec![1.0 / logits.len().max(1) as f64; logits.len()];
    }
    let exps: Vec<f64> = logits.iter().map(|x| if x.is_finite() { (x - max).exp() } else { 0.0 }).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// The weighted mean of members' predictions.
pub fn blend(members: &[&Predictions], weights: &[f64]) -> Predictions {
    let Some(first) = members.first() else { return Vec::new() };
    let mut out: Predictions = first.iter().map(|row| vec![0.0; row.len()]).collect();
    for (m, w) in members.iter().zip(weights) {
        for (o, row) in out.iter_mut().zip(m.iter()) {
            for (a, b) in o.iter_mut().zip(row) {
                *a += w * b;
            }
        }
    }
    out
}

/// Ensemble selection with replacement (Caruana, Niculescu-Mizil, Crew & Ksikes,
/// ICML 2004): start from the best single member, then for `rounds` rounds add
/// (again, possibly) the member whose addition scores best, keeping the best
/// prefix seen. `score` rates blended predictions, higher is better. Returns
/// the weights (counts normalised).
pub fn ensemble_selection(members: &[Predictions], rounds: usize, score: &dyn Fn(&Predictions) -> f64) -> Vec<f64> {
    ensemble_selection_with(members, rounds, &|m, w| score(&blend(&m.iter().collect::<Vec<_>>(), w)))
}

/// [`ensemble_selection`] where `score` rates the members combined with given weights
/// (e.g. by [`vote`] rather than [`blend`]).
pub fn ensemble_selection_with(
    members: &[Predictions],
    rounds: usize,
    score: &dyn Fn(&[Predictions], &[f64]) -> f64,
) -> Vec<f64> {
    let n = members.len();
    if n == 0 {
        return Vec::new();
    }
    let share = |counts: &[usize]| -> Vec<f64> {
        let total: usize = counts.iter().sum();
        counts.iter().map(|c| *c as f64 / total.max(1) as f64).collect()
    };
    let singles: Vec<f64> = (0..n)
        .map(|i| {
            let mut one = vec![0usize; n];
            one[i] = 1;
            score(members, &share(&one))
        })
        .collect();
    let best = argmax(&singles);
    let mut counts = vec![0usize; n];
    counts[best] = 1;
    let mut best_counts = counts.clone();
    let mut best_score = singles[best];
    for _ in 0..rounds {
        let mut round_best: Option<(usize, f64)> = None;
        for candidate in 0..n {
            counts[candidate] += 1;
            let s = score(members, &share(&counts));
            counts[candidate] -= 1;
            // Strictly better only, so ties keep the earlier (better-ranked) member.
            if round_best.is_none_or(|(_, b)| s > b) {
                round_best = Some((candidate, s));
            }
        }
        let Some((c, s)) = round_best else { break };
        counts[c] += 1;
        if s > best_score {
            best_score = s;
            best_counts = counts.clone();
        }
    }
    share(&best_counts)
}

/// Weighted majority vote of classifiers: per sample, each class gets the weights of the
/// members whose most probable class it is, plus `VOTE_SMOOTHING` times the weighted mean
/// probability (which breaks ties and keeps the log-loss finite); rows sum to 1. A member
/// that is sure of itself counts no more than a hesitant one, unlike in [`blend`].
pub fn vote(members: &[Predictions], weights: &[f64]) -> Predictions {
    let mean = blend(&members.iter().collect::<Vec<_>>(), weights);
    let mut out: Predictions = mean.iter().map(|row| row.iter().map(|p| VOTE_SMOOTHING * p).collect()).collect();
    for (m, w) in members.iter().zip(weights) {
        for (o, row) in out.iter_mut().zip(m) {
            if row.len() == 1 {
                // One sigmoid output: the vote is for the positive class or not.
                o[0] += if row[0] >= 0.5 { *w } else { 0.0 };
            } else if let Some(slot) = o.get_mut(argmax(row)) {
                *slot += w;
            }
        }
    }
    for row in &mut out {
        for v in row.iter_mut() {
            *v /= 1.0 + VOTE_SMOOTHING;
        }
    }
    out
}

/// The share of the mean probabilities in a [`vote`].
pub const VOTE_SMOOTHING: f64 = 0.01;

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// The weight average θ = Σ wᵢθᵢ of same-architecture models. `None` when the
/// models do not have the same parameter names and sizes.
pub fn average_params(models: &[&Params], weights: &[f64]) -> Option<Params> {
    let first = models.first()?;
    for m in models {
        if m.len() != first.len() || m.iter().any(|(k, v)| first.get(k).map(Vec::len) != Some(v.len())) {
            return None;
        }
    }
    let mut out = Params::new();
    for (name, values) in first.iter() {
        let mut acc = vec![0.0f64; values.len()];
        for (m, w) in models.iter().zip(weights) {
            for (a, x) in acc.iter_mut().zip(&m[name]) {
                *a += w * f64::from(*x);
            }
        }
        out.insert(name.clone(), acc.into_iter().map(|x| x as f32).collect());
    }
    Some(out)
}

/// Why a soup ingredient was left out.
#[derive(Debug, Clone, PartialEq)]
pub enum Excluded {
    /// Its architecture or initialisation differs from the soup's.
    Incompatible(String),
    /// Adding it did not improve the valid score.
    NoGain { without: f64, with: f64 },
}

/// The result of a greedy soup.
#[derive(Debug, Clone, PartialEq)]
pub struct Soup {
    /// Indices of the kept ingredients (uniformly averaged).
    pub kept: Vec<usize>,
    pub excluded: Vec<(usize, Excluded)>,
    /// The valid score of the soup.
    pub score: f64,
}

/// Greedy soup (Wortsman et al., ICML 2022): ingredients sorted by their own
/// valid score, best first; each is kept only if the uniform average with it
/// scores at least as well on valid as without. `evaluate` scores the uniform
/// average of the given ingredients (higher is better); `compatible` says
/// whether an ingredient can be averaged with the first one.
pub fn greedy_soup(
    own_scores: &[f64],
    compatible: &dyn Fn(usize) -> Result<(), String>,
    evaluate: &mut dyn FnMut(&[usize]) -> f64,
) -> Soup {
    let mut order: Vec<usize> = (0..own_scores.len()).collect();
    order.sort_by(|a, b| own_scores[*b].total_cmp(&own_scores[*a]));
    let mut kept: Vec<usize> = Vec::new();
    let mut excluded = Vec::new();
    let mut score = f64::NEG_INFINITY;
    for i in order {
        if kept.is_empty() {
            kept.push(i);
            score = evaluate(&kept);
            continue;
        }
        if let Err(why) = compatible(i) {
            excluded.push((i, Excluded::Incompatible(why)));
            continue;
        }
        kept.push(i);
        let with = evaluate(&kept);
        if with >= score {
            score = with;
        } else {
            kept.pop();
            excluded.push((i, Excluded::NoGain { without: score, with }));
        }
    }
    Soup { kept, excluded, score }
}

/// Accuracy of predictions against integer labels.
pub fn accuracy(preds: &Predictions, labels: &[usize]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let right = preds.iter().zip(labels).filter(|(p, l)| argmax(p) == **l).count();
    right as f64 / labels.len() as f64
}

/// Mean negative log-likelihood of probabilities against integer labels.
pub fn nll(preds: &Predictions, labels: &[usize]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let total: f64 = preds.iter().zip(labels).map(|(p, l)| -p.get(*l).copied().unwrap_or(0.0).max(1e-12).ln()).sum();
    total / labels.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn onehot(classes: &[usize], k: usize, conf: f64) -> Predictions {
        classes
            .iter()
            .map(|c| (0..k).map(|j| if j == *c { conf } else { (1.0 - conf) / (k - 1) as f64 }).collect())
            .collect()
    }

    #[test]
    fn softmax_weights_favour_the_better_score_and_sum_to_one() {
        let w = closed_form_weights(&Weighting::Softmax { temperature: 0.02 }, &[0.95, 0.93, 0.90], &[]);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(w[0] > w[1] && w[1] > w[2]);
        // e^(0.02/0.02) = e: the ratio of neighbours 0.02 apart.
        assert!((w[0] / w[1] - std::f64::consts::E).abs() < 1e-9);
    }

    #[test]
    fn bayes_weights_follow_the_likelihood() {
        let w = closed_form_weights(&Weighting::Bayes { n: 10.0 }, &[], &[0.30, 0.40]);
        // w0/w1 = exp(-10·0.30) / exp(-10·0.40) = e.
        assert!((w[0] / w[1] - std::f64::consts::E).abs() < 1e-9);
    }

    #[test]
    fn ensemble_selection_picks_complementary_members() {
        // Labels 0..4; member A is right on samples 0,1,2; B on 2,3; C on 0,1 (a weaker copy of A).
        let labels = vec![0, 1, 0, 1];
        let a = vec![vec![0.9, 0.1], vec![0.1, 0.9], vec![0.6, 0.4], vec![0.8, 0.2]];
        let b = vec![vec![0.4, 0.6], vec![0.6, 0.4], vec![0.9, 0.1], vec![0.1, 0.9]];
        let c = vec![vec![0.7, 0.3], vec![0.3, 0.7], vec![0.2, 0.8], vec![0.6, 0.4]];
        let score = |p: &Predictions| accuracy(p, &labels) - 1e-3 * nll(p, &labels);
        let w = ensemble_selection(&[a.clone(), b.clone(), c], 10, &score);
        // A alone gets 3/4; A + B together get all four right: B joins, C never does.
        assert!(w[0] > 0.0 && w[1] > 0.0, "{w:?}");
        assert_eq!(w[2], 0.0, "{w:?}");
        let blended = blend(&[&a, &b], &[w[0] / (w[0] + w[1]), w[1] / (w[0] + w[1])]);
        assert_eq!(accuracy(&blended, &labels), 1.0);
    }

    #[test]
    fn ensemble_selection_gives_two_complementary_members_half_each() {
        // A is sure and right on sample 0, mildly wrong on 1; B the mirror image; C says 0
        // twice. Alone each gets 1/2 (A first: ties keep the earlier member); A + B gets
        // both right with the lowest loss of any mix, so rounds after it (2A + B, A + B + C,
        // 2A + 2B = A + B) never beat it: the weights are exactly 1/2, 1/2, 0.
        let labels = vec![0, 1];
        let a = vec![vec![0.9, 0.1], vec![0.6, 0.4]];
        let b = vec![vec![0.4, 0.6], vec![0.1, 0.9]];
        let c = vec![vec![0.7, 0.3], vec![0.7, 0.3]];
        let score = |p: &Predictions| accuracy(p, &labels) - 1e-3 * nll(p, &labels);
        assert_eq!(ensemble_selection(&[a.clone(), b.clone(), c.clone()], 10, &score), vec![0.5, 0.5, 0.0]);
        // One round is enough to find it; zero rounds is the best single member.
        assert_eq!(ensemble_selection(&[a.clone(), b.clone(), c.clone()], 1, &score), vec![0.5, 0.5, 0.0]);
        assert_eq!(ensemble_selection(&[a, b, c], 0, &score), vec![1.0, 0.0, 0.0]);
    }

    #[test]
    fn a_vote_is_not_swayed_by_one_overconfident_member() {
        // Two hesitant members say class 1, a sure one says class 0: the mean says 0, the vote 1.
        let labels = vec![1];
        let members = vec![vec![vec![0.4, 0.6]], vec![vec![0.45, 0.55]], vec![vec![0.99, 0.01]]];
        let w = [1.0 / 3.0; 3];
        assert_eq!(accuracy(&blend(&members.iter().collect::<Vec<_>>(), &w), &labels), 0.0);
        let v = vote(&members, &w);
        assert_eq!(accuracy(&v, &labels), 1.0);
        assert!((v[0].iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Two thirds of the votes, plus the smoothing share of the mean probability.
        let mean1 = (0.6 + 0.55 + 0.01) / 3.0;
        assert!((v[0][1] - (2.0 / 3.0 + VOTE_SMOOTHING * mean1) / (1.0 + VOTE_SMOOTHING)).abs() < 1e-12);
        // A lone member's vote agrees with its own prediction.
        assert_eq!(accuracy(&vote(&members[2..], &[1.0]), &labels), 0.0);
    }

    #[test]
    fn ensemble_selection_never_scores_below_its_best_member() {
        let labels = vec![0, 1, 2, 0, 1, 2];
        let members = vec![
            onehot(&[0, 1, 2, 0, 1, 1], 3, 0.8),
            onehot(&[0, 0, 2, 1, 1, 2], 3, 0.6),
            onehot(&[2, 1, 0, 0, 2, 2], 3, 0.9),
        ];
        let score = |p: &Predictions| accuracy(p, &labels);
        let best_single = members.iter().map(score).fold(f64::NEG_INFINITY, f64::max);
        let w = ensemble_selection(&members, 20, &score);
        let refs: Vec<&Predictions> = members.iter().collect();
        assert!(score(&blend(&refs, &w)) >= best_single);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_soup_of_identical_models_is_the_model() {
        let m: Params =
            [("l.weight".to_string(), vec![0.5f32, -1.25, 3.0]), ("l.bias".to_string(), vec![0.1f32])].into();
        let soup = average_params(&[&m, &m, &m], &[0.2, 0.3, 0.5]).expect("same shapes");
        for (k, v) in &m {
            for (a, b) in v.iter().zip(&soup[k]) {
                assert!((a - b).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn averaging_refuses_different_architectures() {
        let a: Params = [("w".to_string(), vec![1.0f32, 2.0])].into();
        let b: Params = [("w".to_string(), vec![1.0f32])].into();
        assert_eq!(average_params(&[&a, &b], &[0.5, 0.5]), None);
    }

    #[test]
    fn greedy_soup_keeps_only_ingredients_that_help_and_never_drops_below_the_best() {
        // Scores of averages, made up: {0}=0.90, {0,1}=0.92, {0,1,2}=0.91 (hurts), {0,1,3}=0.93.
        let own = [0.90, 0.89, 0.88, 0.70];
        let mut evaluate = |kept: &[usize]| -> f64 {
            let mut k = kept.to_vec();
            k.sort_unstable();
            match k.as_slice() {
                [0] => 0.90,
                [0, 1] => 0.92,
                [0, 1, 2] => 0.91,
                [0, 1, 3] => 0.93,
                _ => 0.0,
            }
        };
        let soup = greedy_soup(&own, &|i| if i == 4 { Err("x".into()) } else { Ok(()) }, &mut evaluate);
        assert_eq!(soup.kept, vec![0, 1, 3]);
        assert_eq!(soup.excluded, vec![(2, Excluded::NoGain { without: 0.92, with: 0.91 })]);
        assert!(soup.score >= own.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    }

    #[test]
    fn greedy_soup_reports_incompatible_ingredients() {
        let own = [0.9, 0.8];
        let soup =
            greedy_soup(&own, &|i| if i == 1 { Err("another architecture".into()) } else { Ok(()) }, &mut |_| 0.9);
        assert_eq!(soup.kept, vec![0]);
        assert_eq!(soup.excluded, vec![(1, Excluded::Incompatible("another architecture".into()))]);
    }
}
