//! The training loop: one encoder for all seen categories, trained with the multi-positive loss
//! on batches of two clips per category (plus generated variants when an augmenter is given).
//!
//! Output folder layout (`TrainOptions::out_dir`), the one of `haad_train::TrainDir`:
//! - `config.json`: the full [`TrainConfig`];
//! - `log.jsonl`: one [`EpochLog`] per line;
//! - `last/`: the latest checkpoint, replaced whole: `encoder.safetensors` + `encoder.json`
//!   (loadable with `EncoderModel::load`), `train_config.json`, `optimizer.safetensors`,
//!   `state.json`;
//! - `best/`: with validation, the encoder of the epoch with the best validation score
//!   (also replaced whole).
//!
//! Resuming needs a checkpoint in `last/` (none is an error) of the same configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use haad_gcn::{batch_tensor, EncoderModel};
use haad_motion::atomic::{self, Disk, Storage};
use haad_motion::preprocess::prepare;
use haad_motion::split::{BatchSampler, Split};
use haad_motion::{Augmenter, Dataset, Motion, NoProgress, Progress};
use haad_train::{epoch_seed, read_json, Adam, AdamParams, TrainDir, TrainState};
use rand::{rngs::StdRng, SeedableRng};

use candle_nn::ModuleT;

use crate::config::{TrainConfig, ValidTrainConfig};
use crate::error::{ContrastiveError, Result};
use crate::loss::{multi_positive_loss, scalar};

pub use haad_train::{BestEpoch, EpochLog};

/// Where and how to train.
#[derive(Clone)]
pub struct TrainOptions {
    /// The output folder (created).
    pub out_dir: PathBuf,
    /// Continue from the checkpoint in `out_dir/last`, which must exist and be of the same
    /// configuration; `false` starts afresh (removing an earlier `last/` and `best/`).
    pub resume: bool,
    /// Where progress goes: one unit per optimiser step.
    pub progress: Arc<dyn Progress>,
    /// Stop (with a checkpoint) once this many epochs are done, as an interruption would;
    /// a later call with `resume` continues the same run. `None` trains to the end.
    pub stop_after_epoch: Option<usize>,
    /// Through what checkpoints and logs are written: the real disk, or a fault injector
    /// (`haad_motion::atomic::FailAfter`) in tests.
    pub storage: Arc<dyn Storage>,
}

impl std::fmt::Debug for TrainOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainOptions")
            .field("out_dir", &self.out_dir)
            .field("resume", &self.resume)
            .field("stop_after_epoch", &self.stop_after_epoch)
            .finish_non_exhaustive()
    }
}

impl TrainOptions {
    /// Train into `out_dir` from scratch, without progress reports, to the end, on the real
    /// disk.
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        Self {
            out_dir: out_dir.into(),
            resume: false,
            progress: Arc::new(NoProgress),
            stop_after_epoch: None,
            storage: Arc::new(Disk),
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

    let dir = TrainDir::with_storage(&options.out_dir, options.storage.clone())?;
    let last_dir = dir.last();
    let best_dir = options.out_dir.join(BEST_DIR);

    // Fresh start or resume.
    let (model, state, mut log) = if options.resume {
        let (state, log) = dir.resume()?;
        let saved: TrainConfig = read_json(&last_dir.join(TRAIN_CONFIG_FILE))?;
        if saved != *cfg {
            return Err(ContrastiveError::Resume {
                path: last_dir,
                reason:
                    "the checkpoint was trained with another configuration (compare train_config.json)"
                        .into(),
            });
        }
        (EncoderModel::load(&last_dir, device)?, state, log)
    } else {
        dir.start_fresh(&[BEST_DIR])?;
        dir.write_json("config.json", &*cfg)?;
        let model = EncoderModel::new(&cfg.encoder, cfg.seed, device)?;
        let state = TrainState {
            epochs_done: 0,
            optimizer_steps: 0,
            seed: cfg.seed,
            best: None,
        };
        (model, state, Vec::new())
    };
    let named = named_trainable_vars(&model);
    let mut opt = Adam::new(
        named,
        AdamParams::new(
            cfg.optimizer,
            cfg.learning_rate_at(state.epochs_done),
            cfg.weight_decay,
        ),
    )?;
    if options.resume {
        opt.load_state(&last_dir.join(haad_train::OPTIMIZER_FILE))?;
        if opt.step_count() != state.optimizer_steps {
            return Err(ContrastiveError::Resume {
                path: last_dir,
                reason: format!(
                    "the optimiser has taken {} steps, state.json says {}",
                    opt.step_count(),
                    state.optimizer_steps
                ),
            });
        }
    }
    let mut best = state.best;

    let progress = &*options.progress;
    progress.start(
        (cfg.epochs * steps_per_epoch) as u64,
        (state.epochs_done * steps_per_epoch) as u64,
    );

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
                let indices: Vec<usize> = batch.iter().map(|&(i, _)| i).collect();
                let raw = dataset.motions_at(&indices);
                let variants = aug.augment(&raw, cfg.variants_per_clip, &mut rng)?;
                for (k, v) in variants.iter().enumerate() {
                    clips.push(prepare(v, frames, root)?);
                    labels.push(batch[k / cfg.variants_per_clip.max(1)].1);
                }
            }
            let xs = batch_tensor(&clips, device)?;
            let l = {
                let emb = model.encoder().forward_t(&xs, true)?;
                let loss = multi_positive_loss(&emb, &labels, cfg.temperature)?;
                opt.step(&loss.backward()?)?;
                scalar(&loss)?
            };
            if !l.is_finite() {
                return Err(ContrastiveError::NonFiniteLoss {
                    epoch: epoch + 1,
                    value: l,
                });
            }
            loss_sum += l;
            progress.advance(1);
            progress.message(&format!(
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
        dir.append_log(&entry)?;
        log.push(entry);
        if let Some(score) = validation_score {
            if best.is_none_or(|b| score > b.score) {
                best = Some(BestEpoch {
                    epoch: epoch + 1,
                    score,
                });
                atomic::replace_dir_on(dir.storage(), &best_dir, |d| {
                    save_encoder(&model, &cfg, d)
                })?;
            }
        }
        let done = epoch + 1;
        if done % cfg.checkpoint_every == 0 || done == cfg.epochs || done == end {
            let state = TrainState {
                epochs_done: done,
                optimizer_steps: opt.step_count(),
                seed: cfg.seed,
                best,
            };
            dir.save_checkpoint(&state, &opt, |d| save_encoder(&model, &cfg, d))?;
        }
    }
    progress.finish();
    Ok(TrainOutcome {
        model,
        log,
        last_dir,
        best: best.map(|b| (b, best_dir)),
    })
}

/// The folder of the best validation epoch's encoder.
const BEST_DIR: &str = "best";
/// The training configuration beside each saved encoder.
const TRAIN_CONFIG_FILE: &str = "train_config.json";

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

fn save_encoder(model: &EncoderModel, cfg: &ValidTrainConfig, dir: &Path) -> Result<()> {
    model.save(dir)?;
    let path = dir.join(TRAIN_CONFIG_FILE);
    let text = serde_json::to_string_pretty(&**cfg).map_err(|source| ContrastiveError::Json {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&path, text).map_err(|source| ContrastiveError::Io { path, source })
}
