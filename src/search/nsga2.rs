//! `nsga2(population:)`: NSGA-II (Deb et al. 2002), steady-state, for mixed spaces.
//!
//! Takes the finished trials, gives one offspring per ask. The parents are the
//! `population` best complete trials of the whole history by constrained
//! non-dominated sorting and crowding distance (elitist survivor selection over
//! parents and offspring, so it needs no barrier); two are picked by binary tournament (front, then
//! crowding); numeric coordinates cross by SBX and mutate polynomially, categorical
//! ones cross uniformly and reset at random. The child is resolved through
//! [`space::build`], so a conditional parameter that becomes active takes a
//! parent's value when one has it and a random one otherwise.
//!
//! **Incremental.** Sorting the whole history on each ask is `O(M N^2)`; instead a
//! [`Pool`] keeps only the trials dominated by fewer than `population` others (the
//! rest can never be selected again: their dominators, which only grow in number, fill
//! the better fronts), with their exact dominator counts, updated in `O(M |pool|)` per
//! new trial. The pool is closed under domination (a member's dominators are members),
//! so its fronts and crowding distances are those of the whole history, and the
//! population sorted from it is the same (`cached_population_equals_the_full_sort`).
//! The pool holds about `population * (1 + ln(N / population))` trials with two
//! objectives.
//!
//! **Invariant:** until `population` trials are complete the points are random;
//! [`Ask::Wait`] is never returned.

use std::collections::HashSet;

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
    pool: Pool,
}

impl Nsga2 {
    pub fn new(space: &ir::Space, population: u64) -> Nsga2 {
        let population = (population as usize).max(2);
        Nsga2 { population, encoding: super::encoding(space), pool: Pool::new(population) }
    }
}

/// A complete trial that may still be selected.
#[derive(Debug, Clone)]
struct Member {
    number: u64,
    losses: Vec<f64>,
    violation: f64,
    x: Vec<Option<f64>>,
    /// How many complete trials dominate this one (constrained domination).
    dominators: usize,
}

/// The complete trials dominated by fewer than `population` others, by trial number,
/// and the population selected from them.
#[derive(Debug, Clone)]
struct Pool {
    population: usize,
    seen: HashSet<u64>,
    members: Vec<Member>,
    /// `(index in members, front, crowding)`; stale when `dirty`.
    selected: Vec<(usize, usize, f64)>,
    dirty: bool,
}

impl Pool {
    fn new(population: usize) -> Pool {
        Pool { population, seen: HashSet::new(), members: Vec::new(), selected: Vec::new(), dirty: true }
    }

    /// Takes in the complete trials not seen yet (all of them again if some seen one is
    /// no longer complete: another history).
    fn sync(&mut self, h: &super::History, encoding: &Encoding) {
        if h.completed().filter(|t| self.seen.contains(&t.number)).count() < self.seen.len() {
            *self = Pool::new(self.population);
        }
        for t in h.completed() {
            if self.seen.insert(t.number) {
                self.add(t.number, rank::losses(t, &h.directions), t.total_violation(), encoding.encode(&t.params));
            }
        }
    }

    fn add(&mut self, number: u64, losses: Vec<f64>, violation: f64, x: Vec<Option<f64>>) {
        let dom = |a: &[f64], va: f64, b: &[f64], vb: f64| rank::constrained_dominates(a, va, b, vb);
        let dominators = self.members.iter().filter(|m| dom(&m.losses, m.violation, &losses, violation)).count();
        // Dominated by `population` members or more: never selected again. (By one that
        // left the pool too: that one's dominators, at least `population`, are
        // dominators of this one and, following the chain, members are among them.)
        if dominators >= self.population {
            return;
        }
        for m in &mut self.members {
            if dom(&losses, violation, &m.losses, m.violation) {
                m.dominators += 1;
            }
        }
        let p = self.population;
        self.members.retain(|m| m.dominators < p);
        let at = self.members.partition_point(|m| m.number < number);
        self.members.insert(at, Member { number, losses, violation, x, dominators });
        self.dirty = true;
    }

    /// The population: `(member, front, crowding)`, fronts in order.
    fn selected(&mut self) -> &[(usize, usize, f64)] {
        if self.dirty {
            let points: Vec<Vec<f64>> = self.members.iter().map(|m| m.losses.clone()).collect();
            let viol: Vec<f64> = self.members.iter().map(|m| m.violation).collect();
            self.selected = select(&points, &viol, self.population);
            self.dirty = false;
        }
        &self.selected
    }
}

/// Elitist selection: the best `population` points by front, then crowding (ties: the
/// lower index); `(index, front, crowding)`, fronts in order.
fn select(points: &[Vec<f64>], viol: &[f64], population: usize) -> Vec<(usize, usize, f64)> {
    let mut parents: Vec<(usize, usize, f64)> = Vec::with_capacity(population);
    for (r, front) in rank::fronts(points, viol).iter().enumerate() {
        let crowd = rank::crowding(points, front);
        let mut members: Vec<(usize, usize, f64)> = front.iter().zip(crowd).map(|(i, c)| (*i, r, c)).collect();
        if parents.len() + members.len() > population {
            members.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
            members.truncate(population - parents.len());
        }
        parents.extend(members);
        if parents.len() >= population {
            break;
        }
    }
    parents
}

impl Strategy for Nsga2 {
    fn ask(&mut self, ctx: &AskContext<'_>, rng: &mut Rng) -> Result<Ask, SearchError> {
        let h = ctx.history;
        if h.completed().count() < self.population || self.encoding.dims.is_empty() {
            return Ok(Ask::Point(ctx.random_point(rng)?));
        }
        self.pool.sync(h, &self.encoding);
        let parents = self.pool.selected();
        let tournament = |rng: &mut Rng| {
            let a = parents[rng.index(parents.len())];
            let b = parents[rng.index(parents.len())];
            if (a.1, -a.2) <= (b.1, -b.2) { a.0 } else { b.0 }
        };
        let (i1, i2) = (tournament(rng), tournament(rng));
        let (p1, p2) = (&self.pool.members[i1].x, &self.pool.members[i2].x);
        let child = self.offspring(p1, p2, rng);
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

    /// A test objective: a point's (losses, constraint violations).
    pub(crate) type Objective<'a> = dyn Fn(&Point) -> (Vec<f64>, Vec<f64>) + 'a;

    /// Runs `budget` trials of `strategy` on `f` (losses), `parallel` at a time (the
    /// history seen by trial `n` holds the trials numbered `<= n - parallel`).
    pub(crate) fn drive(
        program: &ir::Program,
        strategy: &mut dyn Strategy,
        directions: Vec<Direction>,
        budget: u64,
        parallel: u64,
        seed: u64,
        f: &Objective<'_>,
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

    /// The population from the pool, as `(trial number, front, crowding)`.
    fn pool_population(pool: &mut Pool) -> Vec<(u64, usize, f64)> {
        let sel = pool.selected().to_vec();
        sel.into_iter().map(|(i, r, c)| (pool.members[i].number, r, c)).collect()
    }

    /// The population by sorting every complete trial (the old way).
    fn full_population(h: &History, population: usize) -> Vec<(u64, usize, f64)> {
        let mut complete: Vec<&Trial> = h.completed().collect();
        complete.sort_by_key(|t| t.number);
        let points: Vec<Vec<f64>> = complete.iter().map(|t| rank::losses(t, &h.directions)).collect();
        let viol: Vec<f64> = complete.iter().map(|t| t.total_violation()).collect();
        select(&points, &viol, population).into_iter().map(|(i, r, c)| (complete[i].number, r, c)).collect()
    }

    #[test]
    fn cached_population_equals_the_full_sort() {
        // Two and three objectives, some trials infeasible, trials arriving out of order
        // (4 in parallel), random points and NSGA-II's own.
        for (m, parallel, seed) in [(2usize, 1u64, 1u64), (2, 4, 2), (3, 4, 3)] {
            let d = 6;
            let prog = unit_cube(d);
            let f = |p: &Point| {
                let x = coords(p, d);
                let mut v = zdt1(&x);
                if m == 3 {
                    v.push((x[2] - 0.3).powi(2) + x[1]);
                }
                (v, vec![(0.2 - x[3]).max(0.0)])
            };
            let dirs = vec![Direction::Minimize; m];
            let space = &prog.experiments[0].space;
            for strategy in [&mut Random as &mut dyn Strategy, &mut Nsga2::new(space, 20)] {
                let h = drive(&prog, strategy, dirs.clone(), 400, parallel, seed, &f);
                let enc = crate::search::encoding(space);
                let mut pool = Pool::new(20);
                let mut seen = History::new(dirs.clone(), Rank::Pareto);
                // Completion order: trial n finishes after trial n + 1 when n is even.
                let mut order: Vec<usize> = (0..h.trials.len()).collect();
                for pair in order.chunks_mut(2) {
                    pair.reverse();
                }
                for (k, &i) in order.iter().enumerate() {
                    seen.trials.push(h.trials[i].clone());
                    if k % 7 == 0 || k + 1 == order.len() {
                        pool.sync(&seen, &enc);
                        assert_eq!(pool_population(&mut pool), full_population(&seen, 20), "m = {m}, after {k}");
                    }
                }
                assert!(pool.members.len() < 200, "the pool keeps {} of 400 trials", pool.members.len());
            }
        }
    }

    #[test]
    fn a_new_history_resets_the_pool() {
        let prog = unit_cube(2);
        let dirs = vec![Direction::Minimize; 2];
        let f = |p: &Point| (zdt1(&coords(p, 2)), vec![]);
        let a = drive(&prog, &mut Random, dirs.clone(), 60, 1, 1, &f);
        let b = drive(&prog, &mut Random, dirs.clone(), 30, 1, 2, &f);
        let enc = crate::search::encoding(&prog.experiments[0].space);
        let mut pool = Pool::new(10);
        pool.sync(&a, &enc);
        pool.sync(&b, &enc);
        assert_eq!(pool_population(&mut pool), full_population(&b, 10));
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
