//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong in the optimiser, the checkpoints or the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (state, log line) is malformed.
    #[error("{path}: {source}")]
    Json {
        /// The file at fault.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
    /// There is no checkpoint to resume from, or it does not fit the run.
    #[error("cannot resume from {path}: {reason}")]
    Resume {
        /// The checkpoint folder or file at fault.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// Writing a file whole failed.
    #[error(transparent)]
    Motion(#[from] haad_motion::MotionError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Shorthand for `Result<T, TrainError>`.
pub type Result<T> = std::result::Result<T, TrainError>;

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}
