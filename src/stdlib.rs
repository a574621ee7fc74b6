//! The standard library: `stdlib/*.bma`, embedded in the binary.
//!
//! `use std::NAME::{...}` resolves here, never on disk.

/// The stdlib module `std::name`, as its name for diagnostics and its text.
pub fn module(name: &str) -> Option<(&'static str, &'static str)> {
    MODULES.iter().find(|(n, _, _)| *n == name).map(|(_, display, text)| (*display, *text))
}

/// Every stdlib module: its name under `std::`, its display name and its text.
pub const MODULES: [(&str, &str, &str); 1] = [("blocks", "std::blocks", include_str!("../stdlib/blocks.bma"))];
