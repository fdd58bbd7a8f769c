//! Frame-level evaluation of long recordings, as video anomaly detection reports it.
//!
//! For every category `c` and support seed `s`: fit a detector on `K` train clips of `c`
//! (`sample_support(split.train(c), K, s)`), build `recordings` recordings of test clips
//! ([`build_recording`], seed `(s << 32) | (c << 16) | r`), score them with a sliding window
//! ([`score_recording`]) and compute the ROC AUC over all frames of those recordings, a frame
//! being anomalous iff its source clip is not of category `c`. Reported: mean and population
//! standard deviation over all (category, seed) pairs, and per category.

use haad_detect::{
    roc_auc, score_recording, Detector, Embedder, FrameAggregation, InputSpec, Scoring,
};
use haad_motion::split::{sample_support, Split};
use haad_motion::Dataset;
use serde::{Deserialize, Serialize};

use super::recording::{build_recording, RecordingConfig};
use crate::error::{HaadError, Result};

/// Settings of the frame-level evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameLevelConfig {
    /// K: support clips.
    pub k: usize,
    /// Support seeds `0..seeds`.
    pub seeds: usize,
    /// Recordings per (category, seed).
    pub recordings: usize,
    /// How recordings are built.
    pub recording: RecordingConfig,
    /// Frames between window starts.
    pub stride: usize,
    /// Frame score from the covering windows.
    pub aggregation: FrameAggregation,
}

impl Default for FrameLevelConfig {
    fn default() -> Self {
        Self {
            k: 3,
            seeds: 3,
            recordings: 4,
            recording: RecordingConfig::default(),
            stride: 1,
            aggregation: FrameAggregation::Mean,
        }
    }
}

/// One category's frame-level AUCs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameLevelCategory {
    /// Category name.
    pub name: String,
    /// Mean over seeds.
    pub mean: f64,
    /// The AUC of every seed.
    pub per_seed: Vec<f64>,
    /// Share of anomalous frames over its recordings (all seeds).
    pub anomalous_share: f64,
}

/// Result for one embedder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameLevel {
    /// "raw_dct" or "encoder".
    pub method: String,
    /// Mean frame-level AUC over all (category, seed) pairs.
    pub mean_auc: f64,
    /// Population standard deviation over all (category, seed) pairs.
    pub std_auc: f64,
    /// Frames scored in all.
    pub frames: usize,
    /// Per category, in dataset order.
    pub per_category: Vec<FrameLevelCategory>,
    /// Settings.
    pub config: FrameLevelConfig,
}

/// Runs the frame-level evaluation; `progress(done, total)` is called after each
/// (category, seed).
pub fn frame_level(
    dataset: &Dataset,
    split: &Split,
    embedder: &Embedder,
    config: &FrameLevelConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<FrameLevel> {
    if config.k == 0 || config.seeds == 0 || config.recordings == 0 {
        return Err(HaadError::InvalidArgument(
            "k, seeds and recordings must be at least 1".into(),
        ));
    }
    let n_cat = dataset.categories().len();
    let input = InputSpec::for_skeleton(dataset.skeleton());
    let mut per_category = Vec::with_capacity(n_cat);
    let mut all = Vec::new();
    let mut frames = 0;
    for c in 0..n_cat {
        let mut per_seed = Vec::with_capacity(config.seeds);
        let (mut anomalous, mut total) = (0usize, 0usize);
        for seed in 0..config.seeds as u64 {
            let chosen = sample_support(split.train(c), config.k, seed)?;
            let clips = crate::pipeline::clips_at(dataset, &chosen);
            let detector = Detector::fit(
                embedder.clone(),
                input.clone(),
                Scoring::MeanDistance,
                &clips,
                None,
            )?;
            let (mut scores, mut labels) = (Vec::new(), Vec::new());
            for r in 0..config.recordings as u64 {
                let rec_seed = (seed << 32) | ((c as u64) << 16) | r;
                let rec = build_recording(dataset, split, c, &config.recording, rec_seed)?;
                let s = score_recording(&detector, &rec.motion, config.stride, config.aggregation)?;
                for (score, label) in s.frames.iter().zip(rec.frame_labels()) {
                    if let Some(v) = score {
                        scores.push(*v);
                        labels.push(label);
                    }
                }
            }
            anomalous += labels.iter().filter(|&&l| l).count();
            total += labels.len();
            let auc = roc_auc(&scores, &labels).map_err(|e| {
                HaadError::InvalidArgument(format!(
                    "category {:?}, seed {seed}: {e} (draw more recordings)",
                    dataset.categories()[c]
                ))
            })?;
            per_seed.push(auc);
            all.push(auc);
            progress(c * config.seeds + seed as usize + 1, n_cat * config.seeds);
        }
        frames += total;
        per_category.push(FrameLevelCategory {
            name: dataset.categories()[c].clone(),
            mean: per_seed.iter().sum::<f64>() / per_seed.len() as f64,
            per_seed,
            anomalous_share: anomalous as f64 / total.max(1) as f64,
        });
    }
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    let std = (all.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / all.len() as f64).sqrt();
    Ok(FrameLevel {
        method: embedder.name().to_string(),
        mean_auc: mean,
        std_auc: std,
        frames,
        per_category,
        config: config.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use haad_motion::preprocess::window;

    #[test]
    fn matches_a_brute_force_frame_auc() {
        let ds = super::super::test_dataset(3, 10, 0.05);
        let split = Split::new(&ds, 0.5, &[]).unwrap();
        let cfg = FrameLevelConfig {
            seeds: 2,
            recordings: 2,
            stride: 3,
            recording: RecordingConfig {
                clips: 4,
                normal_share: 0.5,
            },
            aggregation: FrameAggregation::Max,
            ..Default::default()
        };
        let e = Embedder::raw_dct();
        let mut calls = 0;
        let r = frame_level(&ds, &split, &e, &cfg, &mut |_, _| calls += 1).unwrap();
        assert_eq!(calls, 6);
        assert_eq!(r.per_category.len(), 3);
        // Brute force for category 1, seed 1: every window scored as a clip, each frame the
        // max of the windows (stride 3, plus one ending at the last frame) covering it.
        let (c, seed) = (1usize, 1u64);
        let chosen = sample_support(split.train(c), 3, seed).unwrap();
        let d = Detector::fit(
            e.clone(),
            InputSpec::for_skeleton(ds.skeleton()),
            Scoring::MeanDistance,
            &crate::pipeline::clips_at(&ds, &chosen),
            None,
        )
        .unwrap();
        let (mut scores, mut labels) = (Vec::new(), Vec::new());
        for rec_i in 0..2u64 {
            let rec = build_recording(
                &ds,
                &split,
                c,
                &cfg.recording,
                (seed << 32) | ((c as u64) << 16) | rec_i,
            )
            .unwrap();
            let n = rec.motion.frames();
            let mut starts: Vec<usize> = (0..=n - 60).step_by(3).collect();
            if *starts.last().unwrap() != n - 60 {
                starts.push(n - 60);
            }
            let ws: Vec<f32> = starts
                .iter()
                .map(|&s| d.score(&window(&rec.motion, s, 60).unwrap()).unwrap())
                .collect();
            for (f, label) in rec.frame_labels().into_iter().enumerate() {
                let m = starts
                    .iter()
                    .zip(&ws)
                    .filter(|(&s, _)| s <= f && f < s + 60)
                    .map(|(_, &v)| v)
                    .fold(f32::MIN, f32::max);
                scores.push(m);
                labels.push(label);
            }
        }
        let want = roc_auc(&scores, &labels).unwrap();
        assert!((r.per_category[c].per_seed[seed as usize] - want).abs() < 1e-12);
        assert!(r.mean_auc > 0.5, "{}", r.mean_auc);
    }
}
