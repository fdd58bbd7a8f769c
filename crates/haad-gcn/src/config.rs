//! The encoder's hyper-parameters: [`EncoderConfig`], checked into a [`ValidEncoderConfig`].

use std::ops::Deref;

use haad_motion::limits;
use serde::{Deserialize, Serialize};

use crate::error::{GcnError, Result};

/// How the encoder's last feature map `[B, J, F]` becomes one embedding per clip.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Maximum over the feature dimension: one value per joint, a `J`-dim embedding.
    ///
    /// This is what the method's reference code does (`torch.max(y, dim=2)` on `[B, J, F]`), so
    /// it is what produced the paper's numbers; it is therefore the default.
    #[default]
    MaxOverFeatures,
    /// Maximum over the node (joint) dimension: one value per feature, an `F`-dim embedding.
    ///
    /// This is what the paper's text describes ("max pooling over the nodes").
    MaxOverJoints,
}

/// Which feature map is pooled into the embedding.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingLayer {
    /// The encoder's output: `GC(hidden -> 3K)` plus the global residual (the DCT input),
    /// `[B, J, 3K]` (width 30 with the defaults).
    #[default]
    Output,
    /// The last residual block's output, `[B, J, hidden]` (width 128 with the defaults). The
    /// output layer `gc7` is then not built (it would receive no gradient).
    Hidden,
}

/// Hyper-parameters of the Res-GCN encoder. `Default` gives the paper's values (with `J = 20`,
/// MSR Action3D's joint count: set `joints` from the data).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EncoderConfig {
    /// `J`, the number of joints (graph nodes) of the skeleton; comes from the data.
    pub joints: usize,
    /// `T`, the number of frames of a prepared clip (paper: 60).
    pub frames: usize,
    /// `K`, the number of DCT coefficients kept per coordinate (paper: 10); each joint's input
    /// feature vector has `3K` entries.
    pub dct_coefficients: usize,
    /// The hidden width `F` of the graph convolutions (paper: 128).
    pub hidden: usize,
    /// The number of residual blocks (paper: 4). Zero is allowed: the input layer then feeds
    /// the output layer directly (and [`EmbeddingLayer::Hidden`] pools the input layer's output).
    pub blocks: usize,
    /// Dropout probability after every `tanh` in training mode, in `[0, 1)` (paper: 0).
    pub dropout: f32,
    /// How the last feature map is pooled into an embedding.
    pub pooling: Pooling,
    /// Which feature map is pooled.
    pub embedding: EmbeddingLayer,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            joints: 20,
            frames: haad_motion::preprocess::DEFAULT_FRAMES,
            dct_coefficients: 10,
            hidden: 128,
            blocks: 4,
            dropout: 0.0,
            pooling: Pooling::MaxOverFeatures,
            embedding: EmbeddingLayer::Output,
        }
    }
}

fn reject(field: &'static str, rule: String) -> Result<ValidEncoderConfig> {
    Err(GcnError::Config { field, rule })
}

impl EncoderConfig {
    /// Checks every rule and returns the config as a [`ValidEncoderConfig`].
    ///
    /// Rules: `joints`, `frames`, `dct_coefficients` and `hidden` are at least 1; `joints`,
    /// `frames`, `hidden` and `blocks` are within [`haad_motion::limits`];
    /// `dct_coefficients <= frames`; `dropout` is finite and in `[0, 1)`. `blocks = 0` is valid.
    pub fn check(&self) -> Result<ValidEncoderConfig> {
        if self.joints == 0 {
            return reject("joints", "must be at least 1, got 0".into());
        }
        if let Err(m) = limits::check("joints", self.joints, limits::MAX_JOINTS) {
            return reject("joints", m);
        }
        if self.frames == 0 {
            return reject("frames", "must be at least 1, got 0".into());
        }
        if let Err(m) = limits::check("frames", self.frames, limits::MAX_CLIP_FRAMES) {
            return reject("frames", m);
        }
        if self.dct_coefficients == 0 {
            return reject("dct_coefficients", "must be at least 1, got 0".into());
        }
        if self.dct_coefficients > self.frames {
            return reject(
                "dct_coefficients",
                format!(
                    "must be at most frames = {}, got {}",
                    self.frames, self.dct_coefficients
                ),
            );
        }
        if self.hidden == 0 {
            return reject("hidden", "must be at least 1, got 0".into());
        }
        if let Err(m) = limits::check("hidden", self.hidden, limits::MAX_WIDTH) {
            return reject("hidden", m);
        }
        if let Err(m) = limits::check("blocks", self.blocks, limits::MAX_LAYERS) {
            return reject("blocks", m);
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return reject(
                "dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            );
        }
        Ok(ValidEncoderConfig(self.clone()))
    }

    /// Input features per joint, `3K`.
    pub fn input_features(&self) -> usize {
        3 * self.dct_coefficients
    }

    /// The width `E` of the embedding: `J` for [`Pooling::MaxOverFeatures`]; for
    /// [`Pooling::MaxOverJoints`] `3K` ([`EmbeddingLayer::Output`]) or `hidden`
    /// ([`EmbeddingLayer::Hidden`]).
    pub fn embedding_dim(&self) -> usize {
        match (&self.pooling, self.embedding) {
            (Pooling::MaxOverFeatures, _) => self.joints,
            (Pooling::MaxOverJoints, EmbeddingLayer::Output) => self.input_features(),
            (Pooling::MaxOverJoints, EmbeddingLayer::Hidden) => self.hidden,
        }
    }
}

/// An [`EncoderConfig`] that passed [`EncoderConfig::check`]; dereferences to it.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidEncoderConfig(EncoderConfig);

impl Deref for ValidEncoderConfig {
    type Target = EncoderConfig;
    fn deref(&self) -> &EncoderConfig {
        &self.0
    }
}

impl ValidEncoderConfig {
    /// The checked config.
    pub fn config(&self) -> &EncoderConfig {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(c: EncoderConfig) -> &'static str {
        match c.check() {
            Err(GcnError::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn default_is_the_paper_and_valid() {
        let c = EncoderConfig::default();
        assert_eq!(
            (c.frames, c.dct_coefficients, c.hidden, c.blocks),
            (60, 10, 128, 4)
        );
        assert_eq!(c.dropout, 0.0);
        assert_eq!(c.pooling, Pooling::MaxOverFeatures);
        assert!(c.check().is_ok());
    }

    #[test]
    fn rejects_zero_joints() {
        let c = EncoderConfig {
            joints: 0,
            ..Default::default()
        };
        assert_eq!(field_of(c), "joints");
    }

    #[test]
    fn rejects_zero_frames() {
        let c = EncoderConfig {
            frames: 0,
            ..Default::default()
        };
        assert_eq!(field_of(c), "frames");
    }

    #[test]
    fn rejects_zero_coefficients() {
        let c = EncoderConfig {
            dct_coefficients: 0,
            ..Default::default()
        };
        assert_eq!(field_of(c), "dct_coefficients");
    }

    #[test]
    fn rejects_more_coefficients_than_frames() {
        let c = EncoderConfig {
            frames: 8,
            dct_coefficients: 9,
            ..Default::default()
        };
        assert_eq!(field_of(c), "dct_coefficients");
        let ok = EncoderConfig {
            frames: 8,
            dct_coefficients: 8,
            ..Default::default()
        };
        assert!(ok.check().is_ok());
    }

    #[test]
    fn rejects_sizes_above_the_limits() {
        let c = EncoderConfig {
            joints: limits::MAX_JOINTS + 1,
            ..Default::default()
        };
        assert_eq!(field_of(c), "joints");
        let c = EncoderConfig {
            frames: limits::MAX_CLIP_FRAMES + 1,
            ..Default::default()
        };
        assert_eq!(field_of(c), "frames");
        let c = EncoderConfig {
            hidden: limits::MAX_WIDTH + 1,
            ..Default::default()
        };
        assert_eq!(field_of(c), "hidden");
        let c = EncoderConfig {
            blocks: limits::MAX_LAYERS + 1,
            ..Default::default()
        };
        assert_eq!(field_of(c), "blocks");
    }

    #[test]
    fn rejects_unknown_fields() {
        let err = serde_json::from_str::<EncoderConfig>(r#"{"joints": 22, "hiden": 3}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("hiden"), "{err}");
    }

    #[test]
    fn rejects_zero_hidden() {
        let c = EncoderConfig {
            hidden: 0,
            ..Default::default()
        };
        assert_eq!(field_of(c), "hidden");
    }

    #[test]
    fn rejects_dropout_outside_unit_interval() {
        for p in [-0.1, 1.0, 1.5, f32::NAN] {
            let c = EncoderConfig {
                dropout: p,
                ..Default::default()
            };
            assert_eq!(field_of(c), "dropout", "dropout {p}");
        }
        let ok = EncoderConfig {
            dropout: 0.5,
            ..Default::default()
        };
        assert!(ok.check().is_ok());
    }

    #[test]
    fn zero_blocks_is_allowed() {
        let c = EncoderConfig {
            blocks: 0,
            ..Default::default()
        };
        assert!(c.check().is_ok());
    }

    #[test]
    fn embedding_dims() {
        let mut c = EncoderConfig {
            joints: 22,
            ..Default::default()
        };
        assert_eq!(c.embedding_dim(), 22);
        c.pooling = Pooling::MaxOverJoints;
        assert_eq!(c.embedding_dim(), 30);
        c.embedding = EmbeddingLayer::Hidden;
        assert_eq!(c.embedding_dim(), 128);
    }

    #[test]
    fn json_round_trip_and_defaults() {
        let c = EncoderConfig {
            joints: 24,
            pooling: Pooling::MaxOverJoints,
            embedding: EmbeddingLayer::Hidden,
            ..Default::default()
        };
        let s = serde_json::to_string(&c).unwrap();
        assert!(
            s.contains("\"max_over_joints\"") && s.contains("\"hidden\""),
            "{s}"
        );
        assert_eq!(serde_json::from_str::<EncoderConfig>(&s).unwrap(), c);
        let partial: EncoderConfig = serde_json::from_str(r#"{"joints": 22}"#).unwrap();
        assert_eq!(
            partial,
            EncoderConfig {
                joints: 22,
                ..Default::default()
            }
        );
    }
}
