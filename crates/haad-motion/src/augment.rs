//! The [`Augmenter`] trait (how any crate makes variants of clips) and two simple augmenters:
//! [`CropAugmenter`] and [`RotateJitterAugmenter`].
//!
//! The trainer and the support sets call augmenters on *raw* clips (as loaded, any length) and
//! preprocess what comes back, so an augmenter may use frames beyond the first 60.

use rand::{rngs::StdRng, Rng};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{MotionError, Result};
use crate::motion::Motion;
use crate::preprocess::random_crop;

/// Makes variants of motion clips.
pub trait Augmenter: Send + Sync {
    /// Returns `per_clip` variants of each clip, clip-major: the variants of `clips[i]` are at
    /// `i * per_clip .. (i + 1) * per_clip`. All randomness comes from `rng`.
    fn augment(&self, clips: &[Motion], per_clip: usize, rng: &mut StdRng) -> Result<Vec<Motion>>;
}

/// A coordinate axis, e.g. the vertical one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Axis3 {
    /// x.
    X,
    /// y (vertical in MSR Action3D, BVH and HumanAct12).
    #[default]
    Y,
    /// z.
    Z,
}

impl Axis3 {
    fn index(self) -> usize {
        match self {
            Axis3::X => 0,
            Axis3::Y => 1,
            Axis3::Z => 2,
        }
    }
}

/// Another window of `frames` frames of the same clip, drawn uniformly.
#[derive(Debug, Clone, PartialEq)]
pub struct CropAugmenter {
    /// Window length (the method's T = 60).
    pub frames: usize,
}

impl Augmenter for CropAugmenter {
    fn augment(&self, clips: &[Motion], per_clip: usize, rng: &mut StdRng) -> Result<Vec<Motion>> {
        let mut out = Vec::with_capacity(clips.len() * per_clip);
        for clip in clips {
            for _ in 0..per_clip {
                out.push(random_crop(clip, self.frames, rng)?);
            }
        }
        Ok(out)
    }
}

/// A random rotation about the vertical axis through the root joint's frame-0 position, plus
/// independent Gaussian jitter on every coordinate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RotateJitterAugmenter {
    /// The vertical axis.
    pub up: Axis3,
    /// The rotation angle is drawn uniformly from `[-max_angle, max_angle]` radians.
    pub max_angle: f32,
    /// Standard deviation of the jitter, in the data's units.
    pub jitter_std: f32,
    /// The joint the rotation turns about.
    pub root: usize,
}

impl RotateJitterAugmenter {
    /// Rotation up to `max_angle` radians about the y axis through the dataset's root joint,
    /// with jitter `jitter_fraction` times the dataset's body scale ([`body_scale`]), so the
    /// same settings mean the same thing in metres and in centimetres.
    pub fn for_dataset(dataset: &Dataset, max_angle: f32, jitter_fraction: f32) -> Result<Self> {
        Ok(Self {
            up: Axis3::Y,
            max_angle,
            jitter_std: jitter_fraction * body_scale(dataset)?,
            root: dataset.skeleton().root(),
        })
    }

    /// Rotates `motion` by `angle` radians about the vertical axis through the root joint's
    /// frame-0 position (no jitter).
    pub fn rotate(&self, motion: &Motion, angle: f32) -> Result<Motion> {
        if self.root >= motion.joints() {
            return Err(MotionError::InvalidArgument(format!(
                "root joint {} out of range for {} joints",
                self.root,
                motion.joints()
            )));
        }
        let up = self.up.index();
        let (a, b) = ((up + 1) % 3, (up + 2) % 3);
        let (s, c) = angle.sin_cos();
        let src = motion.data();
        let (ca, cb) = (src[[0, self.root, a]], src[[0, self.root, b]]);
        let mut data = src.clone();
        for t in 0..motion.frames() {
            for j in 0..motion.joints() {
                let (x, y) = (src[[t, j, a]] - ca, src[[t, j, b]] - cb);
                data[[t, j, a]] = ca + c * x - s * y;
                data[[t, j, b]] = cb + s * x + c * y;
            }
        }
        Motion::new(data, motion.fps())
    }
}

impl Augmenter for RotateJitterAugmenter {
    fn augment(&self, clips: &[Motion], per_clip: usize, rng: &mut StdRng) -> Result<Vec<Motion>> {
        if !(self.max_angle >= 0.0 && self.jitter_std >= 0.0) {
            return Err(MotionError::InvalidArgument(format!(
                "max_angle and jitter_std must be non-negative, got {} and {}",
                self.max_angle, self.jitter_std
            )));
        }
        let normal = Normal::new(0.0f32, self.jitter_std.max(f32::MIN_POSITIVE))
            .map_err(|e| MotionError::InvalidArgument(format!("jitter: {e}")))?;
        let mut out = Vec::with_capacity(clips.len() * per_clip);
        for clip in clips {
            for _ in 0..per_clip {
                let angle = rng.random_range(-self.max_angle..=self.max_angle);
                let mut data = self.rotate(clip, angle)?.into_data();
                if self.jitter_std > 0.0 {
                    data.mapv_inplace(|v| v + normal.sample(rng));
                }
                out.push(Motion::new(data, clip.fps())?);
            }
        }
        Ok(out)
    }
}

/// The median over clips of the RMS distance of all joints to the root joint at frame 0: a
/// body size in the data's own units (about 0.5 for adults in metres).
pub fn body_scale(dataset: &Dataset) -> Result<f32> {
    let root = dataset.skeleton().root();
    let mut sizes: Vec<f32> = dataset
        .clips()
        .iter()
        .map(|c| {
            let f = c.motion.frame(0);
            let r = f.row(root);
            let sq: f32 = f
                .rows()
                .into_iter()
                .map(|p| (&p - &r).mapv(|v| v * v).sum())
                .sum();
            (sq / f.nrows() as f32).sqrt()
        })
        .filter(|v| v.is_finite())
        .collect();
    if sizes.is_empty() {
        return Err(MotionError::InvalidArgument(
            "body scale of a dataset with no clips".into(),
        ));
    }
    sizes.sort_by(|a, b| a.total_cmp(b));
    Ok(sizes[sizes.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;
    use rand::SeedableRng;

    fn clip() -> Motion {
        let a = Array3::from_shape_fn((8, 3, 3), |(t, j, c)| (t * 9 + j * 3 + c) as f32 * 0.1);
        Motion::new(a, Some(30.0)).unwrap()
    }

    #[test]
    fn crop_gives_windows_clip_major() {
        let long = clip();
        let out = CropAugmenter { frames: 4 }
            .augment(&[long.clone(), long], 3, &mut StdRng::seed_from_u64(0))
            .unwrap();
        assert_eq!(out.len(), 6);
        assert!(out.iter().all(|m| m.frames() == 4));
    }

    #[test]
    fn rotation_keeps_lengths_and_height() {
        let aug = RotateJitterAugmenter {
            up: Axis3::Y,
            max_angle: std::f32::consts::PI,
            jitter_std: 0.0,
            root: 1,
        };
        let m = clip();
        let r = aug.rotate(&m, 0.7).unwrap();
        for t in 0..m.frames() {
            for j in 0..m.joints() {
                // Height is unchanged; the horizontal distance to the pivot is kept.
                assert!((r.data()[[t, j, 1]] - m.data()[[t, j, 1]]).abs() < 1e-5);
                let d = |x: &Motion| {
                    let dx = x.data()[[t, j, 0]] - m.data()[[0, 1, 0]];
                    let dz = x.data()[[t, j, 2]] - m.data()[[0, 1, 2]];
                    (dx * dx + dz * dz).sqrt()
                };
                assert!((d(&r) - d(&m)).abs() < 1e-4);
            }
        }
        // A quarter turn maps (x, z) offsets (1, 0) to (0, 1) about y (z-x plane order: a = z, b = x).
        let unit = Motion::new(
            Array3::from_shape_vec((1, 2, 3), vec![0., 0., 0., 0., 0., 1.]).unwrap(),
            None,
        )
        .unwrap();
        let q = RotateJitterAugmenter {
            root: 0,
            ..aug.clone()
        }
        .rotate(&unit, std::f32::consts::FRAC_PI_2)
        .unwrap();
        assert!((q.data()[[0, 1, 2]]).abs() < 1e-6);
        assert!((q.data()[[0, 1, 0]] - 1.0).abs() < 1e-6);
        let seeded = |s| {
            aug.augment(std::slice::from_ref(&m), 2, &mut StdRng::seed_from_u64(s))
                .unwrap()
        };
        assert_eq!(seeded(4), seeded(4));
        assert_ne!(seeded(4), seeded(5));
    }

    #[test]
    fn body_scale_is_rms_distance_to_root() {
        use crate::dataset::Clip;
        use crate::motion::Skeleton;
        let skel = Skeleton::new(vec!["r".into(), "a".into()], vec![None, Some(0)], 0).unwrap();
        // Joint a sits at distance d from the root: RMS over the two joints is d / sqrt(2).
        let clips = [1.0f32, 2.0, 4.0]
            .iter()
            .map(|&d| Clip {
                motion: Motion::new(
                    Array3::from_shape_vec((1, 2, 3), vec![1., 1., 1., 1. + d, 1., 1.]).unwrap(),
                    None,
                )
                .unwrap(),
                category: 0,
                source: "x".into(),
            })
            .collect();
        let ds = Dataset::new(skel, vec!["c".into()], clips, vec![]).unwrap();
        assert!((body_scale(&ds).unwrap() - 2.0 / 2f32.sqrt()).abs() < 1e-6);
        let aug = RotateJitterAugmenter::for_dataset(&ds, 0.5, 0.1).unwrap();
        assert!((aug.jitter_std - 0.2 / 2f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn jitter_has_requested_spread() {
        let aug = RotateJitterAugmenter {
            up: Axis3::Y,
            max_angle: 0.0,
            jitter_std: 0.5,
            root: 0,
        };
        let m = Motion::new(Array3::zeros((200, 5, 3)), None).unwrap();
        let out = aug.augment(&[m], 1, &mut StdRng::seed_from_u64(1)).unwrap();
        let v = out[0].data();
        let var = v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32;
        assert!((var.sqrt() - 0.5).abs() < 0.02, "std {}", var.sqrt());
        let bad = RotateJitterAugmenter {
            jitter_std: -1.0,
            ..aug
        };
        assert!(bad
            .augment(&[out[0].clone()], 1, &mut StdRng::seed_from_u64(1))
            .is_err());
    }
}
