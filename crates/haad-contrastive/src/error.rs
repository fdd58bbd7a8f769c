//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong in the loss or the trainer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContrastiveError {
    /// A tensor or list has the wrong shape or length.
    #[error("shape error in {what}: expected {expected}, got {got}")]
    Shape {
        /// What was checked.
        what: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape found.
        got: String,
    },
    /// A configuration field breaks one of its rules (or does not fit the data).
    #[error("invalid training config: {field}: {rule}")]
    Config {
        /// The field at fault.
        field: &'static str,
        /// The rule it breaks and the value found.
        rule: String,
    },
    /// The training loss became NaN or infinite: training diverged.
    #[error("the loss became {value} at epoch {epoch}: lower the learning rate or raise the temperature")]
    NonFiniteLoss {
        /// The epoch (1-based).
        epoch: usize,
        /// The loss value.
        value: f64,
    },
    /// A checkpoint file could not be read or written.
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
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
    /// A checkpoint does not fit the configuration it is resumed with.
    #[error("cannot resume from {path}: {reason}")]
    Resume {
        /// The checkpoint directory.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// Data handling failed.
    #[error(transparent)]
    Motion(#[from] haad_motion::MotionError),
    /// The encoder failed.
    #[error(transparent)]
    Gcn(#[from] haad_gcn::GcnError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The validation callback failed.
    #[error("validation failed: {0}")]
    Validation(String),
    /// The training stack (optimiser, checkpoint files) failed.
    #[error(transparent)]
    Train(Box<haad_train::TrainError>),
}

impl From<haad_train::TrainError> for ContrastiveError {
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

/// Shorthand for `Result<T, ContrastiveError>`.
pub type Result<T> = std::result::Result<T, ContrastiveError>;
