//! Helpers for the fused kernels' tests, here and in the crates that build on them (feature
//! `testing`, for dev-dependencies): seeded random inputs, tensors as f64 values, and the
//! comparisons every "fused op against candle's generic form" test makes.

use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// `n` values `scale * U(-1, 1)` from `seed`.
pub fn uniform(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| scale * rng.random_range(-1.0..1.0))
        .collect()
}

/// An f64 CPU variable of shape `dims` with values `U(-1, 1)` from `seed`.
pub fn random_var(dims: &[usize], seed: u64) -> Var {
    let v = uniform(dims.iter().product(), seed, 1.0);
    Var::from_tensor(&Tensor::from_vec(v, dims, &Device::Cpu).expect("shape")).expect("var")
}

/// Every value of `t`, in order, as f64.
pub fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .expect("values")
}

/// `max |a - b| / (1 + max |b|)`.
pub fn rel_max_diff(a: &Tensor, b: &Tensor) -> f64 {
    let max_abs = |t: &Tensor| -> f64 {
        t.abs()
            .and_then(|t| t.max_all())
            .and_then(|t| t.to_dtype(DType::F64))
            .and_then(|t| t.to_scalar::<f64>())
            .expect("max")
    };
    max_abs(&(a - b).expect("same shape")) / (1.0 + max_abs(b))
}

/// Asserts `|got - want| <= tol (1 + |want|)` element by element; `what` names the check.
pub fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what} [{i}]: {g} vs {w}"
        );
    }
}

/// The gradients of `sum(y * r)`: a random linear functional of `y` when `r` is random.
pub fn grads_of_weighted_sum(y: &Tensor, r: &Tensor) -> GradStore {
    (y * r)
        .and_then(|t| t.sum_all())
        .and_then(|t| t.backward())
        .expect("backward")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_compute_what_they_say() {
        assert_eq!(uniform(5, 3, 2.0), uniform(5, 3, 2.0));
        assert!(uniform(100, 1, 0.5).iter().all(|v| v.abs() <= 0.5));
        let a = Tensor::new(&[1.0f64, -4.0], &Device::Cpu).unwrap();
        let b = Tensor::new(&[1.5f64, -3.0], &Device::Cpu).unwrap();
        // max |a - b| = 1, max |b| = 3.
        assert_eq!(rel_max_diff(&a, &b), 0.25);
        assert_eq!(values(&a), [1.0, -4.0]);
        let x = random_var(&[2], 0);
        let g = grads_of_weighted_sum(x.as_tensor(), &b);
        assert_eq!(values(g.get(&x).unwrap()), [1.5, -3.0]);
        assert_close(&[1.0, 2.0], &[1.0, 2.0 + 1e-9], 1e-8, "close");
        let far = std::panic::catch_unwind(|| assert_close(&[1.0], &[1.1], 1e-3, "far"));
        assert!(far.is_err());
    }
}
