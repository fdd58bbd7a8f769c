//! The canonical body: 15 joints every supported [`Layout`] provides, and the mapping of a
//! layout's joints onto it.
//!
//! | # | joint | parent | what it is in each layout |
//! |---|---|---|---|
//! | 0 | `pelvis` | - | mean of the two hip joints (every layout: so one definition for all) |
//! | 1 | `neck` | pelvis | base of the neck: MSR `shoulder_centre`, Kinect v1 `ShoulderCenter`, v2 `SpineShoulder`, SMPL `neck`, H3.6M `Thorax`, BVH `Neck` |
//! | 2 | `head` | neck | `head` / `Head` (rigs differ: BVH rigs put `Head` at the skull base, 6-7 cm above `Neck` in the Bandai rig; Kinect near the head's centre, about 20 cm up) |
//! | 3-5 | `left_shoulder`, `left_elbow`, `left_wrist` | neck, 3, 4 | the arm joints (BVH: `UpperArm_L`/`LeftArm`, not the clavicle) |
//! | 6-8 | `right_shoulder`, `right_elbow`, `right_wrist` | neck, 6, 7 | as left |
//! | 9-11 | `left_hip`, `left_knee`, `left_ankle` | pelvis, 9, 10 | leg joints (H3.6M's `LFoot` is the ankle) |
//! | 12-14 | `right_hip`, `right_knee`, `right_ankle` | pelvis, 12, 13 | as left |
//!
//! Left and right are the body's own. Hands, feet, toes, clavicles and the mid-spine are left
//! out: rigs place them differently (Kinect's `Spine` is mid-torso, SMPL has three spine joints,
//! BVH rigs one to three), and a joint defined differently per source teaches an encoder the
//! source instead of the motion. The root is the pelvis.
//!
//! [`CanonicalMap::resolve`] builds a layout's table for a given skeleton; a skeleton that
//! lacks joints is a [`MotionError::MissingJoints`] naming every canonical joint it cannot
//! provide. [`CanonicalMap::apply`] turns a clip into canonical joints, in metres.

use serde::{Deserialize, Serialize};

use crate::error::{MotionError, Result};
use crate::layout::{normalize_name, Layout};
use crate::motion::{Motion, Skeleton};
use ndarray::Array3;

/// The canonical joints, in order.
pub const CANONICAL_JOINTS: [&str; 15] = [
    "pelvis",
    "neck",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_hip",
    "right_knee",
    "right_ankle",
];

/// Parent of each canonical joint.
pub const CANONICAL_PARENTS: [Option<usize>; 15] = [
    None,
    Some(0),
    Some(1),
    Some(1),
    Some(3),
    Some(4),
    Some(1),
    Some(6),
    Some(7),
    Some(0),
    Some(9),
    Some(10),
    Some(0),
    Some(12),
    Some(13),
];

/// Index of the pelvis, the canonical root.
pub const PELVIS: usize = 0;
/// Index of the neck.
pub const NECK: usize = 1;
/// Index of the head.
pub const HEAD: usize = 2;
/// Index of the left shoulder.
pub const LEFT_SHOULDER: usize = 3;
/// Index of the right shoulder.
pub const RIGHT_SHOULDER: usize = 6;
/// Index of the left hip.
pub const LEFT_HIP: usize = 9;
/// Index of the left knee.
pub const LEFT_KNEE: usize = 10;
/// Index of the left ankle.
pub const LEFT_ANKLE: usize = 11;
/// Index of the right hip.
pub const RIGHT_HIP: usize = 12;
/// Index of the right knee.
pub const RIGHT_KNEE: usize = 13;
/// Index of the right ankle.
pub const RIGHT_ANKLE: usize = 14;

/// The canonical skeleton, rooted at the pelvis.
pub fn canonical_skeleton() -> Skeleton {
    Skeleton::new(
        CANONICAL_JOINTS.iter().map(|s| s.to_string()).collect(),
        CANONICAL_PARENTS.to_vec(),
        PELVIS,
    )
    .expect("the canonical skeleton is a tree")
}

/// A layout's joints mapped onto the canonical body for one source skeleton: for every
/// canonical joint, the source joints whose mean it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanonicalMap {
    /// The layout the table comes from.
    pub layout: Layout,
    /// J_src: joints of the source clips.
    pub source_joints: usize,
    /// For each canonical joint, the source joint indices averaged into it (non-empty, each
    /// `< source_joints`).
    pub sources: Vec<Vec<usize>>,
    /// Metres per source unit (the layout's units).
    pub to_metres: f32,
}

impl CanonicalMap {
    /// The table of `layout` for clips of `skeleton`.
    ///
    /// Fixed layouts (all but [`Layout::Bvh`]) need the layout's joint count and take joints by
    /// position (the skeleton's names are not consulted: loaders of `.npy` clips name joints
    /// `j0..`). [`Layout::Bvh`] matches the skeleton's names ([`normalize_name`]).
    pub fn resolve(layout: Layout, skeleton: &Skeleton) -> Result<Self> {
        let names: Vec<String> = match layout.joint_names() {
            Some(fixed) => {
                if fixed.len() != skeleton.joints() {
                    return Err(MotionError::Shape {
                        what: format!("a clip of the {layout} layout"),
                        expected: format!("{} joints", fixed.len()),
                        got: format!("{} joints", skeleton.joints()),
                    });
                }
                fixed.iter().map(|s| normalize_name(s)).collect()
            }
            None => skeleton.names().iter().map(|s| normalize_name(s)).collect(),
        };
        let mut sources = Vec::with_capacity(CANONICAL_JOINTS.len());
        let mut missing = Vec::new();
        for (c, alternatives) in layout.sources().iter().enumerate() {
            let found = alternatives.iter().find_map(|alt| {
                alt.iter()
                    .map(|n| names.iter().position(|m| *m == normalize_name(n)))
                    .collect::<Option<Vec<usize>>>()
            });
            match found {
                Some(idx) => sources.push(idx),
                None => {
                    let wanted: Vec<String> = alternatives.iter().map(|a| a.join("+")).collect();
                    missing.push(format!(
                        "{} (looked for {})",
                        CANONICAL_JOINTS[c],
                        wanted.join(" or ")
                    ));
                }
            }
        }
        if !missing.is_empty() {
            return Err(MotionError::MissingJoints {
                layout: layout.name().to_string(),
                missing,
                have: skeleton.names().to_vec(),
            });
        }
        Ok(Self {
            layout,
            source_joints: skeleton.joints(),
            sources,
            to_metres: layout.units().to_metres(),
        })
    }

    /// Checks the table's shape: 15 non-empty entries of indices below `source_joints`, and a
    /// positive finite unit (for tables read from disk).
    pub fn check(&self) -> Result<()> {
        if self.sources.len() != CANONICAL_JOINTS.len() {
            return Err(MotionError::InvalidArgument(format!(
                "canonical map: sources must have {} entries, got {}",
                CANONICAL_JOINTS.len(),
                self.sources.len()
            )));
        }
        for (c, s) in self.sources.iter().enumerate() {
            if s.is_empty() || s.iter().any(|&j| j >= self.source_joints) {
                return Err(MotionError::InvalidArgument(format!(
                    "canonical map: sources of {} must be 1 or more joints below {}, got {s:?}",
                    CANONICAL_JOINTS[c], self.source_joints
                )));
            }
        }
        if !(self.to_metres.is_finite() && self.to_metres > 0.0) {
            return Err(MotionError::InvalidArgument(format!(
                "canonical map: to_metres must be positive, got {}",
                self.to_metres
            )));
        }
        Ok(())
    }

    /// The clip as canonical joints `[T, 15, 3]`, in metres, axes unchanged.
    pub fn apply(&self, motion: &Motion) -> Result<Motion> {
        if motion.joints() != self.source_joints {
            return Err(MotionError::Shape {
                what: format!("a clip of the {} layout", self.layout),
                expected: format!("{} joints", self.source_joints),
                got: format!("{} joints", motion.joints()),
            });
        }
        let src = motion.data();
        let t = motion.frames();
        let mut out = Array3::zeros((t, self.sources.len(), 3));
        for (c, s) in self.sources.iter().enumerate() {
            let w = self.to_metres / s.len() as f32;
            for f in 0..t {
                for &j in s {
                    for a in 0..3 {
                        out[[f, c, a]] += w * src[[f, j, a]];
                    }
                }
            }
        }
        Motion::new(out, motion.fps())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn canonical_skeleton_is_a_tree_rooted_at_the_pelvis() {
        let s = canonical_skeleton();
        assert_eq!(s.joints(), 15);
        assert_eq!(s.names()[s.root()], "pelvis");
        assert_eq!(s.breadth_first().len(), 15);
    }

    #[test]
    fn every_fixed_layout_maps_with_one_hip_pair_for_the_pelvis() {
        for l in Layout::ALL {
            let Some(n) = l.joint_names() else { continue };
            let sk = Skeleton::new(names(n), l.parents().unwrap().to_vec(), 0).unwrap();
            let map = CanonicalMap::resolve(l, &sk).unwrap();
            map.check().unwrap();
            assert_eq!(map.sources[PELVIS].len(), 2, "{l}");
            assert_eq!(
                map.sources[PELVIS],
                vec![map.sources[LEFT_HIP][0], map.sources[RIGHT_HIP][0]],
                "{l}"
            );
            // Every other canonical joint is one distinct source joint.
            let mut singles: Vec<usize> = map.sources[1..].iter().map(|s| s[0]).collect();
            singles.sort();
            singles.dedup();
            assert_eq!(singles.len(), 14, "{l}");
        }
    }

    #[test]
    fn bvh_rigs_match_by_name() {
        // The common CMU / Mixamo naming, with Mixamo's prefix.
        let mixamo = names(&[
            "mixamorig:Hips",
            "mixamorig:Spine",
            "mixamorig:Neck",
            "mixamorig:Head",
            "mixamorig:LeftShoulder",
            "mixamorig:LeftArm",
            "mixamorig:LeftForeArm",
            "mixamorig:LeftHand",
            "mixamorig:RightShoulder",
            "mixamorig:RightArm",
            "mixamorig:RightForeArm",
            "mixamorig:RightHand",
            "mixamorig:LeftUpLeg",
            "mixamorig:LeftLeg",
            "mixamorig:LeftFoot",
            "mixamorig:RightUpLeg",
            "mixamorig:RightLeg",
            "mixamorig:RightFoot",
        ]);
        let sk = Skeleton::new(mixamo.clone(), vec![None; mixamo.len()], 0).unwrap();
        let map = CanonicalMap::resolve(Layout::Bvh, &sk).unwrap();
        assert_eq!(map.sources[PELVIS], vec![12, 15]);
        assert_eq!(map.sources[LEFT_SHOULDER], vec![5]); // LeftArm, not the clavicle
        assert_eq!(map.sources[LEFT_KNEE], vec![13]);
        assert_eq!(map.sources[RIGHT_ANKLE], vec![17]);
        assert_eq!(map.to_metres, 0.01);
    }

    #[test]
    fn missing_joints_are_all_listed() {
        let sk = Skeleton::new(
            names(&["Hips", "Neck", "Head", "LeftArm"]),
            vec![None, Some(0), Some(1), Some(1)],
            0,
        )
        .unwrap();
        let err = CanonicalMap::resolve(Layout::Bvh, &sk).unwrap_err();
        let MotionError::MissingJoints { missing, have, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(missing.len(), 12, "{missing:?}");
        assert!(missing[0].starts_with("pelvis"));
        assert!(!missing.iter().any(|m| m.starts_with("left_shoulder")));
        assert_eq!(have.len(), 4);
        let msg = err.to_string();
        assert!(
            msg.contains("right_ankle") && msg.contains("LeftArm"),
            "{msg}"
        );
        // A fixed layout needs its joint count.
        let two = Skeleton::new(names(&["a", "b"]), vec![None, Some(0)], 0).unwrap();
        assert!(matches!(
            CanonicalMap::resolve(Layout::KinectV2, &two),
            Err(MotionError::Shape { .. })
        ));
    }

    #[test]
    fn apply_averages_sources_and_converts_units() {
        let sk = Skeleton::new(
            names(crate::layout::Layout::H36m.joint_names().unwrap()),
            Layout::H36m.parents().unwrap().to_vec(),
            0,
        )
        .unwrap();
        let map = CanonicalMap::resolve(Layout::H36m, &sk).unwrap();
        // Joint j at frame t sits at (1000 j, 1000 t, 0) millimetres.
        let a = Array3::from_shape_fn((2, 17, 3), |(t, j, c)| match c {
            0 => 1000.0 * j as f32,
            1 => 1000.0 * t as f32,
            _ => 0.0,
        });
        let out = map.apply(&Motion::new(a, Some(50.0)).unwrap()).unwrap();
        assert_eq!(out.joints(), 15);
        assert_eq!(out.fps(), Some(50.0));
        // Pelvis = mean of LHip (4) and RHip (1) = 2.5 m; left ankle = LFoot (6) = 6 m.
        assert!((out.data()[[1, PELVIS, 0]] - 2.5).abs() < 1e-6);
        assert!((out.data()[[1, PELVIS, 1]] - 1.0).abs() < 1e-6);
        assert!((out.data()[[0, LEFT_ANKLE, 0]] - 6.0).abs() < 1e-6);
        let bad = Motion::new(Array3::zeros((2, 16, 3)), None).unwrap();
        assert!(map.apply(&bad).is_err());
    }
}
