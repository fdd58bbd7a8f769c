//! Finding the encoder in a folder a user names: a saved encoder, or a training run's output.

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::error::{GcnError, Result};
use crate::model::{EncoderModel, CONFIG_FILE};

/// The folder holding the encoder that `dir` names: `dir` itself when it holds a saved encoder
/// (`encoder.json`), else the training output's `best/` (the best-validated epoch), else its
/// `last/` (the latest checkpoint).
pub fn encoder_dir(dir: &Path) -> Result<PathBuf> {
    [dir.to_path_buf(), dir.join("best"), dir.join("last")]
        .into_iter()
        .find(|d| d.join(CONFIG_FILE).is_file())
        .ok_or_else(|| GcnError::NoEncoder {
            path: dir.to_path_buf(),
        })
}

impl EncoderModel {
    /// Loads the encoder that `dir` names ([`encoder_dir`]): a saved encoder folder or a
    /// training output folder (its `best/`, else `last/`).
    pub fn load_from(dir: &Path, device: &Device) -> Result<Self> {
        EncoderModel::load(&encoder_dir(dir)?, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EncoderConfig;

    #[test]
    fn prefers_the_folder_then_best_then_last() {
        let root = std::env::temp_dir().join(format!("haad-gcn-folder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        assert!(matches!(
            encoder_dir(&root),
            Err(GcnError::NoEncoder { .. })
        ));
        let cfg = EncoderConfig {
            joints: 3,
            hidden: 4,
            blocks: 0,
            ..Default::default()
        };
        let model = EncoderModel::new(&cfg, 0, &Device::Cpu).unwrap();
        model.save(&root.join("last")).unwrap();
        assert_eq!(encoder_dir(&root).unwrap(), root.join("last"));
        model.save(&root.join("best")).unwrap();
        assert_eq!(encoder_dir(&root).unwrap(), root.join("best"));
        assert_eq!(encoder_dir(&root.join("last")).unwrap(), root.join("last"));
        let loaded = EncoderModel::load_from(&root, &Device::Cpu).unwrap();
        assert_eq!(loaded.config(), model.config());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
