//! The training loop on the shared training stack (`haad-train`): epochs of random windows
//! of the training clips, progress reports, a JSON-lines log, crash-safe checkpoints every few
//! epochs and exact resuming from them.
//!
//! Training folder layout (`FitOptions::out`), the one of `haad_train::TrainDir`:
//! - `log.jsonl`: one [`EpochLog`] a line;
//! - `last/`: the latest checkpoint, replaced whole: the EMA model (`config.json`,
//!   `model.safetensors`: load it with [`DiffusionModel::load`] or use the folder as a
//!   generator), the raw weights (`train.safetensors`), `optimizer.safetensors` (Adam's moments
//!   and step count) and `state.json`.
//!
//! Resuming needs a checkpoint in `last/` (none is an error) of the same configuration; it
//! continues bit for bit as the uninterrupted run would have.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use haad_motion::atomic::{Disk, Storage};
use haad_motion::{preprocess, Motion, NoProgress, Progress};
use haad_train::{epoch_seed, LinearDecay, TrainDir};
use rand::{rngs::StdRng, Rng, SeedableRng};

pub use haad_train::{EpochLog, TrainState, LAST_DIR, LOG_FILE, STATE_FILE};

use crate::config::ValidConfig;
use crate::error::{DiffusionError, Result};
use crate::model::DiffusionModel;
use crate::train::{augment_clip, data_scale, Trainer};

/// The raw (non-EMA) weights in a checkpoint, for resuming.
pub const TRAIN_WEIGHTS_FILE: &str = "train.safetensors";

/// How long and where to train.
#[derive(Clone)]
pub struct FitOptions {
    /// Epochs to train (in total, counting those already done when resuming).
    pub epochs: usize,
    /// Optimiser steps per epoch (each a batch of `batch_size` random windows).
    pub steps_per_epoch: usize,
    /// Write a checkpoint every this many epochs (and after the last).
    pub checkpoint_every: usize,
    /// The learning rate of the last epoch: the config's rate decays linearly to it over the
    /// epochs (`haad_train::LinearDecay`). `None` keeps the config's rate throughout.
    pub final_learning_rate: Option<f64>,
    /// Seed of all randomness (weights, batches, noise, dropout).
    pub seed: u64,
    /// The training folder (see the module docs).
    pub out: PathBuf,
    /// Continue from the checkpoint in `out/last`, which must exist; `false` starts afresh.
    pub resume: bool,
    /// Stop (with a checkpoint) once this many epochs are done, as an interruption would; a
    /// later call with `resume` continues the same run (same schedule). `None` trains to the
    /// end.
    pub stop_after_epoch: Option<usize>,
    /// Where progress goes: one unit per optimiser step.
    pub progress: Arc<dyn Progress>,
    /// Through what checkpoints and logs are written: the real disk, or a fault injector
    /// (`haad_motion::atomic::FailAfter`) in tests.
    pub storage: Arc<dyn Storage>,
}

impl std::fmt::Debug for FitOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FitOptions")
            .field("epochs", &self.epochs)
            .field("steps_per_epoch", &self.steps_per_epoch)
            .field("checkpoint_every", &self.checkpoint_every)
            .field("final_learning_rate", &self.final_learning_rate)
            .field("seed", &self.seed)
            .field("out", &self.out)
            .field("resume", &self.resume)
            .field("stop_after_epoch", &self.stop_after_epoch)
            .finish_non_exhaustive()
    }
}

impl FitOptions {
    /// `epochs` epochs of `steps_per_epoch` steps into `out` from scratch, a checkpoint every
    /// epoch, constant learning rate, seed 0, no progress reports, on the real disk.
    pub fn new(out: impl Into<PathBuf>, epochs: usize, steps_per_epoch: usize) -> Self {
        Self {
            epochs,
            steps_per_epoch,
            checkpoint_every: 1,
            final_learning_rate: None,
            seed: 0,
            out: out.into(),
            resume: false,
            stop_after_epoch: None,
            progress: Arc::new(NoProgress),
            storage: Arc::new(Disk),
        }
    }
}

/// A training batch: `batch` windows of N frames drawn uniformly from uniformly drawn clips,
/// made root-relative to joint `root` and augmented ([`augment_clip`]).
pub fn sample_batch(
    clips: &[Motion],
    cfg: &ValidConfig,
    root: usize,
    batch: usize,
    rng: &mut StdRng,
) -> Result<Vec<Motion>> {
    if clips.is_empty() {
        return Err(DiffusionError::InvalidArgument("no training clips".into()));
    }
    (0..batch)
        .map(|_| {
            let c = &clips[rng.random_range(0..clips.len())];
            let w = preprocess::random_crop(c, cfg.frames, rng)?;
            let p = preprocess::root_relative(&w, root)?;
            augment_clip(&p, cfg, root, rng)
        })
        .collect()
}

fn save_model_files(trainer: &Trainer, dir: &Path) -> Result<()> {
    trainer.ema().save(dir)?;
    trainer.model().save_weights(&dir.join(TRAIN_WEIGHTS_FILE))
}

fn load_checkpoint(
    dir: &TrainDir,
    device: &Device,
) -> Result<(Trainer, TrainState, Vec<EpochLog>)> {
    let (state, log) = dir.resume()?;
    let last = dir.last();
    let ema = DiffusionModel::load(&last, device)?;
    let mut model = ema.duplicate()?;
    model.load_weights(&last.join(TRAIN_WEIGHTS_FILE))?;
    let trainer = Trainer::resume(model, ema, &last.join(haad_train::OPTIMIZER_FILE))?;
    if trainer.steps() != state.optimizer_steps {
        return Err(DiffusionError::Resume {
            path: last,
            reason: format!(
                "the optimiser has taken {} steps, state.json says {}",
                trainer.steps(),
                state.optimizer_steps
            ),
        });
    }
    Ok((trainer, state, log))
}

/// Trains a model of `cfg` on raw training clips (any length; windows of N frames are drawn,
/// root-relative to joint `root`) and leaves the EMA model in `opts.out/last` (loadable with
/// [`DiffusionModel::load`]). The config's `scale` is set to the RMS of the prepared training
/// clips ([`data_scale`]) and saved with the model.
///
/// Epoch `e` draws its batches from a generator seeded by `haad_train::epoch_seed(seed, e)`,
/// and checkpoints hold the optimiser's moments, so a resumed run gives the uninterrupted
/// run's weights bit for bit. Returns the trainer and the log of the epochs this call ran.
pub fn fit(
    cfg: &ValidConfig,
    clips: &[Motion],
    root: usize,
    opts: &FitOptions,
    device: &Device,
) -> Result<(Trainer, Vec<EpochLog>)> {
    if opts.steps_per_epoch == 0 || opts.checkpoint_every == 0 {
        return Err(DiffusionError::InvalidArgument(
            "steps_per_epoch and checkpoint_every must be positive".into(),
        ));
    }
    if let Some(lr) = opts.final_learning_rate {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(DiffusionError::InvalidArgument(format!(
                "final learning rate must be positive and finite, got {lr}"
            )));
        }
    }
    let dir = TrainDir::with_storage(&opts.out, opts.storage.clone())?;
    let (mut trainer, mut state) = if opts.resume {
        let (t, s, _) = load_checkpoint(&dir, device)?;
        let mut want = cfg.config().clone();
        want.scale = t.model().config().scale;
        if t.model().config().config() != &want {
            return Err(DiffusionError::Resume {
                path: dir.last(),
                reason: "the checkpoint's config differs from the requested one".into(),
            });
        }
        if s.seed != opts.seed {
            return Err(DiffusionError::Resume {
                path: dir.last(),
                reason: format!(
                    "the checkpoint was trained with seed {}, not {}",
                    s.seed, opts.seed
                ),
            });
        }
        (t, s)
    } else {
        dir.start_fresh(&[])?;
        let cfg = cfg.with_scale(data_scale(clips, cfg.frames, root)?)?;
        let trainer = Trainer::new(&cfg, opts.seed, device)?;
        let state = TrainState {
            epochs_done: 0,
            optimizer_steps: 0,
            seed: opts.seed,
            best: None,
        };
        (trainer, state)
    };
    let progress = &*opts.progress;
    progress.start(
        (opts.epochs.max(state.epochs_done) * opts.steps_per_epoch) as u64,
        (state.epochs_done * opts.steps_per_epoch) as u64,
    );
    let batch = trainer.model().config().batch_size;
    let mut records = Vec::new();
    let lr0 = trainer.model().config().learning_rate;
    let schedule = LinearDecay {
        start: lr0,
        end: opts.final_learning_rate.unwrap_or(lr0),
        epochs: opts.epochs,
    };
    let end = opts
        .stop_after_epoch
        .map_or(opts.epochs, |s| s.min(opts.epochs));
    for epoch in state.epochs_done..end {
        let start = Instant::now();
        let lr = schedule.at(epoch);
        trainer.set_learning_rate(lr);
        let mut rng = StdRng::seed_from_u64(epoch_seed(state.seed, epoch));
        let mut sum = 0f64;
        for _ in 0..opts.steps_per_epoch {
            let cfg = trainer.model().config().clone();
            let b = sample_batch(clips, &cfg, root, batch, &mut rng)?;
            let loss = trainer.step(&b, &mut rng)?;
            sum += loss as f64;
            progress.advance(1);
            progress.message(&format!("epoch {} loss {loss:.4}", epoch + 1));
        }
        state.epochs_done = epoch + 1;
        state.optimizer_steps = trainer.steps();
        let rec = EpochLog {
            epoch: epoch + 1,
            loss: sum / opts.steps_per_epoch as f64,
            learning_rate: lr,
            steps: opts.steps_per_epoch,
            wall_seconds: start.elapsed().as_secs_f64(),
            validation: None,
        };
        dir.append_log(&rec)?;
        records.push(rec);
        let done = state.epochs_done;
        if done % opts.checkpoint_every == 0 || done == opts.epochs || done == end {
            dir.save_checkpoint(&state, trainer.optimizer(), |d| {
                save_model_files(&trainer, d)
            })?;
        }
    }
    progress.finish();
    Ok((trainer, records))
}

/// The model folder of `dir`: its checkpoint `dir/last` when `dir` is a training folder (it
/// has `last/` but no model of its own), else `dir` itself.
pub fn model_dir(dir: &Path) -> PathBuf {
    let last = dir.join(LAST_DIR);
    if !dir.join(crate::model::CONFIG_FILE).exists() && last.is_dir() {
        last
    } else {
        dir.to_path_buf()
    }
}

/// The learning rate of epoch `epoch` (0-based) of `epochs`: linear from `lr0` to `last`
/// (`haad_train::LinearDecay`), constant without `last`.
pub fn learning_rate_at(lr0: f64, last: Option<f64>, epoch: usize, epochs: usize) -> f64 {
    LinearDecay {
        start: lr0,
        end: last.unwrap_or(lr0),
        epochs,
    }
    .at(epoch)
}

/// The training clips (raw) of the seen categories of `split`: what the generative model
/// learns from, so that unseen categories stay unseen.
pub fn seen_training_clips(
    dataset: &haad_motion::Dataset,
    split: &haad_motion::split::Split,
) -> Vec<Motion> {
    let indices: Vec<usize> = split
        .seen_categories()
        .into_iter()
        .flat_map(|c| split.train(c).iter().copied())
        .collect();
    dataset.motions_at(&indices)
}

#[cfg(test)]
mod tests {
    use super::learning_rate_at;

    #[test]
    fn learning_rate_decays_linearly_by_epoch() {
        // 1e-3 -> 1e-5 over 5 epochs: steps of 2.475e-4.
        let lr = |e| learning_rate_at(1e-3, Some(1e-5), e, 5);
        assert_eq!(lr(0), 1e-3);
        assert!((lr(1) - 7.525e-4).abs() < 1e-15);
        assert!((lr(4) - 1e-5).abs() < 1e-15);
        assert!((lr(9) - 1e-5).abs() < 1e-15); // past the end: the final rate
        assert_eq!(learning_rate_at(1e-3, None, 3, 5), 1e-3);
        // One epoch trains at the start rate (the encoder trainer's rule too).
        assert_eq!(learning_rate_at(1e-3, Some(2e-4), 0, 1), 1e-3);
    }
}
