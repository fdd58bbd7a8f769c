//! # haad-diffusion: HumanMAC-style masked DCT completion
//!
//! A denoising diffusion model over the first K = `n_pre` DCT coefficients of 60-frame
//! root-relative clips (HumanMAC, ICCV 2023) that, given the first t_his = 30 frames of a real
//! clip, generates varied completions of the rest. It is the method's generative augmentation:
//! [`DiffusionAugmenter`] implements `haad_motion::Augmenter`.
//!
//! * [`config`]: [`DiffusionConfig`] (paper values by default, [`Preset`] `small`/`paper`) checked
//!   into a [`ValidConfig`]; [`schedule`]: cosine / linear noise schedules.
//! * [`denoiser`]: the transformer eps_theta (one token per DCT coefficient);
//!   [`model`]: [`DiffusionModel`] (network + schedule + DCT, save / load).
//! * [`train`]: [`Trainer`] (Adam, EMA, augmentation); [`fit`](mod@fit): the training loop with
//!   checkpoints; [`sample`]: DDIM with DCT completion; [`evaluate`] / [`metrics`]: ADE, FDE,
//!   APD and the zero-velocity baseline (stick figures are drawn by `haad-report`).
//!
//! Everything random is drawn from seeded `StdRng`s (weights, noise, dropout masks), so the same
//! seeds give the same numbers on CPU. Coordinates are divided by the config's `scale` (the RMS
//! of the training clips' root-relative coordinates, set by [`fit()`]) before the DCT.
//!
//! ```
//! use candle_core::Device;
//! use haad_diffusion::{DiffusionConfig, DiffusionModel, Trainer};
//! use haad_motion::Motion;
//! use ndarray::Array3;
//! use rand::{rngs::StdRng, SeedableRng};
//!
//! // A tiny model for 2 joints (the real presets are `Preset::Small` and `Preset::Paper`).
//! let cfg = DiffusionConfig {
//!     joints: 2, d_model: 16, heads: 2, layers: 2, diffusion_steps: 50, ddim_steps: 5,
//!     ..DiffusionConfig::default()
//! }
//! .check()?;
//! let clip = Motion::new(
//!     Array3::from_shape_fn((60, 2, 3), |(t, j, c)| ((t + j + c) as f32 * 0.05).sin()),
//!     Some(15.0),
//! )?;
//! let mut trainer = Trainer::new(&cfg, 0, &Device::Cpu)?;
//! let mut rng = StdRng::seed_from_u64(0);
//! let loss = trainer.step(&[clip.clone(), clip.clone()], &mut rng)?;
//! assert!(loss.is_finite());
//! // Three completions of the clip's last 30 frames from its first 30, with the EMA weights.
//! let completions = trainer.ema().complete(&[clip], 3, 42)?;
//! assert_eq!(completions.len(), 3);
//! assert_eq!(completions[0].frames(), 60);
//! # Ok::<(), haad_diffusion::DiffusionError>(())
//! ```

mod attention;
pub mod augment;
pub mod config;
pub mod denoiser;
pub mod error;
pub mod evaluate;
pub mod fit;
mod frozen;
mod init;
pub mod metrics;
pub mod model;
mod ops;
pub mod sample;
pub mod schedule;
mod style;
#[cfg(test)]
mod testing;
pub mod train;

pub use augment::DiffusionAugmenter;
pub use config::{DiffusionConfig, Prediction, Preset, ValidConfig};
pub use denoiser::{Denoiser, Dropout};
pub use error::{DiffusionError, Result};
pub use evaluate::{BaselineMetrics, CompletionReport, Completions};
pub use fit::{fit, FitOptions};
pub use init::seeded_var_builder;
pub use metrics::PredictionMetrics;
pub use model::DiffusionModel;
pub use schedule::{NoiseSchedule, Schedule};
pub use train::Trainer;
