//! `grid(limit:)`: every point of the space, in order.

use super::{Ask, AskContext, SearchError, Strategy};
use crate::ir::{self, Point};
use crate::rng::Rng;
use crate::space::{self, Context};

/// Walks the enumerated grid; `Done` after the last point.
#[derive(Debug, Clone)]
pub struct Grid {
    points: Vec<Point>,
    next: usize,
}

impl Grid {
    pub fn new(space: &ir::Space, ctx: Context<'_>, pins: &Point, limit: u64) -> Result<Grid, SearchError> {
        Ok(Grid { points: space::grid(space, ctx, pins, limit)?, next: 0 })
    }
}

impl Strategy for Grid {
    fn ask(&mut self, ctx: &AskContext<'_>, _rng: &mut Rng) -> Result<Ask, SearchError> {
        // The trial number decides the point, so a resumed study continues where it stopped.
        let i = (ctx.number as usize).max(self.next);
        match self.points.get(i) {
            Some(p) => {
                self.next = i + 1;
                Ok(Ask::Point(p.clone()))
            }
            None => Ok(Ask::Done),
        }
    }
}
