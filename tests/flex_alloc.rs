//! The vendored burn-flex's `FlexTensor::empty` (every matmul output, and `zeros`), which now
//! keeps a zeroed vector of the dtype's width instead of moving a byte vector into a second,
//! 16-aligned allocation (vendor/burn-flex/VENDORED.md): zeros of every float width read back
//! as zeros of the right dtype and length, and matmul outputs (the 2-D and the batched path,
//! f32 and f64, non-contiguous operands) equal direct f64 products.

#![allow(clippy::unwrap_used)]

use burn::tensor::{DType, Device, Tensor, TensorData};

fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn zeros_of_every_float_width_read_back_as_zeros() {
    let dev = Device::flex();
    for dtype in [DType::F64, DType::F32, DType::F16, DType::BF16] {
        for shape in [[0, 3], [1, 1], [7, 13]] {
            let z = Tensor::<2>::zeros(shape, (&dev, dtype));
            let data = z.clone().into_data();
            assert_eq!(data.dtype(), dtype);
            assert_eq!(data.num_elements(), shape[0] * shape[1]);
            let back: Vec<f64> = z.cast(DType::F64).into_data().try_to_vec::<f64>().unwrap();
            assert!(back.iter().all(|v| *v == 0.0), "{dtype:?} {shape:?}: {back:?}");
        }
    }
}

/// `a` (`[b, m, k]`) times `c` (`[b, k, n]`) in f64.
fn product(a: &[f64], c: &[f64], b: usize, m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; b * m * n];
    for bi in 0..b {
        for i in 0..m {
            for j in 0..n {
                out[(bi * m + i) * n + j] = (0..k).map(|p| a[(bi * m + i) * k + p] * c[(bi * k + p) * n + j]).sum();
            }
        }
    }
    out
}

#[test]
fn matmul_outputs_equal_direct_products() {
    let dev = Device::flex();
    for dtype in [DType::F32, DType::F64] {
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
        for (b, m, k, n) in [(1, 37, 19, 23), (3, 7, 5, 4), (2, 1, 1, 1), (2, 65, 130, 33)] {
            let a = values(b * m * k, 1 + m as u64);
            let c = values(b * k * n, 2 + n as u64);
            let want = product(&a, &c, b, m, k, n);
            let ta = Tensor::<3>::from_data(TensorData::new(a.clone(), [b, m, k]), (&dev, dtype));
            // `c` stored transposed, then swapped back: a non-contiguous right operand.
            let ct: Vec<f64> = (0..b * n * k).map(|i| c[(i / (n * k)) * k * n + (i % k) * n + (i / k) % n]).collect();
            let tc = Tensor::<3>::from_data(TensorData::new(ct, [b, n, k]), (&dev, dtype)).swap_dims(1, 2);
            let got: Vec<f64> = ta.clone().matmul(tc.clone()).cast(DType::F64).into_data().try_to_vec().unwrap();
            let flat: Vec<f64> = if b == 1 {
                let a2 = ta.reshape([m, k]);
                let c2 = tc.reshape([k, n]);
                a2.matmul(c2).cast(DType::F64).into_data().try_to_vec().unwrap()
            } else {
                got.clone()
            };
            for (what, got) in [("batched", &got), ("2-D", &flat)] {
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= tol * (1.0 + w.abs()),
                        "{dtype:?} {what} [{b},{m},{k},{n}][{i}]: {g} vs {w}"
                    );
                }
            }
        }
    }
}
