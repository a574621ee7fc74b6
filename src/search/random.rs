//! `random`: independent uniform (log-uniform for `log`) draws.

use super::{Ask, AskContext, SearchError, Strategy};
use crate::rng::Rng;

/// Samples every point independently from the space.
#[derive(Debug, Clone, Copy, Default)]
pub struct Random;

impl Strategy for Random {
    fn ask(&mut self, ctx: &AskContext<'_>, rng: &mut Rng) -> Result<Ask, SearchError> {
        Ok(Ask::Point(ctx.random_point(rng)?))
    }
}
