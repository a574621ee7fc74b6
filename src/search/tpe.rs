//! STUB (being written): falls back to random sampling until implemented.

use super::{Ask, AskContext, SearchError, Strategy};
use crate::ir;
use crate::rng::Rng;

pub const DEFAULT_STARTUP: u64 = 10;

#[derive(Debug, Clone, Default)]
pub struct Tpe;

impl Tpe {
    pub fn new(_space: &ir::Space, _startup: u64) -> Tpe {
        Tpe
    }
}

impl Strategy for Tpe {
    fn ask(&mut self, ctx: &AskContext<'_>, rng: &mut Rng) -> Result<Ask, SearchError> {
        Ok(Ask::Point(ctx.random_point(rng)?))
    }
}
