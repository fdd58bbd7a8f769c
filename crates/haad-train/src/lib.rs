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
