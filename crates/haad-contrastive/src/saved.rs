//! A trained encoder read back with the configuration it was trained with.

use std::path::Path;

use candle_core::Device;
use haad_gcn::{encoder_dir, EncoderModel};

use crate::config::{TrainConfig, ValidTrainConfig};
use crate::error::{ContrastiveError, Result};

/// The file beside a trained encoder's weights that holds its [`TrainConfig`].
pub const TRAIN_CONFIG_FILE: &str = "train_config.json";

/// An encoder saved by [`crate::train`] and the checked configuration it was trained with
/// (which categories were unseen, the temperature, ...).
#[derive(Debug)]
pub struct TrainedEncoder {
    /// The encoder.
    pub model: EncoderModel,
    /// Its training configuration.
    pub config: ValidTrainConfig,
}

impl TrainedEncoder {
    /// Loads the encoder that `dir` names (an encoder folder holding `train_config.json`, or a
    /// training output folder: its `best/`, else `last/`; [`encoder_dir`]) onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let dir = encoder_dir(dir)?;
        let path = dir.join(TRAIN_CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ContrastiveError::Io {
            path: path.clone(),
            source,
        })?;
        let config: TrainConfig =
            serde_json::from_str(&text).map_err(|source| ContrastiveError::Json {
                path: path.clone(),
                source,
            })?;
        let model = EncoderModel::load(&dir, device)?;
        if config.encoder != **model.config() {
            return Err(ContrastiveError::Resume {
                path: dir,
                reason: format!(
                    "{TRAIN_CONFIG_FILE} describes another encoder than {}",
                    haad_gcn::model::CONFIG_FILE
                ),
            });
        }
        Ok(Self {
            model,
            config: config.check()?,
        })
    }
}
