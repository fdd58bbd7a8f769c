//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong when configuring, running, saving or loading the encoder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcnError {
    /// A configuration field breaks one of [`crate::EncoderConfig::check`]'s rules.
    #[error("invalid encoder config: {field}: {rule}")]
    Config {
        /// The field at fault.
        field: &'static str,
        /// The rule it breaks and the value found.
        rule: String,
    },
    /// A clip or tensor has the wrong shape for the encoder.
    #[error("shape error in {what}: expected {expected}, got {got}")]
    Shape {
        /// What was being checked (e.g. "clip 3").
        what: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape that was found.
        got: String,
    },
    /// A weights file lacks a tensor the encoder needs, has an unexpected one, or a wrong shape.
    #[error("{path}: {message}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong in it.
        message: String,
    },
    /// A folder named as an encoder holds none: no `encoder.json` in it, nor in its `best/` or
    /// `last/` (the folders of a training run).
    #[error("{path}: no encoder here (no encoder.json in this folder, nor in its best/ or last/)")]
    NoEncoder {
        /// The folder named.
        path: PathBuf,
    },
    /// A file was read but what it holds breaks a rule: a config out of range, a non-finite
    /// weight.
    #[error("{path}: {message}")]
    InvalidFile {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong in it.
        message: String,
    },
    /// The encoder's output is not finite or beyond the embedding limit.
    #[error("non-finite output: {0}")]
    NonFinite(String),
    /// A file could not be read, written or created.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder at fault.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A config file is not valid JSON for [`crate::EncoderConfig`].
    #[error("{path}: {source}")]
    Json {
        /// The config file at fault.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
    /// Motion preprocessing (e.g. building the DCT basis) failed.
    #[error(transparent)]
    Motion(#[from] haad_motion::MotionError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Shorthand for `Result<T, GcnError>`.
pub type Result<T> = std::result::Result<T, GcnError>;
