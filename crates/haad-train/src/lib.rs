//! # haad-train: the one training stack of haad
//!
//! What the encoder trainer (`haad-contrastive`) and the diffusion trainer (`haad-diffusion`)
//! share, so that they behave alike:
//!
//! * [`Adam`]: Adam / AdamW implementing `candle_nn::Optimizer`, with a state (moments, step)
//!   that saves and loads, so that a resumed run continues bit for bit;
//! * [`LinearDecay`]: the learning-rate schedule;
//! * [`TrainDir`]: the checkpoint layout (`log.jsonl`, `last/` with `state.json` and
//!   `optimizer.safetensors`), crash-safe writing (a checkpoint is replaced whole) and the
//!   resume rule (no checkpoint is an error; the log is trimmed to the checkpoint);
//! * [`TrainState`], [`EpochLog`], [`BestEpoch`]: what is saved and logged;
//! * [`epoch_seed`]: the seed rule.
//!
//! See `docs/checkpoints.md`.
//!
//! ```
//! use candle_core::{Device, Tensor, Var};
//! use haad_train::{Adam, AdamParams, LinearDecay, OptimizerKind};
//!
//! // Minimise x^2 from x = 3 with AdamW, the rate decaying from 0.1 to 0.01 over 5 "epochs".
//! let x = Var::from_tensor(&Tensor::new(&[3.0f32], &Device::Cpu)?)?;
//! let schedule = LinearDecay { start: 0.1, end: 0.01, epochs: 5 };
//! let mut opt = Adam::new(
//!     vec![("x".into(), x.clone())],
//!     AdamParams::new(OptimizerKind::AdamW, schedule.at(0), 0.0),
//! )?;
//! for epoch in 0..5 {
//!     opt.set_learning_rate(schedule.at(epoch));
//!     for _ in 0..10 {
//!         opt.step(&x.as_tensor().sqr()?.sum_all()?.backward()?)?;
//!     }
//! }
//! assert_eq!(opt.step_count(), 50);
//! assert!(x.as_tensor().to_vec1::<f32>()?[0] < 3.0 - 1.0);
//! # Ok::<(), haad_train::TrainError>(())
//! ```

mod checkpoint;
mod error;
mod optim;
mod schedule;

pub use checkpoint::{
    epoch_seed, read_json, BestEpoch, EpochLog, TrainDir, TrainState, LAST_DIR, LOG_FILE,
    OPTIMIZER_FILE, STATE_FILE,
};
pub use error::{Result, TrainError};
pub use optim::{Adam, AdamParams, OptimizerKind};
pub use schedule::LinearDecay;
