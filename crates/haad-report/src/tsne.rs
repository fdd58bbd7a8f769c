//! Exact t-SNE (van der Maaten and Hinton, 2008), the 2-D map of the paper's Fig. 4.
//!
//! All in f64, O(N^2) memory and time per iteration: meant for the few hundred test clips of a
//! figure, not for large N. Seeded: the same input, config and seed give the same map.

use ndarray::{Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::error::{ReportError, Result};

/// Iterations with early exaggeration (P multiplied by 12) and momentum 0.5; momentum 0.8 after.
const EXAGGERATION_ITERS: usize = 250;
const EXAGGERATION: f64 = 12.0;

/// t-SNE settings; `Default` is the usual choice (perplexity 30, 1000 iterations, the automatic
/// learning rate, seed 0). Check it into a [`ValidTsneConfig`] with [`TsneConfig::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct TsneConfig {
    /// Perplexity, the effective number of neighbours of each point (> 0; must be below the
    /// number of points N, checked by [`tsne_2d`]).
    pub perplexity: f64,
    /// Gradient-descent iterations (at least 1).
    pub iterations: usize,
    /// Learning rate eta of the gradient descent (> 0); `None`: max(N / 48, 50), N / (4 x the
    /// early exaggeration 12), as in scikit-learn and Belkina et al. (2019).
    pub learning_rate: Option<f64>,
    /// Seed of the initial map (Gaussian, std 1e-4).
    pub seed: u64,
}

impl Default for TsneConfig {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            iterations: 1000,
            learning_rate: None,
            seed: 0,
        }
    }
}

/// A [`TsneConfig`] that passed [`TsneConfig::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidTsneConfig(TsneConfig);

impl ValidTsneConfig {
    /// The settings.
    pub fn get(&self) -> &TsneConfig {
        &self.0
    }
}

impl TsneConfig {
    /// Checks every field; the error names the first field that breaks its rule.
    pub fn check(&self) -> Result<ValidTsneConfig> {
        let bad = |field: &'static str, rule: String| Err(ReportError::Config { field, rule });
        if !(self.perplexity.is_finite() && self.perplexity > 0.0) {
            return bad(
                "perplexity",
                format!("must be finite and > 0, is {}", self.perplexity),
            );
        }
        if self.iterations == 0 {
            return bad("iterations", "must be at least 1, is 0".into());
        }
        if let Some(eta) = self.learning_rate {
            if !(eta.is_finite() && eta > 0.0) {
                return bad("learning_rate", format!("must be finite and > 0, is {eta}"));
            }
        }
        Ok(ValidTsneConfig(self.clone()))
    }
}

/// The t-SNE map of the rows of `x` `[N, E]`: `[N, 2]`.
pub fn tsne_2d(x: ArrayView2<'_, f32>, config: &ValidTsneConfig) -> Result<Array2<f32>> {
    let cfg = config.get();
    let (n, e) = x.dim();
    if n < 2 || e == 0 {
        return Err(ReportError::input(
            "t-SNE input",
            format!("must be [N >= 2, E >= 1], is [{n}, {e}]"),
        ));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(ReportError::input("t-SNE input", "must be finite"));
    }
    if cfg.perplexity >= n as f64 {
        return Err(ReportError::input(
            "t-SNE input",
            format!("perplexity {} needs more than {n} points", cfg.perplexity),
        ));
    }
    let p = joint_probabilities(&squared_distances(x), cfg.perplexity);
    let normal = Normal::new(0.0, 1e-4).expect("valid std");
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut y = Array2::from_shape_fn((n, 2), |_| normal.sample(&mut rng));
    let mut velocity = Array2::<f64>::zeros((n, 2));
    let mut gains = Array2::<f64>::ones((n, 2));
    let eta = cfg
        .learning_rate
        .unwrap_or_else(|| (n as f64 / EXAGGERATION / 4.0).max(50.0));
    for it in 0..cfg.iterations {
        let (exaggeration, momentum) = if it < EXAGGERATION_ITERS {
            (EXAGGERATION, 0.5)
        } else {
            (1.0, 0.8)
        };
        let grad = gradient(&p, &y, exaggeration);
        for ((g, v), (gain, yv)) in grad
            .iter()
            .zip(velocity.iter_mut())
            .zip(gains.iter_mut().zip(y.iter_mut()))
        {
            // Delta-bar-delta gains, as in the reference implementation.
            *gain = if (*g > 0.0) != (*v > 0.0) {
                *gain + 0.2
            } else {
                (*gain * 0.8).max(0.01)
            };
            *v = momentum * *v - eta * *gain * g;
            *yv += *v;
        }
        for k in 0..2 {
            let mean = y.column(k).mean().expect("n >= 2");
            y.column_mut(k).mapv_inplace(|v| v - mean);
        }
    }
    Ok(y.mapv(|v| v as f32))
}

fn squared_distances(x: ArrayView2<'_, f32>) -> Array2<f64> {
    let n = x.nrows();
    Array2::from_shape_fn((n, n), |(i, j)| {
        x.row(i)
            .iter()
            .zip(x.row(j))
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum()
    })
}

/// Conditional probabilities p_{j|i} of row `i` at precision `beta` (self excluded), and their
/// entropy in nats.
fn conditional(d2: &Array2<f64>, i: usize, beta: f64) -> (Vec<f64>, f64) {
    let n = d2.ncols();
    // Shift by the nearest distance so that the largest weight is 1 (no underflow to all-zero).
    let min = (0..n)
        .filter(|&j| j != i)
        .map(|j| d2[[i, j]])
        .fold(f64::INFINITY, f64::min);
    let w: Vec<f64> = (0..n)
        .map(|j| {
            if j == i {
                0.0
            } else {
                (-(d2[[i, j]] - min) * beta).exp()
            }
        })
        .collect();
    let sum: f64 = w.iter().sum();
    let p: Vec<f64> = w.iter().map(|v| v / sum).collect();
    let h = -p
        .iter()
        .filter(|&&v| v > 0.0)
        .map(|v| v * v.ln())
        .sum::<f64>();
    (p, h)
}

/// The conditional distribution of row `i` whose perplexity 2^H (here e^H, H in nats) is
/// `perplexity`, by bisection on the precision beta = 1 / (2 sigma_i^2).
fn calibrated_row(d2: &Array2<f64>, i: usize, perplexity: f64) -> Vec<f64> {
    let target = perplexity.ln();
    let (mut lo, mut hi, mut beta) = (0.0f64, f64::INFINITY, 1.0f64);
    let mut best = conditional(d2, i, beta);
    for _ in 0..200 {
        let diff = best.1 - target;
        if diff.abs() < 1e-10 {
            break;
        }
        if diff > 0.0 {
            // Too flat: sharpen.
            lo = beta;
            beta = if hi.is_finite() {
                (beta + hi) / 2.0
            } else {
                beta * 2.0
            };
        } else {
            hi = beta;
            beta = (beta + lo) / 2.0;
        }
        best = conditional(d2, i, beta);
    }
    best.0
}

/// The symmetric joint probabilities p_ij = (p_{j|i} + p_{i|j}) / 2N, floored at 1e-12.
fn joint_probabilities(d2: &Array2<f64>, perplexity: f64) -> Array2<f64> {
    let n = d2.nrows();
    let mut cond = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for (j, v) in calibrated_row(d2, i, perplexity).into_iter().enumerate() {
            cond[[i, j]] = v;
        }
    }
    Array2::from_shape_fn((n, n), |(i, j)| {
        if i == j {
            0.0
        } else {
            ((cond[[i, j]] + cond[[j, i]]) / (2.0 * n as f64)).max(1e-12)
        }
    })
}

/// The gradient of KL(exaggeration * P || Q) with respect to the map `y` (Student-t Q):
/// dC/dy_i = 4 sum_j (p_ij - q_ij) (y_i - y_j) / (1 + |y_i - y_j|^2).
fn gradient(p: &Array2<f64>, y: &Array2<f64>, exaggeration: f64) -> Array2<f64> {
    let n = y.nrows();
    let kernel = Array2::from_shape_fn((n, n), |(i, j)| {
        if i == j {
            0.0
        } else {
            let d = (y[[i, 0]] - y[[j, 0]]).powi(2) + (y[[i, 1]] - y[[j, 1]]).powi(2);
            1.0 / (1.0 + d)
        }
    });
    let z: f64 = kernel.sum().max(f64::MIN_POSITIVE);
    let mut grad = Array2::<f64>::zeros((n, 2));
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let q = (kernel[[i, j]] / z).max(1e-12);
            let m = 4.0 * (exaggeration * p[[i, j]] - q) * kernel[[i, j]];
            grad[[i, 0]] += m * (y[[i, 0]] - y[[j, 0]]);
            grad[[i, 1]] += m * (y[[i, 1]] - y[[j, 1]]);
        }
    }
    grad
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// KL(P || Q) of a map, the cost whose gradient [`gradient`] is.
    fn kl(p: &Array2<f64>, y: &Array2<f64>) -> f64 {
        let n = y.nrows();
        let w = |i: usize, j: usize| {
            1.0 / (1.0 + (y[[i, 0]] - y[[j, 0]]).powi(2) + (y[[i, 1]] - y[[j, 1]]).powi(2))
        };
        let z: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| w(i, j))
            .sum();
        (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| p[[i, j]] * (p[[i, j]] / (w(i, j) / z)).ln())
            .sum()
    }

    fn clusters(per: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
        // Three clusters in 8-D, centres 10 apart, unit spread.
        let mut rng = StdRng::seed_from_u64(seed);
        let mut labels = Vec::new();
        let x = Array2::from_shape_fn((3 * per, 8), |(i, k)| {
            let c = i / per;
            let centre = if k == c { 10.0 } else { 0.0 };
            centre + rng.random_range(-1.0f32..1.0)
        });
        for i in 0..3 * per {
            labels.push(i / per);
        }
        (x, labels)
    }

    #[test]
    fn rows_are_calibrated_to_the_perplexity() {
        let (x, _) = clusters(10, 1);
        let d2 = squared_distances(x.view());
        for perp in [2.0, 5.0, 12.0] {
            for i in [0, 7, 29] {
                let p = calibrated_row(&d2, i, perp);
                assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                assert_eq!(p[i], 0.0);
                let h = -p
                    .iter()
                    .filter(|&&v| v > 0.0)
                    .map(|v| v * v.ln())
                    .sum::<f64>();
                assert!(
                    (h.exp() - perp).abs() < 1e-6,
                    "perplexity {} != {perp}",
                    h.exp()
                );
            }
        }
        let p = joint_probabilities(&d2, 5.0);
        assert!((p.sum() - 1.0).abs() < 1e-6);
        assert!((&p - &p.t()).iter().all(|v| v.abs() < 1e-15));
    }

    #[test]
    fn gradient_matches_finite_differences_of_the_kl_cost() {
        let (x, _) = clusters(4, 2);
        let p = joint_probabilities(&squared_distances(x.view()), 3.0);
        let mut rng = StdRng::seed_from_u64(3);
        let y = Array2::from_shape_fn((12, 2), |_| rng.random_range(-2.0..2.0));
        let g = gradient(&p, &y, 1.0);
        let h = 1e-6;
        for i in 0..12 {
            for k in 0..2 {
                let (mut a, mut b) = (y.clone(), y.clone());
                a[[i, k]] += h;
                b[[i, k]] -= h;
                let fd = (kl(&p, &a) - kl(&p, &b)) / (2.0 * h);
                assert!(
                    (fd - g[[i, k]]).abs() < 1e-6,
                    "{i},{k}: {fd} vs {}",
                    g[[i, k]]
                );
            }
        }
    }

    #[test]
    fn known_clusters_stay_apart_and_neighbours_stay_neighbours() {
        let (x, labels) = clusters(20, 4);
        let cfg = TsneConfig {
            perplexity: 10.0,
            iterations: 500,
            ..Default::default()
        }
        .check()
        .unwrap();
        let y = tsne_2d(x.view(), &cfg).unwrap();
        assert_eq!(y.dim(), (60, 2));
        let dist = |i: usize, j: usize| {
            ((y[[i, 0]] - y[[j, 0]]).powi(2) + (y[[i, 1]] - y[[j, 1]]).powi(2)).sqrt()
        };
        // Every point's 5 nearest map neighbours share its cluster.
        for i in 0..60 {
            let mut others: Vec<usize> = (0..60).filter(|&j| j != i).collect();
            others.sort_by(|&a, &b| dist(i, a).total_cmp(&dist(i, b)));
            assert!(
                others[..5].iter().all(|&j| labels[j] == labels[i]),
                "point {i}"
            );
        }
        // The largest within-cluster distance is below the smallest between-cluster one.
        let (mut within, mut between) = (0f32, f32::INFINITY);
        for i in 0..60 {
            for j in i + 1..60 {
                if labels[i] == labels[j] {
                    within = within.max(dist(i, j));
                } else {
                    between = between.min(dist(i, j));
                }
            }
        }
        assert!(within < between, "within {within}, between {between}");
        // Seeded: the same seed gives the same map, another seed another.
        assert_eq!(tsne_2d(x.view(), &cfg).unwrap(), y);
        let other = TsneConfig {
            seed: 1,
            ..cfg.get().clone()
        }
        .check()
        .unwrap();
        assert_ne!(tsne_2d(x.view(), &other).unwrap(), y);
    }

    #[test]
    fn bad_configs_and_inputs_are_refused_by_field() {
        let field = |c: TsneConfig| match c.check() {
            Err(ReportError::Config { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let d = TsneConfig::default();
        assert_eq!(
            field(TsneConfig {
                perplexity: f64::NAN,
                ..d.clone()
            }),
            "perplexity"
        );
        assert_eq!(
            field(TsneConfig {
                perplexity: 0.0,
                ..d.clone()
            }),
            "perplexity"
        );
        assert_eq!(
            field(TsneConfig {
                iterations: 0,
                ..d.clone()
            }),
            "iterations"
        );
        assert_eq!(
            field(TsneConfig {
                learning_rate: Some(-1.0),
                ..d.clone()
            }),
            "learning_rate"
        );
        let cfg = d.check().unwrap();
        let small = Array2::<f32>::zeros((10, 3));
        assert!(matches!(
            tsne_2d(small.view(), &cfg),
            Err(ReportError::Input { .. })
        ));
        let mut nan = Array2::<f32>::zeros((40, 3));
        nan[[3, 1]] = f32::NAN;
        assert!(matches!(
            tsne_2d(nan.view(), &cfg),
            Err(ReportError::Input { .. })
        ));
    }
}
