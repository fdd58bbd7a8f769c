//! [`TrainConfig`]: every hyper-parameter of encoder training, with the reference code's values
//! as defaults, and its check into a [`ValidTrainConfig`].

use std::ops::Deref;

use haad_gcn::EncoderConfig;
use haad_motion::split::DEFAULT_TRAIN_FRACTION;
use serde::{Deserialize, Serialize};

use crate::error::{ContrastiveError, Result};
use haad_train::{LinearDecay, OptimizerKind};

/// Hyper-parameters of contrastive encoder training. Saved as JSON beside every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The encoder. Its `joints` is set from the training data by [`crate::train`].
    pub encoder: EncoderConfig,
    /// Number of epochs (default 100). An epoch is enough steps to see every training clip of
    /// the seen categories about once.
    pub epochs: usize,
    /// Adam or AdamW (default AdamW, as the reference code; the paper's text says Adam).
    pub optimizer: OptimizerKind,
    /// Learning rate of the first epoch (default 1e-3).
    pub learning_rate: f64,
    /// Learning rate of the last epoch (default 1e-5); it decays linearly over the epochs.
    pub final_learning_rate: f64,
    /// Weight decay (default 1e-3).
    pub weight_decay: f64,
    /// Temperature tau of the loss (default 1).
    pub temperature: f64,
    /// Real clips of every seen category in a batch (the method's 2).
    pub clips_per_category: usize,
    /// Generated variants of every real clip in a batch (A, default 3), used only when the
    /// trainer is given an augmenter.
    pub variants_per_clip: usize,
    /// Share of each category's clips (first in path order) used for training (default 0.8).
    pub train_fraction: f64,
    /// Categories kept out of training entirely (by name).
    pub unseen: Vec<String>,
    /// Share of each seen category's training clips held out to pick the best epoch
    /// (0 = no validation, the default).
    pub validation_fraction: f64,
    /// Write a checkpoint every this many epochs (and always after the last).
    pub checkpoint_every: usize,
    /// Seed of every random choice: weights, batches, augmentation.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            encoder: EncoderConfig::default(),
            epochs: 100,
            optimizer: OptimizerKind::AdamW,
            learning_rate: 1e-3,
            final_learning_rate: 1e-5,
            weight_decay: 1e-3,
            temperature: 1.0,
            clips_per_category: 2,
            variants_per_clip: 3,
            train_fraction: DEFAULT_TRAIN_FRACTION,
            unseen: Vec::new(),
            validation_fraction: 0.0,
            checkpoint_every: 10,
            seed: 0,
        }
    }
}

/// A [`TrainConfig`] whose every value has been checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidTrainConfig(TrainConfig);

impl Deref for ValidTrainConfig {
    type Target = TrainConfig;
    fn deref(&self) -> &TrainConfig {
        &self.0
    }
}

impl TrainConfig {
    /// Checks every value; the error names the first field at fault.
    pub fn check(&self) -> Result<ValidTrainConfig> {
        let bad = |field: &'static str, rule: String| Err(ContrastiveError::Config { field, rule });
        self.encoder.check()?;
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1, is 0".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(
                "learning_rate",
                format!("must be positive, got {}", self.learning_rate),
            );
        }
        if !(self.final_learning_rate.is_finite()
            && self.final_learning_rate > 0.0
            && self.final_learning_rate <= self.learning_rate)
        {
            return bad(
                "final_learning_rate",
                format!(
                    "must lie in (0, learning_rate = {}], got {}",
                    self.learning_rate, self.final_learning_rate
                ),
            );
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "weight_decay",
                format!("must be >= 0, got {}", self.weight_decay),
            );
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad(
                "temperature",
                format!("must be positive, got {}", self.temperature),
            );
        }
        if self.clips_per_category < 2 {
            return bad(
                "clips_per_category",
                format!(
                    "must be at least 2 (clips of a category are each other's positives), got {}",
                    self.clips_per_category
                ),
            );
        }
        if !(self.train_fraction > 0.0 && self.train_fraction < 1.0) {
            return bad(
                "train_fraction",
                format!("must lie in (0, 1), got {}", self.train_fraction),
            );
        }
        if !(self.validation_fraction >= 0.0 && self.validation_fraction < 1.0) {
            return bad(
                "validation_fraction",
                format!("must lie in [0, 1), got {}", self.validation_fraction),
            );
        }
        if self.checkpoint_every == 0 {
            return bad("checkpoint_every", "must be at least 1, is 0".into());
        }
        for (i, name) in self.unseen.iter().enumerate() {
            if self.unseen[..i].contains(name) {
                return bad("unseen", format!("category {name:?} is listed twice"));
            }
        }
        Ok(ValidTrainConfig(self.clone()))
    }
}

impl ValidTrainConfig {
    /// The learning rate of epoch `e` (0-based): linear from `learning_rate` to
    /// `final_learning_rate`.
    pub fn learning_rate_at(&self, epoch: usize) -> f64 {
        self.schedule().at(epoch)
    }

    /// The learning-rate schedule: `learning_rate` decaying linearly to `final_learning_rate`
    /// over the epochs.
    pub fn schedule(&self) -> LinearDecay {
        LinearDecay {
            start: self.learning_rate,
            end: self.final_learning_rate,
            epochs: self.epochs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejects(f: impl FnOnce(&mut TrainConfig), expected: &str) {
        let mut c = TrainConfig::default();
        f(&mut c);
        match c.check() {
            Err(ContrastiveError::Config { field, .. }) => assert_eq!(field, expected),
            Err(ContrastiveError::Gcn(haad_gcn::GcnError::Config { field, .. })) => {
                assert_eq!(field, expected)
            }
            other => panic!("expected a config error on {expected:?}, got {other:?}"),
        }
    }

    #[test]
    fn default_is_valid() {
        let c = TrainConfig::default().check().unwrap();
        assert_eq!(c.epochs, 100);
        assert!((c.learning_rate_at(0) - 1e-3).abs() < 1e-15);
        assert!((c.learning_rate_at(99) - 1e-5).abs() < 1e-15);
        assert!((c.learning_rate_at(33) - (1e-3 + (1e-5 - 1e-3) / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn rejects_zero_epochs() {
        rejects(|c| c.epochs = 0, "epochs");
    }
    #[test]
    fn rejects_bad_learning_rate() {
        rejects(|c| c.learning_rate = 0.0, "learning_rate");
    }
    #[test]
    fn rejects_final_rate_above_start() {
        rejects(|c| c.final_learning_rate = 1.0, "final_learning_rate");
    }
    #[test]
    fn rejects_negative_weight_decay() {
        rejects(|c| c.weight_decay = -1.0, "weight_decay");
    }
    #[test]
    fn rejects_zero_temperature() {
        rejects(|c| c.temperature = 0.0, "temperature");
    }
    #[test]
    fn rejects_single_clip_batches() {
        rejects(|c| c.clips_per_category = 1, "clips_per_category");
    }
    #[test]
    fn rejects_bad_train_fraction() {
        rejects(|c| c.train_fraction = 1.0, "train_fraction");
    }
    #[test]
    fn rejects_bad_validation_fraction() {
        rejects(|c| c.validation_fraction = 1.0, "validation_fraction");
    }
    #[test]
    fn rejects_zero_checkpoint_interval() {
        rejects(|c| c.checkpoint_every = 0, "checkpoint_every");
    }
    #[test]
    fn rejects_duplicate_unseen() {
        rejects(|c| c.unseen = vec!["a".into(), "a".into()], "unseen");
    }
    #[test]
    fn rejects_bad_encoder() {
        rejects(|c| c.encoder.hidden = 0, "hidden");
    }
    #[test]
    fn round_trips_through_json() {
        let c = TrainConfig {
            unseen: vec!["x".into()],
            temperature: 0.1,
            ..Default::default()
        };
        let back: TrainConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let partial: TrainConfig = serde_json::from_str(r#"{"epochs": 5}"#).unwrap();
        assert_eq!(partial.epochs, 5);
        assert_eq!(partial.temperature, 1.0);
    }
}
