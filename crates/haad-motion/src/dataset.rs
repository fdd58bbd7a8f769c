//! [`Dataset`]: labelled clips of one skeleton, each traceable to the file it came from.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{MotionError, Result};
use crate::motion::{Motion, Skeleton};

/// One labelled clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// The positions.
    pub motion: Motion,
    /// Index into [`Dataset::categories`].
    pub category: usize,
    /// Where the clip came from (a file, or a file plus a record for multi-clip files).
    pub source: PathBuf,
}

/// A file (or record) a loader did not load, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The file at fault.
    pub path: PathBuf,
    /// Why it was skipped, in words.
    pub reason: String,
}

/// Clips of one skeleton with category labels.
///
/// Invariants (checked by [`Dataset::new`]): every clip has the skeleton's joint count and a
/// valid category index.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    skeleton: Skeleton,
    categories: Vec<String>,
    clips: Vec<Clip>,
    skipped: Vec<Skipped>,
}

impl Dataset {
    /// Checks and assembles a dataset. `skipped` lists what the loader left out.
    pub fn new(
        skeleton: Skeleton,
        categories: Vec<String>,
        clips: Vec<Clip>,
        skipped: Vec<Skipped>,
    ) -> Result<Self> {
        let mut seen = std::collections::HashSet::with_capacity(categories.len());
        for name in &categories {
            if !seen.insert(name.as_str()) {
                return Err(MotionError::InvalidArgument(format!(
                    "category name {name:?} appears twice"
                )));
            }
        }
        for clip in &clips {
            if clip.motion.joints() != skeleton.joints() {
                return Err(MotionError::Shape {
                    what: clip.source.display().to_string(),
                    expected: format!("{} joints (the skeleton's)", skeleton.joints()),
                    got: format!("{} joints", clip.motion.joints()),
                });
            }
            if clip.category >= categories.len() {
                return Err(MotionError::InvalidArgument(format!(
                    "{}: category index {} out of range for {} categories",
                    clip.source.display(),
                    clip.category,
                    categories.len()
                )));
            }
        }
        Ok(Self {
            skeleton,
            categories,
            clips,
            skipped,
        })
    }

    /// The skeleton shared by all clips.
    pub fn skeleton(&self) -> &Skeleton {
        &self.skeleton
    }

    /// Category names; a clip's `category` indexes this list.
    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    /// All clips, in load order.
    pub fn clips(&self) -> &[Clip] {
        &self.clips
    }

    /// The motions of the clips at `indices` (dataset indices, as splits and samplers give
    /// them), in that order.
    ///
    /// # Panics
    /// When an index is out of range, as slice indexing does.
    pub fn motions_at(&self, indices: &[usize]) -> Vec<Motion> {
        indices
            .iter()
            .map(|&i| self.clips[i].motion.clone())
            .collect()
    }

    /// What the loader skipped, and why.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Number of joints J.
    pub fn joints(&self) -> usize {
        self.skeleton.joints()
    }

    /// Index of the category with this name, or an error listing the known names.
    pub fn category_index(&self, name: &str) -> Result<usize> {
        self.categories
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| MotionError::UnknownCategory {
                name: name.to_string(),
                known: self.categories.join(", "),
            })
    }

    /// Number of clips in each category, in category order.
    pub fn counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.categories.len()];
        for c in &self.clips {
            counts[c.category] += 1;
        }
        counts
    }

    /// Applies `f` to every clip's motion (e.g. preprocessing), keeping labels and sources.
    pub fn map_motions<F>(&self, mut f: F) -> Result<Self>
    where
        F: FnMut(&Motion) -> Result<Motion>,
    {
        let clips = self
            .clips
            .iter()
            .map(|c| {
                Ok(Clip {
                    motion: f(&c.motion)?,
                    category: c.category,
                    source: c.source.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(
            self.skeleton.clone(),
            self.categories.clone(),
            clips,
            self.skipped.clone(),
        )
    }

    /// The same dataset with every category renamed by `rename` (the new names must stay
    /// distinct), e.g. to drop a prefix that every name carries.
    pub fn rename_categories<F>(&self, rename: F) -> Result<Self>
    where
        F: Fn(&str) -> String,
    {
        Self::new(
            self.skeleton.clone(),
            self.categories.iter().map(|c| rename(c)).collect(),
            self.clips.clone(),
            self.skipped.clone(),
        )
    }

    /// The same dataset with every clip's and skipped file's source path made relative to
    /// `base` (paths outside `base` stay as they are): for a dataset file that is moved.
    pub fn relative_to(&self, base: &std::path::Path) -> Self {
        let rel = |p: &PathBuf| {
            p.strip_prefix(base)
                .map_or_else(|_| p.clone(), PathBuf::from)
        };
        Self {
            skeleton: self.skeleton.clone(),
            categories: self.categories.clone(),
            clips: self
                .clips
                .iter()
                .map(|c| Clip {
                    source: rel(&c.source),
                    ..c.clone()
                })
                .collect(),
            skipped: self
                .skipped
                .iter()
                .map(|s| Skipped {
                    path: rel(&s.path),
                    reason: s.reason.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn skel(j: usize) -> Skeleton {
        let names = (0..j).map(|i| format!("j{i}")).collect();
        let parents = (0..j).map(|i| i.checked_sub(1)).collect();
        Skeleton::new(names, parents, 0).unwrap()
    }

    fn clip(j: usize, category: usize, name: &str) -> Clip {
        Clip {
            motion: Motion::new(Array3::zeros((4, j, 3)), None).unwrap(),
            category,
            source: name.into(),
        }
    }

    #[test]
    fn checks_joints_and_labels() {
        let cats = vec!["a".to_string(), "b".to_string()];
        let err = Dataset::new(skel(3), cats.clone(), vec![clip(2, 0, "x.npy")], vec![]);
        assert!(err.unwrap_err().to_string().contains("x.npy"));
        let err = Dataset::new(skel(3), cats.clone(), vec![clip(3, 2, "y.npy")], vec![]);
        assert!(err.unwrap_err().to_string().contains("y.npy"));
        let dup = vec!["a".to_string(), "a".to_string()];
        assert!(Dataset::new(skel(3), dup, vec![], vec![]).is_err());
        let ds = Dataset::new(
            skel(3),
            cats,
            vec![clip(3, 1, "z"), clip(3, 1, "w")],
            vec![],
        )
        .unwrap();
        assert_eq!(ds.counts(), vec![0, 2]);
        assert_eq!(ds.category_index("b").unwrap(), 1);
        let err = ds.category_index("c").unwrap_err().to_string();
        assert!(err.contains("\"c\"") && err.contains("a, b"), "{err}");
    }

    #[test]
    fn renames_categories_and_relativises_sources() {
        let cats = vec!["set_a".to_string(), "set_b".to_string()];
        let ds = Dataset::new(
            skel(2),
            cats,
            vec![
                clip(2, 1, "/data/x/one.bvh"),
                clip(2, 0, "elsewhere/two.bvh"),
            ],
            vec![Skipped {
                path: "/data/x/bad.bvh".into(),
                reason: "broken".into(),
            }],
        )
        .unwrap();
        let r = ds
            .rename_categories(|c| c.trim_start_matches("set_").to_string())
            .unwrap();
        assert_eq!(r.categories(), ["a", "b"]);
        assert_eq!(r.clips(), ds.clips());
        assert!(ds.rename_categories(|_| "same".into()).is_err());
        let rel = ds.relative_to(std::path::Path::new("/data/x"));
        assert_eq!(rel.clips()[0].source, PathBuf::from("one.bvh"));
        assert_eq!(rel.clips()[1].source, PathBuf::from("elsewhere/two.bvh"));
        assert_eq!(rel.skipped()[0].path, PathBuf::from("bad.bvh"));
        assert_eq!(rel.clips()[0].motion, ds.clips()[0].motion);
    }

    #[test]
    fn motions_at_follows_the_indices() {
        let mut a = clip(2, 0, "a");
        a.motion = Motion::new(Array3::from_elem((4, 2, 3), 1.0), None).unwrap();
        let b = clip(2, 0, "b");
        let ds = Dataset::new(skel(2), vec!["c".into()], vec![a, b], vec![]).unwrap();
        let m = ds.motions_at(&[1, 0, 1]);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0], ds.clips()[1].motion);
        assert_eq!(m[1], ds.clips()[0].motion);
        assert!(ds.motions_at(&[]).is_empty());
    }
}
