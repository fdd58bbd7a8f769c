//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong when drawing a figure or computing a 2-D map.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The figure's file name does not end in `.svg`: SVG is the one format written (PNG would
    /// need a font renderer for its text, which this build of plotters leaves out).
    #[error("{path}: figures are written as .svg only (PNG text needs a font renderer that is not built in)")]
    Format {
        /// The file asked for.
        path: PathBuf,
    },
    /// The data to draw or project is unusable (empty, mismatched lengths, non-finite values).
    #[error("{what}: {rule}")]
    Input {
        /// What was checked.
        what: String,
        /// The rule it breaks, with the values found.
        rule: String,
    },
    /// A t-SNE setting breaks its rule.
    #[error("invalid t-SNE config: {field}: {rule}")]
    Config {
        /// The field at fault.
        field: &'static str,
        /// The rule it breaks and the value found.
        rule: String,
    },
    /// The plotting library failed while drawing or writing the file.
    #[error("{path}: drawing failed: {message}")]
    Draw {
        /// The figure being written.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
}

impl ReportError {
    pub(crate) fn input(what: impl Into<String>, rule: impl Into<String>) -> Self {
        ReportError::Input {
            what: what.into(),
            rule: rule.into(),
        }
    }
}

/// Shorthand for `Result<T, ReportError>`.
pub type Result<T> = std::result::Result<T, ReportError>;
