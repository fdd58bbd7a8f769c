//! Clips from the files a user names on the `haad` command line, in any loadable format.
//!
//! | path | read as | clips |
//! |---|---|---|
//! | a folder | `ROOT/<category>/<clip>.{npy,bvh}` (`DataFormat::Folder`) | every clip |
//! | `*.safetensors` | a native dataset file (`Dataset::load`) | every clip |
//! | `*.bvh` | one BVH file (forward kinematics) | one |
//! | `*.npy` | positions `[T, J, 3]` | one |
//! | `*.txt` | an MSR Action3D skeleton file (20 joints) | one |
//! | `*.csv`, `*.jsonl`, `*.json` | the frame-line format of [`crate::deploy::frames`] | one |
//!
//! Files with a skeleton (folder, native, BVH, MSR) bring its root joint; the others take the
//! root the caller gives.

use std::path::{Path, PathBuf};

use haad_motion::{io::msr, DataFormat, Dataset, Motion, Skeleton};

use crate::error::{HaadError, Result};

/// One clip and where it came from.
#[derive(Debug, Clone)]
pub struct NamedClip {
    /// The positions.
    pub motion: Motion,
    /// The file (for a dataset file, the clip's own source inside it).
    pub name: String,
    /// Its category, when the file says.
    pub category: Option<String>,
}

/// Which clips of multi-clip files (folders, native datasets) to keep.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only clips of this category (files without categories are kept whole).
    pub category: Option<String>,
    /// Skip this many of each file's (selected) clips.
    pub skip: usize,
    /// Then keep at most this many of each file.
    pub take: Option<usize>,
}

/// The clips of `paths` (in order) and the skeleton of the first file that has one.
pub fn load_clips(
    paths: &[PathBuf],
    select: &Selection,
) -> Result<(Vec<NamedClip>, Option<Skeleton>)> {
    let mut out = Vec::new();
    let mut skeleton: Option<Skeleton> = None;
    for path in paths {
        let (clips, sk) = load_one(path, select)?;
        if clips.is_empty() {
            return Err(HaadError::InvalidArgument(format!(
                "{}: no clips{}",
                path.display(),
                select
                    .category
                    .as_ref()
                    .map(|c| format!(" of category {c:?}"))
                    .unwrap_or_default()
            )));
        }
        if let (Some(a), Some(b)) = (&skeleton, &sk) {
            if a.joints() != b.joints() {
                return Err(HaadError::InvalidArgument(format!(
                    "{}: skeleton of {} joints, an earlier file has {}",
                    path.display(),
                    b.joints(),
                    a.joints()
                )));
            }
        }
        skeleton = skeleton.or(sk);
        out.extend(clips);
    }
    Ok((out, skeleton))
}

fn ext(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn load_one(path: &Path, select: &Selection) -> Result<(Vec<NamedClip>, Option<Skeleton>)> {
    let single = |motion: Motion, sk: Option<Skeleton>| {
        let clip = NamedClip {
            motion,
            name: path.display().to_string(),
            category: None,
        };
        Ok((vec![clip], sk))
    };
    if path.is_dir() {
        return Ok(from_dataset(
            haad_motion::load(DataFormat::Folder, path)?,
            select,
        ));
    }
    match ext(path).as_str() {
        "safetensors" => Ok(from_dataset(Dataset::load(path)?, select)),
        "bvh" => Ok(from_dataset(
            haad_motion::load(DataFormat::Bvh, path)?,
            select,
        )),
        "npy" => single(
            Motion::new(haad_motion::io::npy::read_npy_positions(path)?, None)?,
            None,
        ),
        "txt" => match msr::read_msr_file(path)? {
            Some(m) => single(m, Some(msr::msr_skeleton())),
            None => Err(HaadError::InvalidArgument(format!(
                "{}: no frames",
                path.display()
            ))),
        },
        "csv" | "jsonl" | "json" => {
            let file = std::fs::File::open(path).map_err(|source| HaadError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let m = super::frames::read_recording(
                std::io::BufReader::new(file),
                &path.display().to_string(),
            )?;
            single(m, None)
        }
        other => Err(HaadError::InvalidArgument(format!(
            "{}: unknown file type {other:?}; give a folder or a .safetensors, .bvh, .npy, \
             .txt (MSR), .csv or .jsonl file",
            path.display()
        ))),
    }
}

fn from_dataset(ds: Dataset, select: &Selection) -> (Vec<NamedClip>, Option<Skeleton>) {
    let clips = ds
        .clips()
        .iter()
        .filter(|c| {
            select
                .category
                .as_ref()
                .is_none_or(|want| &ds.categories()[c.category] == want)
        })
        .skip(select.skip)
        .take(select.take.unwrap_or(usize::MAX))
        .map(|c| NamedClip {
            motion: c.motion.clone(),
            name: c.source.display().to_string(),
            category: Some(ds.categories()[c.category].clone()),
        })
        .collect();
    (clips, Some(ds.skeleton().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_files_select_by_category_skip_and_take() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("data/bandai/bandai-ds2-60f.safetensors");
        let select = Selection {
            category: Some("walk".into()),
            skip: 1,
            take: Some(2),
        };
        let (clips, sk) = load_clips(std::slice::from_ref(&path), &select).unwrap();
        assert_eq!(clips.len(), 2);
        assert_eq!(sk.unwrap().joints(), 22);
        let ds = Dataset::load(&path).unwrap();
        let walk = ds.category_index("walk").unwrap();
        let walks: Vec<_> = ds.clips().iter().filter(|c| c.category == walk).collect();
        assert_eq!(clips[0].motion, walks[1].motion);
        assert_eq!(clips[1].motion, walks[2].motion);
        let none = Selection {
            category: Some("no-such".into()),
            ..Default::default()
        };
        let err = load_clips(&[path], &none).unwrap_err().to_string();
        assert!(err.contains("no clips of category"), "{err}");
        let err = load_clips(&[PathBuf::from("x.mp4")], &Selection::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.mp4") && err.contains("unknown file type"),
            "{err}"
        );
    }
}
