//! The folder layout for bringing your own data, and folders of BVH files.
//!
//! ```text
//! ROOT/skeleton.json            optional: {"names": [...], "parents": [null, 0, ...], "root": 0,
//!                                          "layout": "kinect-v2"}
//! ROOT/<category>/<clip>.npy    [frames, joints, 3], f32 or f64
//! ROOT/<category>/<clip>.bvh    any BVH hierarchy (forward kinematics)
//! ```
//!
//! Categories are the sub-folders holding at least one clip, sorted by name; clips are sorted
//! by path. Other files are ignored; a sub-folder without clips is reported in
//! [`Dataset::skipped`]. All clips share one skeleton:
//! - `skeleton.json`, when present, gives the joint names, optionally the parents (`null` for a
//!   tree root; default: none) and the root (default: detected from the BVH clips if there
//!   are any, else 0); BVH clips must then have the same joint names.
//! - otherwise the BVH hierarchy, with the root detected from the data ([`crate::io::root`]);
//! - otherwise joints `j0 .. j{J-1}` without parents and root 0.
//!
//! Every clip must have the skeleton's joint count. `.npy` clips carry no frame rate; BVH clips
//! take theirs from `Frame Time`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::dataset::{Clip, Dataset, Skipped};
use crate::error::{MotionError, Result};
use crate::io::{
    bvh_set::BvhSet, file_name, has_extension, io_error, npy::read_npy_positions, parse_error,
    sorted_entries, unusable_reason,
};
use crate::motion::{Motion, Skeleton};

/// The content of `ROOT/skeleton.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkeletonFile {
    /// Joint names, in the order of the arrays' joint axis.
    pub names: Vec<String>,
    /// Parent of each joint (`null` for a tree root); absent: no bones.
    #[serde(default)]
    pub parents: Option<Vec<Option<usize>>>,
    /// Index of the root joint for normalisation; absent: detected (BVH) or 0.
    #[serde(default)]
    pub root: Option<usize>,
    /// The joint layout, for mapping onto the canonical body (`"kinect-v2"`, `"smpl"`, ...;
    /// [`crate::Layout`]); absent: none named.
    #[serde(default)]
    pub layout: Option<crate::layout::Layout>,
}

impl SkeletonFile {
    /// Reads and parses a `skeleton.json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
        serde_json::from_str(&text).map_err(|e| parse_error(path, e.line(), e.to_string()))
    }

    /// The skeleton it describes, with `default_root` when it names none.
    pub fn skeleton(&self, path: &Path, default_root: usize) -> Result<Skeleton> {
        let parents = self
            .parents
            .clone()
            .unwrap_or_else(|| vec![None; self.names.len()]);
        Skeleton::new(
            self.names.clone(),
            parents,
            self.root.unwrap_or(default_root),
        )
        .map_err(|e| parse_error(path, 0, e.to_string()))
    }
}

/// Which clip files a walk collects.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kinds {
    NpyAndBvh,
    BvhOnly,
}

fn is_clip(path: &Path, kinds: Kinds) -> bool {
    path.is_file()
        && (has_extension(path, "bvh") || (kinds == Kinds::NpyAndBvh && has_extension(path, "npy")))
}

/// Loads the folder layout `ROOT/<category>/<clip>.{npy,bvh}` (see the module doc).
pub fn load_folder(root: &Path) -> Result<Dataset> {
    let mut groups = Vec::new();
    let mut skipped = Vec::new();
    for dir in sorted_entries(root)? {
        if !dir.is_dir() {
            continue;
        }
        let files: Vec<PathBuf> = sorted_entries(&dir)?
            .into_iter()
            .filter(|p| is_clip(p, Kinds::NpyAndBvh))
            .collect();
        if files.is_empty() {
            skipped.push(Skipped {
                path: dir,
                reason: "category folder holds no .npy or .bvh clip".into(),
            });
        } else {
            groups.push((file_name(&dir), files));
        }
    }
    let json = root.join("skeleton.json");
    let skeleton_file = if json.is_file() {
        Some(SkeletonFile::read(&json)?)
    } else {
        None
    };
    assemble(root, groups, skeleton_file.map(|s| (s, json)), skipped)
}

/// Loads BVH clips: `path` is one `.bvh` file, or a folder whose `*.bvh` files and whose
/// sub-folders' `*.bvh` files are read. The category of a clip is the name of the folder
/// holding the file (a flat folder of BVH files is one category named after it).
pub fn load_bvh(path: &Path) -> Result<Dataset> {
    let folder_of = |p: &Path| -> String {
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = parent.unwrap_or(Path::new("."));
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        canonical
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bvh".into())
    };
    let mut groups: Vec<(String, Vec<PathBuf>)> = Vec::new();
    if path.is_file() {
        groups.push((folder_of(path), vec![path.to_path_buf()]));
    } else {
        let entries = sorted_entries(path)?;
        let top: Vec<PathBuf> = entries
            .iter()
            .filter(|p| is_clip(p, Kinds::BvhOnly))
            .cloned()
            .collect();
        if let Some(first) = top.first() {
            groups.push((folder_of(first), top));
        }
        for dir in entries.iter().filter(|p| p.is_dir()) {
            let files: Vec<PathBuf> = sorted_entries(dir)?
                .into_iter()
                .filter(|p| is_clip(p, Kinds::BvhOnly))
                .collect();
            if !files.is_empty() {
                groups.push((file_name(dir), files));
            }
        }
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        // A sub-folder named like the folder itself would give one category twice: merge.
        groups.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1.append(&mut later.1);
            }
            same
        });
    }
    assemble(path, groups, None, Vec::new())
}

/// Reads every group's clips and builds the dataset on one skeleton.
fn assemble(
    root: &Path,
    groups: Vec<(String, Vec<PathBuf>)>,
    skeleton_file: Option<(SkeletonFile, PathBuf)>,
    mut skipped: Vec<Skipped>,
) -> Result<Dataset> {
    if groups.is_empty() {
        return Err(parse_error(root, 0, "no clip files found"));
    }
    let mut bvh = BvhSet::default();
    let mut npy: Vec<Clip> = Vec::new();
    let mut categories = Vec::new();
    for (category, (name, files)) in groups.into_iter().enumerate() {
        categories.push(name);
        for path in files {
            if has_extension(&path, "bvh") {
                bvh.add(&path, category)?;
                continue;
            }
            let data = read_npy_positions(&path)?;
            if data.dim().0 == 0 {
                skipped.push(Skipped {
                    path,
                    reason: "no frames".into(),
                });
                continue;
            }
            let motion =
                Motion::new(data, None).map_err(|e| parse_error(&path, 0, e.to_string()))?;
            if let Some(reason) = unusable_reason(&motion) {
                skipped.push(Skipped { path, reason });
                continue;
            }
            npy.push(Clip {
                motion,
                category,
                source: path,
            });
        }
    }
    let skeleton = match (&skeleton_file, bvh.skeleton()?) {
        (Some((file, json)), bvh_skeleton) => {
            if let (Some((names, first)), Some(b)) = (bvh.names(), &bvh_skeleton) {
                if names != file.names.as_slice() {
                    return Err(parse_error(
                        first,
                        0,
                        format!(
                            "BVH joint names ({}) differ from those of {}",
                            names.join(" "),
                            json.display()
                        ),
                    ));
                }
                file.skeleton(json, b.root())?
            } else {
                file.skeleton(json, 0)?
            }
        }
        (None, Some(b)) => b,
        (None, None) => {
            let j = npy.first().map_or(1, |c| c.motion.joints());
            Skeleton::new((0..j).map(|i| format!("j{i}")).collect(), vec![None; j], 0)?
        }
    };
    let mut clips = bvh.clips;
    skipped.extend(bvh.skipped);
    clips.extend(npy);
    for clip in &clips {
        if clip.motion.joints() != skeleton.joints() {
            return Err(MotionError::Shape {
                what: clip.source.display().to_string(),
                expected: format!("{} joints (the dataset's skeleton)", skeleton.joints()),
                got: format!("{} joints", clip.motion.joints()),
            });
        }
    }
    clips.sort_by(|a, b| a.category.cmp(&b.category).then(a.source.cmp(&b.source)));
    Dataset::new(skeleton, categories, clips, skipped)
}
