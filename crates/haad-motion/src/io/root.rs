//! Detecting the joint that carries the body, to use as the root for normalisation.
//!
//! A BVH `ROOT` can be a static dummy (Bandai-Namco's `joint_Root` stays at the world origin;
//! the body's translation is on its child `Hips`). Subtracting a static joint would leave
//! every clip at its absolute place in the capture room, so the root is read off the data:
//! walking the hierarchy breadth-first from its tree roots, the first joint that *moves* in at
//! least half of the clips. A joint moves in a clip when some frame takes it further than
//! `1e-3` of the clip's frame-0 extent (largest side of the bounding box of all joints) from its
//! frame-0 position. No name is hard-coded.

use crate::motion::{Motion, Skeleton};

/// Relative displacement (of the frame-0 extent) above which a joint counts as moving.
pub const MOVE_TOLERANCE: f32 = 1e-3;

/// Whether `joint` moves in `motion` (see the module doc).
pub fn joint_moves(motion: &Motion, joint: usize) -> bool {
    moves_beyond(motion, joint, tolerance(motion))
}

/// The displacement above which a joint of `motion` counts as moving.
fn tolerance(motion: &Motion) -> f32 {
    let first = motion.frame(0);
    let extent = (0..3)
        .map(|a| {
            let col = first.column(a);
            let lo = col.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = col.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            hi - lo
        })
        .fold(0.0f32, f32::max);
    MOVE_TOLERANCE * extent.max(f32::MIN_POSITIVE)
}

fn moves_beyond(motion: &Motion, joint: usize, tol: f32) -> bool {
    let d = motion.data();
    (1..motion.frames()).any(|t| {
        let dist2: f32 = (0..3)
            .map(|a| (d[[t, joint, a]] - d[[0, joint, a]]).powi(2))
            .sum();
        dist2.sqrt() > tol
    })
}

/// The first joint in breadth-first order that moves in at least half of `clips`; the first
/// tree root when none does (or there are no clips). Linear in the data: each clip's
/// tolerance is computed once.
pub fn detect_root<'a>(skeleton: &Skeleton, clips: impl IntoIterator<Item = &'a Motion>) -> usize {
    let clips: Vec<(&Motion, f32)> = clips.into_iter().map(|m| (m, tolerance(m))).collect();
    let order = skeleton.breadth_first();
    order
        .iter()
        .copied()
        .find(|&j| {
            let moving = clips
                .iter()
                .filter(|(m, tol)| moves_beyond(m, j, *tol))
                .count();
            !clips.is_empty() && 2 * moving >= clips.len()
        })
        .unwrap_or(order[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    /// Joint 0 a static dummy at the origin, joint 1 (its child) translating along x,
    /// joint 2 (child of 1) a fixed offset from joint 1.
    fn walker(frames: usize, dummy_moves: bool) -> Motion {
        let a = Array3::from_shape_fn((frames, 3, 3), |(t, j, c)| {
            let x = t as f32 * 0.1;
            match (j, c) {
                (0, 0) if dummy_moves => x,
                (0, _) => 0.0,
                (1, 0) => x,
                (1, 1) => 1.0,
                (2, 0) => x + 0.2,
                (2, 1) => 1.5,
                _ => 0.0,
            }
        });
        Motion::new(a, None).unwrap()
    }

    fn skel() -> Skeleton {
        let names = ["joint_Root", "Hips", "Spine"].map(String::from).to_vec();
        Skeleton::new(names, vec![None, Some(0), Some(1)], 0).unwrap()
    }

    #[test]
    fn skips_a_static_dummy_root() {
        let clips = [walker(10, false), walker(12, false), walker(8, true)];
        assert_eq!(detect_root(&skel(), &clips), 1);
        assert!(!joint_moves(&clips[0], 0));
        assert!(joint_moves(&clips[2], 0));
        // When the dummy moves in most clips it is the root.
        let clips = [walker(10, true), walker(12, true), walker(8, false)];
        assert_eq!(detect_root(&skel(), &clips), 0);
        // Nothing moves: the tree root.
        let still = Motion::new(Array3::from_elem((5, 3, 3), 1.0), None).unwrap();
        assert_eq!(detect_root(&skel(), [&still]), 0);
        assert_eq!(detect_root(&skel(), []), 0);
    }
}
