//! [`Detector`]: an embedder, a support set of normal clips and a scoring rule; scores how
//! anomalous any raw clip is.

use haad_motion::Motion;

use crate::calibrate::Calibration;
use crate::embed::{Embedder, Embedding};
use crate::error::{DetectError, Result};
use crate::input::InputSpec;
use crate::scoring::Scoring;
use crate::support::{Augmentation, SupportSet};

/// A few-shot anomaly detector: score = distance of a clip's embedding to the support
/// embeddings (by default the mean Euclidean distance, the paper's Eq. 6).
///
/// `Detector` is `Send + Sync`: one instance can serve many threads.
#[derive(Debug, Clone, PartialEq)]
pub struct Detector {
    embedder: Embedder,
    input: InputSpec,
    scoring: Scoring,
    support: SupportSet,
    calibration: Option<Calibration>,
}

impl Detector {
    /// Assembles a detector and checks that its parts agree (joint counts, embedding width,
    /// scoring rule vs support size).
    pub fn new(
        embedder: Embedder,
        input: InputSpec,
        scoring: Scoring,
        support: SupportSet,
    ) -> Result<Self> {
        input.check()?;
        if let Some(j) = embedder.joints() {
            if j != input.joints {
                return Err(DetectError::InvalidArgument(format!(
                    "the {} embedder takes {j} joints, the input spec says {}",
                    embedder.name(),
                    input.joints
                )));
            }
        }
        let dim = embedder.dim(input.joints);
        if support.dim() != dim {
            return Err(DetectError::Shape {
                what: "support embeddings".into(),
                expected: format!("width {dim} (the {} embedder's)", embedder.name()),
                got: format!("width {}", support.dim()),
            });
        }
        scoring.check(support.len())?;
        if scoring == Scoring::MeanCosineDistance {
            for (i, row) in support.embeddings().rows().into_iter().enumerate() {
                if row.iter().all(|&v| v == 0.0) {
                    return Err(DetectError::InvalidArgument(format!(
                        "cosine scoring is undefined: support embedding {i} is zero"
                    )));
                }
            }
        }
        Ok(Self {
            embedder,
            input,
            scoring,
            support,
            calibration: None,
        })
    }

    /// Embeds the raw normal `clips` (plus optional generated variants) as the support set and
    /// assembles the detector.
    pub fn fit(
        embedder: Embedder,
        input: InputSpec,
        scoring: Scoring,
        normal_clips: &[Motion],
        augmentation: Option<Augmentation<'_>>,
    ) -> Result<Self> {
        input.check()?;
        let support = SupportSet::build(&embedder, &input, normal_clips, augmentation)?;
        Self::new(embedder, input, scoring, support)
    }

    /// The anomaly score of one raw clip (higher = more anomalous).
    ///
    /// Errors (never a score) for a wrong joint count, fewer than `min_frames` frames or a
    /// non-finite coordinate.
    pub fn score(&self, clip: &Motion) -> Result<f32> {
        let prepared = self.input.prepare(clip, self.embedder.frames())?;
        let e = self
            .embedder
            .embed_prepared(std::slice::from_ref(&prepared))?;
        self.scoring.score(self.support.embeddings(), e.row(0))
    }

    /// Scores of many raw clips, embedded in one batch; an error names the clip's index.
    pub fn score_batch(&self, clips: &[Motion]) -> Result<Vec<f32>> {
        if clips.is_empty() {
            return Ok(Vec::new());
        }
        let e = self.embedder.embed_raw(clips, &self.input)?;
        e.rows()
            .into_iter()
            .enumerate()
            .map(|(i, row)| {
                self.scoring
                    .score(self.support.embeddings(), row)
                    .map_err(|err| err.at_clip(i, None))
            })
            .collect()
    }

    /// The embedding method.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// What the detector accepts and how it prepares clips.
    pub fn input(&self) -> &InputSpec {
        &self.input
    }

    /// The scoring rule.
    pub fn scoring(&self) -> Scoring {
        self.scoring
    }

    /// The support set.
    pub fn support(&self) -> &SupportSet {
        &self.support
    }

    /// The decision threshold, if the detector has been calibrated.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
    }

    /// Replaces (or with `None` removes) the decision threshold; returns the new one.
    pub fn set_calibration(&mut self, calibration: Option<Calibration>) -> Option<&Calibration> {
        self.calibration = calibration;
        self.calibration.as_ref()
    }

    /// The same detector with another scoring rule (checked against the support set). The
    /// threshold, set for the old rule's scores, is dropped.
    pub fn with_scoring(self, scoring: Scoring) -> Result<Self> {
        Self::new(self.embedder, self.input, scoring, self.support)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;
    use std::sync::Arc;

    const _: () = {
        const fn send_sync<T: Send + Sync>() {}
        send_sync::<Detector>();
    };

    /// A clip of 4 joints oscillating with `freq`; `offset` moves the whole body.
    fn clip(freq: f32, frames: usize, offset: f32) -> Motion {
        let a = Array3::from_shape_fn((frames, 4, 3), |(t, j, c)| {
            (t as f32 * freq).sin() * (j + 1) as f32 * 0.1 + c as f32 + offset
        });
        Motion::new(a, Some(30.0)).unwrap()
    }

    fn detector() -> Detector {
        let input = InputSpec {
            joints: 4,
            root: 0,
            min_frames: 10,
        };
        let normal = [
            clip(0.10, 70, 0.0),
            clip(0.11, 65, 1.0),
            clip(0.12, 80, -2.0),
        ];
        Detector::fit(
            Embedder::raw_dct(),
            input,
            Scoring::MeanDistance,
            &normal,
            None,
        )
        .unwrap()
    }

    #[test]
    fn normal_clips_score_lower_than_anomalies() {
        let d = detector();
        let normal = d.score(&clip(0.105, 75, 5.0)).unwrap();
        let anomaly = d.score(&clip(0.6, 75, 5.0)).unwrap();
        assert!(normal < anomaly, "{normal} vs {anomaly}");
        // The score is the mean distance of the embedding to the three support rows.
        let q = d
            .embedder()
            .embed_raw(&[clip(0.6, 75, 5.0)], d.input())
            .unwrap();
        let mean: f64 = d
            .support()
            .embeddings()
            .rows()
            .into_iter()
            .map(|s| {
                s.iter()
                    .zip(q.row(0))
                    .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .sum::<f64>()
            / 3.0;
        assert!((anomaly as f64 - mean).abs() < 1e-4 * mean);
        let batch = d
            .score_batch(&[clip(0.105, 75, 5.0), clip(0.6, 75, 5.0)])
            .unwrap();
        assert_eq!(batch, vec![normal, anomaly]);
    }

    #[test]
    fn bad_input_gives_errors_not_scores() {
        let d = detector();
        let wrong_joints = Motion::new(Array3::zeros((70, 5, 3)), None).unwrap();
        assert!(matches!(
            d.score(&wrong_joints),
            Err(DetectError::WrongJoints {
                expected: 4,
                got: 5
            })
        ));
        assert!(matches!(
            d.score(&clip(0.1, 9, 0.0)),
            Err(DetectError::TooFewFrames { min: 10, got: 9 })
        ));
        // A short clip at the minimum is padded and scored.
        assert!(d.score(&clip(0.1, 10, 0.0)).is_ok());
        let mut nan = clip(0.1, 70, 0.0).into_data();
        nan[[69, 3, 2]] = f32::NAN;
        let nan = Motion::new(nan, None).unwrap();
        assert!(matches!(
            d.score(&nan),
            Err(DetectError::NonFinite {
                frame: 69,
                joint: 3,
                axis: 2,
                ..
            })
        ));
        let err = d
            .score_batch(&[clip(0.1, 70, 0.0), clip(0.1, 70, 0.0), nan])
            .unwrap_err();
        assert!(err.to_string().starts_with("clip 2:"), "{err}");
        let mut inf = clip(0.1, 70, 0.0).into_data();
        inf[[0, 0, 0]] = f32::INFINITY;
        assert!(d.score(&Motion::new(inf, None).unwrap()).is_err());
    }

    #[test]
    fn parts_must_agree() {
        let d = detector();
        let input = d.input().clone();
        let narrow = SupportSet::from_embeddings(ndarray::Array2::ones((3, 5))).unwrap();
        assert!(Detector::new(
            Embedder::raw_dct(),
            input.clone(),
            Scoring::MeanDistance,
            narrow
        )
        .is_err());
        assert!(d.clone().with_scoring(Scoring::KNearest(4)).is_err());
        let k2 = d.clone().with_scoring(Scoring::KNearest(2)).unwrap();
        let probe = clip(0.3, 70, 0.0);
        assert!(k2.score(&probe).unwrap() <= d.score(&probe).unwrap() + 1e-6);
        let zero = SupportSet::from_embeddings(ndarray::Array2::zeros((1, 120))).unwrap();
        assert!(Detector::new(
            Embedder::raw_dct(),
            input,
            Scoring::MeanCosineDistance,
            zero
        )
        .is_err());
    }

    #[test]
    fn encoder_detector_scores_with_the_models_embeddings() {
        use candle_core::Device;
        use haad_gcn::{EncoderConfig, EncoderModel};
        let cfg = EncoderConfig {
            joints: 4,
            hidden: 8,
            blocks: 1,
            ..Default::default()
        };
        let model = EncoderModel::new(&cfg, 3, &Device::Cpu).unwrap();
        let input = InputSpec {
            joints: 4,
            root: 2,
            min_frames: 1,
        };
        let normal = [
            clip(0.10, 70, 0.0),
            clip(0.11, 65, 1.0),
            clip(0.12, 80, -2.0),
        ];
        let prepared: Vec<Motion> = normal
            .iter()
            .map(|c| haad_motion::preprocess::prepare(c, 60, 2).unwrap())
            .collect();
        let support = model.embed(&prepared).unwrap();
        let probe = clip(0.5, 40, 3.0);
        let q = model
            .embed(&[haad_motion::preprocess::prepare(&probe, 60, 2).unwrap()])
            .unwrap();
        let want = Scoring::MeanDistance
            .score(support.view(), q.row(0))
            .unwrap();
        let d = Detector::fit(
            Embedder::encoder(model),
            input.clone(),
            Scoring::MeanDistance,
            &normal,
            None,
        )
        .unwrap();
        assert_eq!(d.support().embeddings(), support);
        assert_eq!(d.score(&probe).unwrap(), want);
        // The encoder is built for 4 joints: another input spec is refused.
        let five = InputSpec { joints: 5, ..input };
        let err = Detector::new(
            d.embedder().clone(),
            five,
            Scoring::MeanDistance,
            d.support().clone(),
        )
        .unwrap_err();
        assert!(matches!(err, DetectError::InvalidArgument(_)), "{err}");
    }

    #[test]
    fn scores_from_many_threads_match() {
        let d = Arc::new(detector());
        let clips: Vec<Motion> = (0..8)
            .map(|i| clip(0.05 * (i + 1) as f32, 70, 0.0))
            .collect();
        let want = d.score_batch(&clips).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let d = Arc::clone(&d);
                let clips = clips.clone();
                std::thread::spawn(move || {
                    clips
                        .iter()
                        .map(|c| d.score(c).unwrap())
                        .collect::<Vec<f32>>()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), want);
        }
    }
}
