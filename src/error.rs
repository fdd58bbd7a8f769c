//! The one error type of the composition layer: any crate's error, or a file or argument at
//! fault here.

use std::path::PathBuf;

/// Everything that can go wrong when the crates are composed into the method.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HaadError {
    /// Motion data (loading, preprocessing, splits, pools).
    #[error(transparent)]
    Motion(#[from] haad_motion::MotionError),
    /// The encoder.
    #[error(transparent)]
    Gcn(#[from] haad_gcn::GcnError),
    /// The generator.
    #[error(transparent)]
    Diffusion(#[from] haad_diffusion::DiffusionError),
    /// Encoder training.
    #[error(transparent)]
    Contrastive(#[from] haad_contrastive::ContrastiveError),
    /// Detection and evaluation.
    #[error(transparent)]
    Detect(#[from] haad_detect::DetectError),
    /// Figures and 2-D maps.
    #[error(transparent)]
    Report(#[from] haad_report::ReportError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file could not be written or parsed.
    #[error("{path}: {source}")]
    Json {
        /// The file at fault.
        path: PathBuf,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// An argument is outside its valid range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Shorthand for `Result<T, HaadError>`.
pub type Result<T> = std::result::Result<T, HaadError>;
