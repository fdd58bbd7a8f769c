//! HumanAct12 as Action2Motion distributes it: one `.npy` per clip, `[T, 24, 3]` SMPL joint
//! positions, named like `P01G01R01F0069T0143A0102.npy`.
//!
//! The name ends in an `A` code of four digits whose first two give the action (01..12,
//! [`HUMANACT12_ACTIONS`]); the last two are the sub-action, not used here. Joints follow the
//! SMPL order with the pelvis as root. The frame rate is not stored with the files, so clips
//! carry none.

use std::path::Path;

use crate::dataset::{Clip, Dataset, Skipped};
use crate::error::Result;
use crate::io::{
    file_name, has_extension, npy::read_npy_positions, sorted_entries, unusable_reason,
};
use crate::motion::{Motion, Skeleton};
use crate::MotionError;

/// Category names, in action-code order (`A01` is `HUMANACT12_ACTIONS[0]`).
pub const HUMANACT12_ACTIONS: [&str; 12] = [
    "warm_up",
    "walk",
    "run",
    "jump",
    "drink",
    "lift_dumbbell",
    "sit",
    "eat",
    "turn_steering_wheel",
    "phone",
    "boxing",
    "throw",
];

/// The 24 SMPL joint names.
pub const SMPL_JOINT_NAMES: [&str; 24] = [
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
];

/// SMPL parents (the Action2Motion kinematic chains 0-1-4-7-10, 0-2-5-8-11, 0-3-6-9-12-15,
/// 9-13-16-18-20-22, 9-14-17-19-21-23).
pub const SMPL_PARENTS: [Option<usize>; 24] = [
    None,
    Some(0),
    Some(0),
    Some(0),
    Some(1),
    Some(2),
    Some(3),
    Some(4),
    Some(5),
    Some(6),
    Some(7),
    Some(8),
    Some(9),
    Some(9),
    Some(9),
    Some(12),
    Some(13),
    Some(14),
    Some(16),
    Some(17),
    Some(18),
    Some(19),
    Some(20),
    Some(21),
];

/// The SMPL 24-joint skeleton rooted at the pelvis.
pub fn smpl_skeleton() -> Skeleton {
    Skeleton::new(
        SMPL_JOINT_NAMES.iter().map(|s| s.to_string()).collect(),
        SMPL_PARENTS.to_vec(),
        0,
    )
    .expect("the SMPL parent table is a valid tree")
}

/// The action number (1-based, not range-checked) from a file name whose stem ends in an
/// `A` code of four digits (`...A0102.npy` gives 1).
pub fn parse_action_code(name: &str) -> Option<usize> {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let code = stem.get(stem.len().checked_sub(5)?..)?;
    let digits = code.strip_prefix('A')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits[..2].parse().ok()
}

/// Loads every `.npy` of a folder (not recursive), sorted by path. Files whose name has no
/// valid `A` code and unusable clips are listed in [`Dataset::skipped`]; a file that is not a
/// `[T, 24, 3]` array is an error naming it.
pub fn load_humanact12(dir: &Path) -> Result<Dataset> {
    let mut clips = Vec::new();
    let mut skipped = Vec::new();
    for path in sorted_entries(dir)? {
        if !path.is_file() || !has_extension(&path, "npy") {
            continue;
        }
        let action = match parse_action_code(&file_name(&path)) {
            Some(a) if (1..=HUMANACT12_ACTIONS.len()).contains(&a) => a,
            Some(a) => {
                skipped.push(Skipped {
                    path,
                    reason: format!("action code A{a:02} is outside A01..A12"),
                });
                continue;
            }
            None => {
                skipped.push(Skipped {
                    path,
                    reason: "name does not end in an A code like A0102".into(),
                });
                continue;
            }
        };
        let data = read_npy_positions(&path)?;
        if data.dim().1 != SMPL_JOINT_NAMES.len() {
            return Err(MotionError::Shape {
                what: path.display().to_string(),
                expected: "[frames, 24, 3] (SMPL joints)".into(),
                got: format!("{:?}", data.shape()),
            });
        }
        if data.dim().0 == 0 {
            skipped.push(Skipped {
                path,
                reason: "no frames".into(),
            });
            continue;
        }
        let motion = Motion::new(data, None)?;
        if let Some(reason) = unusable_reason(&motion) {
            skipped.push(Skipped { path, reason });
            continue;
        }
        clips.push(Clip {
            motion,
            category: action - 1,
            source: path,
        });
    }
    Dataset::new(
        smpl_skeleton(),
        HUMANACT12_ACTIONS.iter().map(|s| s.to_string()).collect(),
        clips,
        skipped,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_codes_parse() {
        assert_eq!(parse_action_code("P01G01R01F0069T0143A0102.npy"), Some(1));
        assert_eq!(parse_action_code("P11G01R02F1813T1848A1203.npy"), Some(12));
        assert_eq!(parse_action_code("P01G01R01F0069T0143.npy"), None);
        assert_eq!(parse_action_code("A01.npy"), None);
        assert_eq!(parse_action_code("xA0x02.npy"), None);
    }

    #[test]
    fn smpl_tree_is_rooted_at_pelvis() {
        let s = smpl_skeleton();
        assert_eq!(s.names()[s.root()], "pelvis");
        assert_eq!(s.bones().len(), 23);
        assert_eq!(
            s.parents()[s.index_of("right_hand").unwrap()],
            s.index_of("right_wrist")
        );
    }
}
