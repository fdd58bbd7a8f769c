//! The training loop: epochs of random windows of the training clips, progress bar, a JSON-lines
//! log, checkpoints every few epochs and resuming from them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use haad_motion::{preprocess, Motion};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::ValidConfig;
use crate::error::{DiffusionError, Result};
use crate::model::DiffusionModel;
use crate::train::{augment_clip, data_scale, Trainer};

/// The raw (non-EMA) weights in a training directory, for resuming.
pub const TRAIN_WEIGHTS_FILE: &str = "train.safetensors";
/// Where a training directory records how far training got.
pub const STATE_FILE: &str = "state.json";
/// The per-epoch log, one JSON object a line.
pub const LOG_FILE: &str = "train_log.jsonl";

/// How long and where to train.
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Epochs to train (in total, counting those already done when resuming).
    pub epochs: usize,
    /// Optimiser steps per epoch (each a batch of `batch_size` random windows).
    pub steps_per_epoch: usize,
    /// Write a checkpoint every this many epochs (and after the last).
    pub checkpoint_every: usize,
    /// The learning rate of the last epoch: epoch `e` of `E` trains at
    /// `lr + (final - lr) e / (E - 1)` (linear decay from the config's rate). `None` keeps the
    /// config's rate throughout.
    pub final_learning_rate: Option<f64>,
    /// Seed of all randomness (weights, batches, noise, dropout).
    pub seed: u64,
    /// The training directory: model (EMA) weights, raw weights, state and log.
    pub out: PathBuf,
    /// Continue from the checkpoint in `out` when there is one.
    pub resume: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// How far training got (`state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitState {
    /// Epochs completed.
    pub epochs: usize,
    /// Optimiser steps completed.
    pub steps: usize,
    /// The seed training was started with.
    pub seed: u64,
}

/// One line of the training log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Optimiser steps completed after this epoch.
    pub steps: usize,
    /// Mean batch loss of the epoch.
    pub loss: f32,
    /// The epoch's learning rate (logs written before this field existed read as 0).
    #[serde(default)]
    pub learning_rate: f64,
    /// Wall-clock seconds the epoch took.
    pub seconds: f64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DiffusionError + '_ {
    move |source| DiffusionError::Io {
        path: path.to_path_buf(),
        source,
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

fn save_checkpoint(trainer: &Trainer, state: &FitState, out: &Path) -> Result<()> {
    trainer.ema().save(out)?;
    trainer
        .model()
        .save_weights(&out.join(TRAIN_WEIGHTS_FILE))?;
    let path = out.join(STATE_FILE);
    let json = serde_json::to_string_pretty(state).map_err(|source| DiffusionError::Json {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&path, json).map_err(io(&path))
}

fn load_checkpoint(out: &Path, device: &Device) -> Result<Option<(Trainer, FitState)>> {
    let path = out.join(STATE_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let state: FitState =
        serde_json::from_str(&text).map_err(|source| DiffusionError::Json { path, source })?;
    let ema = DiffusionModel::load(out, device)?;
    let mut model = ema.duplicate()?;
    model.load_weights(&out.join(TRAIN_WEIGHTS_FILE))?;
    Ok(Some((Trainer::resume(model, ema, state.steps)?, state)))
}

/// Trains a model of `cfg` on raw training clips (any length; windows of N frames are drawn,
/// root-relative to joint `root`) and leaves the EMA model in `opts.out` (loadable with
/// [`DiffusionModel::load`]). The config's `scale` is set to the RMS of the prepared training
/// clips ([`data_scale`]) and saved with the model.
///
/// Epoch `e` draws its batches from a generator seeded by `(seed, e)`, so a run resumed at an
/// epoch boundary draws the same batches as an uninterrupted one; Adam's moment estimates are
/// not saved and restart from zero on resume.
pub fn fit(
    cfg: &ValidConfig,
    clips: &[Motion],
    root: usize,
    opts: &FitOptions,
    device: &Device,
) -> Result<(Trainer, Vec<EpochRecord>)> {
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
    std::fs::create_dir_all(&opts.out).map_err(io(&opts.out))?;
    let resumed = if opts.resume {
        load_checkpoint(&opts.out, device)?
    } else {
        None
    };
    let (mut trainer, mut state) = match resumed {
        Some((t, s)) => {
            let mut want = cfg.config().clone();
            want.scale = t.model().config().scale;
            if t.model().config().config() != &want {
                return Err(DiffusionError::InvalidArgument(format!(
                    "{}: the checkpoint's config differs from the requested one",
                    opts.out.display()
                )));
            }
            (t, s)
        }
        None => {
            let cfg = cfg.with_scale(data_scale(clips, cfg.frames, root)?)?;
            let trainer = Trainer::new(&cfg, opts.seed, device)?;
            let state = FitState {
                epochs: 0,
                steps: 0,
                seed: opts.seed,
            };
            (trainer, state)
        }
    };
    let log_path = opts.out.join(LOG_FILE);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io(&log_path))?;
    let total = (opts.epochs.saturating_sub(state.epochs) * opts.steps_per_epoch) as u64;
    let bar = ProgressBar::new(total);
    if !opts.progress {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} steps, eta {eta} {msg}",
        )
        .map_err(|e| DiffusionError::InvalidArgument(format!("progress template: {e}")))?,
    );
    let batch = trainer.model().config().batch_size;
    let mut records = Vec::new();
    let lr0 = trainer.model().config().learning_rate;
    for epoch in state.epochs..opts.epochs {
        let start = Instant::now();
        let lr = learning_rate_at(lr0, opts.final_learning_rate, epoch, opts.epochs);
        trainer.set_learning_rate(lr);
        let mut rng = StdRng::seed_from_u64(
            state.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let mut sum = 0f64;
        for _ in 0..opts.steps_per_epoch {
            let cfg = trainer.model().config().clone();
            let b = sample_batch(clips, &cfg, root, batch, &mut rng)?;
            let loss = trainer.step(&b, &mut rng)?;
            sum += loss as f64;
            bar.inc(1);
            bar.set_message(format!("epoch {} loss {loss:.4}", epoch + 1));
        }
        state.epochs = epoch + 1;
        state.steps = trainer.steps();
        let rec = EpochRecord {
            epoch: epoch + 1,
            steps: trainer.steps(),
            loss: (sum / opts.steps_per_epoch as f64) as f32,
            learning_rate: lr,
            seconds: start.elapsed().as_secs_f64(),
        };
        let line = serde_json::to_string(&rec).map_err(|source| DiffusionError::Json {
            path: log_path.clone(),
            source,
        })?;
        writeln!(log, "{line}").map_err(io(&log_path))?;
        records.push(rec);
        if state.epochs % opts.checkpoint_every == 0 || state.epochs == opts.epochs {
            save_checkpoint(&trainer, &state, &opts.out)?;
        }
    }
    bar.finish_and_clear();
    Ok((trainer, records))
}

/// The learning rate of epoch `epoch` (0-based) of `epochs`: linear from `lr0` to `last`.
pub fn learning_rate_at(lr0: f64, last: Option<f64>, epoch: usize, epochs: usize) -> f64 {
    match last {
        Some(l) if epochs > 1 => {
            lr0 + (l - lr0) * epoch.min(epochs - 1) as f64 / (epochs - 1) as f64
        }
        Some(l) => l,
        None => lr0,
    }
}

/// The training clips (raw) of the seen categories of `split`: what the generative model
/// learns from, so that unseen categories stay unseen.
pub fn seen_training_clips(
    dataset: &haad_motion::Dataset,
    split: &haad_motion::split::Split,
) -> Vec<Motion> {
    split
        .seen_categories()
        .into_iter()
        .flat_map(|c| {
            split
                .train(c)
                .iter()
                .map(|&i| dataset.clips()[i].motion.clone())
        })
        .collect()
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
        assert_eq!(learning_rate_at(1e-3, Some(2e-4), 0, 1), 2e-4);
    }
}
