//! The one checkpoint layout, resume rule, state and log of every haad trainer.
//!
//! A training folder `OUT` holds:
//! - `log.jsonl`: one [`EpochLog`] a line, appended after every epoch;
//! - `last/`: the latest checkpoint, always replaced whole ([`haad_motion::atomic::replace_dir`]):
//!   `state.json` ([`TrainState`]), `optimizer.safetensors` ([`Adam::save_state`]) and the
//!   trainer's model files;
//! - whatever else the trainer keeps there (its configuration, a `best/` model).
//!
//! Resume rule (both trainers): resuming needs a checkpoint; without `last/state.json` it is an
//! error ([`TrainError::Resume`]), never a silent fresh start. A resumed run continues from
//! the checkpoint's epoch, with the optimiser's moments and step count, and `log.jsonl` is
//! trimmed to the checkpoint's epochs (a line cut short by a crash is dropped). A fresh start
//! removes an earlier `last/` and empties the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use haad_motion::atomic::{self, Disk, Storage};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{io, Result, TrainError};
use crate::optim::Adam;

/// The checkpoint folder inside a training folder.
pub const LAST_DIR: &str = "last";
/// The trainer's progress inside a checkpoint.
pub const STATE_FILE: &str = "state.json";
/// The optimiser's moments and step count inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The per-epoch log inside a training folder.
pub const LOG_FILE: &str = "log.jsonl";

/// Seed of epoch `e`'s random draws (batches, noise, augmentation): depends only on the run's
/// seed and `e`, so a run resumed at an epoch boundary draws exactly what the uninterrupted one
/// would have. The one seed rule of every trainer.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((epoch as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// The best validation epoch so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BestEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Its validation score.
    pub score: f64,
}

/// How far a run got (`last/state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimiser steps completed.
    pub optimizer_steps: usize,
    /// The seed the run was started with.
    pub seed: u64,
    /// The best validation epoch, when validating.
    pub best: Option<BestEpoch>,
}

/// One line of `log.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// A training folder: where checkpoints and the log go, and through which [`Storage`].
#[derive(Clone)]
pub struct TrainDir {
    out: PathBuf,
    storage: Arc<dyn Storage>,
}

impl std::fmt::Debug for TrainDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainDir").field("out", &self.out).finish()
    }
}

impl TrainDir {
    /// The training folder `out` (created) on the real disk.
    pub fn new(out: &Path) -> Result<Self> {
        Self::with_storage(out, Arc::new(Disk))
    }

    /// The training folder `out` (created), written through `storage`.
    pub fn with_storage(out: &Path, storage: Arc<dyn Storage>) -> Result<Self> {
        std::fs::create_dir_all(out).map_err(io(out))?;
        Ok(Self {
            out: out.to_path_buf(),
            storage,
        })
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.out
    }

    /// The checkpoint folder `OUT/last`.
    pub fn last(&self) -> PathBuf {
        self.out.join(LAST_DIR)
    }

    /// The log `OUT/log.jsonl`.
    pub fn log_path(&self) -> PathBuf {
        self.out.join(LOG_FILE)
    }

    /// The storage writes go through.
    pub fn storage(&self) -> &dyn Storage {
        &*self.storage
    }

    /// Writes `OUT/name` (JSON, pretty) whole or not at all.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let path = self.out.join(name);
        let text = serde_json::to_string_pretty(value).map_err(|source| TrainError::Json {
            path: path.clone(),
            source,
        })?;
        Ok(atomic::write_file_on(
            &*self.storage,
            &path,
            text.as_bytes(),
        )?)
    }

    /// A fresh start: removes an earlier checkpoint (and `extra` folders, e.g. `best`) and
    /// empties the log.
    pub fn start_fresh(&self, extra: &[&str]) -> Result<()> {
        atomic::recover_dir(&self.last())?;
        for name in std::iter::once(LAST_DIR).chain(extra.iter().copied()) {
            let dir = self.out.join(name);
            atomic::recover_dir(&dir)?;
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            }
        }
        Ok(atomic::write_file_on(
            &*self.storage,
            &self.log_path(),
            b"",
        )?)
    }

    /// Appends an epoch to the log.
    pub fn append_log(&self, entry: &EpochLog) -> Result<()> {
        let line = serde_json::to_string(entry).map_err(|source| TrainError::Json {
            path: self.log_path(),
            source,
        })?;
        Ok(atomic::append_line(
            &*self.storage,
            &self.log_path(),
            &line,
        )?)
    }

    /// Replaces the checkpoint whole: `fill` writes the trainer's model files into the staging
    /// folder it is given; the state and the optimiser go beside them.
    pub fn save_checkpoint<E>(
        &self,
        state: &TrainState,
        opt: &Adam,
        fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E>
    where
        E: From<TrainError> + From<haad_motion::MotionError>,
    {
        atomic::replace_dir_on(&*self.storage, &self.last(), |dir| {
            fill(dir)?;
            opt.save_state(&dir.join(OPTIMIZER_FILE))?;
            let path = dir.join(STATE_FILE);
            let text = serde_json::to_string_pretty(state).map_err(|source| TrainError::Json {
                path: path.clone(),
                source,
            })?;
            std::fs::write(&path, text).map_err(io(&path))?;
            Ok(())
        })
    }

    /// The checkpoint to resume from (the resume rule in the module docs): repairs an
    /// interrupted swap, reads the state, and trims the log to the checkpoint's epochs,
    /// returning them. Errors when there is no checkpoint.
    pub fn resume(&self) -> Result<(TrainState, Vec<EpochLog>)> {
        let last = self.last();
        atomic::recover_dir(&last)?;
        let state_path = last.join(STATE_FILE);
        if !state_path.is_file() {
            return Err(TrainError::Resume {
                path: last,
                reason: format!("no checkpoint there ({STATE_FILE} missing)"),
            });
        }
        let state: TrainState = read_json(&state_path)?;
        let log_path = self.log_path();
        let text = std::fs::read_to_string(&log_path).map_err(io(&log_path))?;
        let mut log = Vec::with_capacity(state.epochs_done.min(1 << 16));
        for (n, line) in atomic::complete_lines(&text).enumerate() {
            if log.len() == state.epochs_done {
                break;
            }
            let entry: EpochLog = serde_json::from_str(line).map_err(|e| TrainError::Resume {
                path: log_path.clone(),
                reason: format!("line {}: {e}", n + 1),
            })?;
            if entry.epoch != n + 1 {
                return Err(TrainError::Resume {
                    path: log_path.clone(),
                    reason: format!(
                        "line {} logs epoch {}, expected {}",
                        n + 1,
                        entry.epoch,
                        n + 1
                    ),
                });
            }
            log.push(entry);
        }
        if log.len() != state.epochs_done {
            return Err(TrainError::Resume {
                path: log_path,
                reason: format!(
                    "the log has {} epochs, the checkpoint {}",
                    log.len(),
                    state.epochs_done
                ),
            });
        }
        // Epochs logged after the checkpoint will be run again: drop them from the file.
        let mut trimmed = String::new();
        for entry in &log {
            let line = serde_json::to_string(entry).map_err(|source| TrainError::Json {
                path: log_path.clone(),
                source,
            })?;
            trimmed.push_str(&line);
            trimmed.push('\n');
        }
        if trimmed != text {
            atomic::write_file_on(&*self.storage, &log_path, trimmed.as_bytes())?;
        }
        Ok((state, log))
    }
}

/// Reads a JSON file; errors name it.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{AdamParams, OptimizerKind};
    use candle_core::{Device, Tensor, Var};

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("haad-train-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn entry(epoch: usize) -> EpochLog {
        EpochLog {
            epoch,
            loss: 1.0 / epoch as f64,
            learning_rate: 1e-3,
            steps: 2,
            wall_seconds: 0.5,
            validation: None,
        }
    }

    fn state(epochs_done: usize) -> TrainState {
        TrainState {
            epochs_done,
            optimizer_steps: 2 * epochs_done,
            seed: 7,
            best: None,
        }
    }

    fn opt() -> Adam {
        let var = Var::from_tensor(&Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap()).unwrap();
        Adam::new(
            vec![("w".into(), var)],
            AdamParams::new(OptimizerKind::AdamW, 0.1, 0.0),
        )
        .unwrap()
    }

    #[test]
    fn resume_without_checkpoint_is_an_error() {
        let d = tmp("none");
        let t = TrainDir::new(&d).unwrap();
        t.start_fresh(&[]).unwrap();
        assert!(matches!(t.resume(), Err(TrainError::Resume { .. })));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn resume_trims_the_log_and_drops_a_torn_line() {
        let d = tmp("trim");
        let t = TrainDir::new(&d).unwrap();
        t.start_fresh(&[]).unwrap();
        for e in 1..=3 {
            t.append_log(&entry(e)).unwrap();
        }
        t.save_checkpoint::<TrainError>(&state(2), &opt(), |_| Ok(()))
            .unwrap();
        // A fourth line cut short by a crash.
        let mut text = std::fs::read_to_string(t.log_path()).unwrap();
        text.push_str("{\"epoch\": 4, \"lo");
        std::fs::write(t.log_path(), &text).unwrap();
        let (s, log) = t.resume().unwrap();
        assert_eq!(s, state(2));
        assert_eq!(log, vec![entry(1), entry(2)]);
        let back = std::fs::read_to_string(t.log_path()).unwrap();
        assert_eq!(back.lines().count(), 2);
        // A log shorter than the checkpoint is refused.
        std::fs::write(t.log_path(), back.lines().next().unwrap()).unwrap();
        let err = t.resume().unwrap_err();
        assert!(matches!(err, TrainError::Resume { .. }), "{err}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn state_refuses_unknown_fields_and_seed_rule_is_stable() {
        let json = r#"{"epochs_done": 1, "optimizer_steps": 2, "seed": 0, "best": null, "x": 1}"#;
        assert!(serde_json::from_str::<TrainState>(json).is_err());
        // Fixed values: a change here breaks resuming runs started before it.
        assert_eq!(epoch_seed(0, 0), 0xD1B5_4A32_D192_ED03);
        assert_ne!(epoch_seed(1, 0), epoch_seed(0, 0));
        assert_ne!(epoch_seed(0, 1), epoch_seed(0, 0));
    }
}
