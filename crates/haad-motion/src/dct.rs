//! The orthonormal DCT-II over time, the representation every model of haad works in.
//!
//! `D` is the `N x N` matrix `D[k, i] = w_k cos(pi (i + 1/2) k / N)` with `w_0 = sqrt(1/N)` and
//! `w_k = sqrt(2/N)` for `k > 0`. It is orthonormal (`D D^T = I`), so analysis keeps the first `K`
//! rows (`c = D_K x`, `[K, N] x [N, F]`) and synthesis uses their transpose (`x ~ D_K^T c`).

use candle_core::{Device, Tensor};
use ndarray::{Array2, Array3};

use crate::error::{MotionError, Result};
use crate::motion::Motion;

/// The full orthonormal DCT-II matrix `D`, `[n, n]`, in f64.
pub fn dct_matrix(n: usize) -> Array2<f64> {
    let nf = n as f64;
    Array2::from_shape_fn((n, n), |(k, i)| {
        let w = if k == 0 {
            (1.0 / nf).sqrt()
        } else {
            (2.0 / nf).sqrt()
        };
        w * (std::f64::consts::PI * (i as f64 + 0.5) * k as f64 / nf).cos()
    })
}

/// The first `K` rows of the `N`-point orthonormal DCT-II: analysis and synthesis of clips.
#[derive(Debug, Clone, PartialEq)]
pub struct DctBasis {
    analysis: Array2<f32>,
}

impl DctBasis {
    /// Basis for clips of `frames` (N) frames keeping `coefficients` (K) coefficients,
    /// `1 <= K <= N`.
    /// `N` is at most [`MAX_CLIP_FRAMES`](crate::limits::MAX_CLIP_FRAMES) (the full `N x N`
    /// matrix is built).
    pub fn new(frames: usize, coefficients: usize) -> Result<Self> {
        if frames == 0 || coefficients == 0 || coefficients > frames {
            return Err(MotionError::InvalidArgument(format!(
                "DCT needs 1 <= coefficients <= frames, got {coefficients} coefficients for {frames} frames"
            )));
        }
        crate::limits::check("DCT frames", frames, crate::limits::MAX_CLIP_FRAMES)
            .map_err(MotionError::InvalidArgument)?;
        let d = dct_matrix(frames);
        let analysis = d.slice(ndarray::s![..coefficients, ..]).mapv(|v| v as f32);
        Ok(Self { analysis })
    }

    /// N, the number of frames.
    pub fn frames(&self) -> usize {
        self.analysis.ncols()
    }

    /// K, the number of coefficients kept.
    pub fn coefficients(&self) -> usize {
        self.analysis.nrows()
    }

    /// `D_K`, `[K, N]`: coefficients = `D_K` x frames.
    pub fn analysis(&self) -> &Array2<f32> {
        &self.analysis
    }

    /// `D_K^T`, `[N, K]`: frames = `D_K^T` x coefficients.
    pub fn synthesis(&self) -> Array2<f32> {
        self.analysis.t().to_owned()
    }

    /// `D_K` as a candle tensor `[K, N]` (f32) on `device`.
    pub fn analysis_tensor(&self, device: &Device) -> Result<Tensor> {
        let (k, n) = self.analysis.dim();
        let v: Vec<f32> = self.analysis.iter().copied().collect();
        Ok(Tensor::from_vec(v, (k, n), device)?)
    }

    /// `D_K^T` as a candle tensor `[N, K]` (f32) on `device`.
    pub fn synthesis_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(self.analysis_tensor(device)?.t()?.contiguous()?)
    }

    /// The first K coefficients of a clip of exactly N frames, `[K, joints, 3]`.
    pub fn forward(&self, motion: &Motion) -> Result<Array3<f32>> {
        if motion.frames() != self.frames() {
            return Err(MotionError::Shape {
                what: "DCT input".into(),
                expected: format!("{} frames", self.frames()),
                got: format!("{} frames", motion.frames()),
            });
        }
        let j = motion.joints();
        let c = self.analysis.dot(&motion.to_matrix());
        Ok(c.into_shape_with_order((self.coefficients(), j, 3))
            .expect("[K, 3J] reshapes to [K, J, 3]"))
    }

    /// Synthesises N frames from K coefficients `[K, joints, 3]`.
    pub fn inverse(&self, coefficients: &Array3<f32>, fps: Option<f32>) -> Result<Motion> {
        let (k, j, c) = coefficients.dim();
        if k != self.coefficients() || c != 3 || j == 0 {
            return Err(MotionError::Shape {
                what: "DCT coefficients".into(),
                expected: format!("[{}, joints, 3]", self.coefficients()),
                got: format!("{:?}", coefficients.shape()),
            });
        }
        let flat = coefficients
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((k, j * 3))
            .expect("[K, J, 3] reshapes to [K, 3J]");
        let frames = self.analysis.t().dot(&flat);
        let data = frames
            .into_shape_with_order((self.frames(), j, 3))
            .expect("[N, 3J] reshapes to [N, J, 3]");
        Motion::new(data, fps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    #[test]
    fn matrix_is_orthonormal() {
        for n in [1, 2, 7, 60] {
            let d = dct_matrix(n);
            let eye = d.dot(&d.t());
            for ((a, b), v) in eye.indexed_iter() {
                let want = if a == b { 1.0 } else { 0.0 };
                assert_abs_diff_eq!(*v, want, epsilon = 1e-12);
            }
        }
    }

    #[test]
    fn matrix_matches_hand_computed_n2() {
        // N = 2: rows [1/sqrt2, 1/sqrt2] and sqrt(2/2) [cos(pi/4), cos(3pi/4)] = [1/sqrt2, -1/sqrt2].
        let d = dct_matrix(2);
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert_abs_diff_eq!(d[[0, 0]], h, epsilon = 1e-15);
        assert_abs_diff_eq!(d[[0, 1]], h, epsilon = 1e-15);
        assert_abs_diff_eq!(d[[1, 0]], h, epsilon = 1e-15);
        assert_abs_diff_eq!(d[[1, 1]], -h, epsilon = 1e-15);
    }

    #[test]
    fn matches_rustdct_scaled() {
        let mut rng = StdRng::seed_from_u64(7);
        for n in [5usize, 60] {
            let x: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut buf = x.clone();
            let mut planner = rustdct::DctPlanner::new();
            planner.plan_dct2(n).process_dct2(&mut buf);
            // rustdct computes sum_i x_i cos(pi (i + 1/2) k / N), unnormalised.
            let d = dct_matrix(n);
            for k in 0..n {
                let w = if k == 0 {
                    (1.0 / n as f64).sqrt()
                } else {
                    (2.0 / n as f64).sqrt()
                };
                let ours: f64 = (0..n).map(|i| d[[k, i]] * x[i]).sum();
                assert_abs_diff_eq!(ours, w * buf[k], epsilon = 1e-10);
            }
        }
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(DctBasis::new(0, 0).is_err());
        assert!(DctBasis::new(10, 0).is_err());
        assert!(DctBasis::new(10, 11).is_err());
        let err = DctBasis::new(usize::MAX / 2, 10).unwrap_err().to_string();
        assert!(err.contains("limit"), "{err}");
        let b = DctBasis::new(10, 3).unwrap();
        let m = Motion::new(Array3::zeros((9, 2, 3)), None).unwrap();
        assert!(b.forward(&m).is_err());
        assert!(b.inverse(&Array3::zeros((4, 2, 3)), None).is_err());
    }

    #[test]
    fn smooth_motion_round_trips() {
        // A smooth trajectory (low-frequency sinusoids plus a linear drift) of 60 frames.
        let n = 60;
        let data = Array3::from_shape_fn((n, 4, 3), |(t, j, c)| {
            let s = t as f32 / n as f32;
            (j + 1) as f32 * (std::f32::consts::PI * s * (c as f32 + 0.5)).sin() + 0.3 * s
        });
        let m = Motion::new(data, Some(30.0)).unwrap();
        let full = DctBasis::new(n, n).unwrap();
        let back = full
            .inverse(&full.forward(&m).unwrap(), Some(30.0))
            .unwrap();
        let err_full = (back.data() - m.data())
            .mapv(f32::abs)
            .fold(0.0f32, |a, &b| a.max(b));
        assert!(err_full < 1e-4, "full basis error {err_full}");
        // Truncation keeps a smooth clip: relative RMS error (error RMS / signal RMS).
        let rms = |a: &Array3<f32>| (a.mapv(|v| v * v).sum() / a.len() as f32).sqrt();
        for (k, tol) in [(10, 0.03), (20, 0.012)] {
            let b = DctBasis::new(n, k).unwrap();
            let back = b.inverse(&b.forward(&m).unwrap(), None).unwrap();
            let rel = rms(&(back.data() - m.data())) / rms(m.data());
            assert!(rel < tol, "K = {k}: relative RMS error {rel} >= {tol}");
        }
    }

    #[test]
    fn tensors_match_arrays() {
        let b = DctBasis::new(6, 4).unwrap();
        let a = b.analysis_tensor(&Device::Cpu).unwrap();
        let s = b.synthesis_tensor(&Device::Cpu).unwrap();
        assert_eq!(a.dims(), &[4, 6]);
        assert_eq!(s.dims(), &[6, 4]);
        let a: Vec<Vec<f32>> = a.to_vec2().unwrap();
        let s: Vec<Vec<f32>> = s.to_vec2().unwrap();
        for k in 0..4 {
            for i in 0..6 {
                assert_eq!(a[k][i], b.analysis()[[k, i]]);
                assert_eq!(s[i][k], b.analysis()[[k, i]]);
            }
        }
    }
}
