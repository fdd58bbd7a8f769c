//! # haad-detect: few-shot action anomaly detection with a support set
//!
//! Give a [`Detector`] a few normal clips (the support set, K = 3 in the paper) and it scores
//! how anomalous any other clip is: the mean Euclidean distance of the clip's embedding to the
//! support embeddings (the paper's Eq. 6), or another [`Scoring`] rule. Clips are raw motions
//! of any length; the detector checks them ([`InputSpec`]) and prepares them as the method does
//! (first 60 frames, short clips padded with their last frame, frame-0 root subtracted).
//!
//! The embedding is an [`Embedder`]: the raw-DCT baseline ([`RawDct`]: the prepared clip's
//! first 10 orthonormal DCT coefficients, flattened) or a learned encoder.
//!
//! For deployment: sliding-window scores of long recordings and live streams ([`stream`]) and
//! decision thresholds for a target false-alarm rate ([`calibrate`]).
//!
//! Also here: exact ROC AUC with ties, average precision and equal error rate ([`metrics`]),
//! saving/loading detectors ([`persist`]), the paper's evaluation protocol ([`eval`]) and its
//! tables and JSON ([`report`]). Figures are drawn by the `haad-report` crate.
//!
//! ```
//! use haad_detect::{Detector, Embedder, InputSpec, Scoring};
//! use haad_motion::Motion;
//! use ndarray::Array3;
//!
//! // Clips of 2 joints: "normal" ones sway slowly, the anomaly shakes fast.
//! let sway = |freq: f32, frames: usize| {
//!     let a = Array3::from_shape_fn((frames, 2, 3), |(t, j, c)| {
//!         (t as f32 * freq).sin() * (j + 1) as f32 + c as f32
//!     });
//!     Motion::new(a, Some(30.0))
//! };
//! let normal = [sway(0.10, 70)?, sway(0.11, 64)?, sway(0.09, 90)?];
//! let input = InputSpec { joints: 2, root: 0, min_frames: 1 };
//! let detector =
//!     Detector::fit(Embedder::raw_dct(), input, Scoring::MeanDistance, &normal, None)?;
//! let usual = detector.score(&sway(0.10, 80)?)?;
//! let odd = detector.score(&sway(0.9, 80)?)?;
//! assert!(odd > usual);
//! # Ok::<(), haad_detect::DetectError>(())
//! ```

pub mod calibrate;
pub mod detector;
pub mod embed;
pub mod error;
pub mod eval;
pub mod input;
pub mod metrics;
pub mod persist;
pub mod report;
pub mod scoring;
pub mod stream;
pub mod support;
pub mod validation;

pub use calibrate::{min_calibration_scores, Calibration, CalibrationSource, Decision};
pub use detector::Detector;
pub use embed::{Embedder, Embedding, RawDct, RawDctConfig};
pub use error::{DetectError, Result};
pub use eval::{evaluate, CategoryAuc, EvalConfig, Evaluation, ValidEvalConfig};
pub use input::InputSpec;
pub use metrics::{average_precision, equal_error_rate, roc_auc, roc_curve, RocPoint};
pub use report::{compare, format_table, Comparison, TopLevel};
pub use scoring::Scoring;
pub use stream::{
    score_recording, FrameAggregation, RecordingScores, StreamScorer, Unscored, Window,
    WindowOutcome,
};
pub use support::{Augmentation, SupportSet};
pub use validation::few_shot_validation_auc;
