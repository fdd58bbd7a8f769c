//! MSR Action3D text skeletons (Li, Zhang, Liu, CVPR-W 2010).
//!
//! One file per clip, `aAA_sSS_eEE_skeleton3D.txt` (action, subject, repetition), rows
//! `x y z confidence`, 20 rows per frame, 15 fps, metres in the camera frame (y up, z depth).
//! The confidence column is read (it must be a number) and dropped.

use std::path::Path;

use ndarray::Array3;

use crate::dataset::{Clip, Dataset, Skipped};
use crate::error::Result;
use crate::io::{file_name, has_extension, io_error, parse_error, sorted_entries, unusable_reason};
use crate::motion::{Motion, Skeleton};

/// Joints per frame.
pub const MSR_JOINTS: usize = 20;

/// Frame rate of the Kinect v1 recordings.
pub const MSR_FPS: f32 = 15.0;

/// Category names, in action-number order (action `AA` is `MSR_ACTIONS[AA - 1]`).
pub const MSR_ACTIONS: [&str; 20] = [
    "high_arm_wave",
    "horizontal_arm_wave",
    "hammer",
    "hand_catch",
    "forward_punch",
    "high_throw",
    "draw_x",
    "draw_tick",
    "draw_circle",
    "hand_clap",
    "two_hand_wave",
    "side_boxing",
    "bend",
    "forward_kick",
    "side_kick",
    "jogging",
    "tennis_swing",
    "tennis_serve",
    "golf_swing",
    "pick_up_throw",
];

/// Joint names in the files' row order (0-based here; the dataset documents them 1-based).
pub const MSR_JOINT_NAMES: [&str; 20] = [
    "left_shoulder",
    "right_shoulder",
    "shoulder_centre",
    "spine",
    "left_hip",
    "right_hip",
    "hip_centre",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_foot",
    "right_foot",
    "head",
];

/// Parent of each joint, in the files' row order: hip centre is the root; spine, shoulder
/// centre, head; shoulders -> elbows -> wrists -> hands; hips -> knees -> ankles -> feet.
pub const MSR_PARENTS: [Option<usize>; 20] = [
    Some(2),  // left_shoulder <- shoulder_centre
    Some(2),  // right_shoulder <- shoulder_centre
    Some(3),  // shoulder_centre <- spine
    Some(6),  // spine <- hip_centre
    Some(6),  // left_hip <- hip_centre
    Some(6),  // right_hip <- hip_centre
    None,     // hip_centre (root)
    Some(0),  // left_elbow <- left_shoulder
    Some(1),  // right_elbow <- right_shoulder
    Some(7),  // left_wrist <- left_elbow
    Some(8),  // right_wrist <- right_elbow
    Some(9),  // left_hand <- left_wrist
    Some(10), // right_hand <- right_wrist
    Some(4),  // left_knee <- left_hip
    Some(5),  // right_knee <- right_hip
    Some(13), // left_ankle <- left_knee
    Some(14), // right_ankle <- right_knee
    Some(15), // left_foot <- left_ankle
    Some(16), // right_foot <- right_ankle
    Some(2),  // head <- shoulder_centre
];

/// The root joint: hip centre.
pub const MSR_ROOT: usize = 6;

/// The MSR Action3D skeleton, in the dataset's joint order, rooted at the hip centre.
pub fn msr_skeleton() -> Skeleton {
    Skeleton::new(
        MSR_JOINT_NAMES.iter().map(|s| s.to_string()).collect(),
        MSR_PARENTS.to_vec(),
        MSR_ROOT,
    )
    .expect("the MSR parent table is a valid tree")
}

/// Action, subject and repetition numbers from a name `aAA_sSS_eEE_skeleton3D.txt`.
pub fn parse_msr_name(name: &str) -> Option<(usize, usize, usize)> {
    let stem = name.strip_suffix("_skeleton3D.txt")?;
    let mut parts = stem.split('_');
    let mut field = |prefix: char| -> Option<usize> {
        let p = parts.next()?;
        let digits = p.strip_prefix(prefix)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let (a, s, e) = (field('a')?, field('s')?, field('e')?);
    parts.next().is_none().then_some((a, s, e))
}

/// Reads one MSR file into a `[frames, 20, 3]` motion at 15 fps.
///
/// Errors name the file and line: a row that does not hold 4 numbers, or a row count that is
/// not a multiple of 20 (a truncated last frame). Blank lines are ignored. A file without rows
/// gives `Ok(None)`.
pub fn read_msr_file(path: &Path) -> Result<Option<Motion>> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    let mut values = Vec::new();
    let mut rows = 0usize;
    let mut last_line = 0usize;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let mut tokens = line.split_ascii_whitespace();
        let Some(first) = tokens.next() else {
            continue;
        };
        let mut row = [0f32; 4];
        let mut n = 0;
        for tok in std::iter::once(first).chain(tokens) {
            if n == 4 {
                return Err(parse_error(
                    path,
                    line_no,
                    format!("more than 4 values (x y z confidence) on a row: {line:?}"),
                ));
            }
            row[n] = tok
                .parse()
                .map_err(|_| parse_error(path, line_no, format!("not a number: {tok:?}")))?;
            n += 1;
        }
        if n != 4 {
            return Err(parse_error(
                path,
                line_no,
                format!("expected 4 values (x y z confidence), found {n}"),
            ));
        }
        values.extend_from_slice(&row[..3]);
        rows += 1;
        last_line = line_no;
    }
    if rows == 0 {
        return Ok(None);
    }
    if !rows.is_multiple_of(MSR_JOINTS) {
        return Err(parse_error(
            path,
            last_line,
            format!(
                "truncated file: {rows} joint rows is not a multiple of {MSR_JOINTS} \
                 (the last frame has only {} rows)",
                rows % MSR_JOINTS
            ),
        ));
    }
    let data = Array3::from_shape_vec((rows / MSR_JOINTS, MSR_JOINTS, 3), values)
        .expect("row count checked above");
    Motion::new(data, Some(MSR_FPS)).map(Some)
}

/// Loads every `aAA_sSS_eEE_skeleton3D.txt` of a folder (not recursive), sorted by path.
///
/// All 20 actions are categories, even those without clips. Other `.txt` files (a name that does
/// not fit the pattern, an action outside 1..=20) and unusable clips (no rows, all zeros, NaN)
/// are listed in [`Dataset::skipped`]; files with other extensions are not clips and are ignored.
pub fn load_msr(dir: &Path) -> Result<Dataset> {
    let mut clips = Vec::new();
    let mut skipped = Vec::new();
    for path in sorted_entries(dir)? {
        if !path.is_file() || !has_extension(&path, "txt") {
            continue;
        }
        let name = file_name(&path);
        let action = match parse_msr_name(&name) {
            Some((a, _, _)) if (1..=MSR_ACTIONS.len()).contains(&a) => a,
            Some((a, _, _)) => {
                skipped.push(Skipped {
                    path,
                    reason: format!("action {a} is outside 1..=20"),
                });
                continue;
            }
            None => {
                skipped.push(Skipped {
                    path,
                    reason: "name does not fit aAA_sSS_eEE_skeleton3D.txt".into(),
                });
                continue;
            }
        };
        let Some(motion) = read_msr_file(&path)? else {
            skipped.push(Skipped {
                path,
                reason: "no joint rows (empty file)".into(),
            });
            continue;
        };
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
        msr_skeleton(),
        MSR_ACTIONS.iter().map(|s| s.to_string()).collect(),
        clips,
        skipped,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(
            parse_msr_name("a13_s09_e02_skeleton3D.txt"),
            Some((13, 9, 2))
        );
        assert_eq!(parse_msr_name("a13_s09_skeleton3D.txt"), None);
        assert_eq!(parse_msr_name("a13_s09_e02_x_skeleton3D.txt"), None);
        assert_eq!(parse_msr_name("b13_s09_e02_skeleton3D.txt"), None);
        assert_eq!(parse_msr_name("a13_s09_e02.txt"), None);
    }

    #[test]
    fn skeleton_is_a_tree_rooted_at_hip_centre() {
        let s = msr_skeleton();
        assert_eq!(s.names()[s.root()], "hip_centre");
        assert_eq!(s.bones().len(), 19);
        // Following parents from every joint reaches the hip centre.
        for j in 0..20 {
            let mut at = j;
            while let Some(p) = s.parents()[at] {
                at = p;
            }
            assert_eq!(at, MSR_ROOT);
        }
        assert_eq!(s.breadth_first()[0], MSR_ROOT);
    }
}
