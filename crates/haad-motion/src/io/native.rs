//! The native dataset file: one `.safetensors` file holding every clip and, in its header's
//! metadata, everything else.
//!
//! Tensors:
//! - `positions`: f32 `[total_frames, J, 3]`, all clips one after another, in dataset order;
//! - `offsets`: i64 `[clips + 1]`, clip `i` is `positions[offsets[i] .. offsets[i + 1]]`.
//!
//! Header metadata key `haad_motion`: a JSON object
//! `{"version": 1, "skeleton": {"names", "parents", "root"}, "categories": [...],
//! "clips": [{"category", "source", "fps"}], "skipped": [{"path", "reason"}]}`.
//! Paths are stored as text (lossy for non-UTF-8 paths), exactly as they were in the dataset.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::Array3;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::dataset::{Clip, Dataset, Skipped};
use crate::error::Result;
use crate::io::{io_error, parse_error, unusable_reason};
use crate::motion::{Motion, Skeleton};

/// The metadata key under which the JSON description is stored.
pub const METADATA_KEY: &str = "haad_motion";

/// The format version written by [`Dataset::save`].
pub const NATIVE_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SkeletonMeta {
    names: Vec<String>,
    parents: Vec<Option<usize>>,
    root: usize,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClipMeta {
    category: usize,
    source: String,
    fps: Option<f32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    version: u32,
    skeleton: SkeletonMeta,
    categories: Vec<String>,
    clips: Vec<ClipMeta>,
    skipped: Vec<Skipped>,
}

impl Dataset {
    /// Writes the dataset to one `.safetensors` file (see [`crate::io::native`]).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let s = self.skeleton();
        let meta = Meta {
            version: NATIVE_VERSION,
            skeleton: SkeletonMeta {
                names: s.names().to_vec(),
                parents: s.parents().to_vec(),
                root: s.root(),
            },
            categories: self.categories().to_vec(),
            clips: self
                .clips()
                .iter()
                .map(|c| ClipMeta {
                    category: c.category,
                    source: c.source.to_string_lossy().into_owned(),
                    fps: c.motion.fps(),
                })
                .collect(),
            skipped: self.skipped().to_vec(),
        };
        let json = serde_json::to_string(&meta)
            .map_err(|e| parse_error(path, 0, format!("cannot encode metadata: {e}")))?;
        let total: usize = self.clips().iter().map(|c| c.motion.frames()).sum();
        let mut positions = Vec::with_capacity(total * self.joints() * 12);
        let mut offsets = Vec::with_capacity((self.clips().len() + 1) * 8);
        let mut at = 0i64;
        offsets.extend_from_slice(&at.to_le_bytes());
        for clip in self.clips() {
            for v in clip.motion.data().iter() {
                positions.extend_from_slice(&v.to_le_bytes());
            }
            at += clip.motion.frames() as i64;
            offsets.extend_from_slice(&at.to_le_bytes());
        }
        let st_err = |e: safetensors::SafeTensorError| parse_error(path, 0, e.to_string());
        let tensors = [
            (
                "positions",
                TensorView::new(Dtype::F32, vec![total, self.joints(), 3], &positions)
                    .map_err(st_err)?,
            ),
            (
                "offsets",
                TensorView::new(Dtype::I64, vec![self.clips().len() + 1], &offsets)
                    .map_err(st_err)?,
            ),
        ];
        let info = HashMap::from([(METADATA_KEY.to_string(), json)]);
        let bytes = safetensors::serialize(tensors, Some(info)).map_err(st_err)?;
        crate::atomic::write_file(path, &bytes)
    }

    /// Reads a dataset written by [`Dataset::save`]; every inconsistency is an error naming the
    /// file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
        let bad = |msg: String| parse_error(path, 0, msg);
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(METADATA_KEY))
            .ok_or_else(|| bad(format!("no `{METADATA_KEY}` metadata: not a haad dataset")))?;
        let meta: Meta = serde_json::from_str(json)
            .map_err(|e| bad(format!("bad `{METADATA_KEY}` metadata: {e}")))?;
        if meta.version != NATIVE_VERSION {
            return Err(bad(format!(
                "format version {} (this library reads {NATIVE_VERSION})",
                meta.version
            )));
        }
        let skeleton = Skeleton::new(
            meta.skeleton.names,
            meta.skeleton.parents,
            meta.skeleton.root,
        )
        .map_err(|e| bad(format!("bad skeleton: {e}")))?;
        let j = skeleton.joints();
        let tensor = |name: &str, dtype: Dtype| -> Result<TensorView<'_>> {
            let t = st
                .tensor(name)
                .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
            if t.dtype() != dtype {
                return Err(bad(format!(
                    "tensor `{name}` is {:?}, expected {dtype:?}",
                    t.dtype()
                )));
            }
            Ok(t)
        };
        let pos = tensor("positions", Dtype::F32)?;
        if pos.shape().len() != 3 || pos.shape()[1] != j || pos.shape()[2] != 3 {
            return Err(bad(format!(
                "tensor `positions` has shape {:?}, expected [frames, {j}, 3]",
                pos.shape()
            )));
        }
        let total = pos.shape()[0];
        let values: Vec<f32> = pos
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let off = tensor("offsets", Dtype::I64)?;
        let offsets: Vec<i64> = off
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8-byte chunk")))
            .collect();
        if offsets.len() != meta.clips.len() + 1 || offsets.first() != Some(&0) {
            return Err(bad(format!(
                "tensor `offsets` has {} entries starting at {:?}, expected {} starting at 0",
                offsets.len(),
                offsets.first(),
                meta.clips.len() + 1
            )));
        }
        let mut clips = Vec::with_capacity(meta.clips.len());
        let mut skipped = meta.skipped;
        for (i, (c, w)) in meta.clips.into_iter().zip(offsets.windows(2)).enumerate() {
            let (a, b) = (w[0], w[1]);
            if !(0 <= a && a < b && b as usize <= total) {
                return Err(bad(format!(
                    "clip {i}: frames {a}..{b} are not a non-empty range within 0..{total}"
                )));
            }
            let (a, b) = (a as usize, b as usize);
            let data = Array3::from_shape_vec((b - a, j, 3), values[a * j * 3..b * j * 3].to_vec())
                .map_err(|e| bad(format!("clip {i}: {e}")))?;
            let motion = Motion::new(data, c.fps).map_err(|e| bad(format!("clip {i}: {e}")))?;
            if let Some(reason) = unusable_reason(&motion) {
                skipped.push(Skipped {
                    path: PathBuf::from(c.source),
                    reason: format!("clip {i} of {}: {reason}", path.display()),
                });
                continue;
            }
            clips.push(Clip {
                motion,
                category: c.category,
                source: PathBuf::from(c.source),
            });
        }
        Dataset::new(skeleton, meta.categories, clips, skipped)
            .map_err(|e| bad(format!("inconsistent dataset: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("haad-native-{}-{name}", std::process::id()))
    }

    fn sample() -> Dataset {
        let skel = Skeleton::new(
            vec!["b".into(), "a".into(), "c".into()],
            vec![Some(1), None, Some(0)],
            1,
        )
        .unwrap();
        let clip = |t: usize, cat: usize, src: &str, fps: Option<f32>| Clip {
            motion: Motion::new(
                Array3::from_shape_fn((t, 3, 3), |(f, j, c)| {
                    (f * 9 + j * 3 + c) as f32 * 0.37 - cat as f32
                }),
                fps,
            )
            .unwrap(),
            category: cat,
            source: src.into(),
        };
        Dataset::new(
            skel,
            vec!["walk".into(), "run".into()],
            vec![
                clip(4, 1, "x/run_1.bvh", Some(30.0)),
                clip(1, 0, "x/walk_1.npy", None),
                clip(7, 1, "x/run_2.bvh", Some(30.0)),
            ],
            vec![Skipped {
                path: "x/bad.npy".into(),
                reason: "all zero".into(),
            }],
        )
        .unwrap()
    }

    #[test]
    fn round_trip_is_exact() {
        let ds = sample();
        let path = tmp("rt.safetensors");
        ds.save(&path).unwrap();
        let back = Dataset::load(&path).unwrap();
        assert_eq!(back, ds);
        // An empty dataset round-trips too.
        let empty = Dataset::new(ds.skeleton().clone(), vec!["a".into()], vec![], vec![]).unwrap();
        empty.save(&path).unwrap();
        assert_eq!(Dataset::load(&path).unwrap(), empty);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn damaged_files_are_named() {
        let path = tmp("bad.safetensors");
        std::fs::write(&path, b"not a dataset").unwrap();
        let err = Dataset::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.safetensors") && err.contains("safetensors"),
            "{err}"
        );
        // A safetensors file without our metadata.
        let t = TensorView::new(Dtype::F32, vec![1], &[0u8; 4]).unwrap();
        std::fs::write(&path, safetensors::serialize([("x", t)], None).unwrap()).unwrap();
        let err = Dataset::load(&path).unwrap_err().to_string();
        assert!(err.contains("not a haad dataset"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }
}
