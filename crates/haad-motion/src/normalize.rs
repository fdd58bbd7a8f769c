//! Normalisation for transfer between datasets: a clip of any [`Layout`] becomes a clip of the
//! [canonical body](crate::canonical) in one frame of reference, one frame rate and one body
//! size. Each step has its own switch in [`NormalizeConfig`]; [`Canonicalizer::apply`] runs
//! them in this order:
//!
//! 1. **map** the layout's joints onto the canonical body and convert its units to metres
//!    ([`CanonicalMap::apply`]; always on);
//! 2. **vertical** (`vertical`): rotate the layout's up axis onto +y (a proper rotation, so
//!    left and right stay the body's own);
//! 3. **frame rate** (`fps`): resample to this rate by linear interpolation
//!    ([`preprocess::resample`]); MSR Action3D records 15 fps, the Bandai-Namco BVH 30, so
//!    without it 60 frames mean 4 s in one and 2 s in the other;
//! 4. **origin**: the frame-0 pelvis moves to the origin (always on; the method's
//!    root-relative step does the same later);
//! 5. **body size** (`body_size`): scale so that the clip's body size `S` equals this value.
//!    `S` = mean over frames of |neck - pelvis| + the mean over both legs of
//!    |knee - hip| + |ankle - knee| (trunk plus leg length, about 1.4 m for an adult), so a child
//!    and an adult, or metres and centimetres, meet;
//! 6. **heading** (`heading`): rotate about +y so that frame 0 faces +z. The facing direction
//!    is `up x across`, with `across` = (right hip - left hip) + (right shoulder - left
//!    shoulder) projected on the ground plane. Heading assumes +y up (keep `vertical` on for
//!    layouts whose up axis is not +y).
//!
//! Output: `[T', 15, 3]`, +y up, facing +z at frame 0, pelvis at the origin at frame 0.

use serde::{Deserialize, Serialize};

use crate::canonical::{
    canonical_skeleton, CanonicalMap, LEFT_ANKLE, LEFT_HIP, LEFT_KNEE, LEFT_SHOULDER, NECK, PELVIS,
    RIGHT_ANKLE, RIGHT_HIP, RIGHT_KNEE, RIGHT_SHOULDER,
};
use crate::dataset::{Clip, Dataset};
use crate::error::{MotionError, Result};
use crate::layout::{Layout, Up};
use crate::motion::{Motion, Skeleton};
use crate::preprocess;

/// Switches and targets of the normalisation steps (module docs); `Default` turns all on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NormalizeConfig {
    /// Common frame rate in frames per second (default 30: the method's 60 frames are 2 s);
    /// `None` keeps each clip's rate.
    pub fps: Option<f32>,
    /// Rotate the layout's vertical axis onto +y (default on).
    pub vertical: bool,
    /// Body size S after scaling (default 1.0); `None` keeps metres.
    pub body_size: Option<f32>,
    /// Rotate about the vertical so frame 0 faces +z (default on).
    pub heading: bool,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        Self {
            fps: Some(30.0),
            vertical: true,
            body_size: Some(1.0),
            heading: true,
        }
    }
}

impl NormalizeConfig {
    /// Every step off: only the joint mapping and the unit conversion remain.
    pub fn none() -> Self {
        Self {
            fps: None,
            vertical: false,
            body_size: None,
            heading: false,
        }
    }

    /// Checks that `fps` and `body_size`, when given, are positive and finite; the error
    /// names the field.
    pub fn check(&self) -> Result<()> {
        for (field, v) in [("fps", self.fps), ("body_size", self.body_size)] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return Err(MotionError::InvalidArgument(format!(
                        "normalize.{field} must be positive and finite, got {v}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Everything that turns a raw clip of one source into a normalised canonical clip: the joint
/// table, the layout's vertical axis, the source frame rate (for clips that do not carry one)
/// and the normalisation steps. Saved with a detector (`haad_detect::InputSpec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canonicalizer {
    /// The joint table (layout, source joint count, sources, units).
    pub map: CanonicalMap,
    /// The source's vertical axis.
    pub up: Up,
    /// Frame rate of clips that carry none (e.g. `.npy` clips).
    pub source_fps: Option<f32>,
    /// The normalisation steps.
    pub normalize: NormalizeConfig,
}

impl Canonicalizer {
    /// The canonicalizer of `layout` for clips of `skeleton`.
    pub fn new(
        layout: Layout,
        skeleton: &Skeleton,
        source_fps: Option<f32>,
        normalize: NormalizeConfig,
    ) -> Result<Self> {
        normalize.check()?;
        let c = Self {
            map: CanonicalMap::resolve(layout, skeleton)?,
            up: layout.up(),
            source_fps,
            normalize,
        };
        c.check()?;
        Ok(c)
    }

    /// Checks the table and the settings (for canonicalizers read from disk).
    pub fn check(&self) -> Result<()> {
        self.map.check()?;
        self.normalize.check()?;
        if let Some(f) = self.source_fps {
            if !(f.is_finite() && f > 0.0) {
                return Err(MotionError::InvalidArgument(format!(
                    "source_fps must be positive and finite, got {f}"
                )));
            }
        }
        Ok(())
    }

    /// J_src: joints of the raw clips this takes.
    pub fn source_joints(&self) -> usize {
        self.map.source_joints
    }

    /// The normalised canonical clip `[T', 15, 3]` (module docs).
    pub fn apply(&self, motion: &Motion) -> Result<Motion> {
        let mut m = self.map.apply(motion)?;
        let cfg = &self.normalize;
        if cfg.vertical && self.up != Up::PosY {
            let mut d = m.data().clone();
            for mut p in d.rows_mut() {
                let [x, y, z] = self.up.to_y_up([p[0], p[1], p[2]]);
                p[0] = x;
                p[1] = y;
                p[2] = z;
            }
            m = Motion::new(d, m.fps())?;
        }
        if let Some(target) = cfg.fps {
            let fps = m.fps().or(self.source_fps).ok_or_else(|| {
                MotionError::InvalidArgument(
                    "the clip has no frame rate and the canonicalizer no source_fps: cannot resample"
                        .into(),
                )
            })?;
            m = preprocess::resample(&Motion::new(m.into_data(), Some(fps))?, target)?;
        }
        m = preprocess::root_relative(&m, PELVIS)?;
        if let Some(size) = cfg.body_size {
            let s = body_size(&m);
            if !(s.is_finite() && s > 1e-6) {
                return Err(MotionError::InvalidArgument(format!(
                    "the clip's body size is {s}: its joints coincide, it cannot be scaled"
                )));
            }
            let fps = m.fps();
            m = Motion::new(m.into_data() * (size / s), fps)?;
        }
        if cfg.heading {
            m = face_forward(&m)?;
        }
        Ok(m)
    }

    /// Every clip of `dataset` canonicalised, with the canonical skeleton; an error names the
    /// clip's source.
    pub fn apply_dataset(&self, dataset: &Dataset) -> Result<Dataset> {
        let clips = dataset
            .clips()
            .iter()
            .map(|c| {
                let motion = self.apply(&c.motion).map_err(|e| {
                    MotionError::InvalidArgument(format!("{}: {e}", c.source.display()))
                })?;
                Ok(Clip {
                    motion,
                    category: c.category,
                    source: c.source.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Dataset::new(
            canonical_skeleton(),
            dataset.categories().to_vec(),
            clips,
            dataset.skipped().to_vec(),
        )
    }
}

fn dist(m: &Motion, t: usize, a: usize, b: usize) -> f32 {
    let d = m.data();
    (0..3)
        .map(|c| (d[[t, a, c]] - d[[t, b, c]]).powi(2))
        .sum::<f32>()
        .sqrt()
}

/// S of a canonical clip: mean over frames of |neck - pelvis| plus the mean over both legs of
/// |knee - hip| + |ankle - knee|.
pub fn body_size(m: &Motion) -> f32 {
    let t = m.frames();
    let total: f32 = (0..t)
        .map(|f| {
            let left = dist(m, f, LEFT_KNEE, LEFT_HIP) + dist(m, f, LEFT_ANKLE, LEFT_KNEE);
            let right = dist(m, f, RIGHT_KNEE, RIGHT_HIP) + dist(m, f, RIGHT_ANKLE, RIGHT_KNEE);
            dist(m, f, NECK, PELVIS) + 0.5 * (left + right)
        })
        .sum();
    total / t as f32
}

/// The facing direction of a canonical +y-up pose at frame `t` on the ground plane, (x, z),
/// not normalised: `up x across`, `across` = (right hip - left hip) + (right shoulder - left
/// shoulder).
pub fn facing(m: &Motion, t: usize) -> (f32, f32) {
    let d = m.data();
    let across = |c: usize| {
        d[[t, RIGHT_HIP, c]] - d[[t, LEFT_HIP, c]] + d[[t, RIGHT_SHOULDER, c]]
            - d[[t, LEFT_SHOULDER, c]]
    };
    // (0, 1, 0) x (ax, ., az) = (az, 0, -ax).
    (across(2), -across(0))
}

/// Rotates a canonical clip about +y so that frame 0 faces +z ([`facing`]); a pose whose
/// facing is undefined (hips and shoulders vertical) is left as it is.
pub fn face_forward(m: &Motion) -> Result<Motion> {
    let (fx, fz) = facing(m, 0);
    if fx.hypot(fz) < 1e-9 {
        return Ok(m.clone());
    }
    let phi = fx.atan2(fz);
    let (s, c) = phi.sin_cos();
    let mut d = m.data().clone();
    for mut p in d.rows_mut() {
        let (x, z) = (p[0], p[2]);
        p[0] = x * c - z * s;
        p[2] = x * s + z * c;
    }
    Motion::new(d, m.fps())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{CANONICAL_JOINTS, HEAD};
    use ndarray::Array3;

    /// A T-pose-ish canonical body facing +z, y up, in metres, pelvis at (0, 1, 0): left is +x
    /// (the body's left when facing +z with y up in a right-handed frame).
    pub(crate) fn body() -> [[f32; 3]; 15] {
        let mut p = [[0.0f32; 3]; 15];
        p[PELVIS] = [0.0, 1.0, 0.0];
        p[NECK] = [0.0, 1.5, 0.0];
        p[HEAD] = [0.0, 1.7, 0.0];
        p[LEFT_SHOULDER] = [0.2, 1.45, 0.0];
        p[4] = [0.2, 1.2, 0.0];
        p[5] = [0.2, 1.0, 0.05];
        p[RIGHT_SHOULDER] = [-0.2, 1.45, 0.0];
        p[7] = [-0.2, 1.2, 0.0];
        p[8] = [-0.2, 1.0, 0.05];
        p[LEFT_HIP] = [0.1, 1.0, 0.0];
        p[LEFT_KNEE] = [0.1, 0.55, 0.0];
        p[LEFT_ANKLE] = [0.1, 0.1, 0.0];
        p[RIGHT_HIP] = [-0.1, 1.0, 0.0];
        p[RIGHT_KNEE] = [-0.1, 0.55, 0.0];
        p[RIGHT_ANKLE] = [-0.1, 0.1, 0.0];
        p
    }

    fn clip(frames: usize, fps: f32, f: impl Fn([f32; 3]) -> [f32; 3]) -> Motion {
        let b = body();
        let a = Array3::from_shape_fn((frames, 15, 3), |(t, j, c)| {
            let [x, y, z] = b[j];
            f([x, y, z + 0.1 * t as f32])[c]
        });
        Motion::new(a, Some(fps)).unwrap()
    }

    fn canon(cfg: NormalizeConfig) -> Canonicalizer {
        // The canonical body itself as a named BVH-like rig is not a layout; use the identity
        // table directly.
        Canonicalizer {
            map: CanonicalMap {
                layout: Layout::Bvh,
                source_joints: 15,
                sources: (0..15).map(|j| vec![j]).collect(),
                to_metres: 1.0,
            },
            up: Up::PosY,
            source_fps: None,
            normalize: cfg,
        }
    }

    #[test]
    fn check_names_the_field() {
        for (cfg, field) in [
            (
                NormalizeConfig {
                    fps: Some(0.0),
                    ..Default::default()
                },
                "fps",
            ),
            (
                NormalizeConfig {
                    body_size: Some(f32::NAN),
                    ..Default::default()
                },
                "body_size",
            ),
        ] {
            let e = cfg.check().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        assert!(NormalizeConfig::default().check().is_ok());
        let json = r#"{"fps": 30, "speed": 2}"#;
        assert!(serde_json::from_str::<NormalizeConfig>(json).is_err());
    }

    #[test]
    fn body_size_is_trunk_plus_leg() {
        let m = clip(3, 30.0, |p| p);
        // |neck - pelvis| = 0.5, each leg 0.45 + 0.45.
        assert!((body_size(&m) - 1.4).abs() < 1e-5);
    }

    #[test]
    fn scale_makes_metres_and_centimetres_meet() {
        let metres = clip(4, 30.0, |p| p);
        let cm = clip(4, 30.0, |p| p.map(|v| 100.0 * v));
        let only_scale = NormalizeConfig {
            fps: None,
            heading: false,
            ..Default::default()
        };
        let a = canon(only_scale.clone()).apply(&metres).unwrap();
        let b = canon(only_scale).apply(&cm).unwrap();
        assert!((body_size(&a) - 1.0).abs() < 1e-5);
        for (x, y) in a.data().iter().zip(b.data()) {
            assert!((x - y).abs() < 1e-4, "{x} {y}");
        }
        // Pelvis at the origin at frame 0.
        assert!(a.data()[[0, PELVIS, 1]].abs() < 1e-6);
    }

    #[test]
    fn heading_turns_any_facing_to_plus_z_and_keeps_left_left() {
        for deg in [0.0f32, 37.0, 90.0, 180.0, 250.0] {
            let (s, c) = deg.to_radians().sin_cos();
            // Rotate the body about +y by deg.
            let m = clip(2, 30.0, |[x, y, z]| [x * c + z * s, y, -x * s + z * c]);
            let cfg = NormalizeConfig {
                fps: None,
                body_size: None,
                ..Default::default()
            };
            let out = canon(cfg).apply(&m).unwrap();
            let (fx, fz) = facing(&out, 0);
            assert!(fx.abs() < 1e-5 && fz > 0.0, "{deg}: {fx} {fz}");
            // The left shoulder is back on +x, at the body's own offset from the pelvis.
            let d = out.data();
            assert!((d[[0, LEFT_SHOULDER, 0]] - 0.2).abs() < 1e-5, "{deg}");
            assert!((d[[0, LEFT_SHOULDER, 2]]).abs() < 1e-5, "{deg}");
        }
    }

    #[test]
    fn vertical_puts_a_z_up_source_upright() {
        // The body recorded with +z up: (x, y, z) -> (x, -z, y) is the inverse of PosZ's map.
        let m = clip(2, 30.0, |[x, y, z]| [x, -z, y]);
        let mut c = canon(NormalizeConfig {
            fps: None,
            body_size: None,
            heading: false,
            vertical: true,
        });
        c.up = Up::PosZ;
        let out = c.apply(&m).unwrap();
        let d = out.data();
        // Head above the pelvis by 0.7 m on +y.
        assert!((d[[0, HEAD, 1]] - d[[0, PELVIS, 1]] - 0.7).abs() < 1e-5);
        // Switched off, the head stays on +z.
        c.normalize.vertical = false;
        let off = c.apply(&m).unwrap();
        assert!((off.data()[[0, HEAD, 2]] - 0.7).abs() < 1e-5);
    }

    #[test]
    fn frame_rate_is_resampled_or_the_missing_rate_named() {
        let m = clip(31, 15.0, |p| p); // 2 s
        let out = canon(NormalizeConfig::default()).apply(&m).unwrap();
        assert_eq!(out.frames(), 61);
        assert_eq!(out.fps(), Some(30.0));
        let no_rate = Motion::new(m.data().clone(), None).unwrap();
        let err = canon(NormalizeConfig::default())
            .apply(&no_rate)
            .unwrap_err();
        assert!(err.to_string().contains("source_fps"), "{err}");
        let mut with = canon(NormalizeConfig::default());
        with.source_fps = Some(15.0);
        assert_eq!(with.apply(&no_rate).unwrap().frames(), 61);
        // All steps off: only the map (identity here) and the origin.
        let off = canon(NormalizeConfig::none()).apply(&m).unwrap();
        assert_eq!(off.frames(), 31);
        assert_eq!(off.joints(), CANONICAL_JOINTS.len());
    }
}
