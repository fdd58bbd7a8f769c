//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong when reading, checking or transforming motion data.
///
/// Every variant that concerns a file names it; parse errors also name the line (1-based) or
/// the record at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MotionError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its content is malformed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file at fault.
        path: PathBuf,
        /// 1-based line (or record) number; 0 when the problem concerns the whole file.
        line: usize,
        /// What is wrong there.
        message: String,
    },
    /// An array has the wrong shape (rank or size) for what it is used as.
    #[error("shape error in {what}: expected {expected}, got {got}")]
    Shape {
        /// What was being checked (a file path, an argument name...).
        what: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape that was found.
        got: String,
    },
    /// An argument is outside its valid range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A category name that the dataset does not have.
    #[error("unknown category {name:?}; the dataset has: {known}")]
    UnknownCategory {
        /// The name that was asked for.
        name: String,
        /// The dataset's category names, comma separated.
        known: String,
    },
    /// An augmenter (possibly from another crate) failed.
    #[error("augmenter failed: {0}")]
    Augment(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Shorthand for `Result<T, MotionError>`.
pub type Result<T> = std::result::Result<T, MotionError>;
