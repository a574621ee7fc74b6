//! STUB (being written): falls back to random sampling until implemented.

use super::{Ask, AskContext, SearchError, Strategy};
use crate::ir::{self, Point};
use crate::rng::Rng;
use crate::space::Context;

#[derive(Debug, Clone, Default)]
pub struct Subspace;

impl Subspace {
    pub fn new(
        _space: &ir::Space,
        _ctx: Context<'_>,
        _pins: &Point,
        _by: Vec<String>,
        _samples: u64,
        _eta: u64,
    ) -> Result<Subspace, SearchError> {
        Ok(Subspace)
    }
}

impl Strategy for Subspace {
    fn ask(&mut self, ctx: &AskContext<'_>, rng: &mut Rng) -> Result<Ask, SearchError> {
        Ok(Ask::Point(ctx.random_point(rng)?))
    }
}
