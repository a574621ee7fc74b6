use super::*;
use crate::ir::{Point, Value};
use crate::search::tpe::tests::{best, median, num, program, study_parallel as study};
use crate::search::{Direction, History, Random, Rank, Trial};

use crate::space::Context;

fn branin(p: &Point) -> (f64, f64) {
    let (x, y) = (num(p, "x"), num(p, "y"));
    let pi = std::f64::consts::PI;
    let v = (y - 5.1 / (4.0 * pi * pi) * x * x + 5.0 / pi * x - 6.0).powi(2)
        + 10.0 * (1.0 - 1.0 / (8.0 * pi)) * x.cos()
        + 10.0;
    (v - 0.397_887_357_729_738, 0.0)
}

fn hartmann6(p: &Point) -> (f64, f64) {
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    let x: Vec<f64> = (0..6).map(|i| num(p, &format!("x{i}"))).collect();
    let v: f64 =
        (0..4).map(|i| -ALPHA[i] * (-(0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum::<f64>()).exp()).sum();
    (v + 3.322_368_011_415_515, 0.0)
}

#[test]
fn beats_random_on_branin_and_hartmann6() {
    let prog = program("    x: float in -5.0..=10.0\n    y: float in 0.0..=15.0");
    let space = &prog.experiments[0].space;
    let none = Point::new();
    let gp: Vec<f64> = (0..5).map(|s| best(&study(&prog, &mut Gp::new(space, 10), &branin, &none, s, 30, 1))).collect();
    let rnd: Vec<f64> = (0..5).map(|s| best(&study(&prog, &mut Random, &branin, &none, s, 30, 1))).collect();
    let (g, r) = (median(gp.clone()), median(rnd.clone()));
    assert!(g < 0.05 && g < 0.1 * r, "branin regret after 30 trials: gp {gp:?}, random {rnd:?}");

    let prog = program(&(0..6).map(|i| format!("    x{i}: float in 0.0..=1.0\n")).collect::<String>());
    let space = &prog.experiments[0].space;
    let gp: Vec<f64> =
        (0..3).map(|s| best(&study(&prog, &mut Gp::new(space, 10), &hartmann6, &none, s, 40, 1))).collect();
    let rnd: Vec<f64> = (0..3).map(|s| best(&study(&prog, &mut Random, &hartmann6, &none, s, 40, 1))).collect();
    let (g, r) = (median(gp.clone()), median(rnd.clone()));
    assert!(g < 0.5 * r, "hartmann6 regret after 40 trials: gp {gp:?}, random {rnd:?}");
}

#[test]
fn handles_ints_categories_and_conditional_parameters() {
    let prog = program(
        "    opt: in {sgd, adam, rmsprop}\n    when opt == sgd { momentum: float in 0.0..1.0 }\n    when opt != sgd { lr: float in 1e-4..1e-1 log }\n    depth: int in 1..=8",
    );
    let f = |p: &Point| {
        let d = num(p, "depth");
        let y = match p["opt"].as_sym() {
            Some("sgd") => (num(p, "momentum") - 0.9).powi(2) + 0.1 * (d - 3.0).powi(2),
            _ => 1.0 + (num(p, "lr").log10() + 2.0).powi(2),
        };
        (y, 0.0)
    };
    let space = &prog.experiments[0].space;
    let h = study(&prog, &mut Gp::new(space, 10), &f, &Point::new(), 3, 40, 1);
    for t in &h.trials {
        let sgd = t.params["opt"] == Value::sym("sgd");
        assert_eq!(t.params.contains_key("momentum"), sgd);
        assert_eq!(t.params.contains_key("lr"), !sgd);
        assert!(matches!(t.params["depth"], Value::Int(1..=8)));
    }
    let late_sgd = h.trials[20..].iter().filter(|t| t.params["opt"] == Value::sym("sgd")).count();
    assert!(late_sgd >= 12, "the sgd branch is best; it got {late_sgd} of the last 20");
    assert!(best(&h) < 0.05, "{}", best(&h));
}

#[test]
fn pins_are_respected_and_derived_values_rebuilt() {
    let prog = program("    x: float in 0.0..1.0\n    k: int in 1..=5\n    let y = k * 2");
    let space = &prog.experiments[0].space;
    let pins: Point = [("k".to_string(), Value::Int(4))].into();
    let h = study(&prog, &mut Gp::new(space, 5), &|p| ((num(p, "x") - 0.3).powi(2), 0.0), &pins, 1, 15, 1);
    assert!(h.trials.iter().all(|t| t.params["k"] == Value::Int(4) && t.params["y"] == Value::Int(8)));
    assert!(best(&h) < 1e-3, "{}", best(&h));
}

#[test]
fn constraints_steer_towards_feasible_points() {
    // The unconstrained optimum (x = 0) is infeasible: x >= 0.6 must hold.
    let prog = program("    x: float in 0.0..1.0\n    z: float in 0.0..1.0");
    let space = &prog.experiments[0].space;
    let f = |p: &Point| {
        let x = num(p, "x");
        (x + (num(p, "z") - 0.5).powi(2), (0.6 - x).max(0.0))
    };
    let h = study(&prog, &mut Gp::new(space, 10), &f, &Point::new(), 2, 30, 1);
    let r = study(&prog, &mut Random, &f, &Point::new(), 2, 30, 1);
    // The constrained optimum lies on the boundary (x = 0.6, z = 0.5, loss 0.6): the GP
    // closes in on it from both sides, random search does not come near.
    let (g, r) = (best(&h), best(&r));
    assert!(g < 0.603 && g < r, "best feasible loss: gp {g}, random {r} (optimum 0.6)");
    let near = h.trials[15..].iter().filter(|t| (num(&t.params, "x") - 0.6).abs() < 0.02).count();
    assert!(near >= 10, "{near} of the last 15 trials are near the boundary");
}

/// Four asks at once see the same history; the pending ones enter the model with their
/// predicted value, so the four points differ instead of being the same maximiser.
#[test]
fn parallel_asks_spread_out() {
    let prog = program("    x: float in -5.0..=10.0\n    y: float in 0.0..=15.0");
    let space = &prog.experiments[0].space;
    let h = study(&prog, &mut Gp::new(space, 10), &branin, &Point::new(), 4, 30, 4);
    let r = study(&prog, &mut Random, &branin, &Point::new(), 4, 30, 4);
    for w in h.trials[12..].windows(2) {
        let (a, b) = (&w[0].params, &w[1].params);
        let d = ((num(a, "x") - num(b, "x")) / 15.0).hypot((num(a, "y") - num(b, "y")) / 15.0);
        assert!(d > 1e-4, "trials {} and {} are the same point", w[0].number, w[1].number);
    }
    assert!(best(&h) < 0.2 && best(&h) < 0.2 * best(&r), "gp {} vs random {}", best(&h), best(&r));
}

#[test]
fn several_objectives_are_refused_with_a_reason() {
    let prog = program("    x: float in 0.0..1.0");
    let space = &prog.experiments[0].space;
    let ctx = Context { fns: &prog.fns, data: None };
    let history = History::new(vec![Direction::Minimize, Direction::Maximize], Rank::default());
    let ask = AskContext { space, ctx, pins: &Point::new(), history: &history, number: 0, budget: None };
    let err = Gp::new(space, 10).ask(&ask, &mut Rng::new(1)).expect_err("one objective only");
    assert!(err.to_string().contains("one objective") && err.to_string().contains("nsga2"), "{err}");
}

#[test]
fn keeps_the_best_and_the_most_recent_observations() {
    let losses: Vec<f64> = (0..10).map(|i| if i == 1 { -5.0 } else { i as f64 }).collect();
    assert_eq!(keep(&losses, 20), (0..10).collect::<Vec<_>>());
    // max 6: the 2 best (1, 0) and the 4 most recent others (6..=9).
    assert_eq!(keep(&losses, 6), vec![0, 1, 6, 7, 8, 9]);
}

#[test]
fn warping_keeps_the_order_and_compresses_the_tail() {
    let losses = [3.0, 1.0, 1e6, 2.0, 10.0];
    let w = warp(&losses);
    for i in 0..losses.len() {
        for j in 0..losses.len() {
            assert_eq!(losses[i] < losses[j], w[i] < w[j], "{i} {j}");
        }
    }
    // min 1, median of (l - min) = 2: log(1 + 0) for the best, log(1 + 999_999 / 2) for the worst.
    assert_eq!(w[1], 0.0);
    assert!((w[2] - (1.0 + 999_999.0 / 2.0f64).ln()).abs() < 1e-9, "{w:?}");
}

/// The stall counts complete trials since the last real gain on the best: tiny gains (below
/// `gain`) and worse trials do not end it.
#[test]
fn the_stall_counts_trials_since_the_last_real_gain() {
    assert_eq!(stall(&[], 0.1), 0);
    assert_eq!(stall(&[5.0], 0.1), 0);
    // Gains at trials 0, 1 and 3; trial 4 gains 0.05 < 0.1, trials 5-6 are worse.
    let losses = [5.0, 4.0, 4.5, 3.0, 2.95, 7.0, 3.5];
    assert_eq!(stall(&losses, 0.1), 3);
    // Without a threshold, trial 4's gain counts.
    assert_eq!(stall(&losses, 0.0), 2);
    // A run of tiny gains never ends a stall: each is measured against the best before it.
    assert_eq!(stall(&[1.0, 0.99, 0.98, 0.97, 0.96], 0.05), 4);
}

/// The exploration offset is 0 until `stall_after` stalled trials, then grows by `xi_rate`
/// per further stalled trial up to `xi_max`; off by default.
#[test]
fn the_threshold_moves_below_the_best_only_while_stalled() {
    let prog = program("    x: float in 0.0..1.0");
    let space = &prog.experiments[0].space;
    // sd of these losses is 1.5 (mean 2.5): a gain of more than 1e-3 x 1.5 counts.
    let mut losses = vec![1.0, 4.0];
    let o = GpOptions { stall_after: 3, stall_gain: 1e-3, xi_rate: 0.25, xi_max: 0.6, ..GpOptions::default() };
    let gp = Gp::with_options(space, o);
    assert_eq!(gp.xi(&losses), 0.0);
    losses.extend([4.0, 4.0]); // 3 stalled trials since trial 0
    assert_eq!(gp.xi(&losses), 0.0);
    losses.push(1.0); // 4: a tie is no gain
    assert!((gp.xi(&losses) - 0.25).abs() < 1e-12, "{}", gp.xi(&losses));
    losses.extend([4.0, 4.0]); // 6: capped
    assert!((gp.xi(&losses) - 0.6).abs() < 1e-12, "{}", gp.xi(&losses));
    losses.push(0.5); // a gain: the stall ends
    assert_eq!(gp.xi(&losses), 0.0);
    assert_eq!(Gp::new(space, 10).xi(&[1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]), 0.0);
}

/// Optuna's local starts: the best candidate first, the best trial last, distinct draws
/// between, and none drawn from candidates of weight 0.
#[test]
fn roulette_starts_from_the_best_candidate_and_the_best_trial() {
    let scored: Vec<(f64, Vec<f64>)> = (0..6).map(|i| (-(i as f64), vec![i as f64])).collect();
    let mut with_dead = scored.clone();
    with_dead.push((f64::NEG_INFINITY, vec![99.0]));
    let starts = roulette(with_dead, 9, (-0.5, vec![42.0]), &mut Rng::new(3));
    let xs: Vec<f64> = starts.iter().map(|(_, x)| x[0]).collect();
    assert_eq!(xs[0], 0.0, "{xs:?}");
    assert_eq!(*xs.last().unwrap(), 42.0, "{xs:?}");
    // Five others have a positive weight; all are drawn once, the dead one never.
    let mut mid: Vec<f64> = xs[1..xs.len() - 1].to_vec();
    mid.sort_by(f64::total_cmp);
    assert_eq!(mid, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    // Fewer draws than candidates: the heavier ones are likelier, and the count is kept.
    let starts = roulette(scored.clone(), 3, (-0.5, vec![0.0]), &mut Rng::new(5));
    assert_eq!(starts.len(), 3, "the best trial is the best candidate: not added twice");
    assert_eq!(roulette(Vec::new(), 3, (-0.5, vec![7.0]), &mut Rng::new(5)), vec![(-0.5, vec![7.0])]);
}

/// The optional searches (Optuna's roulette starts and preconditioning, the stalled
/// exploration) still optimise: Branin to near its optimum in 30 trials.
#[test]
fn the_optional_acquisition_searches_still_find_branins_minimum() {
    let prog = program("    x: float in -5.0..=10.0\n    y: float in 0.0..=15.0");
    let space = &prog.experiments[0].space;
    let none = Point::new();
    let o = GpOptions {
        roulette: true,
        local_starts: 6,
        precondition: true,
        local_iters: 100,
        stall_after: 5,
        ..GpOptions::default()
    };
    let gp: Vec<f64> = (0..3)
        .map(|s| best(&study(&prog, &mut Gp::with_options(space, o.clone()), &branin, &none, s, 30, 1)))
        .collect();
    assert!(median(gp.clone()) < 0.05, "branin regret after 30 trials: {gp:?}");
}

/// The fit schedule: in full at the first fit and every `refit_every` complete trials
/// (counted from the last full fit, so a jump in the count does not skip one), warm with
/// `warm_iters` iterations in between.
#[test]
fn the_hyperparameters_are_refitted_in_full_every_refit_every_trials() {
    let prog = program("    x: float in 0.0..=1.0");
    let o = GpOptions { refit_every: 10, warm_iters: 7, ..GpOptions::default() };
    let mut gp = Gp::with_options(&prog.experiments[0].space, o.clone());
    let warm = model::Effort::warm(7);
    // A full fit tries both smoothnesses (the default), the warm ones keep the last.
    let f = model::Effort::FULL_EITHER;
    assert_eq!(gp.effort(10), f, "no fit yet");
    gp.last = Some(Params::default_for(1));
    let efforts: Vec<model::Effort> = [11, 19, 20, 21, 33, 34, 42, 43].iter().map(|&n| gp.effort(n)).collect();
    assert_eq!(efforts, vec![warm, warm, f, warm, f, warm, warm, f]);
    let mut plain = Gp::with_options(&prog.experiments[0].space, GpOptions { either_smoothness: false, ..o });
    assert_eq!(plain.effort(10), model::Effort::FULL);
}

/// The Yeo-Johnson `lambda` and transformed values against scipy 1.17.1, computed once with
/// `x = np.array([...]); z = (x - x.mean()) / x.std(); t, l = scipy.stats.yeojohnson(z)`.
#[test]
fn yeo_johnson_matches_scipy() {
    let cases: [(&[f64], f64, &[f64]); 2] = [
        (
            &[3.0, 1.0, 1e3, 2.0, 10.0, 0.5, 7.0],
            -3.489175447091745,
            &[
                -1.022964707432557,
                -1.0501143730376412,
                0.2827899953190193,
                -1.0364777087277635,
                -0.9317634521549834,
                -1.0569793529656284,
                -0.9701319307138891,
            ],
        ),
        (
            &[0.3, -1.2, 0.8, 2.1, -0.4, 1.5, -2.0, 0.1],
            1.1233290646306386,
            &[
                0.11933026185980308,
                -1.0146289391327412,
                0.5277442096185371,
                1.6468605051187173,
                -0.4243821763504184,
                1.1216174430618573,
                -1.5826587382341337,
                -0.0394028184123573,
            ],
        ),
    ];
    for (x, lambda, t) in cases {
        let (got, l) = output::yeo_johnson(x);
        assert!((l - lambda).abs() < 1e-6, "lambda {l} against scipy's {lambda}");
        for (g, want) in got.iter().zip(t) {
            assert!((g - want).abs() < 1e-6, "{got:?} against {t:?}");
        }
    }
    // scipy.stats.yeojohnson_llf(l, z) of the first case.
    let z = standardise(&[3.0, 1.0, 1e3, 2.0, 10.0, 0.5, 7.0]);
    assert!((output::yj_llf(&z, -3.489175447091745) - 9.17657707742039).abs() < 1e-9);
}

/// Every output transform keeps the losses' order (ties stay ties), so the argmin.
#[test]
fn output_transforms_are_monotone_and_keep_the_best() {
    let mut rng = Rng::new(7);
    let sets: Vec<Vec<f64>> = vec![
        (0..40).map(|_| (rng.f64() * 12.0).exp() - 3.0).collect(),
        (0..25).map(|_| rng.f64() - 0.5).collect(),
        vec![5.0, 5.0, 1.0, 2.0, 2.0, 1e9, -3.0],
    ];
    for losses in &sets {
        let outs = [output::yeo_johnson(losses).0, output::copula(losses), warp(losses)];
        for t in &outs {
            assert!(t.iter().all(|v| v.is_finite()), "{t:?}");
            for i in 0..losses.len() {
                for j in 0..losses.len() {
                    assert_eq!(losses[i] < losses[j], t[i] < t[j], "{i} {j} {losses:?} {t:?}");
                    assert_eq!(losses[i] == losses[j], t[i] == t[j], "{i} {j}");
                }
            }
        }
    }
    // Constant or two-valued losses: the standardisation alone.
    assert_eq!(output::yeo_johnson(&[2.0, 2.0, 2.0]).0, vec![0.0; 3]);
    assert_eq!(output::yeo_johnson(&[1.0, 3.0]), (vec![-1.0, 1.0], 1.0));
}

/// The copula's values are the normal quantiles of the mid-ranks (scipy 1.17.1:
/// `scipy.stats.norm.ppf([1e-5, 0.01, 0.3, 0.5, 0.9, 0.999])`).
#[test]
fn copula_uses_normal_quantiles_of_the_ranks() {
    let want =
        [-4.264890793922825, -2.3263478740408408, -0.5244005127080409, 0.0, 1.2815515655446004, 3.090232306167813];
    for (p, w) in [1e-5, 0.01, 0.3, 0.5, 0.9, 0.999].iter().zip(want) {
        let q = output::normal_quantile(*p);
        assert!((q - w).abs() < 1e-8 * w.abs().max(1.0), "{p}: {q} against {w}");
    }
    // Four losses, two tied: ranks 0, 1.5, 1.5, 3 of 4.
    let c = output::copula(&[1.0, 7.0, 7.0, 9.0]);
    let q = |p: f64| output::normal_quantile(p);
    assert_eq!(c, vec![q(0.125), q(0.5), q(0.5), q(0.875)]);
}

/// With every ask local, each point after the startup lies in the box around the best
/// feasible trial before it (not the best one, which breaks the constraint); the category
/// is not boxed (all three are still asked). With the default half, the box still leaves
/// room for global asks: some point lands outside it.
#[test]
fn local_asks_stay_in_the_box_around_the_best_feasible_trial() {
    let prog = program("    x: float in 0.0..1.0\n    y: float in 0.0..10.0\n    c: in {a, b, c}");
    let space = &prog.experiments[0].space;
    // The unconstrained optimum (x = 0.1) breaks x >= 0.4; the feasible one is x = 0.4.
    let f = |p: &Point| {
        let (x, y) = (num(p, "x"), num(p, "y"));
        let c = if p["c"] == Value::sym("b") { 0.0 } else { 0.05 };
        ((x - 0.1).powi(2) + ((y - 7.0) / 10.0).powi(2) + c, (0.4 - x).max(0.0))
    };
    let inside = |h: &History| -> Vec<bool> {
        (10..h.trials.len())
            .map(|n| {
                let before = &h.trials[..n];
                let b = before
                    .iter()
                    .filter(|t| t.violations[0] <= 0.0)
                    .min_by(|a, b| a.values[0].total_cmp(&b.values[0]))
                    .expect("a feasible trial in the startup");
                let t = &h.trials[n].params;
                (num(t, "x") - num(&b.params, "x")).abs() <= 0.1 + 1e-9
                    && (num(t, "y") - num(&b.params, "y")).abs() / 10.0 <= 0.1 + 1e-9
            })
            .collect()
    };
    let local = GpOptions { startup: 10, local_share: 1.0, local_box: 0.2, ..GpOptions::default() };
    let h = study(&prog, &mut Gp::with_options(space, local), &f, &Point::new(), 4, 40, 1);
    let boxed = inside(&h);
    assert!(boxed.iter().all(|b| *b), "asks outside the box: {boxed:?}");
    for c in ["a", "b", "c"] {
        assert!(h.trials[10..].iter().any(|t| t.params["c"] == Value::sym(c)), "category {c} never asked");
    }
    assert!(best(&h) < 0.1 + 1e-3, "best feasible loss {} (optimum 0.09)", best(&h));

    let half = GpOptions { startup: 10, ..GpOptions::default() };
    assert_eq!((half.local_share, half.local_box), (LOCAL_SHARE, LOCAL_BOX));
    let h = study(&prog, &mut Gp::with_options(space, half), &f, &Point::new(), 4, 40, 1);
    assert!(inside(&h).iter().any(|b| !b), "no global ask left the box");
}

#[test]
fn a_local_ask_models_the_trials_near_the_best_where_they_are_predicted_better() {
    let prog = program("    x: float in 0.0..1.0\n    y: float in 0.0..1.0");
    let space = &prog.experiments[0].space;
    let gp = Gp::with_options(space, GpOptions { local_fit: 16, ..GpOptions::default() });
    // A 9 x 9 grid; the bowl's minimum (0.25, 0.25) is one of its points, and its 16 nearest
    // points all sit at x < 0.6.
    let xs: Vec<Vec<f64>> = (0..81).map(|i| vec![(i % 9) as f64 / 8.0, (i / 9) as f64 / 8.0]).collect();
    let bowl = |x: &[f64]| (x[0] - 0.25).powi(2) + (x[1] - 0.25).powi(2);
    let violations = vec![0.0; xs.len()];
    let choose = |losses: &[f64]| {
        let ys = gp.targets(losses);
        let global = model::Model::fit_with(xs.clone(), &ys, gp.cat.clone(), &[], model::Effort::FULL_EITHER);
        let local = gp.local_model(&xs, losses, &violations, &[], 0.0, (&global, &ys));
        let rank = |own: bool| {
            let mut order: Vec<usize> = (0..xs.len()).collect();
            order.sort_by(|&a, &b| bowl(&xs[a]).total_cmp(&bowl(&xs[b])));
            order.truncate(16);
            let truth: Vec<f64> = order.iter().map(|&i| losses[i]).collect();
            let m: Vec<f64> = if own {
                let lx: Vec<Vec<f64>> = order.iter().map(|&i| xs[i].clone()).collect();
                let ly = gp.targets(&truth);
                let fit = model::Model::fit_with(lx, &ly, gp.cat.clone(), &[], model::Effort::FULL_EITHER);
                fit.leave_one_out(&ly).into_iter().map(|(m, _)| m).collect()
            } else {
                let loo = global.leave_one_out(&ys);
                order.iter().map(|&i| loo[i].0).collect()
            };
            spearman(&m, &truth)
        };
        (local, rank(true), rank(false))
    };
    // A cliff, 10^4 times steeper beyond x = 0.6: the model of every trial shortens its
    // length scales to it and no longer ranks the trials near the best; the local one does.
    let cliff: Vec<f64> = xs.iter().map(|x| bowl(x) * if x[0] > 0.6 { 1e4 } else { 1.0 }).collect();
    let (local, own, theirs) = choose(&cliff);
    assert!(own > 0.9 && theirs < 0.5, "leave-one-out rank near the best: local {own}, global {theirs}");
    let (m, best) = local.expect("the local model is chosen on the cliff");
    assert_eq!(m.xs.len(), 16);
    assert!(m.xs.iter().all(|x| bowl(x) <= 0.125f64.powi(2) * 5.0 + 1e-12), "{:?}", m.xs);
    assert!(m.xs.contains(&vec![0.25, 0.25]));
    let near: Vec<f64> = m.xs.iter().map(|x| bowl(x)).collect();
    assert_eq!(best, gp.targets(&near).into_iter().reduce(f64::min), "the incumbent is the best local trial");
    // The same bowl without the cliff: the model of every trial ranks them as well, and stays.
    let smooth: Vec<f64> = xs.iter().map(|x| bowl(x)).collect();
    let (local, own, theirs) = choose(&smooth);
    assert!(own <= theirs, "local {own}, global {theirs}");
    assert!(local.is_none(), "the local model replaced an equally good global one");
}

/// A space of four points asked many times: every local ask models repeated points (the
/// same few points, the same or different losses) without failing, and the best is found.
#[test]
fn local_models_of_repeated_points_still_ask() {
    let prog = program("    n: int in 1..=2\n    c: in {a, b}");
    let space = &prog.experiments[0].space;
    let f = |p: &Point| {
        let c = if p["c"] == Value::sym("b") { 0.0 } else { 1.0 };
        (num(p, "n") + c, 0.0)
    };
    for local_choose in [true, false] {
        let o = GpOptions { startup: 4, local_share: 1.0, local_fit: 5, local_choose, ..GpOptions::default() };
        let h = study(&prog, &mut Gp::with_options(space, o), &f, &Point::new(), 2, 30, 1);
        assert_eq!(h.trials.len(), 30);
        assert!(h.trials.iter().all(|t| matches!(t.params["n"], Value::Int(1..=2))));
        assert_eq!(best(&h), 1.0, "n = 1, c = b");
    }
}

/// `local_hot`: while at least `hot_bests` of the last [`HOT_WINDOW`] complete trials were a
/// new best when they came, every ask is local (inside the box around the best) whatever
/// `local_share` says; when none was, `local_share` (0 here) rules and the asks search
/// everywhere.
#[test]
fn every_ask_is_local_while_the_search_progresses() {
    let losses = [5.0, 3.0, 4.0, 2.0, 6.0, 1.0];
    // New bests at 1, 3 and 5; the first loss of all is not one.
    assert_eq!((new_bests(&losses, 10), new_bests(&losses, 3), new_bests(&losses, 1)), (3, 2, 1));
    assert_eq!(new_bests(&[1.0, 3.0, 4.0], 10), 0);

    let prog = program("    x: float in 0.0..1.0\n    y: float in 0.0..1.0");
    let space = &prog.experiments[0].space;
    let ctx = Context { fns: &prog.fns, data: None };
    let loss = |(x, y): (f64, f64)| (x - 0.7).powi(2) + (y - 0.2).powi(2);
    let mut worst_first: Vec<(f64, f64)> =
        (0..20).map(|i| (f64::from((i * 7) % 20) / 20.0 + 0.025, f64::from((i * 13) % 20) / 20.0 + 0.025)).collect();
    worst_first.sort_by(|a, b| loss(*b).total_cmp(&loss(*a)));
    let best_first: Vec<(f64, f64)> = worst_first.iter().rev().copied().collect();
    let history = |order: &[(f64, f64)]| {
        let mut h = History::new(vec![Direction::Minimize], Rank::default());
        for (n, &(x, y)) in order.iter().enumerate() {
            let p = Point::from([("x".to_string(), Value::Float(x)), ("y".to_string(), Value::Float(y))]);
            let mut t = Trial::new(n as u64, p, 1);
            t.state = TrialState::Complete;
            t.values = vec![loss((x, y))];
            t.violations = vec![0.0];
            h.upsert(t);
        }
        h
    };
    let options = GpOptions { startup: 10, local_share: 0.0, local_box: 0.02, ..GpOptions::default() };
    assert_eq!((options.local_hot, options.hot_bests), (LOCAL_HOT, HOT_BESTS));
    let inside = |order: &[(f64, f64)]| -> Vec<bool> {
        let h = history(order);
        let best = *order.iter().min_by(|a, b| loss(**a).total_cmp(&loss(**b))).expect("trials");
        (0..12)
            .map(|seed| {
                let mut gp = Gp::with_options(space, options.clone());
                let ask = AskContext { space, ctx, pins: &Point::new(), history: &h, number: 20, budget: None };
                let Ok(Ask::Point(p)) = gp.ask(&ask, &mut Rng::new(seed)) else { panic!("no point") };
                (num(&p, "x") - best.0).abs() <= 0.01 + 1e-9 && (num(&p, "y") - best.1).abs() <= 0.01 + 1e-9
            })
            .collect()
    };
    // Worst first: each of the last 10 trials was a new best.
    let hot = inside(&worst_first);
    assert!(hot.iter().all(|b| *b), "asks outside the box while progressing: {hot:?}");
    // Best first: none was.
    let cold = inside(&best_first);
    assert!(cold.iter().any(|b| !b), "every ask in the box with no new best: {cold:?}");
}

/// [`FitQuality::repeats`]: a trial that asks again for a point measured worse than the best
/// before it counts; asking again for the best itself does not.
#[test]
fn repeats_count_asks_for_points_measured_worse_than_the_best() {
    let (a, b, c) = (vec![0.1, 0.2], vec![0.5, 0.5], vec![0.9, 0.1]);
    let xs = vec![a.clone(), b.clone(), a.clone(), c, b, a];
    let losses = [1.0, 5.0, 1.0, 0.5, 5.0, 1.0];
    // Trial 2 asks again for the best (1.0); trials 4 and 5 for points above the best (0.5).
    assert_eq!(repeats(&xs, &losses), 2);
    assert_eq!(repeats(&xs[..4], &losses[..4]), 0);
}
