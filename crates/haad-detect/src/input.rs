//! [`InputSpec`]: what a detector accepts (joint count, minimum length) and how it prepares a raw
//! clip before embedding it (the method's preprocessing: first `T` frames, padded by repeating
//! the last frame, minus the root joint's frame-0 position).

use haad_motion::{preprocess, Motion, Skeleton};
use serde::{Deserialize, Serialize};

use crate::error::{DetectError, Result};

/// The raw clips a detector accepts and its preprocessing.
///
/// The clip length `T` comes from the embedder ([`crate::Embedding::frames`]); this holds the
/// rest.
///
/// **Short clips.** The method pads a clip shorter than `T` by repeating its last frame, so any
/// clip of at least one frame can be scored. `min_frames` (default 1, i.e. accept whatever the
/// method accepts) lets a service refuse clips too short to say anything, e.g. `min_frames = 30`
/// for half of the 60-frame window; shorter clips then give [`DetectError::TooFewFrames`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// J: joints of every clip.
    pub joints: usize,
    /// The joint whose frame-0 position is subtracted (the dataset's `Skeleton::root()`).
    pub root: usize,
    /// The fewest frames a raw clip may have (>= 1).
    pub min_frames: usize,
}

impl InputSpec {
    /// Clips of `skeleton`: its joint count and root, `min_frames = 1`.
    pub fn for_skeleton(skeleton: &Skeleton) -> Self {
        Self {
            joints: skeleton.joints(),
            root: skeleton.root(),
            min_frames: 1,
        }
    }

    /// The same spec with another minimum length.
    pub fn with_min_frames(mut self, min_frames: usize) -> Self {
        self.min_frames = min_frames;
        self
    }

    /// Checks `joints >= 1`, `root < joints` and `min_frames >= 1` (errors name the field) and
    /// returns the spec.
    pub fn check(&self) -> Result<InputSpec> {
        if self.joints == 0 {
            return Err(DetectError::Config {
                field: "joints",
                rule: "must be at least 1, is 0".into(),
            });
        }
        haad_motion::limits::check("joints", self.joints, haad_motion::limits::MAX_JOINTS)
            .map_err(|rule| DetectError::Config {
                field: "joints",
                rule,
            })?;
        if self.root >= self.joints {
            return Err(DetectError::Config {
                field: "root",
                rule: format!("must be below joints = {}, is {}", self.joints, self.root),
            });
        }
        if self.min_frames == 0 {
            return Err(DetectError::Config {
                field: "min_frames",
                rule: "must be at least 1, is 0".into(),
            });
        }
        Ok(self.clone())
    }

    /// Checks a raw clip: joint count, length, and that every coordinate is finite.
    pub fn check_clip(&self, clip: &Motion) -> Result<()> {
        if clip.joints() != self.joints {
            return Err(DetectError::WrongJoints {
                expected: self.joints,
                got: clip.joints(),
            });
        }
        if clip.frames() < self.min_frames {
            return Err(DetectError::TooFewFrames {
                min: self.min_frames,
                got: clip.frames(),
            });
        }
        if let Some(((frame, joint, axis), &value)) =
            clip.data().indexed_iter().find(|(_, v)| !v.is_finite())
        {
            return Err(DetectError::NonFinite {
                value,
                frame,
                joint,
                axis,
            });
        }
        Ok(())
    }

    /// Checks a raw clip and prepares it: first `frames` frames (padded), root-relative.
    pub fn prepare(&self, clip: &Motion, frames: usize) -> Result<Motion> {
        self.check_clip(clip)?;
        Ok(preprocess::prepare(clip, frames, self.root)?)
    }

    /// [`InputSpec::prepare`] for every clip; an error names the clip's index.
    pub fn prepare_all(&self, clips: &[Motion], frames: usize) -> Result<Vec<Motion>> {
        clips
            .iter()
            .enumerate()
            .map(|(i, c)| self.prepare(c, frames).map_err(|e| e.at_clip(i, None)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn spec() -> InputSpec {
        InputSpec {
            joints: 3,
            root: 1,
            min_frames: 4,
        }
    }

    #[test]
    fn check_rejects_each_bad_field() {
        assert!(spec().check().is_ok());
        let bad = [
            InputSpec {
                joints: 0,
                ..spec()
            },
            InputSpec { root: 3, ..spec() },
            InputSpec {
                min_frames: 0,
                ..spec()
            },
        ];
        for b in bad {
            assert!(
                matches!(b.check(), Err(DetectError::Config { .. })),
                "{b:?}"
            );
        }
    }

    #[test]
    fn clip_checks_name_the_problem() {
        let ok = Motion::new(Array3::zeros((4, 3, 3)), None).unwrap();
        assert!(spec().check_clip(&ok).is_ok());
        let joints = Motion::new(Array3::zeros((4, 2, 3)), None).unwrap();
        assert!(matches!(
            spec().check_clip(&joints),
            Err(DetectError::WrongJoints {
                expected: 3,
                got: 2
            })
        ));
        let short = Motion::new(Array3::zeros((3, 3, 3)), None).unwrap();
        assert!(matches!(
            spec().check_clip(&short),
            Err(DetectError::TooFewFrames { min: 4, got: 3 })
        ));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut a = Array3::zeros((5, 3, 3));
            a[[4, 2, 1]] = bad;
            let m = Motion::new(a, None).unwrap();
            let err = spec().check_clip(&m).unwrap_err();
            assert!(
                matches!(
                    err,
                    DetectError::NonFinite {
                        frame: 4,
                        joint: 2,
                        axis: 1,
                        ..
                    }
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn prepare_pads_and_subtracts_root() {
        // 2 frames; joint 1 at frame 0 is (1, 2, 3).
        let a = Array3::from_shape_fn((2, 3, 3), |(t, j, c)| (10 * t + j + c) as f32);
        let m = Motion::new(a, None).unwrap();
        let s = InputSpec {
            min_frames: 1,
            ..spec()
        };
        let p = s.prepare(&m, 4).unwrap();
        assert_eq!(p.frames(), 4);
        assert_eq!(p.data()[[0, 1, 0]], 0.0);
        // frame 3 repeats frame 1: joint 2, axis 2 = 10 + 2 + 2 minus root (1 + 2 = 3).
        assert_eq!(p.data()[[3, 2, 2]], 14.0 - 3.0);
        let err = s
            .prepare_all(
                &[
                    m.clone(),
                    Motion::new(Array3::zeros((2, 2, 3)), None).unwrap(),
                ],
                4,
            )
            .unwrap_err();
        assert!(err.to_string().starts_with("clip 1"), "{err}");
    }
}
