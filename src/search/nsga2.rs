//! STUB (being written): falls back to random sampling until implemented.

use super::{Ask, AskContext, SearchError, Strategy};
use crate::ir;
use crate::rng::Rng;

#[derive(Debug, Clone, Default)]
pub struct Nsga2;

impl Nsga2 {
    pub fn new(_space: &ir::Space, _population: u64) -> Nsga2 {
        Nsga2
    }
}

impl Strategy for Nsga2 {
    fn ask(&mut self, ctx: &AskContext<'_>, rng: &mut Rng) -> Result<Ask, SearchError> {
        Ok(Ask::Point(ctx.random_point(rng)?))
    }
}
