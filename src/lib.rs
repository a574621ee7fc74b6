//! bma: declarative automatic model search.
//!
//! The pipeline, in reading order: `source` → `syntax` → `ast` → `ir` → `check`,
//! reported through `diagnostic`. [`compile`] is the one entry point for
//! `bma check`, `run`, `watch`, the LSP and the tests. The library prints nothing
//! and never exits the process.

pub mod source;
pub mod diagnostic;
pub mod ast;
pub mod syntax;
pub mod ir;
pub mod stdlib;
