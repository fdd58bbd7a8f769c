//! The PCA map of embeddings: the first two principal components, in f64.

use ndarray::{Array1, Array2, ArrayView2, Axis};

use crate::error::{ReportError, Result};

/// The projection of the rows of `x` `[N, E]` onto their first two principal components,
/// `[N, 2]` (centred; components from the covariance's eigenvectors, computed in f64 by the
/// cyclic Jacobi method; each component's sign fixed so that its largest entry is positive).
/// With fewer rows than columns (N < E, e.g. a 600-wide raw-DCT embedding of 60 clips) the
/// eigenvectors come from the N x N Gram matrix instead (v = X^T u / sqrt(lambda)): the same
/// components at O(N^3) instead of O(E^3).
pub fn pca_2d(x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
    let (n, e) = x.dim();
    if n < 2 || e < 2 {
        return Err(ReportError::input(
            "PCA input",
            format!("must be [N >= 2, E >= 2], is [{n}, {e}]"),
        ));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(ReportError::input("PCA input", "must be finite"));
    }
    let xf = x.mapv(f64::from);
    let mean: Array1<f64> = xf.mean_axis(Axis(0)).expect("n >= 2");
    let centred = &xf - &mean;
    let dual = n < e;
    let (values, vectors) = if dual {
        symmetric_eigen(centred.dot(&centred.t()))
    } else {
        symmetric_eigen(centred.t().dot(&centred) / (n - 1) as f64)
    };
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut basis = Array2::<f64>::zeros((e, 2));
    for (k, &col) in order.iter().take(2).enumerate() {
        let mut v = if dual {
            // X^T u has norm sqrt(lambda); a zero eigenvalue (constant data) gives a zero axis.
            let v = centred.t().dot(&vectors.column(col));
            let norm = v.dot(&v).sqrt();
            if norm > 0.0 {
                v / norm
            } else {
                v
            }
        } else {
            vectors.column(col).to_owned()
        };
        let big = v
            .iter()
            .copied()
            .fold(0.0f64, |a, b| if b.abs() > a.abs() { b } else { a });
        if big < 0.0 {
            v.mapv_inplace(|x| -x);
        }
        basis.column_mut(k).assign(&v);
    }
    Ok(centred.dot(&basis).mapv(|v| v as f32))
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix, by cyclic Jacobi rotations.
fn symmetric_eigen(mut a: Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut v = Array2::<f64>::eye(n);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]] * a[[i, j]])
            .sum();
        let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
        if off <= 1e-24 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[[p, q]].abs() < f64::MIN_POSITIVE {
                    continue;
                }
                let theta = (a[[q, q]] - a[[p, p]]) / (2.0 * a[[p, q]]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[[k, p]], a[[k, q]]);
                    a[[k, p]] = c * akp - s * akq;
                    a[[k, q]] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[[p, k]], a[[q, k]]);
                    a[[p, k]] = c * apk - s * aqk;
                    a[[q, k]] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[[k, p]], v[[k, q]]);
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[[i, i]]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    #[test]
    fn jacobi_diagonalises_a_known_matrix() {
        // Eigenvalues of [[2, 1], [1, 2]] are 3 and 1, vectors (1, 1) and (1, -1) / sqrt 2.
        let (vals, vecs) = symmetric_eigen(array![[2.0, 1.0], [1.0, 2.0]]);
        let mut sorted = vals.clone();
        sorted.sort_by(f64::total_cmp);
        assert!((sorted[0] - 1.0).abs() < 1e-12 && (sorted[1] - 3.0).abs() < 1e-12);
        let a = array![[2.0, 1.0], [1.0, 2.0]];
        for (k, &lambda) in vals.iter().enumerate() {
            let v = vecs.column(k);
            let av = a.dot(&v);
            for (x, y) in av.iter().zip(v.iter()) {
                assert!((x - lambda * y).abs() < 1e-12);
            }
        }
        // A random symmetric 6 x 6: A V = V diag(values), V orthonormal.
        let mut rng = StdRng::seed_from_u64(0);
        let b = Array2::from_shape_fn((6, 6), |_| rng.random_range(-1.0..1.0));
        let a = &b + &b.t();
        let (vals, v) = symmetric_eigen(a.clone());
        let av = a.dot(&v);
        let vd = &v * &Array1::from(vals.clone());
        assert!((&av - &vd).iter().all(|x| x.abs() < 1e-10));
        let vtv = v.t().dot(&v);
        assert!((&vtv - &Array2::<f64>::eye(6))
            .iter()
            .all(|x| x.abs() < 1e-12));
    }

    #[test]
    fn pca_finds_the_spread_directions() {
        // Points along (3, 4, 0) / 5 with spread 10 and along z with spread 1.
        let mut rng = StdRng::seed_from_u64(1);
        let mut x = Array2::<f32>::zeros((200, 3));
        for mut row in x.rows_mut() {
            let a: f32 = rng.random_range(-10.0..10.0);
            let b: f32 = rng.random_range(-1.0..1.0);
            row.assign(&array![0.6 * a + 5.0, 0.8 * a - 2.0, b]);
        }
        let p = pca_2d(x.view()).unwrap();
        assert_eq!(p.dim(), (200, 2));
        let var = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64
        };
        let col = |k: usize| p.column(k).iter().map(|&v| v as f64).collect::<Vec<_>>();
        let (p0, p1) = (col(0), col(1));
        // The first component has the largest variance of any direction: compare with a dense
        // brute-force search over unit directions (theta, phi on a 1-degree grid).
        let xm = x.mean_axis(Axis(0)).unwrap();
        let mut best = 0f64;
        for it in 0..=180 {
            for ip in 0..360 {
                let (t, f) = ((it as f64).to_radians(), (ip as f64).to_radians());
                let d = [t.sin() * f.cos(), t.sin() * f.sin(), t.cos()];
                let proj: Vec<f64> = x
                    .rows()
                    .into_iter()
                    .map(|r| (0..3).map(|k| d[k] * (r[k] - xm[k]) as f64).sum())
                    .collect();
                best = best.max(var(&proj));
            }
        }
        assert!(var(&p0) >= best * (1.0 - 1e-6), "{} < {best}", var(&p0));
        assert!(var(&p0) < best * 1.001);
        // The two components are uncorrelated; the second carries the z spread (var ~ 1/3).
        let cov: f64 = p0.iter().zip(&p1).map(|(a, b)| a * b).sum::<f64>() / 199.0;
        assert!(cov.abs() < 1e-4, "covariance {cov}");
        assert!((var(&p1) - 1.0 / 3.0).abs() < 0.1, "{}", var(&p1));
        assert!(pca_2d(Array2::<f32>::zeros((1, 3)).view()).is_err());
    }

    #[test]
    fn wide_input_gives_the_components_of_the_covariance() {
        // 6 points in 9-D (N < E: the Gram-matrix path) against the covariance path on the
        // same points padded with copies (N > E, same covariance up to the 1 / (N - 1) scale,
        // hence the same components and projections of the first 6 rows).
        let mut rng = StdRng::seed_from_u64(5);
        let x = Array2::from_shape_fn((6, 9), |(i, k)| {
            (i as f32 * 0.7 + k as f32).sin() * 3.0 + rng.random_range(-0.5f32..0.5)
        });
        let wide = pca_2d(x.view()).unwrap();
        let tall_rows: Vec<f32> = (0..4).flat_map(|_| x.iter().copied()).collect();
        let tall = Array2::from_shape_vec((24, 9), tall_rows).unwrap();
        let reference = pca_2d(tall.view()).unwrap();
        for i in 0..6 {
            for k in 0..2 {
                assert!(
                    (wide[[i, k]] - reference[[i, k]]).abs() < 1e-3,
                    "{i},{k}: {} vs {}",
                    wide[[i, k]],
                    reference[[i, k]]
                );
            }
        }
    }
}
