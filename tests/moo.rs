//! The multi-objective bench problems (bench/search/moo.rs) equal pymoo 0.6.2's
//! (`pymoo.problems.multi.zdt.ZDT1/2/3(n_var=30)`, `pymoo.problems.many.dtlz.DTLZ2(n_var=12,
//! n_obj=3)`) at fixed points, lie on their known fronts where the distance term vanishes,
//! and our hypervolume (`bma::search::rank::hypervolume`) equals Optuna 5.1's
//! (`optuna._hypervolume.compute_hypervolume`, WFG) on a fixed 3-objective set, the number
//! `bench/search/moo.py` computes Optuna's side with.
#![allow(clippy::unwrap_used)]

#[path = "../bench/search/moo.rs"]
mod moo;

use bma::search::rank::hypervolume;

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{a:?} != {b:?}");
    }
}

/// The ZDT points of the pymoo check: `x0` then `x_i = ((7 i) mod 10) / 10 + 0.05`, and
/// `x0` then zeros (on the front).
fn zdt_points() -> [Vec<f64>; 2] {
    let a = std::iter::once(0.37).chain((1..30).map(|i| ((i * 7) % 10) as f64 / 10.0 + 0.05)).collect();
    let b = std::iter::once(0.83).chain(std::iter::repeat_n(0.0, 29)).collect();
    [a, b]
}

#[test]
fn zdt_values_equal_pymoo() {
    let [a, b] = zdt_points();
    close(&moo::zdt1(&a), &[0.37, 4.1951232711415845]);
    close(&moo::zdt1(&b), &[0.83, 0.08895664208557008]);
    close(&moo::zdt2(&a), &[0.37, 5.615380638632075]);
    close(&moo::zdt2(&b), &[0.83, 0.31110000000000004]);
    close(&moo::zdt3(&a), &[0.37, 4.494459559060315]);
    close(&moo::zdt3(&b), &[0.83, -0.5825274632456349]);
}

#[test]
fn dtlz2_values_equal_pymoo() {
    let a: Vec<f64> = [0.3, 0.8].into_iter().chain((2..12).map(|i| ((i * 3) % 10) as f64 / 10.0 + 0.02)).collect();
    let b: Vec<f64> = [0.25, 0.6].into_iter().chain(std::iter::repeat_n(0.5, 10)).collect();
    close(&moo::dtlz2(&a), &[0.5049665139061724, 1.5541271266738053, 0.8326185765223287]);
    close(&moo::dtlz2(&b), &[0.5430427641049989, 0.7474342425568128, 0.3826834323650898]);
}

#[test]
fn fronts_are_where_the_distance_term_vanishes() {
    for k in 0..=10 {
        let f1 = k as f64 / 10.0;
        let x: Vec<f64> = std::iter::once(f1).chain(std::iter::repeat_n(0.0, 29)).collect();
        close(&moo::zdt1(&x), &[f1, 1.0 - f1.sqrt()]);
        close(&moo::zdt2(&x), &[f1, 1.0 - f1 * f1]);
        let s = (10.0 * std::f64::consts::PI * f1).sin();
        close(&moo::zdt3(&x), &[f1, 1.0 - f1.sqrt() - f1 * s]);
        let y: Vec<f64> = [f1, 1.0 - f1].into_iter().chain(std::iter::repeat_n(0.5, 10)).collect();
        let norm: f64 = moo::dtlz2(&y).iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-12, "DTLZ2 front is the unit sphere: {norm}");
    }
}

#[test]
fn reference_points_hold_every_value() {
    // Corners and a grid of the cube: the wide reference bounds every objective value
    // (moo.py and the table rely on it to count every point).
    for p in moo::problems() {
        for corner in 0..(1 << 4) {
            for fill in [0.0, 0.5, 1.0] {
                let x: Vec<f64> =
                    (0..p.dims).map(|i| if i < 4 { f64::from((corner >> i) & 1) } else { fill }).collect();
                let v = (p.f)(&x);
                assert_eq!(v.len(), p.references[0].len(), "{}", p.name);
                assert!(
                    v.iter().zip(p.references[1]).all(|(a, r)| a <= r),
                    "{}: {v:?} outside the wide reference",
                    p.name
                );
            }
        }
    }
}

/// The 12 points of the Optuna check: DTLZ2-like points pushed out by `1 + g`.
fn sphere_points() -> Vec<Vec<f64>> {
    let h = std::f64::consts::FRAC_PI_2;
    (0..12)
        .map(|i| {
            let (a, b) = ((i as f64 * 0.37) % 1.0, (i as f64 * 0.61) % 1.0);
            let r = 1.0 + 0.05 * ((i * 5) % 7) as f64;
            vec![r * (a * h).cos() * (b * h).cos(), r * (a * h).cos() * (b * h).sin(), r * (a * h).sin()]
        })
        .collect()
}

#[test]
fn hypervolume_equals_optuna_wfg() {
    // numpy/optuna: P[(P < r).all(1)] then compute_hypervolume(P, r) (9 of 12 inside 1.1).
    let pts = sphere_points();
    let hv = |p: &[Vec<f64>], r: &[f64]| hypervolume(p, r).unwrap();
    assert!((hv(&pts, &[1.1; 3]) - 0.3525221011944613).abs() < 1e-12);
    assert!((hv(&pts, &[2.0; 3]) - 6.501661032325407).abs() < 1e-12);
    let two: Vec<Vec<f64>> = pts.iter().map(|p| p[..2].to_vec()).collect();
    assert!((hv(&two, &[1.1; 2]) - 1.1575837874465382).abs() < 1e-12);
}
