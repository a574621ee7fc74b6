//! GFLOP/s of the GEMMs behind one 32->32 3x3 `same` convolution of the digits CNN (batch 64,
//! 8x8 maps: k = 32 * 9 = 288 column rows, n = 64 * 64 = 4096 pixels), each in the operand
//! layouts vendor/burn-flex's `conv2d_gemm.rs` uses or used, on a 1-thread rayon pool with
//! gemm's `Parallelism::None` and `Parallelism::Rayon(0)`. Built with and without gemm's
//! `x86-v4` feature (AVX-512 kernels) by bench/train/gemm_shapes.sh.

use std::time::Instant;

/// Row and column strides of a matrix operand.
type Strides = (isize, isize);

/// Times `dst[m, n] = lhs[m, k] x rhs[k, n]` with the given strides; returns GFLOP/s.
fn time(m: usize, k: usize, n: usize, dst: Strides, lhs: Strides, rhs: Strides, par: gemm::Parallelism) -> f64 {
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let mut run = || {
        // SAFETY: the three buffers hold m*k, k*n and m*n elements, and every stride pair below
        // describes a dense row- or column-major matrix of that size; dst aliases neither input.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                dst.1,
                dst.0,
                false,
                a.as_ptr(),
                lhs.1,
                lhs.0,
                b.as_ptr(),
                rhs.1,
                rhs.0,
                0.0,
                1.0,
                false,
                false,
                false,
                par,
            )
        }
    };
    for _ in 0..5 {
        run();
    }
    let reps = 200;
    let t = Instant::now();
    for _ in 0..reps {
        run();
    }
    2.0 * (m * k * n) as f64 / (t.elapsed().as_secs_f64() / reps as f64) / 1e9
}

fn main() {
    let (co, k, n) = (32usize, 288usize, 4096usize);
    let (co_, k_, n_) = (co as isize, k as isize, n as isize);
    let kernels = if cfg!(feature = "v4") { "x86-v4 (AVX-512 if the CPU has it)" } else { "default (AVX2)" };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a 1-thread pool");
    pool.install(|| {
        for (label, par) in [("None", gemm::Parallelism::None), ("Rayon(0)", gemm::Parallelism::Rayon(0))] {
            let cases: [(&str, usize, usize, usize, Strides, Strides, Strides); 4] = [
                ("forward W x cols", co, k, n, (n_, 1), (k_, 1), (n_, 1)),
                ("weight grad dY x cols^T (old)", co, n, k, (k_, 1), (n_, 1), (1, n_)),
                ("weight grad cols x dY^T (new)", k, n, co, (co_, 1), (n_, 1), (1, n_)),
                ("input grad W^T x dY", k, co, n, (n_, 1), (1, k_), (n_, 1)),
            ];
            for (name, m, kk, nn, d, l, r) in cases {
                let gflops = time(m, kk, nn, d, l, r, par);
                println!("{kernels:36} {label:9} {name:32} {m}x{kk}x{nn}: {gflops:6.1} GFLOP/s");
            }
        }
    });
}
