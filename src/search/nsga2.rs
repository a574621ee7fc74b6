//! `nsga2(population:)`: NSGA-II (Deb et al. 2002), steady-state, for mixed spaces.
//!
//! Takes the finished trials, gives one offspring per ask. The parents are the
//! `population` best complete trials of the whole history by constrained
//! non-dominated sorting and crowding distance (elitist survivor selection over
//! parents and offspring, recomputed from the history, so it needs no barrier and
//! no state of its own); two are picked by binary tournament (front, then
//! crowding); numeric coordinates cross by SBX and mutate polynomially, categorical
//! ones cross uniformly and reset at random. The child is resolved through
//! [`space::build`], so a conditional parameter that becomes active takes a
//! parent's value when one has it and a random one otherwise.
//!
//! **Invariant:** until `population` trials are complete the points are random;
//! [`Ask::Wait`] is never returned.

use super::rank;
use super::{Ask, AskContext, SearchError, Strategy};
use crate::ir::{self, Value};
use crate::rng::Rng;
use crate::space::{self, DimKind, Encoding};

/// SBX distribution index (larger: children nearer their parents).
const ETA_C: f64 = 20.0;
/// Polynomial mutation distribution index.
const ETA_M: f64 = 20.0;
/// Probability that two parents cross at all.
const CROSSOVER: f64 = 0.9;

#[derive(Debug, Clone)]
pub struct Nsga2 {
    population: usize,
    encoding: Encoding,
}

impl Nsga2 {
    pub fn new(space: &ir::Space, population: u64) -> Nsga2 {
        Nsga2 { population: (population as usize).max(2), encoding: super::encoding(space) }
    }
}

impl Strategy for Nsga2 {
    fn ask(&mut self, ctx: &AskContext<'_>, rng: &mut Rng) -> Result<Ask, SearchError> {
        let h = ctx.history;
        let complete: Vec<&super::Trial> = h.completed().collect();
        if complete.len() < self.population || self.encoding.dims.is_empty() {
            return Ok(Ask::Point(ctx.random_point(rng)?));
        }
        // Elitist selection: the best `population` of every complete trial.
        let points: Vec<Vec<f64>> = complete.iter().map(|t| rank::losses(t, &h.directions)).collect();
        let viol: Vec<f64> = complete.iter().map(|t| t.total_violation()).collect();
        let mut parents: Vec<(usize, usize, f64)> = Vec::with_capacity(self.population);
        for (r, front) in rank::fronts(&points, &viol).iter().enumerate() {
            let crowd = rank::crowding(&points, front);
            let mut members: Vec<(usize, usize, f64)> = front.iter().zip(crowd).map(|(i, c)| (*i, r, c)).collect();
            if parents.len() + members.len() > self.population {
                members.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
                members.truncate(self.population - parents.len());
            }
            parents.extend(members);
            if parents.len() >= self.population {
                break;
            }
        }
        let tournament = |rng: &mut Rng| {
            let a = parents[rng.index(parents.len())];
            let b = parents[rng.index(parents.len())];
            if (a.1, -a.2) <= (b.1, -b.2) { a.0 } else { b.0 }
        };
        let p1 = self.encoding.encode(&complete[tournament(rng)].params);
        let p2 = self.encoding.encode(&complete[tournament(rng)].params);
        let child = self.offspring(&p1, &p2, rng);
        let enc = &self.encoding;
        let point = space::build(ctx.space, ctx.ctx, ctx.pins, |p, d, _| {
            match enc.index(&p.name).and_then(|i| child[i].map(|x| enc.dims[i].value(x))) {
                Some(v) => v,
                None => space::sample_domain(d, rng),
            }
        })?;
        Ok(Ask::Point(point))
    }
}

impl Nsga2 {
    /// One child's coordinates from two parents' (`None`: absent in both parents).
    fn offspring(&self, p1: &[Option<f64>], p2: &[Option<f64>], rng: &mut Rng) -> Vec<Option<f64>> {
        let n = self.encoding.dims.len();
        let cross = rng.f64() < CROSSOVER;
        let pm = 1.0 / n as f64;
        let mut child = Vec::with_capacity(n);
        for (i, dim) in self.encoding.dims.iter().enumerate() {
            let c = match (p1[i], p2[i]) {
                (Some(a), Some(b)) if cross => Some(match &dim.kind {
                    DimKind::Numeric(_) if rng.f64() < 0.5 => sbx(a, b, rng),
                    DimKind::Numeric(_) => a,
                    DimKind::Categorical(_) => {
                        if rng.f64() < 0.5 {
                            a
                        } else {
                            b
                        }
                    }
                }),
                (Some(a), Some(_)) => Some(a),
                (a, b) => {
                    if rng.f64() < 0.5 {
                        a.or(b)
                    } else {
                        b.or(a)
                    }
                }
            };
            let c = match c {
                Some(x) if rng.f64() < pm => Some(match &dim.kind {
                    DimKind::Numeric(_) => polynomial_mutation(x, rng),
                    DimKind::Categorical(values) => random_other(x, values, rng),
                }),
                c => c,
            };
            child.push(c);
        }
        child
    }
}

/// Simulated binary crossover in `[0, 1]` (bounded form of Deb & Agrawal); one child.
fn sbx(a: f64, b: f64, rng: &mut Rng) -> f64 {
    let (y1, y2) = if a < b { (a, b) } else { (b, a) };
    if y2 - y1 < 1e-14 {
        return a;
    }
    let u = rng.f64();
    let spread = |beta: f64| {
        let alpha = 2.0 - beta.powf(-(ETA_C + 1.0));
        if u <= 1.0 / alpha {
            (u * alpha).powf(1.0 / (ETA_C + 1.0))
        } else {
            (1.0 / (2.0 - u * alpha)).powf(1.0 / (ETA_C + 1.0))
        }
    };
    let beta_lo = 1.0 + 2.0 * y1 / (y2 - y1);
    let c1 = 0.5 * ((y1 + y2) - spread(beta_lo) * (y2 - y1));
    let beta_hi = 1.0 + 2.0 * (1.0 - y2) / (y2 - y1);
    let c2 = 0.5 * ((y1 + y2) + spread(beta_hi) * (y2 - y1));
    let c = if rng.f64() < 0.5 { c1 } else { c2 };
    if c.is_finite() { c.clamp(0.0, 1.0) } else { a }
}

/// Polynomial mutation in `[0, 1]` (bounded form).
fn polynomial_mutation(x: f64, rng: &mut Rng) -> f64 {
    let u = rng.f64();
    let e = 1.0 / (ETA_M + 1.0);
    let delta = if u < 0.5 {
        let xy = 1.0 - x;
        (2.0 * u + (1.0 - 2.0 * u) * xy.powf(ETA_M + 1.0)).powf(e) - 1.0
    } else {
        let xy = x;
        1.0 - (2.0 * (1.0 - u) + 2.0 * (u - 0.5) * xy.powf(ETA_M + 1.0)).powf(e)
    };
    let y = x + delta;
    if y.is_finite() { y.clamp(0.0, 1.0) } else { x }
}

/// A category index other than `x` (when there is another).
fn random_other(x: f64, values: &[Value], rng: &mut Rng) -> f64 {
    let n = values.len();
    if n < 2 {
        return x;
    }
    let cur = x as usize;
    let k = rng.index(n - 1);
    (if k >= cur { k + 1 } else { k }) as f64
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ir::Point;
    use crate::search::{Direction, History, Random, Rank, Trial, TrialState};

    /// The program of a `.bma` text that must compile cleanly.
    pub(crate) fn program(text: &str) -> ir::Program {
        let c = crate::compile(&crate::Source::new("test.bma", text));
        assert!(!c.has_errors(), "{:?}", c.diagnostics);
        c.program
    }

    /// A space of `d` floats `x0..x{d-1}` in `[0, 1]`.
    pub(crate) fn unit_cube(d: usize) -> ir::Program {
        let params: Vec<String> = (0..d).map(|i| format!("x{i}: float in 0.0..=1.0")).collect();
        program(&format!("experiment t {{\n space {{\n {}\n }}\n objective {{ minimize x0 }}\n}}", params.join("\n ")))
    }

    pub(crate) fn coords(p: &Point, d: usize) -> Vec<f64> {
        (0..d).map(|i| p.get(&format!("x{i}")).and_then(Value::as_f64).unwrap_or(f64::NAN)).collect()
    }

    /// Runs `budget` trials of `strategy` on `f` (losses), `parallel` at a time (the
    /// history seen by trial `n` holds the trials numbered `<= n - parallel`).
    pub(crate) fn drive(
        program: &ir::Program,
        strategy: &mut dyn Strategy,
        directions: Vec<Direction>,
        budget: u64,
        parallel: u64,
        seed: u64,
        f: &dyn Fn(&Point) -> (Vec<f64>, Vec<f64>),
    ) -> History {
        let space = &program.experiments[0].space;
        let ctx = space::Context { fns: &program.fns, data: None };
        let pins = Point::new();
        let mut full = History::new(directions.clone(), Rank::Pareto);
        for n in 0..budget {
            let mut seen = History::new(directions.clone(), Rank::Pareto);
            seen.trials = full.trials.iter().filter(|t| t.number + parallel <= n).cloned().collect();
            let ask = AskContext { space, ctx, pins: &pins, history: &seen, number: n, budget: Some(budget) };
            let mut rng = Rng::derive(seed, n);
            let Ok(Ask::Point(p)) = strategy.ask(&ask, &mut rng) else { panic!("no point at trial {n}") };
            let (values, violations) = f(&p);
            let mut t = Trial::new(n, p, 0);
            t.values = values;
            t.violations = violations;
            t.state = TrialState::Complete;
            full.upsert(t);
        }
        full
    }

    /// ZDT1 on `x` in `[0,1]^d`: both objectives minimized, front `f2 = 1 - sqrt(f1)`.
    pub(crate) fn zdt1(x: &[f64]) -> Vec<f64> {
        let d = x.len();
        let f1 = x[0];
        let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (d - 1) as f64;
        vec![f1, g * (1.0 - (f1 / g).sqrt())]
    }

    /// Hypervolume of every complete trial, reference (1.1, 1.1) on the raw ZDT1 values
    /// (which lie in [0, 1] on the front; the ideal is 1.1² - 1/3 ≈ 0.8767).
    /// Hypervolume of the completed trials' ZDT1 values from the reference point
    /// `(1.1, 1.1)`; at d = 30 after 200 trials hardly any point is inside that box
    /// (g(x) is still far above 1), so for d >= 30 the reference is `(1.1, 11.0)`, which
    /// holds every ZDT1 value (f1 <= 1, f2 <= g <= 10).
    pub(crate) fn zdt_hv(h: &History) -> f64 {
        let pts: Vec<Vec<f64>> = h.completed().map(|t| t.values.clone()).collect();
        let d = h.trials.first().map_or(0, |t| t.params.len());
        let f2_ref = if d >= 30 { 11.0 } else { 1.1 };
        rank::hypervolume(&pts, &[1.1, f2_ref]).unwrap_or(f64::NAN)
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    #[test]
    fn zdt1_hypervolume_beats_random() {
        for d in [5usize, 30] {
            let prog = unit_cube(d);
            let f = |p: &Point| (zdt1(&coords(p, d)), vec![]);
            let dirs = vec![Direction::Minimize; 2];
            let (mut ours, mut rand) = (Vec::new(), Vec::new());
            for seed in 0..5 {
                let mut s = Nsga2::new(&prog.experiments[0].space, 20);
                ours.push(zdt_hv(&drive(&prog, &mut s, dirs.clone(), 200, 1, seed, &f)));
                rand.push(zdt_hv(&drive(&prog, &mut Random, dirs.clone(), 200, 1, seed, &f)));
            }
            let (o, r) = (median(ours.clone()), median(rand.clone()));
            eprintln!("ZDT1 d={d}, 200 trials, median HV over 5 seeds: nsga2 {o:.4}, random {r:.4}");
            assert!(o > r, "d={d}: nsga2 {ours:?} vs random {rand:?}");
            assert!(ours.iter().zip(&rand).filter(|(a, b)| a > b).count() >= 4, "{ours:?} vs {rand:?}");
        }
    }

    #[test]
    fn asynchronous_and_constrained() {
        // Constraint x0 >= 0.5 (violation 0.5 - x0): the front found must be feasible.
        let d = 5;
        let prog = unit_cube(d);
        let f = |p: &Point| {
            let x = coords(p, d);
            (zdt1(&x), vec![(0.5 - x[0]).max(0.0)])
        };
        let mut s = Nsga2::new(&prog.experiments[0].space, 16);
        let h = drive(&prog, &mut s, vec![Direction::Minimize; 2], 160, 4, 7, &f);
        let late = h.trials.iter().filter(|t| t.number >= 80);
        let feasible = late.clone().filter(|t| t.is_feasible()).count();
        assert!(feasible * 10 >= late.count() * 7, "only {feasible} of the late trials are feasible");
        let complete: Vec<&Trial> = h.completed().collect();
        let front = rank::pareto_front(&complete, &h.directions);
        assert!(front.iter().all(|i| complete[*i].is_feasible()));
    }

    #[test]
    fn mixed_conditional_space() {
        let prog = program(
            "experiment t {
               space {
                 kind: in {a, b}
                 x: float in 0.0..=1.0
                 n: int in 1..=8
                 when kind == b { y: float in 0.0..=1.0 }
               }
               objective { minimize x }
             }",
        );
        // Minimum 0 at kind = b, y = 0, x = 0, n = 8.
        let f = |p: &Point| {
            let x = p.get("x").and_then(Value::as_f64).unwrap_or(1.0);
            let n = p.get("n").and_then(Value::as_f64).unwrap_or(1.0);
            let loss = match p.get("y").and_then(Value::as_f64) {
                Some(y) => x + y + (8.0 - n) / 8.0,
                None => 1.0 + x + (8.0 - n) / 8.0,
            };
            (vec![loss], vec![])
        };
        let mut s = Nsga2::new(&prog.experiments[0].space, 12);
        let h = drive(&prog, &mut s, vec![Direction::Minimize], 150, 1, 3, &f);
        for t in &h.trials {
            let is_b = t.params.get("kind") == Some(&Value::sym("b"));
            assert_eq!(t.params.contains_key("y"), is_b, "{:?}", t.params);
        }
        let best = h.ranked()[0];
        assert!(best.values[0] < 0.25, "best {:?}", best.values);
    }
}
