//! Saving and loading a [`Detector`] as a directory, so a service can score without the
//! training data.
//!
//! Layout of `DIR`:
//! - `detector.json`: format version, embedder kind and its settings, input spec
//!   (joints, root, min_frames), scoring rule, the support set's shape and row origins, and
//!   the decision threshold when calibrated (`calibration`, absent in older folders);
//! - `support.safetensors`: the support embeddings, tensor `embeddings`, f32 `[M, E]`;
//! - `encoder/` (encoder detectors only): the encoder as `EncoderModel::save` writes it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use haad_motion::limits::MAX_EMBEDDING_ABS;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::calibrate::Calibration;
use crate::detector::Detector;
use crate::embed::{Embedder, RawDctConfig};
use crate::error::{DetectError, Result};
use crate::input::InputSpec;
use crate::scoring::Scoring;
use crate::support::SupportSet;

/// Version of the saved layout.
pub const FORMAT_VERSION: u32 = 1;
/// The config file inside a detector directory.
pub const CONFIG_FILE: &str = "detector.json";
/// The support embeddings inside a detector directory.
pub const SUPPORT_FILE: &str = "support.safetensors";
/// The encoder's folder inside a detector directory (encoder detectors only).
pub const ENCODER_DIR: &str = "encoder";

/// Which embedder a saved detector uses, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EmbedderSpec {
    /// The raw-DCT baseline.
    RawDct(RawDctConfig),
    /// A learned encoder, saved in the folder `dir` (relative to the detector directory).
    Encoder {
        /// The encoder's folder, [`ENCODER_DIR`].
        dir: String,
    },
}

/// Shape and row origins of a saved support set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportMeta {
    /// M: embeddings (real and generated).
    pub rows: usize,
    /// E: embedding width.
    pub dim: usize,
    /// K: real clips (the first K rows).
    pub real: usize,
    /// For each row, the real clip it is or derives from.
    pub origin: Vec<usize>,
}

/// The content of `detector.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedConfig {
    /// [`FORMAT_VERSION`] at the time of saving.
    pub format_version: u32,
    /// The embedder.
    pub embedder: EmbedderSpec,
    /// Input checks and preprocessing.
    pub input: InputSpec,
    /// The scoring rule.
    pub scoring: Scoring,
    /// The support set's shape.
    pub support: SupportMeta,
    /// The decision threshold, if calibrated (missing in folders saved before thresholds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DetectError + '_ {
    move |source| DetectError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Detector {
    /// Writes the detector to `dir` whole or not at all: the new folder is built beside `dir`,
    /// flushed and swapped in ([`haad_motion::atomic::replace_dir`]), so an interruption leaves
    /// the previous detector or the new one. See the module docs for the layout. An existing
    /// `dir` that holds anything else than a saved detector is refused, never replaced.
    pub fn save(&self, dir: &Path) -> Result<()> {
        if dir.exists() {
            let entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
            for entry in entries {
                let name = entry.map_err(io_err(dir))?.file_name();
                if ![CONFIG_FILE, SUPPORT_FILE, ENCODER_DIR]
                    .iter()
                    .any(|k| name == *k)
                {
                    return Err(saved(
                        dir,
                        format!(
                            "holds {name:?}, which is not part of a saved detector: refusing to replace the folder"
                        ),
                    ));
                }
            }
        }
        haad_motion::atomic::replace_dir(dir, |staging| self.write_into(staging))
    }

    /// Writes the layout into the fresh folder `dir`.
    fn write_into(&self, dir: &Path) -> Result<()> {
        let embedder = match self.embedder() {
            Embedder::RawDct(e) => EmbedderSpec::RawDct(e.config()),
            Embedder::Encoder(m) => {
                m.save(&dir.join(ENCODER_DIR))?;
                EmbedderSpec::Encoder {
                    dir: ENCODER_DIR.to_string(),
                }
            }
        };
        let s = self.support();
        let config = SavedConfig {
            format_version: FORMAT_VERSION,
            embedder,
            input: self.input().clone(),
            scoring: self.scoring(),
            support: SupportMeta {
                rows: s.len(),
                dim: s.dim(),
                real: s.real(),
                origin: s.origin().to_vec(),
            },
            calibration: self.calibration().cloned(),
        };
        let path = dir.join(CONFIG_FILE);
        let json = serde_json::to_string_pretty(&config).map_err(|source| DetectError::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, json).map_err(io_err(&path))?;
        let values: Vec<f32> = s.embeddings().iter().copied().collect();
        let t = Tensor::from_vec(values, (s.len(), s.dim()), &Device::Cpu)?;
        let path = dir.join(SUPPORT_FILE);
        let tensors = HashMap::from([("embeddings".to_string(), t)]);
        candle_core::safetensors::save(&tensors, &path).map_err(|e| saved(&path, e))?;
        Ok(())
    }

    /// Reads a detector written by [`Detector::save`] (an encoder goes onto the CPU).
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_on(dir, &Device::Cpu)
    }

    /// Reads a detector written by [`Detector::save`], putting an encoder onto `device`.
    pub fn load_on(dir: &Path, device: &Device) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        let config: SavedConfig =
            serde_json::from_str(&text).map_err(|source| DetectError::Json {
                path: path.clone(),
                source,
            })?;
        if config.format_version != FORMAT_VERSION {
            return Err(saved(
                &path,
                format!(
                    "format version {} is not the supported {FORMAT_VERSION}",
                    config.format_version
                ),
            ));
        }
        let embedder = match config.embedder {
            EmbedderSpec::RawDct(c) => Embedder::RawDct(c.check().map_err(|e| saved(&path, e))?),
            EmbedderSpec::Encoder { dir: sub } => {
                let sub = Path::new(&sub);
                if sub.is_absolute()
                    || sub
                        .components()
                        .any(|c| matches!(c, std::path::Component::ParentDir))
                {
                    return Err(saved(
                        &path,
                        format!(
                            "encoder folder {} must lie inside the detector directory",
                            sub.display()
                        ),
                    ));
                }
                Embedder::encoder(haad_gcn::EncoderModel::load(&dir.join(sub), device)?)
            }
        };
        let spath = dir.join(SUPPORT_FILE);
        let tensors =
            candle_core::safetensors::load(&spath, &Device::Cpu).map_err(|e| saved(&spath, e))?;
        let t = tensors
            .get("embeddings")
            .ok_or_else(|| saved(&spath, "no tensor named \"embeddings\""))?;
        let meta = &config.support;
        if t.dims() != [meta.rows, meta.dim] {
            return Err(saved(
                &spath,
                format!(
                    "embeddings have shape {:?}, {CONFIG_FILE} says [{}, {}]",
                    t.dims(),
                    meta.rows,
                    meta.dim
                ),
            ));
        }
        let values: Vec<f32> = t
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        if let Some(i) = values
            .iter()
            .position(|v| !(v.is_finite() && v.abs() <= MAX_EMBEDDING_ABS))
        {
            return Err(saved(
                &spath,
                format!(
                    "embedding {} holds {} at column {}: support values must be finite and \
                     at most {MAX_EMBEDDING_ABS:e} in magnitude (haad_motion::limits)",
                    i / meta.dim.max(1),
                    values[i],
                    i % meta.dim.max(1)
                ),
            ));
        }
        let embeddings = Array2::from_shape_vec((meta.rows, meta.dim), values)
            .expect("tensor shape checked above");
        let support = SupportSet::from_parts(embeddings, meta.origin.clone(), meta.real)
            .map_err(|e| saved(&path, e))?;
        let mut detector = Detector::new(embedder, config.input, config.scoring, support)
            .map_err(|e| saved(&path, e))?;
        if let Some(c) = &config.calibration {
            if !(c.threshold.is_finite()
                && c.target_false_alarm > 0.0
                && c.target_false_alarm < 1.0)
            {
                return Err(saved(
                    &path,
                    "calibration needs a finite threshold and a target in (0, 1)",
                ));
            }
        }
        detector.set_calibration(config.calibration);
        Ok(detector)
    }
}

fn saved(path: &Path, message: impl ToString) -> DetectError {
    DetectError::Saved {
        path: PathBuf::from(path),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haad_motion::augment::{Axis3, RotateJitterAugmenter};
    use haad_motion::Motion;
    use ndarray::Array3;

    use crate::support::Augmentation;

    fn clip(freq: f32, frames: usize) -> Motion {
        let a = Array3::from_shape_fn((frames, 3, 3), |(t, j, c)| {
            (t as f32 * freq).cos() * (j + 1) as f32 + c as f32
        });
        Motion::new(a, None).unwrap()
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("haad-detect-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn round_trip_gives_the_same_scores() {
        let aug = RotateJitterAugmenter {
            up: Axis3::Y,
            max_angle: 0.2,
            jitter_std: 0.01,
            root: 1,
        };
        let input = InputSpec {
            joints: 3,
            root: 1,
            min_frames: 5,
        };
        let d = Detector::fit(
            Embedder::RawDct(
                RawDctConfig {
                    frames: 40,
                    coefficients: 6,
                }
                .check()
                .unwrap(),
            ),
            input,
            Scoring::KNearest(4),
            &[clip(0.1, 50), clip(0.2, 30)],
            Some(Augmentation {
                augmenter: &aug,
                per_clip: 2,
                seed: 3,
            }),
        )
        .unwrap();
        let dir = tmp("roundtrip");
        d.save(&dir).unwrap();
        let back = Detector::load(&dir).unwrap();
        assert_eq!(back, d);
        let probes: Vec<Motion> = (1..6).map(|i| clip(0.07 * i as f32, 45)).collect();
        assert_eq!(
            back.score_batch(&probes).unwrap(),
            d.score_batch(&probes).unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn encoder_detector_round_trips() {
        let cfg = haad_gcn::EncoderConfig {
            joints: 3,
            hidden: 8,
            blocks: 1,
            ..Default::default()
        };
        let model = haad_gcn::EncoderModel::new(&cfg, 7, &Device::Cpu).unwrap();
        let d = Detector::fit(
            Embedder::encoder(model),
            InputSpec {
                joints: 3,
                root: 0,
                min_frames: 1,
            },
            Scoring::MeanDistance,
            &[clip(0.1, 70), clip(0.15, 50), clip(0.12, 61)],
            None,
        )
        .unwrap();
        let dir = tmp("encoder");
        d.save(&dir).unwrap();
        assert!(dir.join(ENCODER_DIR).join("encoder.safetensors").is_file());
        let back = Detector::load(&dir).unwrap();
        assert_eq!(back, d);
        let probes: Vec<Motion> = (1..6).map(|i| clip(0.09 * i as f32, 66)).collect();
        let scores = d.score_batch(&probes).unwrap();
        assert_eq!(back.score_batch(&probes).unwrap(), scores);
        assert!(scores.windows(2).any(|w| w[0] != w[1]), "{scores:?}");
        // A different encoder (other seed) is not equal.
        let other = Detector::new(
            Embedder::encoder(haad_gcn::EncoderModel::new(&cfg, 8, &Device::Cpu).unwrap()),
            d.input().clone(),
            d.scoring(),
            d.support().clone(),
        )
        .unwrap();
        assert_ne!(other, d);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn calibration_round_trips_and_old_folders_load() {
        let clips = [clip(0.1, 60), clip(0.12, 61), clip(0.14, 62)];
        let mut d = Detector::fit(
            Embedder::raw_dct(),
            InputSpec {
                joints: 3,
                root: 0,
                min_frames: 1,
            },
            Scoring::MeanDistance,
            &clips,
            None,
        )
        .unwrap();
        let dir = tmp("calibrated");
        // Saved before calibration: no "calibration" key, as in older folders.
        d.save(&dir).unwrap();
        let text = std::fs::read_to_string(dir.join(CONFIG_FILE)).unwrap();
        assert!(!text.contains("calibration"));
        assert_eq!(Detector::load(&dir).unwrap().calibration(), None);
        let normal: Vec<Motion> = (0..9).map(|i| clip(0.11 + 0.003 * i as f32, 60)).collect();
        d.calibrate(&normal, 0.1).unwrap();
        d.save(&dir).unwrap();
        let back = Detector::load(&dir).unwrap();
        assert_eq!(back, d);
        assert!(back.calibration().is_some());
        let cfg = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(
            &cfg,
            text.replace("\"target_false_alarm\": 0.1", "\"target_false_alarm\": 1.5"),
        )
        .unwrap();
        let err = Detector::load(&dir).unwrap_err().to_string();
        assert!(err.contains(CONFIG_FILE), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_names_the_broken_file() {
        let d = Detector::fit(
            Embedder::raw_dct(),
            InputSpec {
                joints: 3,
                root: 0,
                min_frames: 1,
            },
            Scoring::MeanDistance,
            &[clip(0.1, 60)],
            None,
        )
        .unwrap();
        let dir = tmp("broken");
        d.save(&dir).unwrap();
        let cfg = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(&cfg, text.replace("\"rows\": 1", "\"rows\": 2")).unwrap();
        let err = Detector::load(&dir).unwrap_err().to_string();
        assert!(err.contains(SUPPORT_FILE), "{err}");
        std::fs::write(&cfg, "{").unwrap();
        let err = Detector::load(&dir).unwrap_err().to_string();
        assert!(err.contains(CONFIG_FILE), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(Detector::load(&dir), Err(DetectError::Io { .. })));
    }

    #[test]
    fn save_replaces_whole_and_refuses_foreign_folders() {
        let spec = InputSpec {
            joints: 3,
            root: 0,
            min_frames: 1,
        };
        let fit = |x: f32| {
            Detector::fit(
                Embedder::raw_dct(),
                spec.clone(),
                Scoring::MeanDistance,
                &[clip(x, 60)],
                None,
            )
            .unwrap()
        };
        let dir = tmp("replace");
        fit(0.1).save(&dir).unwrap();
        let second = fit(0.3);
        second.save(&dir).unwrap();
        assert_eq!(Detector::load(&dir).unwrap(), second);
        // A folder with other things in it is not replaced.
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let err = fit(0.2).save(&dir).unwrap_err();
        assert!(matches!(err, DetectError::Saved { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
            "mine"
        );
        assert_eq!(Detector::load(&dir).unwrap(), second);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
