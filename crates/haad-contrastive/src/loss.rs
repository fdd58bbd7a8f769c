//! The multi-positive contrastive loss of the method (the paper's Eq. 5).
//!
//! For embeddings `z_1..z_N` and, for each anchor `i`, its positives `P(i)` (every other sample
//! of the same category):
//!
//! `l_i = -(1/|P(i)|) sum_{p in P(i)} log( exp(s_ip / tau) / sum_{k != i} exp(s_ik / tau) )`
//!
//! with `s` the cosine similarity, and `L = mean_i l_i` over the anchors that have at least one
//! positive. Because `log(exp(a) / sum exp(b)) = a - logsumexp(b)`, each term is computed as
//! `logsumexp_{k != i}(s_ik / tau) - mean_{p in P(i)} s_ip / tau`, with the row maximum taken out
//! of the exponentials (log-sum-exp), so the loss stays finite for any temperature.

use candle_core::{DType, Device, Tensor};

use crate::error::{ContrastiveError, Result};

/// Added to the diagonal before the log-sum-exp: `exp` of it underflows to exactly zero, so an
/// anchor never counts itself among its negatives.
const EXCLUDE: f64 = -1.0e30;

/// Norms below this are treated as this, so a zero embedding gives similarity 0, not NaN.
const NORM_EPS: f64 = 1.0e-12;

/// The multi-positive SimCLR loss `L` (a scalar tensor) of `embeddings` `[N, E]` whose
/// categories are `labels` (length N), at temperature `tau`.
///
/// Works in the dtype of `embeddings` (f32 for training, f64 for checks) and is differentiable
/// with respect to them. Errors when shapes disagree, `tau` is not positive, or no anchor has a
/// positive (every category appears once).
pub fn multi_positive_loss(embeddings: &Tensor, labels: &[usize], tau: f64) -> Result<Tensor> {
    let (n, _e) = embeddings.dims2().map_err(|_| ContrastiveError::Shape {
        what: "embeddings".into(),
        expected: "[N, E]".into(),
        got: format!("{:?}", embeddings.dims()),
    })?;
    if labels.len() != n {
        return Err(ContrastiveError::Shape {
            what: "labels".into(),
            expected: format!("{n} labels (one per embedding)"),
            got: format!("{} labels", labels.len()),
        });
    }
    if !(tau.is_finite() && tau > 0.0) {
        return Err(ContrastiveError::Config {
            field: "temperature",
            rule: format!("tau must be positive and finite, got {tau}"),
        });
    }
    let (positives, counts) = positive_mask(labels);
    let anchors: Vec<f64> = counts
        .iter()
        .map(|&c| if c > 0 { 1.0 } else { 0.0 })
        .collect();
    let n_anchors: f64 = anchors.iter().sum();
    if n_anchors == 0.0 {
        return Err(ContrastiveError::Shape {
            what: "labels".into(),
            expected: "some category at least twice (a positive for its anchors)".into(),
            got: "every category once".into(),
        });
    }
    let dtype = embeddings.dtype();
    let device = embeddings.device();

    // Cosine similarities over tau, [N, N].
    let norms = embeddings
        .sqr()?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(NORM_EPS, f64::INFINITY)?;
    let unit = embeddings.broadcast_div(&norms)?;
    let logits = (unit.matmul(&unit.t()?)? / tau)?;

    // logsumexp over k != i.
    let diag = Tensor::eye(n, dtype, device)?;
    let masked = (&logits + (diag * EXCLUDE)?)?;
    let row_max = masked.max_keepdim(1)?.detach();
    let lse = (masked
        .broadcast_sub(&row_max)?
        .exp()?
        .sum_keepdim(1)?
        .log()?
        + &row_max)?
        .squeeze(1)?;

    // Mean positive logit per anchor (0 for anchors without positives, which are then dropped).
    let inv_counts: Vec<f64> = counts
        .iter()
        .map(|&c| if c > 0 { 1.0 / c as f64 } else { 0.0 })
        .collect();
    let pos = tensor_2d(&positives, n, dtype, device)?;
    let pos_mean =
        ((&logits * pos)?.sum(1)? * Tensor::new(inv_counts, device)?.to_dtype(dtype)?)?;

    let per_anchor = ((lse - pos_mean)? * Tensor::new(anchors, device)?.to_dtype(dtype)?)?;
    Ok((per_anchor.sum_all()? / n_anchors)?)
}

/// `P[i][k] = 1` when `k != i` and `labels[k] == labels[i]`; also `|P(i)|`.
fn positive_mask(labels: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let n = labels.len();
    let mut mask = vec![0.0; n * n];
    let mut counts = vec![0; n];
    for i in 0..n {
        for k in 0..n {
            if k != i && labels[k] == labels[i] {
                mask[i * n + k] = 1.0;
                counts[i] += 1;
            }
        }
    }
    (mask, counts)
}

fn tensor_2d(values: &[f64], n: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(values, (n, n), device)?.to_dtype(dtype)?)
}

/// A scalar loss tensor as a plain `f64` (for logging).
pub fn scalar(loss: &Tensor) -> Result<f64> {
    Ok(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// Eq. 5 written out term by term in f64, with no shortcut.
    fn brute_force(z: &[Vec<f64>], labels: &[usize], tau: f64) -> f64 {
        let n = z.len();
        let cos = |a: &[f64], b: &[f64]| {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
            dot / (na * nb)
        };
        let mut total = 0.0;
        let mut anchors = 0;
        for i in 0..n {
            let denom: f64 = (0..n)
                .filter(|&k| k != i)
                .map(|k| (cos(&z[i], &z[k]) / tau).exp())
                .sum();
            let pos: Vec<usize> = (0..n)
                .filter(|&p| p != i && labels[p] == labels[i])
                .collect();
            if pos.is_empty() {
                continue;
            }
            let l: f64 = pos
                .iter()
                .map(|&p| ((cos(&z[i], &z[p]) / tau).exp() / denom).ln())
                .sum::<f64>()
                / pos.len() as f64;
            total -= l;
            anchors += 1;
        }
        total / anchors as f64
    }

    fn random(rng: &mut StdRng, n: usize, e: usize) -> Vec<Vec<f64>> {
        (0..n)
            .map(|_| (0..e).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect()
    }

    fn tensor(z: &[Vec<f64>], dtype: DType) -> Tensor {
        let flat: Vec<f64> = z.iter().flatten().copied().collect();
        Tensor::from_vec(flat, (z.len(), z[0].len()), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }

    #[test]
    fn matches_brute_force_on_random_groupings() {
        let mut rng = StdRng::seed_from_u64(11);
        for &(n, e, groups) in &[(4, 3, 2), (9, 5, 3), (24, 16, 6), (40, 20, 10), (7, 4, 7)] {
            for tau in [1.0, 0.1, 0.05] {
                let z = random(&mut rng, n, e);
                let mut labels: Vec<usize> = (0..n).map(|_| rng.random_range(0..groups)).collect();
                labels[1] = labels[0]; // at least one anchor with a positive
                let want = brute_force(&z, &labels, tau);
                let got64 =
                    scalar(&multi_positive_loss(&tensor(&z, DType::F64), &labels, tau).unwrap())
                        .unwrap();
                assert!(
                    (got64 - want).abs() < 1e-9 * want.abs().max(1.0),
                    "n={n} tau={tau}: {got64} vs {want}"
                );
                let got32 =
                    scalar(&multi_positive_loss(&tensor(&z, DType::F32), &labels, tau).unwrap())
                        .unwrap();
                assert!(
                    (got32 - want).abs() < 1e-4 * want.abs().max(1.0),
                    "f32 n={n} tau={tau}: {got32} vs {want}"
                );
            }
        }
    }

    #[test]
    fn pairs_give_ordinary_nt_xent() {
        // SimCLR's NT-Xent over 2M views, views 2m and 2m+1 being the positive pair.
        let mut rng = StdRng::seed_from_u64(5);
        let m = 6;
        let z = random(&mut rng, 2 * m, 8);
        let tau = 0.5;
        let sim = |a: usize, b: usize| {
            let dot: f64 = z[a].iter().zip(&z[b]).map(|(x, y)| x * y).sum();
            let n = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
            dot / (n(&z[a]) * n(&z[b])) / tau
        };
        let mut nt_xent = 0.0;
        for i in 0..2 * m {
            let partner = i ^ 1;
            let denom: f64 = (0..2 * m)
                .filter(|&k| k != i)
                .map(|k| sim(i, k).exp())
                .sum();
            nt_xent += -(sim(i, partner).exp() / denom).ln();
        }
        nt_xent /= (2 * m) as f64;
        let labels: Vec<usize> = (0..2 * m).map(|i| i / 2).collect();
        let got =
            scalar(&multi_positive_loss(&tensor(&z, DType::F64), &labels, tau).unwrap()).unwrap();
        assert!((got - nt_xent).abs() < 1e-12, "{got} vs {nt_xent}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(3);
        let (n, e) = (8, 5);
        let z = random(&mut rng, n, e);
        let labels = vec![0, 0, 0, 1, 1, 2, 2, 2];
        let tau = 0.3;
        let var = candle_core::Var::from_tensor(&tensor(&z, DType::F64)).unwrap();
        let loss = multi_positive_loss(var.as_tensor(), &labels, tau).unwrap();
        let grad = loss.backward().unwrap();
        let g: Vec<Vec<f64>> = grad.get(var.as_tensor()).unwrap().to_vec2().unwrap();
        let h = 1e-6;
        for i in 0..n {
            for j in 0..e {
                let mut up = z.clone();
                up[i][j] += h;
                let mut down = z.clone();
                down[i][j] -= h;
                let fd =
                    (brute_force(&up, &labels, tau) - brute_force(&down, &labels, tau)) / (2.0 * h);
                assert!(
                    (fd - g[i][j]).abs() < 1e-6,
                    "d/dz[{i}][{j}]: autograd {} vs fd {fd}",
                    g[i][j]
                );
            }
        }
    }

    #[test]
    fn stays_finite_at_low_temperature() {
        let mut rng = StdRng::seed_from_u64(8);
        let z = random(&mut rng, 10, 4);
        let labels = vec![0, 0, 1, 1, 2, 2, 3, 3, 4, 4];
        let l =
            scalar(&multi_positive_loss(&tensor(&z, DType::F32), &labels, 1e-3).unwrap()).unwrap();
        assert!(l.is_finite());
        let want = brute_force(&z, &labels, 0.01);
        let got =
            scalar(&multi_positive_loss(&tensor(&z, DType::F32), &labels, 0.01).unwrap()).unwrap();
        assert!((got - want).abs() < 1e-3 * want.abs().max(1.0));
    }

    #[test]
    fn rejects_bad_input() {
        let z = tensor(&[vec![1.0, 0.0], vec![0.0, 1.0]], DType::F32);
        assert!(multi_positive_loss(&z, &[0], 1.0).is_err());
        assert!(multi_positive_loss(&z, &[0, 0], 0.0).is_err());
        assert!(multi_positive_loss(&z, &[0, 1], 1.0).is_err());
        let flat = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
        assert!(multi_positive_loss(&flat, &[0, 0, 0, 0], 1.0).is_err());
        assert!(multi_positive_loss(&z, &[0, 0], 1.0).is_ok());
    }
}
