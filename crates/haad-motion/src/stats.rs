//! [`DatasetStats`]: what a dataset holds, as a table for people and as JSON for programs.

use std::fmt;

use serde::Serialize;

use crate::dataset::{Dataset, Skipped};

/// Frame counts over the clips of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FrameStats {
    /// Fewest frames in a clip.
    pub min: usize,
    /// Median frames per clip (mean of the two middle clips for an even count).
    pub median: f64,
    /// Most frames in a clip.
    pub max: usize,
    /// Frames over all clips.
    pub total: usize,
}

/// Summary of a dataset: clips per category, frame counts, skeleton, frame rates, skipped files.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetStats {
    /// Number of loaded clips.
    pub clips: usize,
    /// Joints per frame J.
    pub joints: usize,
    /// Clips per category, in category order.
    pub categories: Vec<(String, usize)>,
    /// Frame counts; `None` when there is no clip.
    pub frames: Option<FrameStats>,
    /// Distinct frame rates of the clips, ascending (empty when unknown).
    pub fps: Vec<f32>,
    /// Clips without a known frame rate.
    pub clips_without_fps: usize,
    /// Name of the root joint used for normalisation.
    pub root: String,
    /// What the loader skipped, and why.
    pub skipped: Vec<Skipped>,
}

impl DatasetStats {
    /// Computes the summary of `dataset`.
    pub fn of(dataset: &Dataset) -> Self {
        let mut frames: Vec<usize> = dataset.clips().iter().map(|c| c.motion.frames()).collect();
        frames.sort_unstable();
        let frame_stats = (!frames.is_empty()).then(|| {
            let n = frames.len();
            let median = if n % 2 == 1 {
                frames[n / 2] as f64
            } else {
                (frames[n / 2 - 1] + frames[n / 2]) as f64 / 2.0
            };
            FrameStats {
                min: frames[0],
                median,
                max: frames[n - 1],
                total: frames.iter().sum(),
            }
        });
        let mut fps: Vec<f32> = dataset
            .clips()
            .iter()
            .filter_map(|c| c.motion.fps())
            .collect();
        fps.sort_by(f32::total_cmp);
        fps.dedup();
        let skeleton = dataset.skeleton();
        Self {
            clips: dataset.clips().len(),
            joints: dataset.joints(),
            categories: dataset
                .categories()
                .iter()
                .cloned()
                .zip(dataset.counts())
                .collect(),
            frames: frame_stats,
            fps,
            clips_without_fps: dataset
                .clips()
                .iter()
                .filter(|c| c.motion.fps().is_none())
                .count(),
            root: skeleton.names()[skeleton.root()].clone(),
            skipped: dataset.skipped().to_vec(),
        }
    }

    /// One JSON object: `{"clips", "joints", "categories": {name: count}, "skipped":
    /// [{"path", "reason"}], "frames": {"min", "median", "max", "total"}, "fps": [...],
    /// "clips_without_fps", "root"}`. (JSON objects are unordered; serde_json writes the keys
    /// sorted.)
    pub fn to_json(&self) -> serde_json::Value {
        let categories: serde_json::Map<String, serde_json::Value> = self
            .categories
            .iter()
            .map(|(n, c)| (n.clone(), (*c).into()))
            .collect();
        serde_json::json!({
            "clips": self.clips,
            "joints": self.joints,
            "categories": categories,
            "skipped": self.skipped,
            "frames": self.frames,
            "fps": self.fps,
            "clips_without_fps": self.clips_without_fps,
            "root": self.root,
        })
    }
}

impl fmt::Display for DatasetStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        writeln!(
            f,
            "{} in {}, {} joints, root joint {}",
            plural(self.clips, "clip", "clips"),
            plural(self.categories.len(), "category", "categories"),
            self.joints,
            self.root
        )?;
        match &self.frames {
            Some(s) => writeln!(
                f,
                "frames per clip: min {}, median {}, max {} ({} in all)",
                s.min, s.median, s.max, s.total
            )?,
            None => writeln!(f, "frames per clip: no clips")?,
        }
        let fps: Vec<String> = self.fps.iter().map(|v| v.to_string()).collect();
        let unknown = if self.clips_without_fps > 0 {
            format!(" ({} clips without a frame rate)", self.clips_without_fps)
        } else {
            String::new()
        };
        let fps = if fps.is_empty() {
            "unknown".into()
        } else {
            fps.join(", ")
        };
        writeln!(f, "frame rate: {fps}{unknown}")?;
        let width = self
            .categories
            .iter()
            .map(|(n, _)| n.len())
            .max()
            .unwrap_or(8)
            .max(8);
        writeln!(f, "{:<width$}  clips", "category")?;
        for (name, count) in &self.categories {
            writeln!(f, "{name:<width$}  {count:>5}")?;
        }
        if self.skipped.is_empty() {
            write!(f, "skipped: none")
        } else {
            write!(f, "skipped: {}", self.skipped.len())?;
            for s in &self.skipped {
                write!(f, "\n  {}: {}", s.path.display(), s.reason)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Clip;
    use crate::motion::{Motion, Skeleton};
    use ndarray::Array3;

    #[test]
    fn counts_frames_and_categories() {
        let skel = Skeleton::new(vec!["r".into()], vec![None], 0).unwrap();
        let clip = |t: usize, cat: usize, fps: Option<f32>| Clip {
            motion: Motion::new(Array3::ones((t, 1, 3)), fps).unwrap(),
            category: cat,
            source: format!("c{t}").into(),
        };
        let ds = Dataset::new(
            skel,
            vec!["b".into(), "a".into()],
            vec![
                clip(5, 0, Some(30.0)),
                clip(2, 1, None),
                clip(9, 1, Some(15.0)),
                clip(4, 1, Some(30.0)),
            ],
            vec![Skipped {
                path: "z".into(),
                reason: "all zero".into(),
            }],
        )
        .unwrap();
        let s = DatasetStats::of(&ds);
        assert_eq!(
            s.frames.unwrap(),
            FrameStats {
                min: 2,
                median: 4.5,
                max: 9,
                total: 20
            }
        );
        assert_eq!(s.fps, vec![15.0, 30.0]);
        assert_eq!(s.clips_without_fps, 1);
        let j = s.to_json();
        assert_eq!(j["clips"], 4);
        assert_eq!(j["categories"]["a"], 3);
        assert_eq!(j["categories"]["b"], 1);
        assert_eq!(j["skipped"][0]["reason"], "all zero");
        assert!(s.to_string().contains("z: all zero"));
    }
}
