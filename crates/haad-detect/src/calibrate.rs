//! Decisions: a threshold on the anomaly score for a target false-alarm rate, set from normal
//! data only and kept with the detector.
//!
//! **The rule.** Given `n` scores of normal clips and a target false-alarm rate `alpha`, the
//! threshold is the `r`-th smallest score, `r = ceil((n + 1)(1 - alpha))`, and a clip is
//! anomalous iff its score is *above* the threshold. If the normal clips and a new normal clip
//! are exchangeable, the new one is flagged with probability at most `alpha` (split conformal
//! prediction); with `n` scores the smallest reachable rate is `1 / (n + 1)`, so a target
//! `alpha` needs `n >= ceil(1 / alpha) - 1` calibration scores ([`min_calibration_scores`]:
//! 19 for 5 %, 99 for 1 %).
//!
//! **Where the normal scores come from.**
//! (a) [`Detector::calibrate`]: normal clips the user provides, other than the support clips;
//! (b) [`Detector::calibrate_leave_one_out`]: only the K support clips. Each real support clip,
//! and each of its variants, is scored against the support without that clip and its variants.
//! Three clips give three scores (plus the variants'), fewer than a 5 % target needs; variants
//! of a clip are close to it, so their scores are not independent normal samples and the
//! measured false-alarm rate may exceed the target (docs/results.md measures it).
//!
//! ```
//! use haad_detect::{min_calibration_scores, Detector, Embedder, InputSpec, Scoring};
//! use haad_detect::{StreamScorer, WindowOutcome};
//! use haad_motion::Motion;
//! use ndarray::Array3;
//!
//! let sway = |freq: f32, frames: usize| {
//!     let a = Array3::from_shape_fn((frames, 2, 3), |(t, j, c)| {
//!         (t as f32 * freq).sin() * (j + 1) as f32 + c as f32
//!     });
//!     Motion::new(a, Some(30.0))
//! };
//! let input = InputSpec { joints: 2, root: 0, min_frames: 1 };
//! let support = [sway(0.10, 70)?, sway(0.11, 64)?, sway(0.09, 90)?];
//! let mut detector =
//!     Detector::fit(Embedder::raw_dct(), input, Scoring::MeanDistance, &support, None)?;
//! // A 10 % target needs 9 normal scores; 3 support clips alone give 3, and are refused.
//! assert_eq!(min_calibration_scores(0.1)?, 9);
//! assert!(detector.calibrate_leave_one_out(None, 0.1).is_err());
//! let normal: Vec<Motion> =
//!     (0..9).map(|i| sway(0.095 + 0.002 * i as f32, 80)).collect::<Result<_, _>>()?;
//! detector.calibrate(&normal, 0.1)?;
//! assert!(detector.decide(&sway(0.9, 80)?)?.anomalous);
//! // Live: a window of 60 frames every 10 frames.
//! let mut stream = StreamScorer::new(&detector, 10, Some(30.0))?;
//! let recording = sway(0.1, 200)?;
//! let mut scores = Vec::new();
//! stream.push_motion(&recording, |w| scores.push(w.outcome))?;
//! assert_eq!(scores.len(), (200 - 60) / 10 + 1);
//! assert!(matches!(scores[0], WindowOutcome::Score(_)));
//! # Ok::<(), haad_detect::DetectError>(())
//! ```

use haad_motion::Motion;
use ndarray::Axis;
use serde::{Deserialize, Serialize};

use crate::detector::Detector;
use crate::error::{DetectError, Result};
use crate::support::{generate, Augmentation};

/// Where a threshold's normal scores came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationSource {
    /// Scores of normal clips the user gave (not the support clips).
    NormalClips,
    /// Leave-one-out scores of the support clips and their variants.
    LeaveOneOut,
}

/// A decision threshold and how it was set (saved in `detector.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// The threshold: a score above it is an anomaly.
    pub threshold: f32,
    /// alpha: the false-alarm rate asked for.
    pub target_false_alarm: f64,
    /// n: normal scores the threshold came from.
    pub scores: usize,
    /// Where they came from.
    pub source: CalibrationSource,
}

/// The fewest normal scores that reach a false-alarm target `alpha`: `ceil(1 / alpha) - 1`
/// (19 for 5 %). Errors for `alpha` outside `(0, 1)`.
pub fn min_calibration_scores(alpha: f64) -> Result<usize> {
    check_alpha(alpha)?;
    // The small slack keeps 1 / 0.05 = 20.000000000000004 at 20.
    Ok(((1.0 / alpha) * (1.0 - 1e-12)).ceil() as usize - 1)
}

fn check_alpha(alpha: f64) -> Result<()> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(DetectError::InvalidArgument(format!(
            "the false-alarm target must lie in (0, 1), got {alpha}"
        )));
    }
    Ok(())
}

impl Calibration {
    /// The threshold for target `alpha` from normal `scores` (see the module docs). Errors,
    /// naming how many scores the target needs, when there are too few; and for non-finite
    /// scores.
    pub fn from_scores(scores: &[f32], alpha: f64, source: CalibrationSource) -> Result<Self> {
        let need = min_calibration_scores(alpha)?;
        let n = scores.len();
        if n < need {
            return Err(DetectError::InvalidArgument(format!(
                "a false-alarm target of {alpha} needs at least {need} normal calibration \
                 scores, got {n} (with n scores the smallest reachable rate is 1/(n+1) = {:.3})",
                1.0 / (n as f64 + 1.0)
            )));
        }
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            return Err(DetectError::Metric(format!(
                "calibration score {i} is not finite ({})",
                scores[i]
            )));
        }
        let mut sorted = scores.to_vec();
        sorted.sort_by(f32::total_cmp);
        let rank = (((n + 1) as f64) * (1.0 - alpha) * (1.0 - 1e-12)).ceil() as usize;
        Ok(Self {
            threshold: sorted[rank.clamp(1, n) - 1],
            target_false_alarm: alpha,
            scores: n,
            source,
        })
    }

    /// Whether `score` is an anomaly: above the threshold.
    pub fn is_anomalous(&self, score: f32) -> bool {
        score > self.threshold
    }
}

/// A clip's score and the decision for it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The anomaly score.
    pub score: f32,
    /// Whether it is above the detector's threshold.
    pub anomalous: bool,
}

impl Detector {
    /// (a) Sets the threshold for false-alarm target `alpha` from the scores of `normal` clips
    /// (normal data other than the support clips; at least [`min_calibration_scores`] of
    /// them). Returns the calibration now kept in the detector.
    pub fn calibrate(&mut self, normal: &[Motion], alpha: f64) -> Result<&Calibration> {
        min_calibration_scores(alpha)?;
        let scores = self.score_batch(normal)?;
        let c = Calibration::from_scores(&scores, alpha, CalibrationSource::NormalClips)?;
        Ok(self.set_calibration(Some(c)).expect("just set"))
    }

    /// (b) Sets the threshold from the support clips alone: the leave-one-out scores of
    /// [`Detector::leave_one_out_scores`]. Needs at least two real support clips.
    pub fn calibrate_leave_one_out(
        &mut self,
        extra: Option<(&[Motion], Augmentation<'_>)>,
        alpha: f64,
    ) -> Result<&Calibration> {
        min_calibration_scores(alpha)?;
        let scores = self.leave_one_out_scores(extra)?;
        let c = Calibration::from_scores(&scores, alpha, CalibrationSource::LeaveOneOut)?;
        Ok(self.set_calibration(Some(c)).expect("just set"))
    }

    /// Leave-one-out scores of the support: for every real support clip `i`, the score of its
    /// embedding and of its variants' (those in the support, and with `extra = (clips, a)`
    /// another `a.per_clip` variants of each of the raw support `clips`, in support order)
    /// against the support without clip `i` and its variants. `K * (1 + variants)` scores.
    pub fn leave_one_out_scores(
        &self,
        extra: Option<(&[Motion], Augmentation<'_>)>,
    ) -> Result<Vec<f32>> {
        let support = self.support();
        let k = support.real();
        if k < 2 {
            return Err(DetectError::InvalidArgument(format!(
                "leave-one-out calibration needs at least 2 real support clips, the detector has {k}"
            )));
        }
        let emb = support.embeddings();
        let origin = support.origin();
        let mut queries: Vec<(usize, ndarray::Array1<f32>)> = origin
            .iter()
            .enumerate()
            .map(|(row, &o)| (o, emb.row(row).to_owned()))
            .collect();
        if let Some((clips, a)) = extra {
            if clips.len() != k {
                return Err(DetectError::InvalidArgument(format!(
                    "leave-one-out variants need the {k} raw support clips, got {} clips",
                    clips.len()
                )));
            }
            let generated = generate(clips, self.input(), &a)?;
            let g = crate::embed::Embedding::embed_raw(self.embedder(), &generated, self.input())?;
            for (i, row) in g.rows().into_iter().enumerate() {
                queries.push((i / a.per_clip.max(1), row.to_owned()));
            }
        }
        let mut out = Vec::with_capacity(queries.len());
        for left_out in 0..k {
            let keep: Vec<usize> = (0..origin.len())
                .filter(|&r| origin[r] != left_out)
                .collect();
            let rest = emb.select(Axis(0), &keep);
            for (o, q) in queries.iter().filter(|(o, _)| *o == left_out) {
                let s = self
                    .scoring()
                    .score(rest.view(), q.view())
                    .map_err(|e| e.at_clip(*o, None))?;
                out.push(s);
            }
        }
        Ok(out)
    }

    /// The score of `clip` and whether it is anomalous; errors if the detector has no
    /// threshold (see [`Detector::calibrate`]).
    pub fn decide(&self, clip: &Motion) -> Result<Decision> {
        let score = self.score(clip)?;
        Ok(Decision {
            score,
            anomalous: self.is_anomalous(score)?,
        })
    }

    /// Whether `score` is above the detector's threshold; errors if it has none.
    pub fn is_anomalous(&self, score: f32) -> Result<bool> {
        self.calibration()
            .map(|c| c.is_anomalous(score))
            .ok_or_else(|| {
                DetectError::InvalidArgument(
                    "the detector has no threshold: calibrate it first (Detector::calibrate)"
                        .into(),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::Embedder;
    use crate::input::InputSpec;
    use crate::scoring::Scoring;
    use haad_motion::augment::{Axis3, RotateJitterAugmenter};
    use ndarray::Array3;

    #[test]
    fn needed_scores_and_threshold_rank() {
        assert_eq!(min_calibration_scores(0.05).unwrap(), 19);
        assert_eq!(min_calibration_scores(0.01).unwrap(), 99);
        assert_eq!(min_calibration_scores(0.1).unwrap(), 9);
        assert_eq!(min_calibration_scores(0.3).unwrap(), 3);
        for bad in [0.0, 1.0, -0.1, f64::NAN] {
            assert!(min_calibration_scores(bad).is_err());
        }
        // 19 scores 1..=19 at 5 %: rank ceil(20 * 0.95) = 19, the largest.
        let s: Vec<f32> = (1..=19).rev().map(|v| v as f32).collect();
        let c = Calibration::from_scores(&s, 0.05, CalibrationSource::NormalClips).unwrap();
        assert_eq!(c.threshold, 19.0);
        // 99 scores at 5 %: rank ceil(100 * 0.95) = 95.
        let s: Vec<f32> = (1..=99).map(|v| v as f32).collect();
        let c = Calibration::from_scores(&s, 0.05, CalibrationSource::NormalClips).unwrap();
        assert_eq!(c.threshold, 95.0);
        assert!(!c.is_anomalous(95.0) && c.is_anomalous(95.5));
        let err = Calibration::from_scores(&s[..18], 0.05, CalibrationSource::LeaveOneOut)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 19"), "{err}");
        assert!(
            Calibration::from_scores(&[f32::NAN; 20], 0.05, CalibrationSource::NormalClips)
                .is_err()
        );
    }

    #[test]
    fn false_alarms_stay_near_the_target_on_exchangeable_scores() {
        // Normal scores from one distribution: the flagged share of fresh normals is at most
        // alpha on average over calibration draws (conformal guarantee), and not far below.
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(4);
        let mut rate = 0.0;
        let trials = 400;
        for _ in 0..trials {
            let cal: Vec<f32> = (0..39).map(|_| rng.random::<f32>()).collect();
            let c = Calibration::from_scores(&cal, 0.1, CalibrationSource::NormalClips).unwrap();
            let fresh = (0..200)
                .filter(|_| c.is_anomalous(rng.random::<f32>()))
                .count();
            rate += fresh as f64 / 200.0 / trials as f64;
        }
        // Rank ceil(40 * 0.9) = 36 of 39: expected rate 4 / 40 = 0.1.
        assert!((rate - 0.1).abs() < 0.01, "{rate}");
    }

    fn clip(freq: f32, offset: f32) -> Motion {
        let a = Array3::from_shape_fn((70, 3, 3), |(t, j, c)| {
            (t as f32 * freq).sin() * (j + 1) as f32 * 0.2 + c as f32 + offset
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
    fn leave_one_out_scores_match_detectors_without_the_clip() {
        let clips = [clip(0.1, 0.0), clip(0.13, 1.0), clip(0.08, 2.0)];
        let aug = RotateJitterAugmenter {
            up: Axis3::Y,
            max_angle: 0.3,
            jitter_std: 0.02,
            root: 0,
        };
        let a = Augmentation {
            augmenter: &aug,
            per_clip: 2,
            seed: 9,
        };
        let d = Detector::fit(
            Embedder::raw_dct(),
            input(),
            Scoring::MeanDistance,
            &clips,
            Some(a),
        )
        .unwrap();
        let extra = Augmentation { seed: 10, ..a };
        let got = d.leave_one_out_scores(Some((&clips, extra))).unwrap();
        assert_eq!(got.len(), 3 * (1 + 2 + 2));
        // Without variants, the leave-one-out score of clip i is the score a detector fitted
        // on the other clips gives it.
        let plain = Detector::fit(
            Embedder::raw_dct(),
            input(),
            Scoring::MeanDistance,
            &clips,
            None,
        )
        .unwrap();
        let loo = plain.leave_one_out_scores(None).unwrap();
        for i in 0..3 {
            let others: Vec<Motion> = (0..3)
                .filter(|&j| j != i)
                .map(|j| clips[j].clone())
                .collect();
            let sub = Detector::fit(
                Embedder::raw_dct(),
                input(),
                Scoring::MeanDistance,
                &others,
                None,
            )
            .unwrap();
            let want = sub.score(&clips[i]).unwrap();
            assert!(
                (loo[i] - want).abs() <= 1e-6 * want.abs(),
                "{i}: {} vs {want}",
                loo[i]
            );
        }
        // With variants, block i starts with clip i against the rows not derived from it.
        let emb = d.support().embeddings();
        let origin = d.support().origin();
        for i in 0..3 {
            let rest: Vec<usize> = (0..origin.len()).filter(|&r| origin[r] != i).collect();
            assert_eq!(rest.len(), 6);
            let want = Scoring::MeanDistance
                .score(emb.select(Axis(0), &rest).view(), emb.row(i))
                .unwrap();
            assert_eq!(got[i * 5], want);
        }
        let mut d = d;
        assert!(d.is_anomalous(1.0).is_err());
        let err = d
            .calibrate_leave_one_out(None, 0.05)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 19"), "{err}");
        let c = d
            .calibrate_leave_one_out(Some((&clips, extra)), 0.2)
            .unwrap();
        assert_eq!((c.scores, c.source), (15, CalibrationSource::LeaveOneOut));
        let max = got.iter().cloned().fold(f32::MIN, f32::max);
        assert!(c.threshold <= max);
        // One real clip cannot be left out.
        let one = Detector::fit(
            Embedder::raw_dct(),
            input(),
            Scoring::MeanDistance,
            &clips[..1],
            None,
        )
        .unwrap();
        assert!(one.leave_one_out_scores(None).is_err());
    }

    #[test]
    fn calibrate_on_normal_clips_and_decide() {
        let clips = [clip(0.1, 0.0), clip(0.13, 1.0), clip(0.08, 2.0)];
        let mut d = Detector::fit(
            Embedder::raw_dct(),
            input(),
            Scoring::MeanDistance,
            &clips,
            None,
        )
        .unwrap();
        let normal: Vec<Motion> = (0..19)
            .map(|i| clip(0.09 + 0.002 * i as f32, i as f32))
            .collect();
        let scores = d.score_batch(&normal).unwrap();
        let c = d.calibrate(&normal, 0.05).unwrap().clone();
        assert_eq!(c.threshold, scores.iter().cloned().fold(f32::MIN, f32::max));
        assert_eq!(d.calibration(), Some(&c));
        let odd = d.decide(&clip(0.9, 0.0)).unwrap();
        assert!(odd.anomalous, "{odd:?} vs {c:?}");
        assert!(!d.decide(&normal[3]).unwrap().anomalous);
        assert!(d.calibrate(&normal[..5], 0.05).is_err());
        // A failed calibration keeps the old threshold.
        assert_eq!(d.calibration(), Some(&c));
        // Another scoring rule drops the threshold.
        let d = d.with_scoring(Scoring::MinDistance).unwrap();
        assert!(d.calibration().is_none());
    }
}
