//! # haad-contrastive: the multi-positive contrastive loss and the encoder trainer
//!
//! One encoder is trained for all seen categories: each batch holds two clips of every seen
//! category (plus, with an augmenter, `A` generated variants of each); clips of one category are
//! each other's positives, all others negatives ([`loss::multi_positive_loss`], the paper's
//! Eq. 5). [`train`] runs the whole loop with checkpoints, resume and optional model selection,
//! on the shared training stack of `haad-train` (optimiser, schedule, crash-safe checkpoints).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use haad_contrastive::loss::{multi_positive_loss, scalar};
//!
//! // Four embeddings, two categories: anchors pulled to their category, pushed from the other.
//! let z = Tensor::new(&[[1.0f32, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], &Device::Cpu)?;
//! let close = scalar(&multi_positive_loss(&z, &[0, 0, 1, 1], 0.1)?)?;
//! let mixed = scalar(&multi_positive_loss(&z, &[0, 1, 0, 1], 0.1)?)?;
//! assert!(close < mixed);
//! # Ok::<(), haad_contrastive::ContrastiveError>(())
//! ```

pub mod config;
pub mod error;
pub mod loss;
pub mod report;
mod saved;
pub mod trainer;

pub use config::{TrainConfig, ValidTrainConfig};
pub use error::{ContrastiveError, Result};
pub use haad_train::OptimizerKind;
pub use loss::{multi_positive_loss, scalar};
pub use report::format_log_table;
pub use saved::{TrainedEncoder, TRAIN_CONFIG_FILE};
pub use trainer::{
    train, BestEpoch, EpochLog, TrainOptions, TrainOutcome, ValidationData, Validator,
};
