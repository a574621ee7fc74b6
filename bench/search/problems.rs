//! The test functions of the search benches, shared by `benches/search_quality.rs` and
//! `benches/search_suite.rs` (`#[path]` modules): the five of bench/search/RESULTS.md
//! (Branin, Hartmann6, Rosenbrock-10, Ackley-10, a mixed space) and the suite's mixed
//! and conditional spaces. Each space is `.bma` text compiled by [`compile_space`]; each
//! function is computed here. `bench/search/run.py` and `bench/search/suite.py` define
//! the same functions and domains for Optuna: change both sides together.
#![allow(dead_code, clippy::unwrap_used)]

use bma::ir::{Point, Value};

/// A test function over a space written in `.bma`; `optimum` is its minimum.
pub struct Problem {
    pub name: String,
    pub space: String,
    pub f: Box<dyn Fn(&Point) -> f64 + Send + Sync>,
    pub optimum: f64,
}

pub fn num(p: &Point, k: &str) -> f64 {
    p.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

pub fn xs(p: &Point, d: usize) -> Vec<f64> {
    (0..d).map(|i| num(p, &format!("x{i}"))).collect()
}

pub fn floats(d: usize, lo: f64, hi: f64) -> String {
    (0..d).map(|i| format!("    x{i}: float in {lo:?}..={hi:?}\n")).collect()
}

pub fn branin(p: &Point) -> f64 {
    let (x, y) = (num(p, "x"), num(p, "y"));
    let pi = std::f64::consts::PI;
    (y - 5.1 / (4.0 * pi * pi) * x * x + 5.0 / pi * x - 6.0).powi(2) + 10.0 * (1.0 - 1.0 / (8.0 * pi)) * x.cos() + 10.0
}

pub fn hartmann6(p: &Point) -> f64 {
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
    let x = xs(p, 6);
    -(0..4).map(|i| ALPHA[i] * (-(0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum::<f64>()).exp()).sum::<f64>()
}

pub fn rosenbrock10(p: &Point) -> f64 {
    let x = xs(p, 10);
    (0..9).map(|i| 100.0 * (x[i + 1] - x[i] * x[i]).powi(2) + (1.0 - x[i]).powi(2)).sum()
}

pub fn ackley10(p: &Point) -> f64 {
    let x = xs(p, 10);
    let d = x.len() as f64;
    let s1 = x.iter().map(|v| v * v).sum::<f64>() / d;
    let s2 = x.iter().map(|v| (std::f64::consts::TAU * v).cos()).sum::<f64>() / d;
    -20.0 * (-0.2 * s1.sqrt()).exp() - s2.exp() + 20.0 + std::f64::consts::E
}

/// The mixed space: 3 floats, 1 int, 1 categorical. Minimum 0 at
/// `a = 1, b = -2, c = 0.5, n = 7, kind = beta`.
pub fn mixed(p: &Point) -> f64 {
    let (a, b, c, n) = (num(p, "a"), num(p, "b"), num(p, "c"), num(p, "n"));
    let offset = match p.get("kind").and_then(Value::as_sym) {
        Some("alpha") => 2.0,
        Some("beta") => 0.0,
        _ => 1.0,
    };
    (a - 1.0).powi(2)
        + (b + 2.0).powi(2)
        + 4.0 * (c - 0.5).powi(2)
        + 0.3 * (n - 7.0).powi(2)
        + offset
        + 0.5 * (a - 1.0) * (b + 2.0)
}

/// Branin, Hartmann6, Rosenbrock-10, Ackley-10 and the mixed space (bench/search/RESULTS.md).
pub fn five() -> Vec<Problem> {
    vec![
        Problem {
            name: "branin".into(),
            space: "    x: float in -5.0..=10.0\n    y: float in 0.0..=15.0\n".into(),
            f: Box::new(branin),
            optimum: 0.397_887_357_729_738,
        },
        Problem { name: "hartmann6".into(), space: floats(6, 0.0, 1.0), f: Box::new(hartmann6), optimum: -3.322_368_011_391_339 },
        Problem { name: "rosenbrock10".into(), space: floats(10, -5.0, 10.0), f: Box::new(rosenbrock10), optimum: 0.0 },
        Problem { name: "ackley10".into(), space: floats(10, -32.768, 32.768), f: Box::new(ackley10), optimum: 0.0 },
        Problem {
            name: "mixed".into(),
            space: "    a: float in -5.0..=5.0\n    b: float in -5.0..=5.0\n    c: float in 0.0..=1.0\n    n: int in 0..=10\n    kind: in {alpha, beta, gamma}\n".into(),
            f: Box::new(mixed),
            optimum: 0.0,
        },
    ]
}

/// 4 floats and 4 ints; minimum 0 at `x_i = 1.1 + 0.37 i`, `n_j = 3 - 2 j`.
pub fn int_quad(p: &Point) -> f64 {
    let mut f = 0.0;
    for i in 0..4 {
        f += (i + 1) as f64 * (num(p, &format!("x{i}")) - (1.1 + 0.37 * i as f64)).powi(2);
    }
    for j in 0..4 {
        f += 0.5 * (j + 1) as f64 * (num(p, &format!("n{j}")) - (3.0 - 2.0 * j as f64)).powi(2);
    }
    f + (num(p, "x0") - 1.1) * (num(p, "x1") - 1.47)
}

const LETTERS: [&str; 5] = ["a", "b", "c", "d", "e"];

/// 3 categoricals of 5 values and 3 floats (a Rastrigin-like term each); minimum 0 at
/// `c0 = a, c1 = d, c2 = b`, `x = (0.5, -1.2, 2.1)`.
pub fn cat_rastrigin(p: &Point) -> f64 {
    let mut f = 0.0;
    for (k, shift) in [0.5, -1.2, 2.1].into_iter().enumerate() {
        let v = p.get(&format!("c{k}")).and_then(Value::as_sym).and_then(|s| LETTERS.iter().position(|l| *l == s));
        f += 0.7 * ((v.unwrap_or(4) + 2 * k) % 5) as f64;
        let z = num(p, &format!("x{k}")) - shift;
        f += z * z + 2.0 * (1.0 - (std::f64::consts::TAU * z).cos());
    }
    f
}

/// A conditional space: `model` picks which parameters exist. Minimum 0 at
/// `model = net, lr = 1e-3, width = 6, dropout = 0.1`.
pub fn conditional(p: &Point) -> f64 {
    match p.get("model").and_then(Value::as_sym) {
        Some("linear") => 0.8 + 0.5 * (num(p, "reg").log10() + 2.0).powi(2),
        Some("tree") => 0.4 + 0.1 * (num(p, "depth") - 7.0).powi(2) + (num(p, "leaf") - 0.3).powi(2),
        _ => {
            (num(p, "lr").log10() + 3.0).powi(2)
                + 0.2 * (num(p, "width") - 6.0).powi(2)
                + 4.0 * (num(p, "dropout") - 0.1).powi(2)
        }
    }
}

/// The suite's mixed and conditional spaces.
pub fn mixed_spaces() -> Vec<Problem> {
    let int_quad_space = format!(
        "{}{}",
        floats(4, -5.0, 5.0),
        (0..4).map(|j| format!("    n{j}: int in -10..=10\n")).collect::<String>()
    );
    let cat_space = format!(
        "{}{}",
        (0..3).map(|k| format!("    c{k}: in {{a, b, c, d, e}}\n")).collect::<String>(),
        floats(3, -5.0, 5.0)
    );
    let cond_space = "    model: in {linear, tree, net}\n    when model == linear {\n      reg: float in 1e-4..=1.0 log\n    }\n    when model == tree {\n      depth: int in 1..=12\n      leaf: float in 0.0..=1.0\n    }\n    when model == net {\n      lr: float in 1e-5..=1e-1 log\n      width: int in 3..=8\n      dropout: float in 0.0..=0.5\n    }\n";
    vec![
        Problem { name: "int-quad".into(), space: int_quad_space, f: Box::new(int_quad), optimum: 0.0 },
        Problem { name: "cat-rastrigin".into(), space: cat_space, f: Box::new(cat_rastrigin), optimum: 0.0 },
        Problem { name: "conditional".into(), space: cond_space.into(), f: Box::new(conditional), optimum: 0.0 },
    ]
}

/// Compiles a space (the lines inside `space { }`) into a one-experiment program.
pub fn compile_space(body: &str) -> bma::ir::Program {
    let text = format!("experiment bench {{\n  space {{\n{body}  }}\n  objective {{\n    minimize 0\n  }}\n}}\n");
    let compiled = bma::compile(&bma::Source::new("bench.bma", text));
    let errors: Vec<_> = compiled.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "the bench space must compile: {errors:?}");
    compiled.program
}
