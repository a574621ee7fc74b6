//! STUB (being written): falls back to random sampling until implemented.

use super::{Ask, AskContext, SearchError, Strategy};
use crate::ir;
use crate::rng::Rng;

#[derive(Debug, Clone, Default)]
pub struct Evolution;

impl Evolution {
    pub fn new(_space: &ir::Space, _population: u64, _sample: u64) -> Evolution {
        Evolution
    }
}

impl Strategy for Evolution {
    fn ask(&mut self, ctx: &AskContext<'_>, rng: &mut Rng) -> Result<Ask, SearchError> {
        Ok(Ask::Point(ctx.random_point(rng)?))
    }
}
