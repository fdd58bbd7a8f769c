//! The training loop: one encoder for all seen categories, trained with the multi-positive loss
//! on batches of two clips per category (plus generated variants when an augmenter is given).
//!
//! Output folder layout (`TrainOptions::out_dir`):
//! - `config.json`: the full [`TrainConfig`];
//! - `log.jsonl`: one [`EpochLog`] per line;
//! - `last/`: the latest checkpoint: `encoder.safetensors` + `encoder.json` (loadable with
//!   `EncoderModel::load`), `train_config.json`, `optimizer.safetensors`, `state.json`;
//! - `best/`: with validation, the encoder of the epoch with the best validation score.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use haad_gcn::{batch_tensor, EncoderModel};
use haad_motion::preprocess::prepare;
use haad_motion::split::{BatchSampler, Split};
use haad_motion::{Augmenter, Dataset, Motion};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{rngs::StdRng, SeedableRng};
use serde::{Deserialize, Serialize};

use candle_nn::ModuleT;

use crate::config::{TrainConfig, ValidTrainConfig};
use crate::error::{ContrastiveError, Result};
use crate::loss::{multi_positive_loss, scalar};
use crate::optim::{Adam, AdamParams};

/// Where and how to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The output folder (created).
    pub out_dir: PathBuf,
    /// Continue from `out_dir/last` if it holds a checkpoint of the same configuration.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Stop (with a checkpoint) once this many epochs are done, as an interruption would;
    /// a later call with `resume` continues the same run. `None` trains to the end.
    pub stop_after_epoch: Option<usize>,
}

impl TrainOptions {
    /// Train into `out_dir` from scratch, with a progress bar, to the end.
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        Self {
            out_dir: out_dir.into(),
            resume: false,
            progress: true,
            stop_after_epoch: None,
        }
    }
}

/// What a [`Validator`] may use: the dataset, the split the encoder trains on, and the held-out
/// validation clips of each seen category.
pub struct ValidationData<'a> {
    /// The whole dataset.
    pub dataset: &'a Dataset,
    /// The split with validation clips removed from the training parts.
    pub split: &'a Split,
    /// Validation clips (dataset indices) per category; empty for unseen categories.
    pub validation: &'a [Vec<usize>],
}

/// A model-selection measure computed after every epoch (higher is better), e.g. the few-shot
/// AUC on validation clips. Lives behind a trait so that this crate needs no detector.
pub trait Validator {
    /// Scores the encoder as it is after an epoch.
    fn validate(&mut self, model: &EncoderModel, data: &ValidationData<'_>) -> Result<f64>;
}

impl<F> Validator for F
where
    F: FnMut(&EncoderModel, &ValidationData<'_>) -> Result<f64>,
{
    fn validate(&mut self, model: &EncoderModel, data: &ValidationData<'_>) -> Result<f64> {
        self(model, data)
    }
}

/// One line of `log.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean loss over the epoch's steps.
    pub loss: f64,
    /// The epoch's learning rate.
    pub learning_rate: f64,
    /// Optimiser steps in the epoch.
    pub steps: usize,
    /// Wall time of the epoch in seconds (validation excluded).
    pub wall_seconds: f64,
    /// The validation score after the epoch, when validating.
    pub validation: Option<f64>,
}

/// The best validation epoch so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BestEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Its validation score.
    pub score: f64,
}

/// Resumable state written beside each checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrainState {
    epochs_done: usize,
    optimizer_steps: usize,
    best: Option<BestEpoch>,
}

/// What [`train`] gives back.
pub struct TrainOutcome {
    /// The encoder after the last epoch.
    pub model: EncoderModel,
    /// Every epoch's log, from the first (including epochs done before a resume).
    pub log: Vec<EpochLog>,
    /// The folder of the last checkpoint (`out_dir/last`).
    pub last_dir: PathBuf,
    /// The best validation epoch and its folder (`out_dir/best`), when validating.
    pub best: Option<(BestEpoch, PathBuf)>,
}

/// Seed of epoch `e`'s batches and augmentations: depends only on the run's seed and `e`, so a
/// resumed run draws exactly what the uninterrupted one would have.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((epoch as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// Trains an encoder on the seen categories of `dataset`.
///
/// Everything that can be checked is checked before any work: the configuration, the unseen
/// names, that every seen category has enough training clips, and that validation and a
/// validator come together.
pub fn train(
    config: &ValidTrainConfig,
    dataset: &Dataset,
    augmenter: Option<&dyn Augmenter>,
    mut validator: Option<&mut dyn Validator>,
    options: &TrainOptions,
    device: &Device,
) -> Result<TrainOutcome> {
    // The encoder's joint count comes from the data.
    let mut cfg: TrainConfig = (**config).clone();
    cfg.encoder.joints = dataset.joints();
    let cfg = cfg.check()?;

    let full = Split::new(dataset, cfg.train_fraction, &cfg.unseen)?;
    let validating = cfg.validation_fraction > 0.0;
    if validating != validator.is_some() {
        return Err(ContrastiveError::Config {
            field: "validation_fraction",
            rule: "validation_fraction > 0 and a validator go together: give both or neither"
                .into(),
        });
    }
    let (split, validation) = if validating {
        full.hold_out(cfg.validation_fraction)?
    } else {
        (full.clone(), vec![Vec::new(); full.categories()])
    };
    let seen = split.seen_categories();
    if seen.len() < 2 {
        return Err(ContrastiveError::Config {
            field: "unseen",
            rule: format!(
                "training needs at least 2 seen categories (others are the negatives), got {}",
                seen.len()
            ),
        });
    }
    for &c in &seen {
        if split.train(c).len() < cfg.clips_per_category {
            return Err(ContrastiveError::Config {
                field: "clips_per_category",
                rule: format!(
                    "category {:?} has {} training clips, fewer than the {} a batch takes",
                    dataset.categories()[c],
                    split.train(c).len(),
                    cfg.clips_per_category
                ),
            });
        }
    }
    let frames = cfg.encoder.frames;
    let root = dataset.skeleton().root();
    // Real clips are prepared once; augmenters get the raw clips.
    let prepared: Vec<Option<Motion>> = {
        let mut v = vec![None; dataset.clips().len()];
        for &c in &seen {
            for &i in split.train(c) {
                v[i] = Some(prepare(&dataset.clips()[i].motion, frames, root)?);
            }
        }
        v
    };
    let train_clips: usize = seen.iter().map(|&c| split.train(c).len()).sum();
    let per_batch = cfg.clips_per_category * seen.len();
    let steps_per_epoch = train_clips.div_ceil(per_batch);

    let out = &options.out_dir;
    let last_dir = out.join("last");
    let best_dir = out.join("best");
    fs::create_dir_all(out).map_err(|e| io(out, e))?;

    // Fresh start or resume.
    let (model, state, mut log) = match resume_point(&cfg, options, device)? {
        Some(r) => r,
        None => {
            write_json(&out.join("config.json"), &*cfg)?;
            fs::write(out.join("log.jsonl"), "").map_err(|e| io(&out.join("log.jsonl"), e))?;
            let model = EncoderModel::new(&cfg.encoder, cfg.seed, device)?;
            let state = TrainState {
                epochs_done: 0,
                optimizer_steps: 0,
                best: None,
            };
            (model, state, Vec::new())
        }
    };
    let named = named_trainable_vars(&model);
    let mut opt = Adam::new(
        named,
        AdamParams {
            kind: cfg.optimizer,
            lr: cfg.learning_rate_at(state.epochs_done),
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: cfg.weight_decay,
        },
    )?;
    if state.epochs_done > 0 {
        opt.load_moments(
            &last_dir.join("optimizer.safetensors"),
            state.optimizer_steps,
        )?;
    }
    let mut best = state.best;

    let bar = if options.progress {
        ProgressBar::new((cfg.epochs * steps_per_epoch) as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps {msg}")
            .expect("static progress template"),
    );
    bar.set_position((state.epochs_done * steps_per_epoch) as u64);

    let end = options
        .stop_after_epoch
        .map_or(cfg.epochs, |s| s.min(cfg.epochs));
    for epoch in state.epochs_done..end {
        let start = Instant::now();
        let lr = cfg.learning_rate_at(epoch);
        opt.set_learning_rate(lr);
        let seed = epoch_seed(cfg.seed, epoch);
        let mut sampler = BatchSampler::for_split(&split, cfg.clips_per_category, seed)?;
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED);
        let mut loss_sum = 0.0;
        for _ in 0..steps_per_epoch {
            let batch = sampler.next_batch();
            let mut clips: Vec<Motion> = batch
                .iter()
                .map(|&(i, _)| prepared[i].clone().expect("training clips are prepared"))
                .collect();
            let mut labels: Vec<usize> = batch.iter().map(|&(_, c)| c).collect();
            if let Some(aug) = augmenter {
                let raw: Vec<Motion> = batch
                    .iter()
                    .map(|&(i, _)| dataset.clips()[i].motion.clone())
                    .collect();
                let variants = aug.augment(&raw, cfg.variants_per_clip, &mut rng)?;
                for (k, v) in variants.iter().enumerate() {
                    clips.push(prepare(v, frames, root)?);
                    labels.push(batch[k / cfg.variants_per_clip.max(1)].1);
                }
            }
            let xs = batch_tensor(&clips, device)?;
            let emb = model.encoder().forward_t(&xs, true)?;
            let loss = multi_positive_loss(&emb, &labels, cfg.temperature)?;
            opt.step(&loss.backward()?)?;
            let l = scalar(&loss)?;
            if !l.is_finite() {
                return Err(ContrastiveError::NonFiniteLoss {
                    epoch: epoch + 1,
                    value: l,
                });
            }
            loss_sum += l;
            bar.inc(1);
            bar.set_message(format!(
                "epoch {}/{} loss {l:.4} lr {lr:.2e}",
                epoch + 1,
                cfg.epochs
            ));
        }
        let wall = start.elapsed().as_secs_f64();
        let validation_score = match validator.as_deref_mut() {
            Some(v) => Some(v.validate(
                &model,
                &ValidationData {
                    dataset,
                    split: &split,
                    validation: &validation,
                },
            )?),
            None => None,
        };
        let entry = EpochLog {
            epoch: epoch + 1,
            loss: loss_sum / steps_per_epoch as f64,
            learning_rate: lr,
            steps: steps_per_epoch,
            wall_seconds: wall,
            validation: validation_score,
        };
        append_log(&out.join("log.jsonl"), &entry)?;
        log.push(entry);
        if let Some(score) = validation_score {
            if best.is_none_or(|b| score > b.score) {
                best = Some(BestEpoch {
                    epoch: epoch + 1,
                    score,
                });
                save_encoder(&model, &cfg, &best_dir)?;
            }
        }
        let done = epoch + 1;
        if done % cfg.checkpoint_every == 0 || done == cfg.epochs || done == end {
            save_encoder(&model, &cfg, &last_dir)?;
            opt.save_moments(&last_dir.join("optimizer.safetensors"))?;
            let state = TrainState {
                epochs_done: done,
                optimizer_steps: opt.step_count(),
                best,
            };
            write_json(&last_dir.join("state.json"), &state)?;
        }
    }
    bar.finish_and_clear();
    Ok(TrainOutcome {
        model,
        log,
        last_dir,
        best: best.map(|b| (b, best_dir)),
    })
}

/// The trainable variables with their names, sorted by name (a stable order for the
/// optimiser's saved state).
fn named_trainable_vars(model: &EncoderModel) -> Vec<(String, candle_core::Var)> {
    let trainable: Vec<_> = model
        .trainable_vars()
        .iter()
        .map(|v| v.as_tensor().id())
        .collect();
    let data = model.varmap().data().lock().expect("varmap lock");
    let mut named: Vec<(String, candle_core::Var)> = data
        .iter()
        .filter(|(_, v)| trainable.contains(&v.as_tensor().id()))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

type ResumePoint = (EncoderModel, TrainState, Vec<EpochLog>);

/// The checkpoint to continue from, when resuming and one exists.
fn resume_point(
    cfg: &ValidTrainConfig,
    options: &TrainOptions,
    device: &Device,
) -> Result<Option<ResumePoint>> {
    let out = &options.out_dir;
    let last = out.join("last");
    let state_path = last.join("state.json");
    if !options.resume {
        return Ok(None);
    }
    if !state_path.exists() {
        return Err(ContrastiveError::Resume {
            path: last,
            reason: "no checkpoint there (state.json missing)".into(),
        });
    }
    let saved: TrainConfig = read_json(&last.join("train_config.json"))?;
    if saved != **cfg {
        return Err(ContrastiveError::Resume {
            path: last,
            reason:
                "the checkpoint was trained with another configuration (compare train_config.json)"
                    .into(),
        });
    }
    let state: TrainState = read_json(&state_path)?;
    let model = EncoderModel::load(&last, device)?;
    let log_path = out.join("log.jsonl");
    let text = fs::read_to_string(&log_path).map_err(|e| io(&log_path, e))?;
    let mut log = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let entry: EpochLog = serde_json::from_str(line).map_err(|e| ContrastiveError::Resume {
            path: log_path.clone(),
            reason: format!("line {}: {e}", n + 1),
        })?;
        if entry.epoch <= state.epochs_done {
            log.push(entry);
        }
    }
    // Epochs logged after the checkpoint will be run again: drop them from the file.
    let mut f = fs::File::create(&log_path).map_err(|e| io(&log_path, e))?;
    for entry in &log {
        writeln!(
            f,
            "{}",
            serde_json::to_string(entry).expect("log entries serialise")
        )
        .map_err(|e| io(&log_path, e))?;
    }
    Ok(Some((model, state, log)))
}

fn save_encoder(model: &EncoderModel, cfg: &ValidTrainConfig, dir: &Path) -> Result<()> {
    model.save(dir)?;
    write_json(&dir.join("train_config.json"), &**cfg)
}

fn append_log(path: &Path, entry: &EpochLog) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| io(path, e))?;
    writeln!(
        f,
        "{}",
        serde_json::to_string(entry).expect("log entries serialise")
    )
    .map_err(|e| io(path, e))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("configs serialise");
    fs::write(path, text).map_err(|e| io(path, e))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).map_err(|e| io(path, e))?;
    serde_json::from_str(&text).map_err(|source| ContrastiveError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn io(path: &Path, source: std::io::Error) -> ContrastiveError {
    ContrastiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}
