//! Helpers the fused operations' tests share.

use std::sync::Arc;

use candle_core::{Device, Tensor, Var};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// A seeded f64 variable of `dims`, entries uniform in [-2, 2).
pub(crate) fn var(dims: &[usize], seed: u64) -> Var {
    let mut rng = StdRng::seed_from_u64(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    Var::from_vec(v, dims, &Device::Cpu).unwrap()
}

/// The largest absolute difference between two f64 tensors of one shape.
pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// `fast` and `reference` (f64 tensors computed from `inputs`) agree in value and in the
/// gradient of every input, of a random linear functional of the output, to 1e-12.
pub(crate) fn assert_same_values_and_grads(fast: &Tensor, reference: &Tensor, inputs: &[&Tensor]) {
    assert_eq!(fast.dims(), reference.dims());
    assert!(
        max_diff(fast, reference) < 1e-12,
        "values: {}",
        max_diff(fast, reference)
    );
    let w = var(fast.dims(), 77);
    let grads = |y: &Tensor| {
        (y * w.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
    };
    let (ga, gb) = (grads(fast), grads(reference));
    for (i, t) in inputs.iter().enumerate() {
        let (a, b) = (ga.get(t).unwrap(), gb.get(t).unwrap());
        assert_eq!(a.dims(), t.dims(), "input {i}");
        assert!(
            max_diff(a, b) < 1e-12,
            "input {i} {:?}: {}",
            t.dims(),
            max_diff(a, b)
        );
    }
}

/// A dropout mask of `n` entries: 0 with probability 0.3, else 1 / 0.7.
pub(crate) fn mask(n: usize, seed: u64) -> Arc<[f32]> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| if rng.random_bool(0.3) { 0.0 } else { 1.0 / 0.7 })
        .collect()
}
