//! `haad fit` as a library call: a detector on a few normal clips with the threshold a user
//! can have (their own normal clips, or leave-one-out over the support with rotated + jittered
//! variants), refusing targets the calibration set cannot reach and saying what it needs.

use haad_detect::{min_calibration_scores, Augmentation, Detector, Embedder, InputSpec, Scoring};
use haad_motion::augment::{Axis3, RotateJitterAugmenter};
use haad_motion::Motion;

use crate::error::{HaadError, Result};

/// Where the threshold comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Threshold {
    /// No threshold: scores only.
    None,
    /// (a) Scores of these normal clips (any of the support clips among them are left out).
    NormalClips(Vec<Motion>),
    /// (b) Leave-one-out over the support, with `variants` rotated (up to 30 degrees about
    /// `up`) and jittered (2 % of the body scale) variants per clip, drawn with `seed`.
    LeaveOneOut {
        /// Variants per support clip.
        variants: usize,
        /// The vertical axis.
        up: Axis3,
        /// Seed of the variants.
        seed: u64,
    },
}

/// The median over clips of the RMS distance of the joints from `root` at frame 0 (the body
/// scale the jitter is relative to; 1 if no clip gives a finite one).
pub fn body_scale(clips: &[Motion], root: usize) -> f32 {
    let mut sizes: Vec<f32> = clips
        .iter()
        .filter(|m| root < m.joints() && m.frames() > 0)
        .map(|m| {
            let f = m.frame(0);
            let r = f.row(root);
            let sq: f32 = f
                .rows()
                .into_iter()
                .map(|p| (&p - &r).mapv(|v| v * v).sum())
                .sum();
            (sq / f.nrows() as f32).sqrt()
        })
        .filter(|v| v.is_finite())
        .collect();
    sizes.sort_by(f32::total_cmp);
    sizes.get(sizes.len() / 2).copied().unwrap_or(1.0)
}

/// Fits a mean-distance detector on `support` (clips checked by `input`) and sets its
/// threshold for false-alarm target `alpha` as `threshold` says. Returns the detector and how
/// many of the given normal clips were support clips and left out.
pub fn fit_detector(
    embedder: Embedder,
    input: InputSpec,
    support: &[Motion],
    threshold: Threshold,
    alpha: f64,
) -> Result<(Detector, usize)> {
    let need = min_calibration_scores(alpha)?;
    let mut detector = Detector::fit(
        embedder,
        input.clone(),
        Scoring::MeanDistance,
        support,
        None,
    )?;
    let mut dropped = 0;
    match threshold {
        Threshold::None => {}
        Threshold::NormalClips(clips) => {
            let before = clips.len();
            let clips: Vec<Motion> = clips.into_iter().filter(|c| !support.contains(c)).collect();
            dropped = before - clips.len();
            if clips.len() < need {
                return Err(HaadError::InvalidArgument(format!(
                    "calibration: a false-alarm target of {alpha} needs at least {need} normal \
                     clips other than the support, got {}",
                    clips.len()
                )));
            }
            detector.calibrate(&clips, alpha)?;
        }
        Threshold::LeaveOneOut { variants, up, seed } => {
            let n = support.len() * (1 + variants);
            if support.len() < 2 || n < need {
                return Err(HaadError::InvalidArgument(format!(
                    "leave-one-out calibration of {} clips with {variants} variants each gives \
                     {n} normal scores; a false-alarm target of {alpha} needs at least {need} \
                     (and 2 clips): raise --variants, give --calibrate clips, or pass \
                     --no-threshold",
                    support.len()
                )));
            }
            let aug = RotateJitterAugmenter {
                up,
                max_angle: std::f32::consts::FRAC_PI_6,
                jitter_std: 0.02 * body_scale(support, input.root),
                root: input.root,
            };
            let extra = (variants > 0).then_some((
                support,
                Augmentation {
                    augmenter: &aug,
                    per_clip: variants,
                    seed,
                },
            ));
            detector.calibrate_leave_one_out(extra, alpha)?;
        }
    }
    Ok((detector, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use haad_detect::CalibrationSource;
    use ndarray::Array3;

    fn clip(freq: f32, offset: f32) -> Motion {
        let a = Array3::from_shape_fn((70, 3, 3), |(t, j, c)| {
            (t as f32 * freq).sin() * (j + 1) as f32 + c as f32 + offset
        });
        Motion::new(a, None).unwrap()
    }

    fn input() -> InputSpec {
        InputSpec {
            joints: 3,
            root: 0,
            min_frames: 1,
        }
    }

    #[test]
    fn thresholds_from_each_source_or_a_clear_refusal() {
        let support = [clip(0.1, 0.0), clip(0.11, 1.0), clip(0.09, 2.0)];
        let loo = |variants| Threshold::LeaveOneOut {
            variants,
            up: Axis3::Y,
            seed: 1,
        };
        let (d, _) = fit_detector(Embedder::raw_dct(), input(), &support, loo(10), 0.05).unwrap();
        let c = d.calibration().unwrap();
        assert_eq!((c.scores, c.source), (33, CalibrationSource::LeaveOneOut));
        let err = fit_detector(Embedder::raw_dct(), input(), &support, loo(5), 0.05)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gives 18 normal scores") && err.contains("at least 19"),
            "{err}"
        );
        // Normal clips: the support clips among them are left out and counted.
        let mut normal: Vec<Motion> = (0..19).map(|i| clip(0.1 + 0.001 * i as f32, 0.5)).collect();
        normal.push(support[1].clone());
        let (d, dropped) = fit_detector(
            Embedder::raw_dct(),
            input(),
            &support,
            Threshold::NormalClips(normal.clone()),
            0.05,
        )
        .unwrap();
        assert_eq!(dropped, 1);
        assert_eq!(d.calibration().unwrap().scores, 19);
        normal.truncate(10);
        assert!(fit_detector(
            Embedder::raw_dct(),
            input(),
            &support,
            Threshold::NormalClips(normal),
            0.05
        )
        .is_err());
        let (d, _) = fit_detector(
            Embedder::raw_dct(),
            input(),
            &support,
            Threshold::None,
            0.05,
        )
        .unwrap();
        assert!(d.calibration().is_none());
        // Body scale: joints at distance 1 and 2 (and 0) from the root give sqrt(5/3).
        let a = Array3::from_shape_fn((2, 3, 3), |(_, j, c)| if c == 0 { j as f32 } else { 0.0 });
        let m = Motion::new(a, None).unwrap();
        assert!((body_scale(&[m], 0) - (5.0f32 / 3.0).sqrt()).abs() < 1e-6);
    }
}
