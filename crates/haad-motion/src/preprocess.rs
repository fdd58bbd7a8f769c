//! Cutting clips to a fixed length, making them root-relative, and resampling.
//!
//! These follow the method's reference code: a clip becomes its first `T` frames (default 60),
//! a short clip is padded by repeating its last frame, and the root joint's frame-0 position is
//! subtracted from every joint of every frame.

use ndarray::{s, Array3, Axis};
use rand::Rng;

use crate::error::{MotionError, Result};
use crate::motion::Motion;

/// The method's clip length, T = 60 frames.
pub const DEFAULT_FRAMES: usize = 60;

/// The first `frames` frames; a shorter clip is padded by repeating its last frame.
pub fn fixed_length(motion: &Motion, frames: usize) -> Result<Motion> {
    window(motion, 0, frames)
}

/// A window of `frames` frames starting at a uniformly drawn frame (seeded through `rng`);
/// a clip of at most `frames` frames is padded as in [`fixed_length`].
pub fn random_crop<R: Rng + ?Sized>(motion: &Motion, frames: usize, rng: &mut R) -> Result<Motion> {
    let slack = motion.frames().saturating_sub(frames);
    let start = if slack == 0 {
        0
    } else {
        rng.random_range(0..=slack)
    };
    window(motion, start, frames)
}

/// `frames` frames starting at `start`, padding past the end with the last frame.
pub fn window(motion: &Motion, start: usize, frames: usize) -> Result<Motion> {
    if frames == 0 {
        return Err(MotionError::InvalidArgument(
            "clip length must be at least 1 frame".into(),
        ));
    }
    if start >= motion.frames() {
        return Err(MotionError::InvalidArgument(format!(
            "window start {start} is past the clip's {} frames",
            motion.frames()
        )));
    }
    let src = motion.data();
    let last = motion.frames() - 1;
    let mut out = Array3::zeros((frames, motion.joints(), 3));
    for t in 0..frames {
        let from = (start + t).min(last);
        out.index_axis_mut(Axis(0), t)
            .assign(&src.index_axis(Axis(0), from));
    }
    Motion::new(out, motion.fps())
}

/// Subtracts the position of joint `root` at frame 0 from every joint of every frame.
pub fn root_relative(motion: &Motion, root: usize) -> Result<Motion> {
    if root >= motion.joints() {
        return Err(MotionError::InvalidArgument(format!(
            "root joint {root} out of range for {} joints",
            motion.joints()
        )));
    }
    let origin = motion.data().slice(s![0, root, ..]).to_owned();
    let data = motion.data() - &origin;
    Motion::new(data, motion.fps())
}

/// The method's preprocessing: [`fixed_length`] then [`root_relative`].
pub fn prepare(motion: &Motion, frames: usize, root: usize) -> Result<Motion> {
    root_relative(&fixed_length(motion, frames)?, root)
}

/// Resamples a clip to `target_fps` by linear interpolation between neighbouring frames.
///
/// The clip must know its frame rate. The output covers the same duration: frame `i` lies at
/// time `i / target_fps`, for every such time up to the last input frame's.
pub fn resample(motion: &Motion, target_fps: f32) -> Result<Motion> {
    let fps = motion.fps().ok_or_else(|| {
        MotionError::InvalidArgument("cannot resample a clip whose frame rate is unknown".into())
    })?;
    if !(target_fps.is_finite() && target_fps > 0.0) {
        return Err(MotionError::InvalidArgument(format!(
            "target frame rate must be positive and finite, got {target_fps}"
        )));
    }
    let n_in = motion.frames();
    let duration = (n_in - 1) as f64 / fps as f64;
    let n_out = (duration * target_fps as f64 + 1e-9).floor() as usize + 1;
    let src = motion.data();
    let mut out = Array3::zeros((n_out, motion.joints(), 3));
    for i in 0..n_out {
        let pos = i as f64 * fps as f64 / target_fps as f64;
        let lo = (pos.floor() as usize).min(n_in - 1);
        let hi = (lo + 1).min(n_in - 1);
        let w = (pos - lo as f64) as f32;
        let a = src.index_axis(Axis(0), lo);
        let b = src.index_axis(Axis(0), hi);
        out.index_axis_mut(Axis(0), i)
            .assign(&(&a * (1.0 - w) + &b * w));
    }
    Motion::new(out, Some(target_fps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    /// Frame t, joint j, axis c holds 100 t + 10 j + c.
    fn ramp(frames: usize, joints: usize) -> Motion {
        let a = Array3::from_shape_fn((frames, joints, 3), |(t, j, c)| {
            (100 * t + 10 * j + c) as f32
        });
        Motion::new(a, Some(10.0)).unwrap()
    }

    #[test]
    fn fixed_length_cuts_and_pads() {
        let m = ramp(5, 2);
        let cut = fixed_length(&m, 3).unwrap();
        assert_eq!(cut.frames(), 3);
        assert_eq!(cut.data()[[2, 1, 2]], 212.0);
        let padded = fixed_length(&m, 8).unwrap();
        assert_eq!(padded.frames(), 8);
        assert_eq!(padded.data()[[7, 1, 0]], 410.0);
        assert_eq!(padded.data()[[4, 0, 1]], 401.0);
        assert!(fixed_length(&m, 0).is_err());
    }

    #[test]
    fn root_relative_zeroes_root_at_frame_zero() {
        let m = ramp(4, 3);
        let r = root_relative(&m, 1).unwrap();
        assert_eq!(r.data()[[0, 1, 0]], 0.0);
        assert_eq!(r.data()[[0, 1, 2]], 0.0);
        // Other joints and frames keep their offsets to the frame-0 root.
        assert_eq!(r.data()[[3, 2, 1]], (300 + 20 + 1 - 11) as f32);
        assert!(root_relative(&m, 3).is_err());
    }

    #[test]
    fn random_crop_is_a_seeded_window() {
        let m = ramp(20, 1);
        let a = random_crop(&m, 6, &mut StdRng::seed_from_u64(3)).unwrap();
        let b = random_crop(&m, 6, &mut StdRng::seed_from_u64(3)).unwrap();
        assert_eq!(a, b);
        let start = (a.data()[[0, 0, 0]] / 100.0) as usize;
        assert!(start <= 14);
        for t in 0..6 {
            assert_eq!(a.data()[[t, 0, 0]], (100 * (start + t)) as f32);
        }
        // Over many seeds every start 0..=14 appears.
        let mut seen = [false; 15];
        for seed in 0..300 {
            let c = random_crop(&m, 6, &mut StdRng::seed_from_u64(seed)).unwrap();
            seen[(c.data()[[0, 0, 0]] / 100.0) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        // A short clip is padded, not an error.
        assert_eq!(
            random_crop(&ramp(3, 1), 6, &mut StdRng::seed_from_u64(0))
                .unwrap()
                .frames(),
            6
        );
    }

    #[test]
    fn resample_halves_and_interpolates() {
        let m = ramp(5, 1); // 10 fps, 0.4 s
        let down = resample(&m, 5.0).unwrap();
        assert_eq!(down.frames(), 3);
        assert_eq!(down.data()[[2, 0, 0]], 400.0);
        let up = resample(&m, 20.0).unwrap();
        assert_eq!(up.frames(), 9);
        assert!((up.data()[[1, 0, 0]] - 50.0).abs() < 1e-4);
        assert!(resample(&Motion::new(Array3::zeros((3, 1, 3)), None).unwrap(), 5.0).is_err());
        assert!(resample(&m, 0.0).is_err());
    }
}
