//! Loaders for real skeleton datasets, and the native dataset file.
//!
//! Every loader returns a [`Dataset`] or an error that names the file (and the
//! line or record) at fault; none panics on a bad file. A clip that parses but cannot be used
//! (no frames, every coordinate zero, a NaN or infinite coordinate, or one beyond
//! [`MAX_COORDINATE_ABS`](crate::limits::MAX_COORDINATE_ABS)) is not loaded: it is listed
//! in [`Dataset::skipped`](crate::Dataset::skipped) with the reason.
//!
//! | [`DataFormat`] | path | category of a clip |
//! |---|---|---|
//! | `msr` | folder of `aAA_sSS_eEE_skeleton3D.txt` | action `AA` ([`msr::MSR_ACTIONS`]) |
//! | `bvh` | one `.bvh` file, or a folder of them | name of the folder holding the file |
//! | `bandai` | Bandai-Namco folder (`data/`, `cfg/`) | content (or style, [`bandai::BandaiLabel`]) |
//! | `humanact12` | folder of Action2Motion `.npy` files | the `A` code ([`humanact12::HUMANACT12_ACTIONS`]) |
//! | `folder` | `ROOT/<category>/<clip>.{npy,bvh}` | `<category>` |
//! | `native` | a `.safetensors` file written by [`Dataset::save`](crate::Dataset::save) | as saved |

pub mod bandai;
pub mod bvh;
mod bvh_set;
pub mod folder;
pub mod humanact12;
pub mod msr;
pub mod native;
pub mod npy;
pub mod root;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::dataset::Dataset;
use crate::error::{MotionError, Result};
use crate::motion::Motion;

/// The dataset formats [`load`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataFormat {
    /// MSR Action3D text skeletons ([`msr::load_msr`]).
    Msr,
    /// One BVH file or a folder of them ([`folder::load_bvh`]).
    Bvh,
    /// The Bandai-Namco motion dataset layout, category = content ([`bandai::load_bandai`]).
    Bandai,
    /// HumanAct12 as Action2Motion distributes it ([`humanact12::load_humanact12`]).
    HumanAct12,
    /// The folder layout `ROOT/<category>/<clip>.{npy,bvh}` ([`folder::load_folder`]).
    Folder,
    /// The native `.safetensors` dataset file ([`Dataset::load`]).
    Native,
}

impl DataFormat {
    /// Every format, in the order of the enum.
    pub const ALL: [DataFormat; 6] = [
        DataFormat::Msr,
        DataFormat::Bvh,
        DataFormat::Bandai,
        DataFormat::HumanAct12,
        DataFormat::Folder,
        DataFormat::Native,
    ];

    /// The lower-case name used on command lines (`msr`, `bvh`, `bandai`, `humanact12`,
    /// `folder`, `native`).
    pub fn name(self) -> &'static str {
        match self {
            DataFormat::Msr => "msr",
            DataFormat::Bvh => "bvh",
            DataFormat::Bandai => "bandai",
            DataFormat::HumanAct12 => "humanact12",
            DataFormat::Folder => "folder",
            DataFormat::Native => "native",
        }
    }
}

impl fmt::Display for DataFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DataFormat {
    type Err = MotionError;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        DataFormat::ALL
            .into_iter()
            .find(|f| f.name() == lower)
            .ok_or_else(|| {
                let known: Vec<_> = DataFormat::ALL.iter().map(|f| f.name()).collect();
                MotionError::InvalidArgument(format!(
                    "unknown data format {s:?}; expected one of {}",
                    known.join(", ")
                ))
            })
    }
}

/// Loads the dataset at `path` in the given format (see the module table).
pub fn load(format: DataFormat, path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    match format {
        DataFormat::Msr => msr::load_msr(path),
        DataFormat::Bvh => folder::load_bvh(path),
        DataFormat::Bandai => bandai::load_bandai(path, bandai::BandaiLabel::Content),
        DataFormat::HumanAct12 => humanact12::load_humanact12(path),
        DataFormat::Folder => folder::load_folder(path),
        DataFormat::Native => Dataset::load(path),
    }
}

/// Why a parsed clip cannot be used, or `None` when it can: every coordinate zero (a failed
/// recording), a non-finite coordinate, or one beyond
/// [`MAX_COORDINATE_ABS`](crate::limits::MAX_COORDINATE_ABS).
pub fn unusable_reason(motion: &Motion) -> Option<String> {
    let data = motion.data();
    let limit = crate::limits::MAX_COORDINATE_ABS;
    let usable = |v: &f32| v.is_finite() && v.abs() <= limit;
    let all_usable = data
        .as_slice()
        .map_or_else(|| data.iter().all(usable), |s| s.iter().all(usable));
    if all_usable {
        // Fall through to the zero check.
    } else if let Some(((t, j, c), v)) = data.indexed_iter().find(|(_, v)| !usable(v)) {
        let what = if v.is_finite() {
            format!("coordinate {v:e} beyond {limit:e} (haad_motion::limits::MAX_COORDINATE_ABS)")
        } else {
            format!("non-finite coordinate {v}")
        };
        return Some(format!("{what} at frame {t}, joint {j}, axis {c}"));
    }
    let all_zero = data
        .as_slice()
        .map_or_else(|| motion.is_all_zero(), |s| s.iter().all(|&v| v == 0.0));
    if all_zero {
        return Some(format!(
            "all coordinates are zero in all {} frames (a failed recording)",
            motion.frames()
        ));
    }
    None
}

/// An I/O error naming `path`.
pub(crate) fn io_error(path: &Path, source: std::io::Error) -> MotionError {
    MotionError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A parse error naming `path` and a 1-based line (0: the whole file).
pub(crate) fn parse_error(path: &Path, line: usize, message: impl Into<String>) -> MotionError {
    MotionError::Parse {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// The entries of a folder, sorted by path.
pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let read = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    let mut out = Vec::new();
    for entry in read {
        out.push(entry.map_err(|e| io_error(dir, e))?.path());
    }
    out.sort();
    Ok(out)
}

/// Whether `path`'s extension is `ext` (ASCII case-insensitive).
pub(crate) fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// The file name of `path` as text (lossy), for messages and labels.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn format_names_round_trip() {
        for f in DataFormat::ALL {
            assert_eq!(f.name().parse::<DataFormat>().unwrap(), f);
        }
        assert_eq!("MSR".parse::<DataFormat>().unwrap(), DataFormat::Msr);
        let err = "c3d".parse::<DataFormat>().unwrap_err().to_string();
        assert!(err.contains("c3d") && err.contains("humanact12"), "{err}");
    }

    #[test]
    fn unusable_clips_are_named() {
        let zero = Motion::new(Array3::zeros((3, 2, 3)), None).unwrap();
        assert!(unusable_reason(&zero).unwrap().contains("zero"));
        let mut a = Array3::from_elem((3, 2, 3), 1.0);
        a[[1, 0, 2]] = f32::NAN;
        let nan = Motion::new(a, None).unwrap();
        assert!(unusable_reason(&nan)
            .unwrap()
            .contains("frame 1, joint 0, axis 2"));
        let ok = Motion::new(Array3::from_elem((3, 2, 3), 1.0), None).unwrap();
        assert_eq!(unusable_reason(&ok), None);
        // A finite coordinate of 3e38 would overflow root-relative differences and the DCT.
        let mut a = Array3::from_elem((3, 2, 3), 1.0);
        a[[2, 1, 1]] = 3e38;
        let huge = Motion::new(a, None).unwrap();
        assert!(unusable_reason(&huge).unwrap().contains(
            "beyond 1e15 (haad_motion::limits::MAX_COORDINATE_ABS) at frame 2, joint 1, axis 1"
        ));
    }
}
