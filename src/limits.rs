//! Limits on what a study may ask for, read by the checker (which reports a setting past
//! them) and by the search (which holds a run to them).
//!
//! Takes nothing, gives constants. A leaf: it imports no other module, so any layer may
//! read it.
//!
//! **Invariant:** a setting the checker accepts is within these limits, so the search
//! never has to refuse what `bma check` let through.

/// The most trials one process runs at once (`search { parallel = }`, `--parallel`): each is a
/// thread of its own, and past the machine's cores more of them only share the cores.
pub const MAX_PARALLEL: usize = 1024;

/// The largest `k` of `top_k(k)`: the metric is measured for every k up to this (and up to
/// the classes), so an objective on it is known before any trial runs.
pub const TOP_K_MAX: usize = 10;
