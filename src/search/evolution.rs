//! `evolution(population:, sample:)`: aging (regularized) evolution, Real et al. 2019.
//!
//! Takes the finished trials, gives one mutant per ask. The population is the last
//! `population` complete trials by number (the oldest die first, whatever their
//! quality); `sample` of them are drawn at random, the best by the study's rank wins,
//! and one of its active free parameters is mutated: a numeric one moves by a Gaussian
//! step in its `[0, 1]` coordinate (sd 0.2), a categorical one takes another value.
//! Parameters that become active through the mutation are drawn at random.
//!
//! **Invariant:** until `population` trials are complete the points are random; the
//! strategy keeps no state, so it never waits.

use super::rank;
use super::{Ask, AskContext, SearchError, Strategy};
use crate::ir;
use crate::rng::Rng;
use crate::space::{self, DimKind, Encoding};

/// The sd of a numeric mutation, in unit coordinates.
const STEP: f64 = 0.2;

#[derive(Debug, Clone)]
pub struct Evolution {
    population: usize,
    sample: usize,
    encoding: Encoding,
}

impl Evolution {
    pub fn new(space: &ir::Space, population: u64, sample: u64) -> Evolution {
        let population = (population as usize).max(2);
        Evolution { population, sample: (sample as usize).clamp(1, population), encoding: super::encoding(space) }
    }
}

impl Strategy for Evolution {
    fn ask(&mut self, ctx: &AskContext<'_>, rng: &mut Rng) -> Result<Ask, SearchError> {
        let h = ctx.history;
        let complete: Vec<&super::Trial> = h.completed().collect();
        if complete.len() < self.population || self.encoding.dims.is_empty() {
            return Ok(Ask::Point(ctx.random_point(rng)?));
        }
        let alive = &complete[complete.len() - self.population..];
        // `sample` distinct members (partial Fisher-Yates).
        let mut idx: Vec<usize> = (0..alive.len()).collect();
        for k in 0..self.sample {
            let j = k + rng.index(idx.len() - k);
            idx.swap(k, j);
        }
        let contenders: Vec<&super::Trial> = idx[..self.sample].iter().map(|&i| alive[i]).collect();
        let best = rank::order(&contenders, &h.directions, &h.rank).first().copied().unwrap_or(0);
        let parent = &contenders[best].params;
        // The mutated parameter: one of the parent's free, unpinned parameters.
        let mutable: Vec<usize> = (0..self.encoding.dims.len())
            .filter(|&i| {
                parent.contains_key(&self.encoding.dims[i].name) && !ctx.pins.contains_key(&self.encoding.dims[i].name)
            })
            .collect();
        if mutable.is_empty() {
            return Ok(Ask::Point(ctx.random_point(rng)?));
        }
        let target = mutable[rng.index(mutable.len())];
        let dim = &self.encoding.dims[target];
        let old = parent.get(&dim.name).and_then(|v| dim.coordinate(v)).unwrap_or(0.5);
        let new_value = match &dim.kind {
            DimKind::Numeric(axis) => {
                // Retry a few times so that a stepped or int axis really moves.
                let mut v = dim.value(old);
                for _ in 0..8 {
                    v = dim.value(reflect(old + STEP * rng.normal()));
                    if Some(&v) != parent.get(&dim.name) || axis.levels() == Some(1) {
                        break;
                    }
                }
                v
            }
            DimKind::Categorical(values) if values.len() > 1 => {
                let cur = old as usize;
                let k = rng.index(values.len() - 1);
                values[if k >= cur { k + 1 } else { k }].clone()
            }
            DimKind::Categorical(_) => dim.value(old),
        };
        let point = space::build(ctx.space, ctx.ctx, ctx.pins, |p, d, _| {
            if p.name == dim.name {
                new_value.clone()
            } else {
                parent.get(&p.name).cloned().unwrap_or_else(|| space::sample_domain(d, rng))
            }
        })?;
        Ok(Ask::Point(point))
    }
}

/// Folds a coordinate back into `[0, 1]` by reflection at the ends.
fn reflect(x: f64) -> f64 {
    if !x.is_finite() {
        return 0.5;
    }
    let m = x.rem_euclid(2.0);
    if m > 1.0 { 2.0 - m } else { m }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Point, Value};
    use crate::search::nsga2::tests::{coords, drive, program, unit_cube};
    use crate::search::{Direction, Random};

    fn best(h: &crate::search::History) -> f64 {
        h.completed().map(|t| t.values[0]).fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn beats_random_on_a_sphere() {
        // Shifted sphere in 6-d, minimum 0 at x = 0.3.
        let d = 6;
        let prog = unit_cube(d);
        let f = |p: &Point| (vec![coords(p, d).iter().map(|x| (x - 0.3) * (x - 0.3)).sum::<f64>()], vec![]);
        let (mut ours, mut rand) = (0.0, 0.0);
        let mut wins = 0;
        for seed in 0..8 {
            let mut s = Evolution::new(&prog.experiments[0].space, 20, 5);
            let o = best(&drive(&prog, &mut s, vec![Direction::Minimize], 200, 2, seed, &f));
            let r = best(&drive(&prog, &mut Random, vec![Direction::Minimize], 200, 2, seed, &f));
            wins += usize::from(o < r);
            ours += o / 8.0;
            rand += r / 8.0;
        }
        eprintln!("sphere-6, 200 trials, mean best over 8 seeds: evolution {ours:.4}, random {rand:.4}");
        assert!(ours < rand * 0.5 && wins >= 6, "evolution {ours} vs random {rand} ({wins} wins)");
    }

    #[test]
    fn mutates_one_parameter_and_respects_conditions() {
        let prog = program(
            "experiment t {
               space {
                 kind: in {a, b, c}
                 x: float in 0.0..=1.0
                 when kind == b { y: int in 1..=4 }
               }
               objective { minimize x }
             }",
        );
        let f = |p: &Point| (vec![p.get("x").and_then(Value::as_f64).unwrap_or(1.0)], vec![]);
        let mut s = Evolution::new(&prog.experiments[0].space, 10, 3);
        let h = drive(&prog, &mut s, vec![Direction::Minimize], 80, 1, 5, &f);
        for t in &h.trials {
            assert_eq!(t.params.contains_key("y"), t.params.get("kind") == Some(&Value::sym("b")));
        }
        // Every mutant differs from some member of the population in at most two
        // parameters (the mutated one and a parameter it switched on or off).
        for t in h.trials.iter().skip(10) {
            let near = h.trials[..t.number as usize].iter().any(|p| {
                let keys: std::collections::BTreeSet<&String> = p.params.keys().chain(t.params.keys()).collect();
                keys.iter().filter(|k| p.params.get(**k) != t.params.get(**k)).count() <= 2
            });
            assert!(near, "trial {} is no mutant: {:?}", t.number, t.params);
        }
    }

    #[test]
    fn reflect_stays_inside() {
        for x in [-2.5, -0.2, 0.0, 0.4, 1.0, 1.3, 7.9] {
            let r = reflect(x);
            assert!((0.0..=1.0).contains(&r), "{x} -> {r}");
        }
        assert!((reflect(1.25) - 0.75).abs() < 1e-12 && (reflect(-0.25) - 0.25).abs() < 1e-12);
    }
}
