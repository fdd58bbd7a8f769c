//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong when configuring, training, saving or sampling the model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiffusionError {
    /// A configuration field is outside its valid range.
    #[error("invalid config: {field}: {rule}")]
    Config {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        rule: String,
    },
    /// A tensor or clip has the wrong shape for what it is used as.
    #[error("shape error in {what}: expected {expected}, got {got}")]
    Shape {
        /// What was being checked.
        what: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape that was found.
        got: String,
    },
    /// An argument is outside its valid range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (config, checkpoint state) is malformed.
    #[error("{path}: {source}")]
    Json {
        /// The file at fault.
        path: PathBuf,
        /// What the parser said (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A weights file could not be read or lacks a tensor.
    #[error("{path}: {source}")]
    Weights {
        /// The file at fault.
        path: PathBuf,
        /// What candle said.
        #[source]
        source: candle_core::Error,
    },
    /// There is no checkpoint to resume from, or it does not fit the run.
    #[error("cannot resume from {path}: {reason}")]
    Resume {
        /// The checkpoint folder or file at fault.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// The training stack (optimiser, checkpoint files) failed.
    #[error(transparent)]
    Train(Box<haad_train::TrainError>),
    /// Motion data handling failed.
    #[error(transparent)]
    Motion(#[from] haad_motion::MotionError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<haad_train::TrainError> for DiffusionError {
    /// Keeps the file-naming shapes: I/O, JSON and resume errors become this crate's own.
    fn from(e: haad_train::TrainError) -> Self {
        use haad_train::TrainError as T;
        match e {
            T::Io { path, source } => Self::Io { path, source },
            T::Json { path, source } => Self::Json { path, source },
            T::Resume { path, reason } => Self::Resume { path, reason },
            T::Motion(e) => Self::Motion(e),
            T::Candle(e) => Self::Candle(e),
            other => Self::Train(Box::new(other)),
        }
    }
}

/// Shorthand for `Result<T, DiffusionError>`.
pub type Result<T> = std::result::Result<T, DiffusionError>;
