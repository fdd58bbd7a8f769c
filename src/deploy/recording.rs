//! Long recordings for frame-level evaluation, as video anomaly detection builds them: test
//! clips of a dataset played one after another, each of the normal category with probability
//! `normal_share` (3/4) and otherwise of another category, every frame labelled by its clip.
//! Each clip is moved as a whole so that its root joint starts where the previous clip's root
//! ended: the person does not jump across the room between clips (the pose still changes).

use haad_motion::split::Split;
use haad_motion::{Dataset, Motion};
use ndarray::{concatenate, Axis};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{HaadError, Result};

/// How recordings are built.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecordingConfig {
    /// Clips per recording (about 8).
    pub clips: usize,
    /// Probability that a clip is of the normal category (3/4).
    pub normal_share: f64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            clips: 8,
            normal_share: 0.75,
        }
    }
}

/// One clip's frames in a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// First frame.
    pub start: usize,
    /// One past the last frame.
    pub end: usize,
    /// The clip's category.
    pub category: String,
    /// Whether it is not of the normal category.
    pub anomalous: bool,
    /// Its dataset index.
    pub clip: usize,
}

/// A recording and its per-clip segments.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// All frames, `[sum of clip frames, J, 3]`.
    pub motion: Motion,
    /// The clips, in order, covering every frame.
    pub segments: Vec<Segment>,
}

impl Recording {
    /// Per frame: whether it belongs to an anomalous clip.
    pub fn frame_labels(&self) -> Vec<bool> {
        let mut out = vec![false; self.motion.frames()];
        for s in &self.segments {
            out[s.start..s.end]
                .iter_mut()
                .for_each(|l| *l = s.anomalous);
        }
        out
    }
}

/// A recording of test clips of `dataset` (split by `split`) with `normal` the normal
/// category, drawn with `seed`. Every category needs test clips; the anomalous clips come
/// from all other categories uniformly, then a uniform clip of it.
pub fn build_recording(
    dataset: &Dataset,
    split: &Split,
    normal: usize,
    config: &RecordingConfig,
    seed: u64,
) -> Result<Recording> {
    let n_cat = dataset.categories().len();
    if config.clips == 0 || !(0.0..=1.0).contains(&config.normal_share) || n_cat < 2 {
        return Err(HaadError::InvalidArgument(format!(
            "a recording needs >= 1 clip, a normal share in [0, 1] and >= 2 categories \
             (got {} clips, share {}, {n_cat} categories)",
            config.clips, config.normal_share
        )));
    }
    if normal >= n_cat {
        return Err(HaadError::InvalidArgument(format!(
            "normal category {normal} out of range for {n_cat} categories"
        )));
    }
    if let Some(c) = (0..n_cat).find(|&c| split.test(c).is_empty()) {
        return Err(HaadError::InvalidArgument(format!(
            "category {:?} has no test clips",
            dataset.categories()[c]
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut parts = Vec::with_capacity(config.clips);
    let mut segments = Vec::with_capacity(config.clips);
    let mut start = 0;
    let root = dataset.skeleton().root();
    let mut last_root: Option<ndarray::Array1<f32>> = None;
    for _ in 0..config.clips {
        let category = if rng.random_bool(config.normal_share) {
            normal
        } else {
            let other = rng.random_range(0..n_cat - 1);
            other + usize::from(other >= normal)
        };
        let pool = split.test(category);
        let clip = pool[rng.random_range(0..pool.len())];
        let m = &dataset.clips()[clip].motion;
        segments.push(Segment {
            start,
            end: start + m.frames(),
            category: dataset.categories()[category].clone(),
            anomalous: category != normal,
            clip,
        });
        start += m.frames();
        let mut data = m.data().clone();
        if let Some(prev) = &last_root {
            let shift = prev - &data.slice(ndarray::s![0, root, ..]);
            for mut p in data.lanes_mut(Axis(2)) {
                p += &shift;
            }
        }
        last_root = Some(
            data.slice(ndarray::s![data.dim().0 - 1, root, ..])
                .to_owned(),
        );
        parts.push(data);
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    let data = concatenate(Axis(0), &views).expect("clips of one dataset share their joints");
    let fps = dataset.clips()[segments[0].clip].motion.fps();
    Ok(Recording {
        motion: Motion::new(data, fps)?,
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use haad_motion::split::DEFAULT_TRAIN_FRACTION;

    #[test]
    fn segments_cover_the_frames_and_follow_the_seed() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data/bandai/bandai-ds2-60f.safetensors");
        let ds = Dataset::load(&path).unwrap();
        let split = Split::new(&ds, DEFAULT_TRAIN_FRACTION, &[]).unwrap();
        let cfg = RecordingConfig::default();
        let walk = ds.category_index("walk").unwrap();
        let r = build_recording(&ds, &split, walk, &cfg, 3).unwrap();
        assert_eq!(r, build_recording(&ds, &split, walk, &cfg, 3).unwrap());
        assert_eq!(r.segments.len(), 8);
        let mut at = 0;
        for s in &r.segments {
            assert_eq!(s.start, at);
            at = s.end;
            assert!(split.test(ds.clips()[s.clip].category).contains(&s.clip));
            assert_eq!(s.anomalous, s.category != "walk");
            // The frames are the clip's, moved so the root continues from the last frame.
            let m = &ds.clips()[s.clip].motion;
            let got = r.motion.data().slice(ndarray::s![s.start..s.end, .., ..]);
            let root = ds.skeleton().root();
            for (t, j, c) in [(0, 0, 0), (m.frames() - 1, 5, 2), (7, root, 1)] {
                let want = m.data()[[t, j, c]] - m.data()[[0, root, c]] + got[[0, root, c]];
                assert!((got[[t, j, c]] - want).abs() < 1e-3, "{t} {j} {c}");
            }
            if s.start > 0 {
                for c in 0..3 {
                    let prev = r.motion.data()[[s.start - 1, root, c]];
                    assert!((got[[0, root, c]] - prev).abs() < 1e-3);
                }
            } else {
                assert_eq!(got, m.data().view());
            }
        }
        assert_eq!(at, r.motion.frames());
        let labels = r.frame_labels();
        assert_eq!(labels.len(), at);
        // Over many recordings about 3/4 of the clips are normal.
        let normal: usize = (0..100)
            .map(|s| {
                build_recording(&ds, &split, walk, &cfg, s)
                    .unwrap()
                    .segments
                    .iter()
                    .filter(|x| !x.anomalous)
                    .count()
            })
            .sum();
        assert!((normal as f64 / 800.0 - 0.75).abs() < 0.05, "{normal}");
    }
}
