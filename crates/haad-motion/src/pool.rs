//! [`VariantPool`]: generated variants of a fixed set of clips, made once, cached on disk and
//! drawn from at every training step or support set.
//!
//! A generator such as the diffusion model needs 100 network evaluations per variant, far too
//! many to run inside every training step on a CPU. A pool generates `G` variants of every clip
//! once, in chunks of [`POOL_CHUNK`] clips, writes each chunk to its own file as soon as it is
//! done (so an interrupted build resumes where it stopped), and then serves as an
//! [`Augmenter`] that hands out `A <= G` distinct variants of each clip it is asked about.
//!
//! Cache layout: `DIR/<id>/pool.json` (what the pool holds) and `DIR/<id>/chunk-<n>.safetensors`,
//! where `<id>` is a hash of the generator's key, the seed, `G` and the fingerprints of all the
//! clips in order: another generator, seed or clip set never reads a stale pool.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::{rngs::StdRng, Rng, SeedableRng};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::augment::Augmenter;
use crate::error::{MotionError, Result};
use crate::fingerprint::Fingerprint;
use crate::io::{io_error, parse_error};
use crate::motion::Motion;

/// Clips generated per chunk file.
pub const POOL_CHUNK: usize = 16;

/// A fingerprint of a clip's content: its shape, frame rate and every coordinate's bits.
fn clip_fingerprint(clip: &Motion) -> u64 {
    let mut bytes = Vec::with_capacity(clip.data().len() * 4 + 20);
    bytes.extend_from_slice(&(clip.frames() as u64).to_le_bytes());
    bytes.extend_from_slice(&(clip.joints() as u64).to_le_bytes());
    bytes.extend_from_slice(&clip.fps().unwrap_or(-1.0).to_le_bytes());
    for v in clip.data().iter() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    Fingerprint::of(&bytes).value()
}

/// What a pool is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    /// The cache folder (created); each distinct pool gets a subfolder.
    pub dir: PathBuf,
    /// Identifies the generator and its settings (for example a hash of its weights and
    /// configuration): pools of different generators never mix.
    pub generator_key: String,
    /// G, variants generated per clip.
    pub per_clip: usize,
    /// Seed of the generator's randomness.
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PoolMeta {
    generator_key: String,
    per_clip: usize,
    seed: u64,
    clips: usize,
    chunk: usize,
}

/// `G` generated variants of each of a set of clips; an [`Augmenter`] over those clips.
#[derive(Debug, Clone)]
pub struct VariantPool {
    variants: HashMap<u64, Vec<Motion>>,
    per_clip: usize,
    dir: PathBuf,
}

impl VariantPool {
    /// Loads the pool of `clips` described by `spec` from its cache folder, generating (and
    /// caching) whatever chunks are missing with `augmenter`. Chunk `n` covers clips
    /// `n * POOL_CHUNK ..` and is generated with a seed derived from `spec.seed` and `n` alone,
    /// so the result does not depend on how often the build was interrupted.
    /// `on_chunk(done, total)` is called after each chunk (for a progress bar).
    pub fn build(
        spec: &PoolSpec,
        clips: &[Motion],
        augmenter: &dyn Augmenter,
        on_chunk: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        if spec.per_clip == 0 {
            return Err(MotionError::InvalidArgument(
                "a variant pool needs at least one variant per clip".into(),
            ));
        }
        if clips.is_empty() {
            return Err(MotionError::InvalidArgument(
                "a variant pool needs at least one clip".into(),
            ));
        }
        let fingerprints: Vec<u64> = clips.iter().map(clip_fingerprint).collect();
        let meta = PoolMeta {
            generator_key: spec.generator_key.clone(),
            per_clip: spec.per_clip,
            seed: spec.seed,
            clips: clips.len(),
            chunk: POOL_CHUNK,
        };
        let mut key = serde_json::to_vec(&meta).expect("pool metadata serialises");
        for f in &fingerprints {
            key.extend_from_slice(&f.to_le_bytes());
        }
        let dir = spec.dir.join(Fingerprint::of(&key).to_string());
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        let meta_path = dir.join("pool.json");
        let json = serde_json::to_string_pretty(&meta).expect("pool metadata serialises");
        crate::atomic::write_file(&meta_path, json.as_bytes())?;

        let chunks = clips.len().div_ceil(POOL_CHUNK);
        let mut variants = HashMap::with_capacity(clips.len());
        for n in 0..chunks {
            let part = &clips[n * POOL_CHUNK..clips.len().min((n + 1) * POOL_CHUNK)];
            let path = dir.join(format!("chunk-{n:05}.safetensors"));
            let made = if path.is_file() {
                read_chunk(&path, part.len() * spec.per_clip)?
            } else {
                let mut rng = StdRng::seed_from_u64(
                    spec.seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let made = augmenter.augment(part, spec.per_clip, &mut rng)?;
                if made.len() != part.len() * spec.per_clip {
                    return Err(MotionError::InvalidArgument(format!(
                        "the augmenter returned {} variants for {} clips x {}",
                        made.len(),
                        part.len(),
                        spec.per_clip
                    )));
                }
                write_chunk(&path, &made)?;
                made
            };
            for (i, group) in made.chunks(spec.per_clip).enumerate() {
                variants.insert(fingerprints[n * POOL_CHUNK + i], group.to_vec());
            }
            on_chunk(n + 1, chunks);
        }
        Ok(Self {
            variants,
            per_clip: spec.per_clip,
            dir,
        })
    }

    /// G, the variants held per clip.
    pub fn per_clip(&self) -> usize {
        self.per_clip
    }

    /// Distinct clips held.
    pub fn len(&self) -> usize {
        self.variants.len()
    }

    /// Whether the pool holds no clip (never true for a built pool).
    pub fn is_empty(&self) -> bool {
        self.variants.is_empty()
    }

    /// The cache subfolder this pool lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The G variants of `clip`, if the pool was built over it.
    pub fn variants(&self, clip: &Motion) -> Option<&[Motion]> {
        self.variants
            .get(&clip_fingerprint(clip))
            .map(|v| v.as_slice())
    }
}

impl Augmenter for VariantPool {
    /// `per_clip` distinct variants of each clip, drawn uniformly without replacement from its
    /// G pooled ones. A clip the pool was not built over, or `per_clip > G`, is an error.
    fn augment(&self, clips: &[Motion], per_clip: usize, rng: &mut StdRng) -> Result<Vec<Motion>> {
        if per_clip > self.per_clip {
            return Err(MotionError::InvalidArgument(format!(
                "asked for {per_clip} variants per clip; the pool holds {}",
                self.per_clip
            )));
        }
        let mut out = Vec::with_capacity(clips.len() * per_clip);
        for (i, clip) in clips.iter().enumerate() {
            let pool = self.variants(clip).ok_or_else(|| {
                MotionError::InvalidArgument(format!(
                    "clip {i} ({} frames of {} joints) is not in the variant pool in {}",
                    clip.frames(),
                    clip.joints(),
                    self.dir.display()
                ))
            })?;
            // A partial Fisher-Yates shuffle: the first per_clip of a random permutation.
            let mut idx: Vec<usize> = (0..pool.len()).collect();
            for k in 0..per_clip {
                let j = rng.random_range(k..idx.len());
                idx.swap(k, j);
                out.push(pool[idx[k]].clone());
            }
        }
        Ok(out)
    }
}

fn write_chunk(path: &Path, clips: &[Motion]) -> Result<()> {
    let joints = clips.first().map_or(0, |c| c.joints());
    if clips.iter().any(|c| c.joints() != joints) {
        return Err(MotionError::InvalidArgument(
            "the augmenter returned variants with different joint counts".into(),
        ));
    }
    let total: usize = clips.iter().map(|c| c.frames()).sum();
    let mut positions = Vec::with_capacity(total * joints * 12);
    let mut offsets = Vec::with_capacity((clips.len() + 1) * 8);
    let mut fps = Vec::with_capacity(clips.len() * 4);
    let mut at = 0i64;
    offsets.extend_from_slice(&at.to_le_bytes());
    for c in clips {
        for v in c.data().iter() {
            positions.extend_from_slice(&v.to_le_bytes());
        }
        at += c.frames() as i64;
        offsets.extend_from_slice(&at.to_le_bytes());
        fps.extend_from_slice(&c.fps().unwrap_or(-1.0).to_le_bytes());
    }
    let st_err = |e: safetensors::SafeTensorError| parse_error(path, 0, e.to_string());
    let tensors = [
        (
            "positions",
            TensorView::new(Dtype::F32, vec![total, joints, 3], &positions).map_err(st_err)?,
        ),
        (
            "offsets",
            TensorView::new(Dtype::I64, vec![clips.len() + 1], &offsets).map_err(st_err)?,
        ),
        (
            "fps",
            TensorView::new(Dtype::F32, vec![clips.len()], &fps).map_err(st_err)?,
        ),
    ];
    let bytes = safetensors::serialize(tensors, None).map_err(st_err)?;
    // Whole or not at all, so that an interruption never leaves a truncated chunk behind.
    crate::atomic::write_file(path, &bytes)
}

fn read_chunk(path: &Path, expected: usize) -> Result<Vec<Motion>> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let bad = |msg: String| parse_error(path, 0, msg);
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not safetensors: {e}")))?;
    let get = |name: &str, dtype: Dtype| -> Result<TensorView<'_>> {
        let t = st
            .tensor(name)
            .map_err(|e| bad(format!("tensor {name}: {e}")))?;
        if t.dtype() != dtype {
            return Err(bad(format!(
                "tensor {name} is {:?}, not {dtype:?}",
                t.dtype()
            )));
        }
        Ok(t)
    };
    let (pos, off, fps) = (
        get("positions", Dtype::F32)?,
        get("offsets", Dtype::I64)?,
        get("fps", Dtype::F32)?,
    );
    let f32s = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let offsets: Vec<i64> = off
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let (positions, fps) = (f32s(pos.data()), f32s(fps.data()));
    let shape = pos.shape();
    if shape.len() != 3 || shape[2] != 3 || offsets.len() != expected + 1 || fps.len() != expected {
        return Err(bad(format!(
            "expected {expected} clips of [frames, J, 3]; positions {shape:?}, {} offsets, {} frame rates",
            offsets.len(),
            fps.len()
        )));
    }
    let joints = shape[1];
    let mut out = Vec::with_capacity(expected);
    for (i, w) in offsets.windows(2).enumerate() {
        let (a, b) = (w[0], w[1]);
        if a < 0 || b <= a || b as usize > shape[0] {
            return Err(bad(format!("clip {i} has bad offsets {a}..{b}")));
        }
        let values = positions[a as usize * joints * 3..b as usize * joints * 3].to_vec();
        let rate = (fps[i] > 0.0).then_some(fps[i]);
        out.push(Motion::from_flat(values, joints, rate)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::CropAugmenter;
    use ndarray::Array3;

    fn clip(n: usize, v: f32) -> Motion {
        Motion::new(
            Array3::from_shape_fn((n, 2, 3), |(t, j, c)| v + (t * 6 + j * 3 + c) as f32),
            Some(30.0),
        )
        .unwrap()
    }

    /// Copies each clip with a random frame rate as its tag (so that all variants differ) and
    /// counts how many clips it was asked to augment.
    struct Tagging<'a> {
        calls: &'a std::sync::atomic::AtomicUsize,
    }

    impl Augmenter for Tagging<'_> {
        fn augment(&self, c: &[Motion], per: usize, rng: &mut StdRng) -> Result<Vec<Motion>> {
            self.calls
                .fetch_add(c.len(), std::sync::atomic::Ordering::SeqCst);
            let mut out = Vec::new();
            for m in c {
                for _ in 0..per {
                    let tag = rng.random_range(1..1_000_000) as f32;
                    out.push(Motion::new(m.data().clone(), Some(tag))?);
                }
            }
            Ok(out)
        }
    }

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("haad-pool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn builds_caches_resumes_and_draws_distinct_variants() {
        let dir = temp("build");
        let clips: Vec<Motion> = (0..20).map(|i| clip(30 + i, i as f32 * 100.0)).collect();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let aug = Tagging { calls: &calls };
        let spec = PoolSpec {
            dir: dir.clone(),
            generator_key: "tag".into(),
            per_clip: 5,
            seed: 3,
        };
        let mut progress = Vec::new();
        let pool =
            VariantPool::build(&spec, &clips, &aug, &mut |d, t| progress.push((d, t))).unwrap();
        assert_eq!(progress, vec![(1, 2), (2, 2)]);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 20);
        assert_eq!((pool.len(), pool.per_clip()), (20, 5));
        // Each clip's variants are copies of that clip (the cache keeps frame rates too).
        for c in &clips {
            let v = pool.variants(c).unwrap();
            assert_eq!(v.len(), 5);
            for m in v {
                assert_eq!(m.data(), c.data());
                assert_ne!(m.fps(), c.fps());
            }
        }
        // A second build reads the cache: no generation, same variants.
        let again = VariantPool::build(&spec, &clips, &aug, &mut |_, _| {}).unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 20);
        assert_eq!(again.variants(&clips[7]), pool.variants(&clips[7]));
        // An interrupted build (chunk 1 lost) regenerates only that chunk, identically.
        std::fs::remove_file(again.dir().join("chunk-00001.safetensors")).unwrap();
        let resumed = VariantPool::build(&spec, &clips, &aug, &mut |_, _| {}).unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 24);
        assert_eq!(resumed.variants(&clips[18]), pool.variants(&clips[18]));
        // Another seed is another pool (another folder).
        let other = VariantPool::build(
            &PoolSpec {
                seed: 4,
                ..spec.clone()
            },
            &clips,
            &aug,
            &mut |_, _| {},
        )
        .unwrap();
        assert_ne!(other.dir(), pool.dir());
        assert_ne!(other.variants(&clips[0]), pool.variants(&clips[0]));

        // Drawing: distinct variants of the right clips, deterministic given the rng.
        let mut rng = StdRng::seed_from_u64(1);
        let drawn = pool.augment(&clips[2..4], 5, &mut rng).unwrap();
        assert_eq!(drawn.len(), 10);
        let own = pool.variants(&clips[3]).unwrap();
        for d in &drawn[5..] {
            assert!(own.contains(d));
        }
        for a in 0..5 {
            for b in a + 1..5 {
                assert_ne!(drawn[a], drawn[b], "a draw repeats a variant");
            }
        }
        let mut rng2 = StdRng::seed_from_u64(1);
        assert_eq!(pool.augment(&clips[2..4], 5, &mut rng2).unwrap(), drawn);
        // Rejections: too many variants, a clip outside the pool.
        assert!(pool.augment(&clips[..1], 6, &mut rng).is_err());
        let err = pool
            .augment(&[clip(30, -1.0)], 1, &mut rng)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not in the variant pool"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_empty_pools_and_bad_chunks() {
        let dir = temp("bad");
        let aug = CropAugmenter { frames: 4 };
        let spec = PoolSpec {
            dir: dir.clone(),
            generator_key: "k".into(),
            per_clip: 0,
            seed: 0,
        };
        assert!(VariantPool::build(&spec, &[clip(5, 0.0)], &aug, &mut |_, _| {}).is_err());
        let spec = PoolSpec {
            per_clip: 2,
            ..spec
        };
        assert!(VariantPool::build(&spec, &[], &aug, &mut |_, _| {}).is_err());
        let pool = VariantPool::build(&spec, &[clip(5, 0.0)], &aug, &mut |_, _| {}).unwrap();
        let chunk = pool.dir().join("chunk-00000.safetensors");
        std::fs::write(&chunk, b"not a chunk").unwrap();
        let err = VariantPool::build(&spec, &[clip(5, 0.0)], &aug, &mut |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("chunk-00000"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fingerprints_see_every_value() {
        let a = clip(10, 0.0);
        let mut d = a.data().clone();
        d[[9, 1, 2]] += 0.5;
        let b = Motion::new(d, a.fps()).unwrap();
        assert_ne!(clip_fingerprint(&a), clip_fingerprint(&b));
        assert_eq!(clip_fingerprint(&a), clip_fingerprint(&a.clone()));
    }
}
