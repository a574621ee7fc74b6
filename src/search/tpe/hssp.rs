//! Which trials of the last non-dominated front join `tpe`'s below set when only some
//! fit (several objectives): the greedy hypervolume subset selection of Optuna's MOTPE
//! (`optuna._hypervolume.hssp`, used by `TPESampler` since 3.x).
//!
//! Takes the front's losses (lower is better, every point the same length) and how many
//! to keep, `k`; gives the indices of `k` points chosen one at a time, each the one that
//! adds the most hypervolume to those already chosen (ties: the lower index), against
//! Optuna's reference point `max(1.1 w, 0.9 w)` per objective, `w` the front's worst
//! value (`1e-12` where that is 0). Greedy selection keeps at least `1 - 1/e` of the best
//! subset's hypervolume (the function is submodular); picking by hypervolume keeps the
//! front's ends and wide gaps, where a sum of per-objective ranks favours its middle.
//!
//! **Invariant:** `None` (the caller keeps its own order) when there are more than three
//! objectives (no exact hypervolume here), a loss is not finite, or `k` is not smaller
//! than the front; otherwise exactly `k` distinct indices.

use crate::trial::rank;

/// The greedy hypervolume subset of `front` of size `k`, in the order chosen.
pub(super) fn greedy(front: &[&[f64]], k: usize) -> Option<Vec<usize>> {
    let m = front.first()?.len();
    if k >= front.len()
        || !(1..=3).contains(&m)
        || front.iter().any(|p| p.len() != m || p.iter().any(|v| !v.is_finite()))
    {
        return None;
    }
    let reference: Vec<f64> = (0..m)
        .map(|d| {
            let worst = front.iter().map(|p| p[d]).fold(f64::NEG_INFINITY, f64::max);
            let r = (1.1 * worst).max(0.9 * worst);
            if r == 0.0 { 1e-12 } else { r }
        })
        .collect();
    let mut chosen: Vec<Vec<f64>> = Vec::with_capacity(k);
    let mut picked: Vec<usize> = Vec::with_capacity(k);
    let mut left: Vec<usize> = (0..front.len()).collect();
    let mut base = 0.0;
    while picked.len() < k {
        let mut best: Option<(f64, usize)> = None;
        for (slot, &i) in left.iter().enumerate() {
            chosen.push(front[i].to_vec());
            let hv = rank::hypervolume(&chosen, &reference).ok()?;
            chosen.pop();
            if best.is_none_or(|(b, _)| hv - base > b) {
                best = Some((hv - base, slot));
            }
        }
        let (gain, slot) = best?;
        let i = left.remove(slot);
        chosen.push(front[i].to_vec());
        picked.push(i);
        base += gain;
    }
    Some(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(points: &[Vec<f64>]) -> Vec<&[f64]> {
        points.iter().map(Vec::as_slice).collect()
    }

    /// Optuna 5.1's choice, `optuna._hypervolume.hssp._solve_hssp(P, arange(n), k,
    /// _get_reference_point(P))` for k = 4 (its prefixes are the choices for k < 4).
    #[test]
    fn picks_what_optuna_picks() {
        let front: Vec<Vec<f64>> =
            [0.0, 0.45, 0.48, 0.5, 0.52, 0.55, 1.0].iter().map(|&x: &f64| vec![x, 1.0 - x.sqrt()]).collect();
        assert_eq!(greedy(&refs(&front), 4), Some(vec![1, 0, 5, 6]));
        assert_eq!(greedy(&refs(&front), 2), Some(vec![1, 0]));
        // Negative worst values (ZDT3's f2): the reference is 0.9 times the worst, -0.18.
        let neg = [vec![0.0, -0.2], vec![0.5, -0.5], vec![0.9, -0.7], vec![0.2, -0.3]];
        assert_eq!(greedy(&refs(&neg), 3), Some(vec![1, 3, 2]));
        assert_eq!(greedy(&refs(&sphere()), 4), Some(vec![7, 0, 6, 8]));
    }

    /// Nine points on the unit sphere's positive octant.
    fn sphere() -> Vec<Vec<f64>> {
        (0..9)
            .map(|i| {
                let (a, b) = ((i as f64 * 0.37) % 1.0, (i as f64 * 0.61) % 1.0);
                let h = std::f64::consts::FRAC_PI_2;
                vec![(a * h).cos() * (b * h).cos(), (a * h).cos() * (b * h).sin(), (a * h).sin()]
            })
            .collect()
    }

    #[test]
    fn each_pick_adds_the_most_hypervolume() {
        // Against every other choice at each step (3 objectives, so the slicing volume).
        let front = sphere();
        let pick = greedy(&refs(&front), 4).unwrap();
        let reference: Vec<f64> =
            (0..3).map(|d| 1.1 * front.iter().map(|p| p[d]).fold(f64::NEG_INFINITY, f64::max)).collect();
        let hv = |idx: &[usize]| {
            let pts: Vec<Vec<f64>> = idx.iter().map(|&i| front[i].clone()).collect();
            rank::hypervolume(&pts, &reference).unwrap()
        };
        for step in 0..pick.len() {
            let got = hv(&pick[..=step]);
            for other in (0..front.len()).filter(|i| !pick[..step].contains(i)) {
                let mut alt = pick[..step].to_vec();
                alt.push(other);
                assert!(got >= hv(&alt) - 1e-15, "step {step}: {other} adds more than {}", pick[step]);
            }
        }
        let mut distinct = pick.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 4);
    }

    #[test]
    fn declines_what_it_cannot_measure() {
        let four = [vec![0.0, 1.0, 0.5, 0.2], vec![1.0, 0.0, 0.5, 0.3]];
        assert_eq!(greedy(&refs(&four), 1), None, "four objectives");
        let two = [vec![0.0, 1.0], vec![1.0, 0.0]];
        assert_eq!(greedy(&refs(&two), 2), None, "nothing to choose");
        let nan = [vec![0.0, f64::NAN], vec![1.0, 0.0]];
        assert_eq!(greedy(&refs(&nan), 1), None);
    }
}
