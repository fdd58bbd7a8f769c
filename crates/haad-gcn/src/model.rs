//! [`EncoderModel`]: an encoder with its weights, seeded initialisation, save/load and embedding.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use haad_motion::Motion;
use ndarray::Array2;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::config::{EmbeddingLayer, EncoderConfig, ValidEncoderConfig};
use crate::encoder::{batch_tensor, Encoder};
use crate::error::{GcnError, Result};
use crate::layers::{gc_bound, ParamInit};

/// File name of the weights inside a model folder.
pub const WEIGHTS_FILE: &str = "encoder.safetensors";
/// File name of the config inside a model folder.
pub const CONFIG_FILE: &str = "encoder.json";
/// Clips per forward pass in [`EncoderModel::embed`].
pub const EMBED_BATCH: usize = 256;

/// Whether a variable name is a BatchNorm running statistic (not trained by the optimizer).
pub fn is_running_stat(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

/// Every variable of the encoder for `config`: name, shape and initialisation, in a fixed order
/// (the order in which [`EncoderModel::new`] draws them).
pub(crate) fn parameter_specs(config: &EncoderConfig) -> Vec<(String, Vec<usize>, ParamInit)> {
    let (j, f, fi) = (config.joints, config.hidden, config.input_features());
    let mut specs = Vec::new();
    let gc = |specs: &mut Vec<_>, name: &str, f_in: usize, f_out: usize, bias: bool| {
        let init = ParamInit::Uniform(gc_bound(f_out));
        specs.push((format!("{name}.att"), vec![j, j], init));
        specs.push((format!("{name}.weight"), vec![f_in, f_out], init));
        if bias {
            specs.push((format!("{name}.bias"), vec![f_out], init));
        }
    };
    let bn = |specs: &mut Vec<_>, name: &str| {
        for (field, value) in [
            ("weight", 1.0),
            ("bias", 0.0),
            ("running_mean", 0.0),
            ("running_var", 1.0),
        ] {
            specs.push((
                format!("{name}.{field}"),
                vec![j * f],
                ParamInit::Const(value),
            ));
        }
    };
    gc(&mut specs, "gc1", fi, f, true);
    bn(&mut specs, "bn1");
    for i in 0..config.blocks {
        gc(&mut specs, &format!("gcbs.{i}.gc1"), f, f, false);
        bn(&mut specs, &format!("gcbs.{i}.bn1"));
        gc(&mut specs, &format!("gcbs.{i}.gc2"), f, f, false);
        bn(&mut specs, &format!("gcbs.{i}.bn2"));
    }
    if config.embedding == EmbeddingLayer::Output {
        gc(&mut specs, "gc7", f, fi, true);
    }
    specs
}

/// An encoder with its weights: what the trainer trains and the detector embeds with.
pub struct EncoderModel {
    /// The checked config.
    config: ValidEncoderConfig,
    /// Every variable, by its stable name (`gc1.att`, `bn1.running_mean`, `gcbs.0.gc1.weight`,
    /// ..., `gc7.bias`), BatchNorm running statistics included.
    varmap: VarMap,
    /// The encoder reading those variables.
    encoder: Encoder,
}

impl std::fmt::Debug for EncoderModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncoderModel")
            .field("config", &self.config)
            .field("variables", &self.named_vars().len())
            .field("encoder", &self.encoder)
            .finish()
    }
}

impl EncoderModel {
    /// The checked config.
    pub fn config(&self) -> &ValidEncoderConfig {
        &self.config
    }

    /// The encoder network (for training-mode passes: `encoder().forward_t(&xs, true)`).
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Every variable, by its stable name (`gc1.att`, `bn1.running_mean`, `gcbs.0.gc1.weight`,
    /// ..., `gc7.bias`), BatchNorm running statistics included; the optimiser updates them in
    /// place.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Fresh weights drawn from a seeded `StdRng` (same seed -> identical weights on CPU).
    ///
    /// Graph convolutions: `A`, `W`, `b` ~ `U(-s, s)`, `s = 1 / sqrt(F_out)`; BatchNorm: weight
    /// 1, bias 0, running mean 0, running variance 1. The dropout generator is seeded from
    /// `seed` as well.
    pub fn new(config: &EncoderConfig, seed: u64, device: &Device) -> Result<Self> {
        let config = config.check()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut tensors = HashMap::new();
        for (name, shape, init) in parameter_specs(&config) {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = match init {
                ParamInit::Uniform(s) => {
                    let s = s as f32;
                    (0..n).map(|_| rng.random_range(-s..s)).collect()
                }
                ParamInit::Const(c) => vec![c as f32; n],
            };
            tensors.insert(name, Tensor::from_vec(values, shape, device)?);
        }
        let model = Self::from_tensors(config, tensors, device, Path::new("<init>"))?;
        model.encoder.set_dropout_seed(seed ^ 0x9e37_79b9_7f4a_7c15);
        Ok(model)
    }

    /// Builds the model from named tensors, which must be exactly the encoder's variables.
    fn from_tensors(
        config: ValidEncoderConfig,
        mut tensors: HashMap<String, Tensor>,
        device: &Device,
        origin: &Path,
    ) -> Result<Self> {
        let bad = |message: String| GcnError::Weights {
            path: origin.to_path_buf(),
            message,
        };
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
            for (name, shape, _) in parameter_specs(&config) {
                let t = tensors
                    .remove(&name)
                    .ok_or_else(|| bad(format!("missing tensor {name} {shape:?}")))?;
                if t.dims() != shape.as_slice() {
                    return Err(bad(format!(
                        "tensor {name} has shape {:?}, expected {shape:?}",
                        t.dims()
                    )));
                }
                let t = t.to_dtype(DType::F32)?;
                let values = t.flatten_all()?.to_vec1::<f32>()?;
                if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                    return Err(bad(format!(
                        "tensor {name} holds a non-finite value ({}) at flat index {i}",
                        values[i]
                    )));
                }
                let t = t.to_device(device)?;
                data.insert(name, Var::from_tensor(&t)?);
            }
        }
        if !tensors.is_empty() {
            let mut extra: Vec<_> = tensors.into_keys().collect();
            extra.sort();
            return Err(bad(format!(
                "unexpected tensors for this config: {}",
                extra.join(", ")
            )));
        }
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let encoder = Encoder::new(&config, vb)?;
        Ok(Self {
            config,
            varmap,
            encoder,
        })
    }

    /// Writes `DIR/encoder.safetensors` (all variables incl. BatchNorm running statistics,
    /// stable names) and `DIR/encoder.json` (the config). Creates `DIR`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| GcnError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let json = serde_json::to_string_pretty(self.config.config()).map_err(|source| {
            GcnError::Json {
                path: dir.join(CONFIG_FILE),
                source,
            }
        })?;
        let cfg_path = dir.join(CONFIG_FILE);
        std::fs::write(&cfg_path, json).map_err(|source| GcnError::Io {
            path: cfg_path,
            source,
        })?;
        let named: HashMap<String, Tensor> = self
            .named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        let path = dir.join(WEIGHTS_FILE);
        candle_core::safetensors::save(&named, &path).map_err(|e| GcnError::Weights {
            path,
            message: format!("cannot write: {e}"),
        })
    }

    /// Reads a model written by [`EncoderModel::save`] onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cfg_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&cfg_path).map_err(|source| GcnError::Io {
            path: cfg_path.clone(),
            source,
        })?;
        let config: EncoderConfig =
            serde_json::from_str(&text).map_err(|source| GcnError::Json {
                path: cfg_path.clone(),
                source,
            })?;
        let config = config.check().map_err(|e| GcnError::InvalidFile {
            path: cfg_path.clone(),
            message: e.to_string(),
        })?;
        let path = dir.join(WEIGHTS_FILE);
        if !path.exists() {
            return Err(GcnError::Io {
                path,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let tensors =
            candle_core::safetensors::load(&path, device).map_err(|e| GcnError::Weights {
                path: path.clone(),
                message: format!("cannot read: {e}"),
            })?;
        Self::from_tensors(config, tensors, device, &path)
    }

    /// Every variable with its name, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        let mut vars: Vec<_> = data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    /// The trainable variables (for the optimizer), sorted by name: all weights, NOT the
    /// BatchNorm running statistics.
    pub fn trainable_vars(&self) -> Vec<Var> {
        self.named_vars()
            .into_iter()
            .filter(|(n, _)| !is_running_stat(n))
            .map(|(_, v)| v)
            .collect()
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.encoder.device()
    }

    /// Eval-mode embeddings of prepared clips, `[B, E]` (batched [`EMBED_BATCH`] at a time).
    /// Every clip must have the config's `T` frames and `J` joints; errors name the clip. An
    /// embedding value that is not finite or beyond
    /// [`MAX_EMBEDDING_ABS`](haad_motion::limits::MAX_EMBEDDING_ABS) is an error.
    pub fn embed(&self, clips: &[Motion]) -> Result<Array2<f32>> {
        let (t, j) = (self.config.frames, self.config.joints);
        for (i, clip) in clips.iter().enumerate() {
            if clip.frames() != t || clip.joints() != j {
                return Err(GcnError::Shape {
                    what: format!("clip {i}"),
                    expected: format!("[{t}, {j}, 3] (the encoder's frames and joints)"),
                    got: format!("{:?}", clip.data().shape()),
                });
            }
        }
        let e = self.config.embedding_dim();
        let mut out = Vec::with_capacity(clips.len() * e);
        for chunk in clips.chunks(EMBED_BATCH) {
            let xs = batch_tensor(chunk, self.device())?;
            let emb = self.encoder.forward_t(&xs, false)?;
            out.extend(emb.flatten_all()?.to_vec1::<f32>()?);
        }
        // Finite weights can still overflow (a weight of 1e38 in a damaged file): an embedding
        // the scorer cannot use is an error, not a silent score of inf or NaN.
        let limit = haad_motion::limits::MAX_EMBEDDING_ABS;
        if let Some(i) = out
            .iter()
            .position(|v| !(v.is_finite() && v.abs() <= limit))
        {
            return Err(GcnError::NonFinite(format!(
                "embedding of clip {} holds {} (beyond {limit:e}): the weights or the input \
                 overflow",
                i / e.max(1),
                out[i]
            )));
        }
        Array2::from_shape_vec((clips.len(), e), out).map_err(|err| GcnError::Shape {
            what: "embeddings".into(),
            expected: format!("[{}, {e}]", clips.len()),
            got: err.to_string(),
        })
    }
}
