//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong when building, using, saving or evaluating a detector.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// A clip has another joint count than the detector was built for.
    #[error("clip has {got} joints, the detector expects {expected}")]
    WrongJoints {
        /// The detector's joint count J.
        expected: usize,
        /// The clip's joint count.
        got: usize,
    },
    /// A clip is shorter than the detector's minimum length.
    #[error("clip has {got} frames, the detector needs at least {min}")]
    TooFewFrames {
        /// The detector's minimum number of frames.
        min: usize,
        /// The clip's number of frames.
        got: usize,
    },
    /// A clip holds a NaN or infinite coordinate.
    #[error(
        "clip has a non-finite coordinate {value} at frame {frame}, joint {joint}, axis {axis}"
    )]
    NonFinite {
        /// The offending value.
        value: f32,
        /// Its frame.
        frame: usize,
        /// Its joint.
        joint: usize,
        /// Its axis (0 = x, 1 = y, 2 = z).
        axis: usize,
    },
    /// The error concerns one clip of a batch (index into the batch, and where it came from when
    /// known).
    #[error("clip {index}{}: {source}", origin.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default())]
    Clip {
        /// Index of the clip in the batch or dataset.
        index: usize,
        /// The clip's source file, when known.
        origin: Option<PathBuf>,
        /// What is wrong with it.
        #[source]
        source: Box<DetectError>,
    },
    /// An array has the wrong shape for what it is used as.
    #[error("shape error in {what}: expected {expected}, got {got}")]
    Shape {
        /// What was being checked.
        what: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape that was found.
        got: String,
    },
    /// A configuration field breaks one of its rules.
    #[error("invalid config: {field}: {rule}")]
    Config {
        /// The field at fault.
        field: &'static str,
        /// The rule it breaks and the value found.
        rule: String,
    },
    /// An argument is outside its valid range or does not fit the data.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A metric is undefined for these inputs (e.g. a class without any sample).
    #[error("metric undefined: {0}")]
    Metric(String),
    /// A saved detector could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A saved detector's JSON is malformed.
    #[error("{path}: {source}")]
    Json {
        /// The file at fault.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
    /// A saved detector's files disagree with each other or are malformed.
    #[error("{path}: {message}")]
    Saved {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading, preprocessing or augmenting motion failed.
    #[error(transparent)]
    Motion(#[from] haad_motion::MotionError),
    /// The learned encoder failed (loading, embedding).
    #[error(transparent)]
    Gcn(#[from] haad_gcn::GcnError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl DetectError {
    /// Wraps `self` as the error of clip `index` (with its source file when known).
    pub fn at_clip(self, index: usize, origin: Option<PathBuf>) -> Self {
        DetectError::Clip {
            index,
            origin,
            source: Box::new(self),
        }
    }
}

/// Shorthand for `Result<T, DetectError>`.
pub type Result<T> = std::result::Result<T, DetectError>;
