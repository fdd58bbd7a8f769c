//! HumanMAC-style masked DCT completion (to be documented).

pub mod config;
pub mod denoiser;
pub mod error;
pub mod init;
pub mod schedule;

pub use config::{DiffusionConfig, Preset, ValidConfig};
pub use error::{DiffusionError, Result};
pub use schedule::{NoiseSchedule, Schedule};
pub mod model;
pub mod sample;
pub use model::DiffusionModel;
pub mod train;
pub use train::Trainer;
pub mod augment;
pub use augment::DiffusionAugmenter;
pub mod fit;
pub use fit::{fit, FitOptions};
pub mod metrics;
