//! Stochastic motion-prediction metrics (DLow / HumanMAC conventions): best-of-G ADE and FDE,
//! APD, and the zero-velocity baseline.
//!
//! A pose is the flattened vector of all joints' coordinates (3 J values); its error is the
//! Euclidean norm of the difference of pose vectors, in data units.

use haad_motion::Motion;
use serde::{Deserialize, Serialize};

use crate::error::{DiffusionError, Result};

/// The metrics of G completions of one or many clips, averaged over clips.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PredictionMetrics {
    /// Average displacement error of the best sample: min over samples of the mean over predicted
    /// frames of the pose error.
    pub ade: f64,
    /// Final displacement error of the best sample: min over samples of the last frame's error.
    pub fde: f64,
    /// Average pairwise distance between the samples' predicted parts (flattened), a diversity
    /// measure; 0 for a single sample.
    pub apd: f64,
}

fn pose_dist(a: &Motion, b: &Motion, t: usize) -> f64 {
    a.frame(t)
        .iter()
        .zip(b.frame(t).iter())
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// The metrics of `samples` (G completions) of the ground truth `truth` over frames
/// `t_his..N`.
pub fn clip_metrics(truth: &Motion, samples: &[Motion], t_his: usize) -> Result<PredictionMetrics> {
    let n = truth.frames();
    if samples.is_empty() || t_his >= n {
        return Err(DiffusionError::InvalidArgument(format!(
            "need at least one sample and t_his < {n} frames, got {} samples and t_his {t_his}",
            samples.len()
        )));
    }
    for s in samples {
        if s.frames() != n || s.joints() != truth.joints() {
            return Err(DiffusionError::Shape {
                what: "predicted clip".into(),
                expected: format!("{n} frames of {} joints", truth.joints()),
                got: format!("{} frames of {} joints", s.frames(), s.joints()),
            });
        }
    }
    let (mut ade, mut fde) = (f64::INFINITY, f64::INFINITY);
    for s in samples {
        let a = (t_his..n).map(|t| pose_dist(s, truth, t)).sum::<f64>() / (n - t_his) as f64;
        ade = ade.min(a);
        fde = fde.min(pose_dist(s, truth, n - 1));
    }
    let mut apd = 0.0;
    let g = samples.len();
    if g > 1 {
        let mut sum = 0.0;
        for i in 0..g {
            for j in i + 1..g {
                let d2: f64 = (t_his..n)
                    .map(|t| pose_dist(&samples[i], &samples[j], t).powi(2))
                    .sum();
                sum += d2.sqrt();
            }
        }
        apd = sum / (g * (g - 1) / 2) as f64;
    }
    Ok(PredictionMetrics { ade, fde, apd })
}

/// The zero-velocity prediction: the first t_his frames, then the last observed frame repeated.
pub fn zero_velocity(clip: &Motion, t_his: usize) -> Result<Motion> {
    if t_his == 0 || t_his > clip.frames() {
        return Err(DiffusionError::InvalidArgument(format!(
            "t_his must lie in 1..={}, got {t_his}",
            clip.frames()
        )));
    }
    let mut data = clip.data().clone();
    let last = clip.frame(t_his - 1).to_owned();
    for t in t_his..clip.frames() {
        data.index_axis_mut(ndarray::Axis(0), t).assign(&last);
    }
    Ok(Motion::new(data, clip.fps())?)
}

/// Mean of per-clip metrics.
pub fn mean(metrics: &[PredictionMetrics]) -> PredictionMetrics {
    let n = metrics.len().max(1) as f64;
    PredictionMetrics {
        ade: metrics.iter().map(|m| m.ade).sum::<f64>() / n,
        fde: metrics.iter().map(|m| m.fde).sum::<f64>() / n,
        apd: metrics.iter().map(|m| m.apd).sum::<f64>() / n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::Array3;

    fn line(n: usize, v: f32) -> Motion {
        // One joint moving along x at speed v per frame.
        Motion::new(
            Array3::from_shape_fn(
                (n, 1, 3),
                |(t, _, c)| if c == 0 { v * t as f32 } else { 0.0 },
            ),
            None,
        )
        .unwrap()
    }

    #[test]
    fn hand_computed_case() {
        let truth = line(4, 1.0); // x = 0, 1, 2, 3
        let zv = zero_velocity(&truth, 2).unwrap(); // x = 0, 1, 1, 1
        let m = clip_metrics(&truth, std::slice::from_ref(&zv), 2).unwrap();
        // Errors at frames 2, 3: 1 and 2.
        assert_abs_diff_eq!(m.ade, 1.5, epsilon = 1e-12);
        assert_abs_diff_eq!(m.fde, 2.0, epsilon = 1e-12);
        assert_eq!(m.apd, 0.0);
        // The exact sample wins the best-of-2; APD = sqrt(1 + 4).
        let m2 = clip_metrics(&truth, &[zv, truth.clone()], 2).unwrap();
        assert_eq!((m2.ade, m2.fde), (0.0, 0.0));
        assert_abs_diff_eq!(m2.apd, 5f64.sqrt(), epsilon = 1e-12);
        assert!(clip_metrics(&truth, &[], 2).is_err());
        assert!(clip_metrics(&truth, &[line(5, 1.0)], 2).is_err());
        assert!(zero_velocity(&truth, 0).is_err());
        let avg = mean(&[m, m2]);
        assert_abs_diff_eq!(avg.ade, 0.75, epsilon = 1e-12);
    }
}
