//! Safe wrappers for the one mimalloc option bma sets: the purge delay.
//!
//! Takes: nothing but the option's value. Gives: [`set_purge_delay`] and [`purge_delay`].
//! Invariant: this is the only `unsafe` code bma adds outside `vendor/burn-flex`; the bma crate
//! itself forbids `unsafe` (`[lints.rust] unsafe_code = "forbid"`), so the FFI calls live here
//! (see `README.md` beside this file).
//!
//! mimalloc returns ("purges") freed memory to the OS a while after it is freed: every
//! `purge_delay` milliseconds (mimalloc v3's default is 1000) it decommits every free range of
//! its arenas, and the next allocation faults those pages in afresh (zeroed by the kernel).
//! A training step frees and reallocates the same tensors of megabytes every 0.1-0.5 s, so with
//! the default a large part of the step's memory was faulted in again every second or two.

use libmimalloc_sys as ffi;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (`include/mimalloc.h`: the sixteenth
/// enumerator, index 15, the same as in v2). libmimalloc-sys 0.1.49 does not declare a constant
/// for it.
const MI_OPTION_PURGE_DELAY: ffi::mi_option_t = 15;

/// Sets mimalloc's purge delay in milliseconds (`-1`: never purge, `0`: purge at once), for
/// the whole process. It overrides `MIMALLOC_PURGE_DELAY` from the environment.
///
/// Call it before the process starts threads (first thing in `main`): mimalloc's option table
/// is a plain C array, and the threads that allocate read this entry without synchronisation.
/// Called later it is still a single aligned word store that the other threads observe
/// sooner or later, which mimalloc itself does when it initialises an option lazily.
pub fn set_purge_delay(milliseconds: i64) {
    let value = milliseconds.clamp(-1, i64::from(i32::MAX)) as core::ffi::c_long;
    // SAFETY: `mi_option_set` takes any option index (it checks the range itself) and any
    // value; it writes the option's entry in mimalloc's static table and touches no memory
    // of ours. `MI_OPTION_PURGE_DELAY` is the purge delay's index in the mimalloc version this
    // crate links (checked by bma's `tests/allocator.rs` against the default value).
    unsafe { ffi::mi_option_set(MI_OPTION_PURGE_DELAY, value) }
}

/// mimalloc's current purge delay in milliseconds.
pub fn purge_delay() -> i64 {
    // SAFETY: `mi_option_get` reads (and on first use initialises from the environment) one
    // entry of mimalloc's static option table; the index is in range (see above).
    // `c_long` is `i64` on Linux and macOS but `i32` on Windows: the conversion is not useless
    // everywhere.
    #[allow(clippy::useless_conversion)]
    let value = i64::from(unsafe { ffi::mi_option_get(MI_OPTION_PURGE_DELAY) });
    value
}
