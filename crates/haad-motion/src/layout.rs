//! Named joint layouts: the joint order, parents, vertical axis and units of the skeleton
//! formats haad knows, and how each maps onto the [canonical body](crate::canonical).
//!
//! | [`Layout`] | joints | vertical | units | source of the order |
//! |---|---|---|---|---|
//! | `msr` | 20 | +y | metres | MSR Action3D's files (`io::msr::MSR_JOINT_NAMES`) |
//! | `kinect-v1` | 20 | +y | metres | Kinect for Windows SDK 1.x `NUI_SKELETON_POSITION_INDEX` |
//! | `kinect-v2` | 25 | +y | metres | Kinect for Windows SDK 2.0 `JointType` (NTU RGB+D) |
//! | `smpl` | 24 | +y | metres | SMPL body joints (HumanAct12, AMASS, ...) |
//! | `h36m` | 17 | +z | millimetres | Human3.6M 17-joint subset (VideoPose3D order), world frame |
//! | `bvh` | any | +y | centimetres | joints matched by name (Bandai-Namco rig, `Hips`/`LeftUpLeg`/`LeftArm` rigs) |
//!
//! Units matter only when body-size scaling is off ([`crate::normalize`]): with it on, metres,
//! centimetres and millimetres all meet at one body size.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{MotionError, Result};
// SMPL's tables are the HumanAct12 loader's (one copy).
use crate::io::humanact12::{SMPL_JOINT_NAMES as SMPL, SMPL_PARENTS};

/// A named joint layout (closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// MSR Action3D's own 20-joint order (not the Kinect SDK's).
    Msr,
    /// Kinect v1 SDK order, 20 joints (many Kinect v1 datasets).
    KinectV1,
    /// Kinect v2 SDK order, 25 joints (NTU RGB+D).
    KinectV2,
    /// SMPL's 24 body joints (HumanAct12).
    Smpl,
    /// Human3.6M's 17-joint subset.
    H36m,
    /// A BVH (or any named) rig, matched by joint name: the Bandai-Namco rig (`Hips`,
    /// `UpperArm_L`, `LowerLeg_R`, ...) and the common `Hips`/`LeftUpLeg`/`LeftArm` naming
    /// (CMU, Mixamo with or without the `mixamorig:` prefix, ...).
    Bvh,
}

/// Which direction of the data is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Up {
    /// +x is up.
    PosX,
    /// -x is up.
    NegX,
    /// +y is up (Kinect, SMPL, BVH).
    PosY,
    /// -y is up (image-style camera frames).
    NegY,
    /// +z is up (Human3.6M world frame, many motion-capture systems).
    PosZ,
    /// -z is up.
    NegZ,
}

impl Up {
    /// A proper rotation (determinant +1) taking this axis to +y, applied to one point.
    pub fn to_y_up(self, [x, y, z]: [f32; 3]) -> [f32; 3] {
        match self {
            Up::PosY => [x, y, z],
            Up::NegY => [x, -y, -z],
            Up::PosZ => [x, z, -y],
            Up::NegZ => [x, -z, y],
            Up::PosX => [-y, x, z],
            Up::NegX => [y, -x, z],
        }
    }
}

/// Length unit of a layout's coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Units {
    /// Metres.
    Metres,
    /// Centimetres.
    Centimetres,
    /// Millimetres.
    Millimetres,
}

impl Units {
    /// Metres per unit.
    pub fn to_metres(self) -> f32 {
        match self {
            Units::Metres => 1.0,
            Units::Centimetres => 0.01,
            Units::Millimetres => 0.001,
        }
    }
}

/// How one canonical joint is found in a layout: the first alternative whose joints all exist
/// wins, and the canonical joint is the mean of its joints.
pub(crate) type Sources = &'static [&'static [&'static str]];

const KINECT_V1: [&str; 20] = [
    "HipCenter",
    "Spine",
    "ShoulderCenter",
    "Head",
    "ShoulderLeft",
    "ElbowLeft",
    "WristLeft",
    "HandLeft",
    "ShoulderRight",
    "ElbowRight",
    "WristRight",
    "HandRight",
    "HipLeft",
    "KneeLeft",
    "AnkleLeft",
    "FootLeft",
    "HipRight",
    "KneeRight",
    "AnkleRight",
    "FootRight",
];
const KINECT_V1_PARENTS: [Option<usize>; 20] = [
    None,
    Some(0),
    Some(1),
    Some(2),
    Some(2),
    Some(4),
    Some(5),
    Some(6),
    Some(2),
    Some(8),
    Some(9),
    Some(10),
    Some(0),
    Some(12),
    Some(13),
    Some(14),
    Some(0),
    Some(16),
    Some(17),
    Some(18),
];

const KINECT_V2: [&str; 25] = [
    "SpineBase",
    "SpineMid",
    "Neck",
    "Head",
    "ShoulderLeft",
    "ElbowLeft",
    "WristLeft",
    "HandLeft",
    "ShoulderRight",
    "ElbowRight",
    "WristRight",
    "HandRight",
    "HipLeft",
    "KneeLeft",
    "AnkleLeft",
    "FootLeft",
    "HipRight",
    "KneeRight",
    "AnkleRight",
    "FootRight",
    "SpineShoulder",
    "HandTipLeft",
    "ThumbLeft",
    "HandTipRight",
    "ThumbRight",
];
const KINECT_V2_PARENTS: [Option<usize>; 25] = [
    None,
    Some(0),
    Some(20),
    Some(2),
    Some(20),
    Some(4),
    Some(5),
    Some(6),
    Some(20),
    Some(8),
    Some(9),
    Some(10),
    Some(0),
    Some(12),
    Some(13),
    Some(14),
    Some(0),
    Some(16),
    Some(17),
    Some(18),
    Some(1),
    Some(7),
    Some(7),
    Some(11),
    Some(11),
];

const H36M: [&str; 17] = [
    "Hip",
    "RHip",
    "RKnee",
    "RFoot",
    "LHip",
    "LKnee",
    "LFoot",
    "Spine",
    "Thorax",
    "Neck/Nose",
    "Head",
    "LShoulder",
    "LElbow",
    "LWrist",
    "RShoulder",
    "RElbow",
    "RWrist",
];
const H36M_PARENTS: [Option<usize>; 17] = [
    None,
    Some(0),
    Some(1),
    Some(2),
    Some(0),
    Some(4),
    Some(5),
    Some(0),
    Some(7),
    Some(8),
    Some(9),
    Some(8),
    Some(11),
    Some(12),
    Some(8),
    Some(14),
    Some(15),
];

impl Layout {
    /// Every layout, in the order of the enum.
    pub const ALL: [Layout; 6] = [
        Layout::Msr,
        Layout::KinectV1,
        Layout::KinectV2,
        Layout::Smpl,
        Layout::H36m,
        Layout::Bvh,
    ];

    /// The name used on command lines and in `skeleton.json` (`msr`, `kinect-v1`,
    /// `kinect-v2`, `smpl`, `h36m`, `bvh`).
    pub fn name(self) -> &'static str {
        match self {
            Layout::Msr => "msr",
            Layout::KinectV1 => "kinect-v1",
            Layout::KinectV2 => "kinect-v2",
            Layout::Smpl => "smpl",
            Layout::H36m => "h36m",
            Layout::Bvh => "bvh",
        }
    }

    /// The joint names in the layout's order, or `None` for [`Layout::Bvh`] (names come from
    /// the file).
    pub fn joint_names(self) -> Option<&'static [&'static str]> {
        match self {
            Layout::Msr => Some(&crate::io::msr::MSR_JOINT_NAMES),
            Layout::KinectV1 => Some(&KINECT_V1),
            Layout::KinectV2 => Some(&KINECT_V2),
            Layout::Smpl => Some(&SMPL),
            Layout::H36m => Some(&H36M),
            Layout::Bvh => None,
        }
    }

    /// The parent of each joint, in the layout's order, or `None` for [`Layout::Bvh`].
    pub fn parents(self) -> Option<&'static [Option<usize>]> {
        match self {
            Layout::Msr => Some(&crate::io::msr::MSR_PARENTS),
            Layout::KinectV1 => Some(&KINECT_V1_PARENTS),
            Layout::KinectV2 => Some(&KINECT_V2_PARENTS),
            Layout::Smpl => Some(&SMPL_PARENTS),
            Layout::H36m => Some(&H36M_PARENTS),
            Layout::Bvh => None,
        }
    }

    /// The layout's vertical axis.
    pub fn up(self) -> Up {
        match self {
            Layout::H36m => Up::PosZ,
            _ => Up::PosY,
        }
    }

    /// The layout's length unit (BVH: centimetres, the most common BVH unit and the
    /// Bandai-Namco rig's; body-size scaling makes it irrelevant).
    pub fn units(self) -> Units {
        match self {
            Layout::H36m => Units::Millimetres,
            Layout::Bvh => Units::Centimetres,
            _ => Units::Metres,
        }
    }

    /// For each canonical joint ([`crate::canonical::CANONICAL_JOINTS`] order), the source
    /// joints by name: alternatives, the first complete one wins, its joints are averaged.
    pub(crate) fn sources(self) -> [Sources; 15] {
        match self {
            Layout::Msr => [
                &[&["left_hip", "right_hip"]],
                &[&["shoulder_centre"]],
                &[&["head"]],
                &[&["left_shoulder"]],
                &[&["left_elbow"]],
                &[&["left_wrist"]],
                &[&["right_shoulder"]],
                &[&["right_elbow"]],
                &[&["right_wrist"]],
                &[&["left_hip"]],
                &[&["left_knee"]],
                &[&["left_ankle"]],
                &[&["right_hip"]],
                &[&["right_knee"]],
                &[&["right_ankle"]],
            ],
            Layout::KinectV1 | Layout::KinectV2 => [
                &[&["HipLeft", "HipRight"]],
                // v1's ShoulderCenter and v2's SpineShoulder are both the base of the neck.
                &[&["ShoulderCenter"], &["SpineShoulder"]],
                &[&["Head"]],
                &[&["ShoulderLeft"]],
                &[&["ElbowLeft"]],
                &[&["WristLeft"]],
                &[&["ShoulderRight"]],
                &[&["ElbowRight"]],
                &[&["WristRight"]],
                &[&["HipLeft"]],
                &[&["KneeLeft"]],
                &[&["AnkleLeft"]],
                &[&["HipRight"]],
                &[&["KneeRight"]],
                &[&["AnkleRight"]],
            ],
            Layout::Smpl => [
                &[&["left_hip", "right_hip"]],
                &[&["neck"]],
                &[&["head"]],
                &[&["left_shoulder"]],
                &[&["left_elbow"]],
                &[&["left_wrist"]],
                &[&["right_shoulder"]],
                &[&["right_elbow"]],
                &[&["right_wrist"]],
                &[&["left_hip"]],
                &[&["left_knee"]],
                &[&["left_ankle"]],
                &[&["right_hip"]],
                &[&["right_knee"]],
                &[&["right_ankle"]],
            ],
            Layout::H36m => [
                &[&["LHip", "RHip"]],
                &[&["Thorax"]],
                &[&["Head"]],
                &[&["LShoulder"]],
                &[&["LElbow"]],
                &[&["LWrist"]],
                &[&["RShoulder"]],
                &[&["RElbow"]],
                &[&["RWrist"]],
                &[&["LHip"]],
                &[&["LKnee"]],
                &[&["LFoot"]],
                &[&["RHip"]],
                &[&["RKnee"]],
                &[&["RFoot"]],
            ],
            // Names are compared after `normalize_name` (lower case, no separators, no
            // `prefix:`). Bandai: `UpperLeg_L`; CMU/Mixamo: `LeftUpLeg`; others `LeftThigh`...
            // The clavicle (`Shoulder_L`, `LeftShoulder` in CMU/Mixamo) is not the shoulder
            // joint: the arm's first bone is.
            Layout::Bvh => [
                &[
                    &["UpperLeg_L", "UpperLeg_R"],
                    &["LeftUpLeg", "RightUpLeg"],
                    &["LeftUpperLeg", "RightUpperLeg"],
                    &["LeftThigh", "RightThigh"],
                    &["LeftHip", "RightHip"],
                    &["Thigh_L", "Thigh_R"],
                ],
                &[&["Neck"], &["Neck1"], &["LowerNeck"]],
                &[&["Head"]],
                &[
                    &["UpperArm_L"],
                    &["LeftArm"],
                    &["LeftUpperArm"],
                    &["LeftUpArm"],
                    &["L_UpperArm"],
                ],
                &[
                    &["LowerArm_L"],
                    &["LeftForeArm"],
                    &["LeftLowerArm"],
                    &["LeftElbow"],
                    &["L_ForeArm"],
                ],
                &[&["Hand_L"], &["LeftHand"], &["LeftWrist"], &["L_Hand"]],
                &[
                    &["UpperArm_R"],
                    &["RightArm"],
                    &["RightUpperArm"],
                    &["RightUpArm"],
                    &["R_UpperArm"],
                ],
                &[
                    &["LowerArm_R"],
                    &["RightForeArm"],
                    &["RightLowerArm"],
                    &["RightElbow"],
                    &["R_ForeArm"],
                ],
                &[&["Hand_R"], &["RightHand"], &["RightWrist"], &["R_Hand"]],
                &[
                    &["UpperLeg_L"],
                    &["LeftUpLeg"],
                    &["LeftUpperLeg"],
                    &["LeftThigh"],
                    &["LeftHip"],
                    &["Thigh_L"],
                ],
                &[
                    &["LowerLeg_L"],
                    &["LeftLeg"],
                    &["LeftLowerLeg"],
                    &["LeftShin"],
                    &["LeftKnee"],
                    &["Calf_L"],
                ],
                &[&["Foot_L"], &["LeftFoot"], &["LeftAnkle"]],
                &[
                    &["UpperLeg_R"],
                    &["RightUpLeg"],
                    &["RightUpperLeg"],
                    &["RightThigh"],
                    &["RightHip"],
                    &["Thigh_R"],
                ],
                &[
                    &["LowerLeg_R"],
                    &["RightLeg"],
                    &["RightLowerLeg"],
                    &["RightShin"],
                    &["RightKnee"],
                    &["Calf_R"],
                ],
                &[&["Foot_R"], &["RightFoot"], &["RightAnkle"]],
            ],
        }
    }
}

/// A joint name as the BVH matching compares it: the part after the last `:` (Mixamo's
/// `mixamorig:`), lower case, without `_`, `-`, `.` and spaces.
pub fn normalize_name(name: &str) -> String {
    let tail = name.rsplit(':').next().unwrap_or(name);
    tail.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layout {
    type Err = MotionError;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase().replace('_', "-");
        Layout::ALL
            .into_iter()
            .find(|l| l.name() == lower)
            .ok_or_else(|| {
                let known: Vec<_> = Layout::ALL.iter().map(|l| l.name()).collect();
                MotionError::InvalidArgument(format!(
                    "unknown layout {s:?}; expected one of {}",
                    known.join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motion::Skeleton;

    #[test]
    fn names_round_trip_and_unknown_is_listed() {
        for l in Layout::ALL {
            assert_eq!(l.name().parse::<Layout>().unwrap(), l);
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(json, format!("\"{}\"", l.name()));
        }
        let err = "openpose".parse::<Layout>().unwrap_err().to_string();
        assert!(
            err.contains("openpose") && err.contains("kinect-v2"),
            "{err}"
        );
    }

    #[test]
    fn fixed_layouts_are_trees_with_one_name_per_joint() {
        for l in Layout::ALL {
            let (Some(names), Some(parents)) = (l.joint_names(), l.parents()) else {
                assert_eq!(l, Layout::Bvh);
                continue;
            };
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            let s = Skeleton::new(names, parents.to_vec(), 0).unwrap();
            assert_eq!(s.breadth_first().len(), s.joints(), "{l}");
            // Exactly one tree root.
            assert_eq!(parents.iter().filter(|p| p.is_none()).count(), 1, "{l}");
        }
    }

    #[test]
    fn up_rotations_are_proper_and_take_the_axis_to_y() {
        let axes = [
            (Up::PosX, [1.0, 0.0, 0.0]),
            (Up::NegX, [-1.0, 0.0, 0.0]),
            (Up::PosY, [0.0, 1.0, 0.0]),
            (Up::NegY, [0.0, -1.0, 0.0]),
            (Up::PosZ, [0.0, 0.0, 1.0]),
            (Up::NegZ, [0.0, 0.0, -1.0]),
        ];
        for (up, v) in axes {
            assert_eq!(up.to_y_up(v), [0.0, 1.0, 0.0], "{up:?}");
            // Determinant of the matrix whose columns are the images of the unit vectors.
            let c: Vec<[f32; 3]> = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
                .iter()
                .map(|&e| up.to_y_up(e))
                .collect();
            let det = c[0][0] * (c[1][1] * c[2][2] - c[2][1] * c[1][2])
                - c[1][0] * (c[0][1] * c[2][2] - c[2][1] * c[0][2])
                + c[2][0] * (c[0][1] * c[1][2] - c[1][1] * c[0][2]);
            assert_eq!(det, 1.0, "{up:?}");
        }
    }

    #[test]
    fn bvh_names_compare_without_case_separators_or_prefix() {
        assert_eq!(normalize_name("mixamorig:LeftUpLeg"), "leftupleg");
        assert_eq!(normalize_name("UpperArm_L"), "upperarml");
        assert_eq!(normalize_name("Left Fore-Arm"), "leftforearm");
        assert_eq!(Units::Millimetres.to_metres(), 0.001);
    }
}
