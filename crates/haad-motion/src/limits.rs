//! Limits on sizes read from files: the one place where they are defined.
//!
//! Every size that a file gives (a joint count, a channel count, a frame count, a model's width
//! or clip length, a number of seeds) is checked against these bounds before anything is
//! allocated from it, and against the bytes actually present where the file holds the data. A
//! file beyond a limit is refused with an error naming the file, the place and the limit. The
//! values are far above any real recording or model of the method (MSR Action3D: 20 joints,
//! Bandai-Namco: 22 joints and 132 channels, clips of 60 frames, widths of 128 and 512) and
//! small enough that no limit alone asks for more than a few hundred MiB.

/// Joints of a skeleton (files, skeleton.json, BVH hierarchies, model configs).
pub const MAX_JOINTS: usize = 10_000;

/// Channels of one BVH joint (`CHANNELS n`); the format has 6 kinds.
pub const MAX_JOINT_CHANNELS: usize = 64;

/// Channels of one BVH frame, all joints together.
pub const MAX_CHANNELS: usize = 60_000;

/// Frames of one recording in a file (`Frames:` of a BVH, the first axis of a `.npy`).
pub const MAX_FRAMES: usize = 10_000_000;

/// Values (frames x joints x 3, or frames x channels) of one recording.
pub const MAX_VALUES: usize = 50_000_000;

/// Frames `T` of a prepared clip, and so the size of a DCT basis (`T x T`, built in f64).
pub const MAX_CLIP_FRAMES: usize = 2_048;

/// Frame rate in frames per second (`1 / Frame Time` of a BVH).
pub const MAX_FPS: f64 = 1.0e6;

/// Hidden width of a model (`hidden` of an encoder, `d_model` of a generator).
pub const MAX_WIDTH: usize = 16_384;

/// Layers or residual blocks of a model.
pub const MAX_LAYERS: usize = 1_024;

/// Diffusion steps of a noise schedule.
pub const MAX_DIFFUSION_STEPS: usize = 1_000_000;

/// Seeds (support draws) of one evaluation.
pub const MAX_SEEDS: usize = 100_000;

/// Largest magnitude of a coordinate in a loaded clip: 1e15 is no recording in any unit (1e9 km
/// in millimetres), and below it root-relative differences and DCT sums over
/// [`MAX_CLIP_FRAMES`] frames stay finite in f32. Loaders skip a clip beyond it, as they skip
/// non-finite ones.
pub const MAX_COORDINATE_ABS: f32 = 1.0e15;

/// Largest magnitude of a stored embedding value. Scores are squared distances summed in f32
/// over at most [`MAX_WIDTH`] x [`MAX_JOINTS`] dimensions; with every value within 1e12 they
/// stay finite (`4e24 x 1.7e8 < 3.4e38`), and no real embedding comes near it.
pub const MAX_EMBEDDING_ABS: f32 = 1.0e12;

/// Checks `value <= limit`, naming `what` in the error (its caller adds the file).
pub fn check(what: &str, value: usize, limit: usize) -> std::result::Result<usize, String> {
    if value > limit {
        Err(format!(
            "{what} {value} is above the limit of {limit} (haad_motion::limits)"
        ))
    } else {
        Ok(value)
    }
}
