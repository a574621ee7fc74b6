//! bma's allocator options (`bma::configure_allocator`, vendor/mimalloc-options): the purge
//! delay reaches mimalloc's option table at the index the wrapper crate names.
//!
//! One test in its own process (this file is its own test binary), so that nothing else in it
//! has set the option first.

#[test]
fn configure_allocator_sets_mimalloc_purge_delay() {
    // Before bma sets it, the entry at the wrapper's index holds mimalloc v3's default purge
    // delay (1000 ms, `options.c`): a wrong index would read another option (their defaults
    // are 0, 1, 2, 10, 32, 100, 400, ... but not 1000). `MIMALLOC_PURGE_DELAY` in the test's
    // environment would change the default; CI and `cargo test` set none.
    assert_eq!(
        mimalloc_options::purge_delay(),
        1000,
        "the option at mimalloc-options' index is not mimalloc v3's purge delay \
         (or MIMALLOC_PURGE_DELAY is set in the environment)"
    );
    bma::configure_allocator();
    assert_eq!(mimalloc_options::purge_delay(), bma::ALLOCATOR_PURGE_DELAY_MS);
    assert_ne!(bma::ALLOCATOR_PURGE_DELAY_MS, 1000, "the setting would change nothing");
    // Out-of-range values are clamped to what mimalloc reads (`-1`: never purge).
    mimalloc_options::set_purge_delay(-5);
    assert_eq!(mimalloc_options::purge_delay(), -1);
    mimalloc_options::set_purge_delay(i64::MAX);
    assert_eq!(mimalloc_options::purge_delay(), i64::from(i32::MAX));
    // Allocation still works after the change (a block larger than a mimalloc page).
    let v = vec![1.5f32; 1 << 22];
    assert_eq!(v.iter().map(|&x| f64::from(x)).sum::<f64>(), 1.5 * f64::from(1u32 << 22));
    bma::configure_allocator();
}
