//! The tuning variants the search benches take from the environment (bench-only; the
//! library reads no environment variable): `BMA_TPE_TUNE`, `BMA_GP_TUNE` and `BMA_AUTO_TUNE`,
//! each a `;`-separated list of `key=value,...` changes of the strategy's default options;
//! variant `k` is the bench's strategy `tpe-x<k>` / `gp-x<k>` / `auto-x<k>`. An unknown key or a value that is not
//! a number stops the bench with a panic naming it (bench code, not bma's).

/// Variant `k` of the environment variable `var`: its `key=value` pairs, the values as numbers.
fn variant(var: &str, k: usize) -> Option<Vec<(String, f64)>> {
    let all = std::env::var(var).unwrap_or_default();
    let spec = all.split(';').filter(|s| !s.is_empty()).nth(k)?;
    let pair = |kv: &str| {
        let (key, v) = kv.split_once('=').unwrap_or_else(|| panic!("{var}: `{kv}` is not key=value"));
        (key.to_string(), v.parse().unwrap_or_else(|_| panic!("{var}: `{v}` is not a number")))
    };
    Some(spec.split(',').map(pair).collect())
}

/// `BMA_TPE_TUNE` variant `k`, if there is one.
pub fn tpe_variant(k: usize) -> Option<bma::search::TpeOptions> {
    let mut o = bma::search::TpeOptions::default();
    for (key, f) in variant("BMA_TPE_TUNE", k)? {
        match key.as_str() {
            "candidates" => o.candidates = f as usize,
            "global_candidates" => o.global_candidates = f as usize,
            "gamma" => o.gamma = f,
            "max_below" => o.max_below = f as usize,
            "max_below_multi_objective" => o.max_below_multi_objective = f as usize,
            "candidates_multi_objective" => o.candidates_multi_objective = f as usize,
            "prior_weight" => o.prior_weight = f,
            "local" => o.local = f,
            "local_scale" => o.local_scale = f,
            "local_top" => o.local_top = f as usize,
            "stall_top" => o.stall_top = f as usize,
            "local_mix" => o.local_mix = f != 0.0,
            "startup" => o.startup = f as u64,
            "stall_after" => o.stall_after = f as u64,
            "stall_rate" => o.stall_rate = f,
            "stall_tolerance" => o.stall_tolerance = f,
            "global_max" => o.global_max = f,
            "shrink_every" => o.shrink_every = f as u64,
            "shrink" => o.shrink = f,
            "min_scale" => o.min_scale = f,
            "restarts" => o.restarts = f != 0.0,
            "restart_distance" => o.restart_distance = f,
            "restart_global" => o.restart_global = f as u64,
            "univariate" => o.univariate = f,
            _ => panic!("unknown bma::search::TpeOptions field {key}"),
        }
    }
    Some(o)
}

/// `BMA_GP_TUNE` variant `k` (`gp-x<k>`): `;`-separated `key=value,...` changes of
/// `GpOptions::default()`.
pub fn gp_variant(k: usize) -> Option<bma::search::GpOptions> {
    use bma::search::GpOutput as Output;
    let mut o = bma::search::GpOptions::default();
    for (key, f) in variant("BMA_GP_TUNE", k)? {
        match key.as_str() {
            "startup" => o.startup = f as u64,
            "candidates" => o.candidates = f as usize,
            "local_starts" => o.local_starts = f as usize,
            "local_iters" => o.local_iters = f as usize,
            "warp" => o.output = if f != 0.0 { Output::Warp } else { Output::Standard },
            "output" => o.output = [Output::Standard, Output::Warp, Output::YeoJohnson, Output::Copula][f as usize],
            "roulette" => o.roulette = f != 0.0,
            "precondition" => o.precondition = f != 0.0,
            "stall_after" => o.stall_after = f as usize,
            "stall_gain" => o.stall_gain = f,
            "xi_rate" => o.xi_rate = f,
            "xi_max" => o.xi_max = f,
            "refit_every" => o.refit_every = f as usize,
            "warm_iters" => o.warm_iters = f as usize,
            "local_share" => o.local_share = f,
            "local_box" => o.local_box = f,
            "either_smoothness" => o.either_smoothness = f != 0.0,
            "local_fit" => o.local_fit = f as usize,
            "local_choose" => o.local_choose = f != 0.0,
            "local_hot" => o.local_hot = f,
            "hot_bests" => o.hot_bests = f as usize,
            _ => panic!("unknown GpOptions field {key}"),
        }
    }
    Some(o)
}

/// `BMA_AUTO_TUNE` variant `k` (`auto-x<k>`): `;`-separated `key=value,...` changes of
/// `AutoOptions::default()`. (search_quality includes this file without using it.)
#[allow(dead_code)]
pub fn auto_variant(k: usize) -> Option<bma::search::auto::AutoOptions> {
    let mut o = bma::search::auto::AutoOptions::default();
    for (key, f) in variant("BMA_AUTO_TUNE", k)? {
        match key.as_str() {
            "first" => o.first = f as usize,
            "every" => o.every = f as usize,
            "max_noise_share" => o.max_noise_share = f,
            "min_loo_rank" => o.min_loo_rank = f,
            "max_local_gain" => o.max_local_gain = f,
            "max_repeats" => o.max_repeats = f as usize,
            "repeats_until" => o.repeats_until = f as usize,
            // `tpe=1`: hand over to Optuna's TPE (no local asks) instead of the default one.
            "tpe" if f == 1.0 => {
                o.tpe = bma::search::TpeOptions { startup: o.tpe.startup, ..bma::search::TpeOptions::optuna() }
            }
            _ => panic!("unknown AutoOptions field {key}"),
        }
    }
    Some(o)
}
