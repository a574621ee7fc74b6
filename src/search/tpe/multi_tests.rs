//! `tpe` with several objectives against Optuna 5.1's `TPESampler` (the numbers come from
//! `optuna.samplers._tpe.sampler._split_complete_trials_multi_objective` and
//! `_ParzenEstimator` on the same inputs): the below set is `ceil(0.1 n)` trials with no
//! cap of 25 (`default_gamma_multiobjective`), and `l`'s observations all weigh 1.

use super::tests::program;
use super::*;

/// Trial `i` of the split check: a ZDT1 value at `u = (37 i mod 101) / 101` and
/// `g = 1 + 9 (53 i mod 97) / 97` (the same float operations as the Python check).
fn zdt_like(i: usize) -> Vec<f64> {
    let u = ((i * 37) % 101) as f64 / 101.0;
    let g = 1.0 + 9.0 * (((i * 53) % 97) as f64 / 97.0);
    vec![u, g * (1.0 - (u / g).sqrt())]
}

fn with_obs(values: impl Iterator<Item = (f64, Vec<f64>)>) -> Tpe {
    let prog = program("    x: float in 0.0..=1.0");
    let mut tpe = Tpe::new(&prog.experiments[0].space, 10);
    for (i, (x, losses)) in values.enumerate() {
        tpe.obs.push(Obs { number: i as u64, x: vec![x], losses, violation: 0.0, pruned: false });
    }
    tpe
}

#[test]
fn below_set_is_optunas_uncapped_split() {
    // Optuna: default_gamma_multiobjective(300) = 30 trials, chosen by front and HSSP.
    let tpe = with_obs((0..300).map(|i| (0.5, zdt_like(i))));
    let (below, above) = tpe.split();
    let optuna = [
        0, 11, 22, 33, 41, 44, 52, 55, 71, 97, 101, 108, 112, 119, 123, 130, 134, 142, 194, 202, 205, 213, 216, 224,
        227, 243, 273, 284, 291, 295,
    ];
    assert_eq!(below, optuna);
    assert_eq!(above.len(), 270);
    // One objective keeps Optuna's single-objective cap of 25.
    let single = with_obs((0..300).map(|i| (0.5, vec![zdt_like(i)[1]])));
    assert_eq!(single.split().0.len(), 25);
}

#[test]
fn below_weights_are_flat_as_optunas() {
    // `_ParzenEstimator({"x": obs}, {"x": FloatDistribution(0, 1)}, params, w).log_pdf(xs)`
    // with 30 observations `(29 i mod 31) / 31`: `w = ones(30)` (the below set with several
    // objectives) and the default weights (a ramp for the 5 oldest: one objective, and `g`).
    let tpe = with_obs((0..30).map(|i| (((i * 29) % 31) as f64 / 31.0, vec![0.0, 0.0])));
    let obs: Vec<usize> = (0..30).collect();
    let flat = Parzen::weighted(&tpe, &[0], &obs, 1.0, true);
    let ramp = Parzen::new(&tpe, &[0], &obs, 1.0);
    let xs = [0.05, 0.3, 0.62, 0.97];
    let optuna_flat = [-0.31005204056684066, 0.0339100777070771, 0.0328217092809574, -0.24337706650584356];
    let optuna_ramp = [-0.6092048644502874, 0.11507348481428381, 0.11398511119619914, -0.40452012064562637];
    // Within 1e-7: our normal CDF is an approximation (6.7e-9 off here); the two weightings
    // differ by 0.09 to 0.3 at these points.
    let mut scratch = Vec::new();
    for ((x, f), r) in xs.iter().zip(optuna_flat).zip(optuna_ramp) {
        let (lf, lr) = (flat.log_pdf(&[*x], &mut scratch), ramp.log_pdf(&[*x], &mut scratch));
        assert!((lf - f).abs() < 1e-7, "flat at {x}: {lf} against Optuna's {f}");
        assert!((lr - r).abs() < 1e-7, "ramp at {x}: {lr} against Optuna's {r}");
    }
}
