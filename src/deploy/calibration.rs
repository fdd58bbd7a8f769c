//! How well a calibrated threshold keeps its false-alarm promise on held-out data.
//!
//! For every category `c` and support seed `s`: a detector on `K` train clips of `c`; a
//! threshold for the target false-alarm rate from normal scores of one of several
//! [`CalibrationSetup`]s; then the measured false-alarm rate (share of `c`'s test clips above
//! the threshold) and detection rate (share of the other categories' test clips above it).
//! Means over categories and seeds.
//!
//! With `n` normal scores a target `alpha` is reachable only if `n >= ceil(1/alpha) - 1`
//! ([`min_calibration_scores`]); where it is not, the experiment still measures the most
//! conservative threshold there is, the largest normal score (expected false-alarm rate
//! `1/(n+1)`), and marks the row unreachable: what the `haad` tool refuses.

use haad_detect::{
    min_calibration_scores, Augmentation, Calibration, CalibrationSource, Detector, Embedder,
    Embedding, InputSpec, Scoring,
};
use haad_motion::augment::RotateJitterAugmenter;
use haad_motion::split::{sample_support, Split};
use haad_motion::Dataset;
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{HaadError, Result};

/// Where the normal calibration scores come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationSetup {
    /// (a) `clips` extra train clips of the category (not in the support), each with
    /// `variants` rotated + jittered variants.
    ExtraClips {
        /// Extra real clips (fewer if the category has fewer train clips left).
        clips: usize,
        /// Variants of each.
        variants: usize,
    },
    /// (b) Leave-one-out over the K support clips, each with `variants` rotated + jittered
    /// variants.
    LeaveOneOut {
        /// Variants per support clip.
        variants: usize,
    },
}

impl std::fmt::Display for CalibrationSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CalibrationSetup::ExtraClips { clips, variants: 0 } => {
                write!(f, "(a) {clips} extra train clips")
            }
            CalibrationSetup::ExtraClips { clips, variants } => {
                write!(
                    f,
                    "(a) {clips} extra train clips + {variants} variants each"
                )
            }
            CalibrationSetup::LeaveOneOut { variants: 0 } => write!(f, "(b) leave-one-out"),
            CalibrationSetup::LeaveOneOut { variants } => {
                write!(f, "(b) leave-one-out + {variants} variants each")
            }
        }
    }
}

/// Settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationExperimentConfig {
    /// K: support clips.
    pub k: usize,
    /// Support seeds `0..seeds`.
    pub seeds: usize,
    /// alpha: the false-alarm target.
    pub target: f64,
    /// Rotation range of the variants (radians) and jitter as a share of the body scale.
    pub max_angle: f32,
    /// Jitter standard deviation as a share of the dataset's body scale.
    pub jitter_fraction: f32,
    /// The setups measured.
    pub setups: Vec<CalibrationSetup>,
}

impl Default for CalibrationExperimentConfig {
    fn default() -> Self {
        let extra = |clips, variants| CalibrationSetup::ExtraClips { clips, variants };
        Self {
            k: 3,
            seeds: 5,
            target: 0.05,
            max_angle: std::f32::consts::FRAC_PI_6,
            jitter_fraction: 0.02,
            setups: vec![
                extra(5, 0),
                extra(5, 3),
                CalibrationSetup::LeaveOneOut { variants: 0 },
                CalibrationSetup::LeaveOneOut { variants: 10 },
                extra(1, 0),
                extra(2, 0),
                extra(3, 0),
                extra(8, 0),
                extra(12, 0),
                extra(19, 0),
                CalibrationSetup::LeaveOneOut { variants: 30 },
                CalibrationSetup::LeaveOneOut { variants: 100 },
            ],
        }
    }
}

/// One setup's measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationRow {
    /// The setup.
    pub setup: CalibrationSetup,
    /// In words.
    pub label: String,
    /// Mean number of normal calibration scores n.
    pub scores: f64,
    /// Whether every (category, seed) had enough scores for the target.
    pub reachable: bool,
    /// Mean measured false-alarm rate on the test normals.
    pub false_alarm: f64,
    /// Mean measured detection rate on the test anomalies.
    pub detection: f64,
    /// Mean of 1/(n+1), the smallest false-alarm rate n scores can promise.
    pub floor: f64,
}

/// Result for one embedder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationExperiment {
    /// "raw_dct" or "encoder".
    pub method: String,
    /// Scores the target needs.
    pub needed_scores: usize,
    /// One row per setup.
    pub rows: Vec<CalibrationRow>,
    /// Settings.
    pub config: CalibrationExperimentConfig,
}

/// The threshold for `alpha` from `scores`; with too few scores, the largest one.
fn threshold(scores: &[f32], alpha: f64, source: CalibrationSource) -> Result<(f32, bool)> {
    match Calibration::from_scores(scores, alpha, source) {
        Ok(c) => Ok((c.threshold, true)),
        Err(_) if scores.len() < min_calibration_scores(alpha)? && !scores.is_empty() => Ok((
            scores.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            false,
        )),
        Err(e) => Err(e.into()),
    }
}

/// Runs the experiment; `progress(done, total)` after each (category, seed).
pub fn calibration_experiment(
    dataset: &Dataset,
    split: &Split,
    embedder: &Embedder,
    config: &CalibrationExperimentConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<CalibrationExperiment> {
    let needed = min_calibration_scores(config.target)?;
    if config.k < 2 || config.seeds == 0 {
        return Err(HaadError::InvalidArgument(
            "k >= 2 (leave-one-out) and seeds >= 1".into(),
        ));
    }
    let n_cat = dataset.categories().len();
    let input = InputSpec::for_skeleton(dataset.skeleton());
    let aug =
        RotateJitterAugmenter::for_dataset(dataset, config.max_angle, config.jitter_fraction)?;
    // Every clip embedded once.
    let all_clips =
        crate::pipeline::clips_at(dataset, &(0..dataset.clips().len()).collect::<Vec<_>>());
    let all = embedder.embed_raw(&all_clips, &input)?;
    let test = split.all_test();
    let mut sums = vec![(0.0f64, 0.0f64, 0.0f64, 0.0f64, true); config.setups.len()];
    let runs = (n_cat * config.seeds) as f64;
    for c in 0..n_cat {
        for seed in 0..config.seeds as u64 {
            let chosen = sample_support(split.train(c), config.k, seed)?;
            let support_clips = crate::pipeline::clips_at(dataset, &chosen);
            let detector = Detector::new(
                embedder.clone(),
                input.clone(),
                Scoring::MeanDistance,
                haad_detect::SupportSet::from_embeddings(all.select(ndarray::Axis(0), &chosen))?,
            )?;
            let score_of = |row: usize| {
                Scoring::MeanDistance.score(detector.support().embeddings(), all.row(row))
            };
            let test_scores: Vec<(f32, bool)> = test
                .iter()
                .map(|&i| Ok((score_of(i)?, dataset.clips()[i].category != c)))
                .collect::<Result<_>>()?;
            let mut rest: Vec<usize> = split
                .train(c)
                .iter()
                .copied()
                .filter(|i| !chosen.contains(i))
                .collect();
            rest.shuffle(&mut StdRng::seed_from_u64((seed << 32) | c as u64));
            for (si, setup) in config.setups.iter().enumerate() {
                let aug_seed = (seed << 32) | ((c as u64) << 8) | si as u64;
                let (scores, source) = match *setup {
                    CalibrationSetup::ExtraClips { clips, variants } => {
                        let extra = &rest[..clips.min(rest.len())];
                        let mut s: Vec<f32> = extra
                            .iter()
                            .map(|&i| score_of(i))
                            .collect::<std::result::Result<_, _>>()?;
                        if variants > 0 && !extra.is_empty() {
                            let raw = crate::pipeline::clips_at(dataset, extra);
                            let a = Augmentation {
                                augmenter: &aug,
                                per_clip: variants,
                                seed: aug_seed,
                            };
                            let g =
                                haad_detect::SupportSet::build(embedder, &input, &raw, Some(a))?;
                            let e = g.embeddings();
                            for r in raw.len()..e.nrows() {
                                s.push(
                                    Scoring::MeanDistance
                                        .score(detector.support().embeddings(), e.row(r))?,
                                );
                            }
                        }
                        (s, CalibrationSource::NormalClips)
                    }
                    CalibrationSetup::LeaveOneOut { variants } => {
                        let extra = (variants > 0).then_some((
                            support_clips.as_slice(),
                            Augmentation {
                                augmenter: &aug,
                                per_clip: variants,
                                seed: aug_seed,
                            },
                        ));
                        (
                            detector.leave_one_out_scores(extra)?,
                            CalibrationSource::LeaveOneOut,
                        )
                    }
                };
                let (t, ok) = threshold(&scores, config.target, source)?;
                let (mut fa, mut nn, mut det, mut na) = (0usize, 0usize, 0usize, 0usize);
                for &(s, anomalous) in &test_scores {
                    if anomalous {
                        na += 1;
                        det += usize::from(s > t);
                    } else {
                        nn += 1;
                        fa += usize::from(s > t);
                    }
                }
                let acc = &mut sums[si];
                acc.0 += scores.len() as f64 / runs;
                acc.1 += fa as f64 / nn.max(1) as f64 / runs;
                acc.2 += det as f64 / na.max(1) as f64 / runs;
                acc.3 += 1.0 / (scores.len() as f64 + 1.0) / runs;
                acc.4 &= ok;
            }
            progress(c * config.seeds + seed as usize + 1, n_cat * config.seeds);
        }
    }
    let rows = config
        .setups
        .iter()
        .zip(sums)
        .map(|(setup, (n, fa, det, floor, ok))| CalibrationRow {
            setup: *setup,
            label: setup.to_string(),
            scores: n,
            reachable: ok,
            false_alarm: fa,
            detection: det,
            floor,
        })
        .collect();
    Ok(CalibrationExperiment {
        method: embedder.name().to_string(),
        needed_scores: needed,
        rows,
        config: config.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchangeable_normals_keep_the_promise() {
        // Independent clips: calibration and test normals are alike, so 19 real clips hold
        // about 5 % false alarms and 1 clip (the max of one score) about 50 %.
        let ds = super::super::test_dataset(3, 60, 0.3);
        let split = Split::new(&ds, 0.8, &[]).unwrap();
        let extra = |clips| CalibrationSetup::ExtraClips { clips, variants: 0 };
        let cfg = CalibrationExperimentConfig {
            seeds: 6,
            setups: vec![
                extra(19),
                extra(1),
                CalibrationSetup::LeaveOneOut { variants: 6 },
            ],
            ..Default::default()
        };
        let r = calibration_experiment(&ds, &split, &Embedder::raw_dct(), &cfg, &mut |_, _| {})
            .unwrap();
        assert_eq!(r.needed_scores, 19);
        let (a19, a1, loo) = (&r.rows[0], &r.rows[1], &r.rows[2]);
        assert!(a19.reachable && !a1.reachable && loo.reachable);
        for (row, n) in [(a19, 19.0), (a1, 1.0), (loo, 21.0)] {
            assert!((row.scores - n).abs() < 1e-9, "{row:?}");
        }
        assert!(a19.false_alarm < 0.12, "{a19:?}");
        assert!((a1.false_alarm - 0.5).abs() < 0.2, "{a1:?}");
        // A lower threshold flags more: one clip's max flags more than the 19-clip rank.
        assert!(a1.false_alarm >= a19.false_alarm && a1.detection >= a19.detection);
        assert!(a19.detection > 0.5, "{a19:?}");
    }
}
