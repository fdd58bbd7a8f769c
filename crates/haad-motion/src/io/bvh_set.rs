//! Collecting clips from several BVH files that must share one joint hierarchy.

use std::path::{Path, PathBuf};

use crate::dataset::{Clip, Skipped};
use crate::error::{MotionError, Result};
use crate::io::{bvh::read_bvh, root::detect_root, unusable_reason};
use crate::motion::Skeleton;

/// BVH clips read so far, the hierarchy they share and what was skipped.
#[derive(Default)]
pub(crate) struct BvhSet {
    /// Joint names, parents, and the file they were first read from.
    hierarchy: Option<(Vec<String>, Vec<Option<usize>>, PathBuf)>,
    pub clips: Vec<Clip>,
    pub skipped: Vec<Skipped>,
}

impl BvhSet {
    /// Reads `path` (forward kinematics) as a clip of `category`.
    pub fn add(&mut self, path: &Path, category: usize) -> Result<()> {
        let bvh = read_bvh(path)?;
        let (names, parents) = (bvh.names(), bvh.parents());
        match &self.hierarchy {
            None => self.hierarchy = Some((names, parents, path.to_path_buf())),
            Some((n, p, first)) => {
                if *n != names || *p != parents {
                    return Err(MotionError::Parse {
                        path: path.to_path_buf(),
                        line: 0,
                        message: format!(
                            "joint hierarchy ({} joints: {}) differs from that of {} \
                             ({} joints: {})",
                            names.len(),
                            names.join(" "),
                            first.display(),
                            n.len(),
                            n.join(" ")
                        ),
                    });
                }
            }
        }
        let positions = bvh.positions().map_err(|e| MotionError::Parse {
            path: path.to_path_buf(),
            line: 0,
            message: e.to_string(),
        })?;
        let Some(motion) = positions else {
            self.skipped.push(Skipped {
                path: path.to_path_buf(),
                reason: "no frames (`Frames: 0`)".into(),
            });
            return Ok(());
        };
        if let Some(reason) = unusable_reason(&motion) {
            self.skipped.push(Skipped {
                path: path.to_path_buf(),
                reason,
            });
            return Ok(());
        }
        self.clips.push(Clip {
            motion,
            category,
            source: path.to_path_buf(),
        });
        Ok(())
    }

    /// The shared joint names and the first file read, if any.
    pub fn names(&self) -> Option<(&[String], &Path)> {
        self.hierarchy
            .as_ref()
            .map(|(n, _, f)| (n.as_slice(), f.as_path()))
    }

    /// The shared skeleton with the root detected from the loaded clips
    /// ([`detect_root`]), if any file was read.
    pub fn skeleton(&self) -> Result<Option<Skeleton>> {
        let Some((names, parents, _)) = &self.hierarchy else {
            return Ok(None);
        };
        let skeleton = Skeleton::new(names.clone(), parents.clone(), 0)?;
        let root = detect_root(&skeleton, self.clips.iter().map(|c| &c.motion));
        skeleton.with_root(root).map(Some)
    }
}
