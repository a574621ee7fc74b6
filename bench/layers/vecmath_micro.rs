//! Per-element cost of the vendored burn-flex's branch-free f32 exp/tanh/sigmoid/erf/GELU
//! (vendor/burn-flex/src/ops/vecmath.rs, its scalar functions, pasted in by vecmath.sh as
//! `vecmath_scalar.rs`) against what burn-flex called before (std's/glibc's scalar `expf`,
//! `tanhf`, the branchy sigmoid, glibc's `erff`), over a 1 Mi-element slice in place, one
//! thread. Prints, per function and side, the best of REPS alternating runs of process CPU
//! time in ns per element.
#![allow(clippy::all)]
mod v {
    include!(concat!(env!("VECMATH_DIR"), "/vecmath_scalar.rs"));
}

unsafe extern "C" {
    fn erff(x: f32) -> f32;
    fn clock_gettime(clk: i32, ts: *mut [i64; 2]) -> i32;
}

fn cpu_ns() -> f64 {
    let mut ts = [0i64; 2];
    unsafe { clock_gettime(2, &mut ts) }; // CLOCK_PROCESS_CPUTIME_ID
    ts[0] as f64 * 1e9 + ts[1] as f64
}

fn old_sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}
fn old_gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + unsafe { erff(x / core::f32::consts::SQRT_2) })
}

#[inline(never)]
fn run(xs: &mut [f32], f: fn(f32) -> f32) {
    for x in xs.iter_mut() {
        *x = f(*x);
    }
}
// Monomorphised per function, so the branch-free ones inline and vectorise.
macro_rules! kernel {
    ($name:ident, $f:expr) => {
        #[inline(never)]
        fn $name(xs: &mut [f32]) {
            for x in xs.iter_mut() {
                *x = $f(*x);
            }
        }
    };
}
kernel!(old_exp, |x: f32| x.exp());
kernel!(new_exp, v::exp_f32);
kernel!(old_tanh, |x: f32| x.tanh());
kernel!(new_tanh, v::tanh_f32);
kernel!(old_sig, old_sigmoid);
kernel!(new_sig, v::sigmoid_f32);
kernel!(old_erf, |x: f32| unsafe { erff(x) });
kernel!(new_erf, v::erf_f32);
kernel!(old_gel, old_gelu);
kernel!(new_gel, v::gelu_f32);

fn main() {
    let _ = run; // keep the generic form for reference
    let reps: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let n = 1 << 20;
    let src: Vec<f32> = (0..n).map(|i| ((i * 7919) % 20011) as f32 * 1e-3 - 10.0).collect();
    let cases: [(&str, fn(&mut [f32]), fn(&mut [f32])); 5] = [
        ("exp", old_exp, new_exp),
        ("tanh", old_tanh, new_tanh),
        ("sigmoid", old_sig, new_sig),
        ("erf", old_erf, new_erf),
        ("gelu", old_gel, new_gel),
    ];
    println!("| function | old ns/elem (CPU, best of {reps}) | new ns/elem | speed-up |");
    println!("|---|---|---|---|");
    for (name, old, new) in cases {
        let (mut bo, mut bn) = (f64::MAX, f64::MAX);
        let mut buf = src.clone();
        for _ in 0..reps {
            for (k, best) in [(old, &mut bo), (new, &mut bn)] {
                buf.copy_from_slice(&src);
                let t = cpu_ns();
                k(&mut buf);
                let dt = (cpu_ns() - t) / n as f64;
                std::hint::black_box(&buf);
                *best = best.min(dt);
            }
        }
        println!("| {name} | {bo:.2} | {bn:.2} | {:.1}x |", bo / bn);
    }
}
