//! [`DiffusionModel`]: a denoiser with its configuration, noise schedule and DCT basis; saving
//! and loading (`config.json` + `model.safetensors`).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use haad_motion::dct::DctBasis;
use haad_motion::{Fingerprint, Motion};

use crate::config::{DiffusionConfig, Prediction, ValidConfig};
use crate::denoiser::{Denoiser, Dropout};
use crate::error::{DiffusionError, Result};
use crate::frozen::FrozenCache;
use crate::init::seeded_var_builder;
use crate::schedule::NoiseSchedule;

/// The config file of a saved model.
pub const CONFIG_FILE: &str = "config.json";
/// The weights file of a saved model (safetensors).
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Reads a safetensors file of weights, naming it in every error.
fn read_weights(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, device).map_err(|source| DiffusionError::Weights {
        path: path.to_path_buf(),
        source,
    })
}

/// A denoiser eps_theta with everything needed to train and sample it.
pub struct DiffusionModel {
    cfg: ValidConfig,
    schedule: NoiseSchedule,
    analysis: Tensor,
    synthesis: Tensor,
    varmap: VarMap,
    net: Denoiser,
    /// The network's frozen copy for sampling, kept while the weights do not change.
    frozen: FrozenCache,
    device: Device,
}

impl DiffusionModel {
    /// A freshly initialised model; all weights are drawn from `seed`.
    pub fn new(cfg: &ValidConfig, seed: u64, device: &Device) -> Result<Self> {
        let varmap = VarMap::new();
        let net = Denoiser::new(cfg, seeded_var_builder(&varmap, seed, device))?;
        Self::assemble(cfg, varmap, net, device)
    }

    fn assemble(cfg: &ValidConfig, varmap: VarMap, net: Denoiser, device: &Device) -> Result<Self> {
        let basis = DctBasis::new(cfg.frames, cfg.n_pre)?;
        Ok(Self {
            cfg: cfg.clone(),
            schedule: NoiseSchedule::new(cfg.schedule, cfg.diffusion_steps)?,
            analysis: basis.analysis_tensor(device)?,
            synthesis: basis.synthesis_tensor(device)?,
            varmap,
            net,
            frozen: FrozenCache::default(),
            device: device.clone(),
        })
    }

    /// Loads a model saved by [`DiffusionModel::save`] from `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cfg_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&cfg_path).map_err(|source| DiffusionError::Io {
            path: cfg_path.clone(),
            source,
        })?;
        let cfg: DiffusionConfig =
            serde_json::from_str(&text).map_err(|source| DiffusionError::Json {
                path: cfg_path.clone(),
                source,
            })?;
        let cfg = cfg.check().map_err(|e| DiffusionError::Weights {
            path: cfg_path.clone(),
            source: candle_core::Error::Msg(e.to_string()),
        })?;
        let path = dir.join(WEIGHTS_FILE);
        let tensors = read_weights(&path, device)?;
        // Every weight the config asks for must be in the file, with its shape, before the
        // model is built: its size is then bounded by the file's, not by the config's numbers.
        let check = VarBuilder::from_tensors(tensors.clone(), DType::F32, device);
        Denoiser::new(&cfg, check).map_err(|e| DiffusionError::Weights {
            path: path.clone(),
            source: candle_core::Error::Msg(format!("does not fit {CONFIG_FILE}: {e}")),
        })?;
        let mut model = Self::new(&cfg, 0, device)?;
        model.set_weights(&tensors, &path)?;
        Ok(model)
    }

    /// Replaces every weight with the one of the same name in a safetensors file.
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        let tensors = read_weights(path, &self.device)?;
        self.set_weights(&tensors, path)
    }

    /// Replaces every weight with the one of the same name in `tensors` (read from `path`):
    /// each must be there, with the variable's shape and only finite values.
    fn set_weights(&mut self, tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
        let wrap = |source| DiffusionError::Weights {
            path: path.to_path_buf(),
            source,
        };
        let data =
            self.varmap.data().lock().map_err(|_| {
                DiffusionError::InvalidArgument("variable map lock poisoned".into())
            })?;
        for (name, var) in data.iter() {
            let t = tensors
                .get(name)
                .ok_or_else(|| wrap(candle_core::Error::Msg(format!("missing tensor {name}"))))?;
            if t.dims() != var.dims() {
                return Err(wrap(candle_core::Error::Msg(format!(
                    "tensor {name} has shape {:?}, the config needs {:?}",
                    t.dims(),
                    var.dims()
                ))));
            }
            let t = t.to_dtype(DType::F32).map_err(wrap)?;
            let values = t.flatten_all().and_then(|v| v.to_vec1::<f32>());
            if let Some(v) = values.map_err(wrap)?.into_iter().find(|v| !v.is_finite()) {
                return Err(wrap(candle_core::Error::Msg(format!(
                    "tensor {name} holds a non-finite value ({v})"
                ))));
            }
            var.set(&t).map_err(wrap)?;
        }
        Ok(())
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if missing).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| DiffusionError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let cfg_path = dir.join(CONFIG_FILE);
        let json = serde_json::to_string_pretty(self.cfg.config()).map_err(|source| {
            DiffusionError::Json {
                path: cfg_path.clone(),
                source,
            }
        })?;
        std::fs::write(&cfg_path, json).map_err(|source| DiffusionError::Io {
            path: cfg_path,
            source,
        })?;
        self.save_weights(&dir.join(WEIGHTS_FILE))
    }

    /// Writes the weights alone as safetensors.
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        self.varmap
            .save(path)
            .map_err(|source| DiffusionError::Weights {
                path: path.to_path_buf(),
                source,
            })
    }

    /// The configuration.
    pub fn config(&self) -> &ValidConfig {
        &self.cfg
    }

    /// The same model with another normalisation scale in its configuration (weights shared).
    pub fn set_scale(&mut self, scale: f32) -> Result<()> {
        self.cfg = self.cfg.with_scale(scale)?;
        Ok(())
    }

    /// A copy of this model (same weights) that observes the first `t_his` frames instead of
    /// the config's: DCT completion takes any observation mask at inference, so one trained
    /// model can complete, say, 10 observed frames into 60 (HumanMAC's zero-shot control).
    pub fn with_observed_frames(&self, t_his: usize) -> Result<Self> {
        let cfg = DiffusionConfig {
            t_his,
            ..self.cfg.config().clone()
        }
        .check()?;
        let mut m = self.duplicate()?;
        m.cfg = cfg;
        Ok(m)
    }

    /// The noise schedule.
    pub fn schedule(&self) -> &NoiseSchedule {
        &self.schedule
    }

    /// The network.
    pub fn denoiser(&self) -> &Denoiser {
        &self.net
    }

    /// A frozen copy of the network with the weights as they are now ([`Denoiser::frozen`]),
    /// made once and kept while the weights stay the same, bit for bit.
    pub(crate) fn frozen_denoiser(&self) -> Result<std::sync::Arc<Denoiser>> {
        self.frozen.get(&self.net, &self.varmap)
    }

    /// The trainable variables, by name.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A new model with the same configuration whose weights are copies of this one's.
    pub fn duplicate(&self) -> Result<Self> {
        let varmap = VarMap::new();
        {
            let src = self.varmap.data().lock().map_err(|_| {
                DiffusionError::InvalidArgument("variable map lock poisoned".into())
            })?;
            let mut dst = varmap.data().lock().map_err(|_| {
                DiffusionError::InvalidArgument("variable map lock poisoned".into())
            })?;
            for (name, var) in src.iter() {
                dst.insert(
                    name.clone(),
                    candle_core::Var::from_tensor(&var.as_tensor().copy()?)?,
                );
            }
        }
        let net = Denoiser::new(
            &self.cfg,
            VarBuilder::from_varmap(&varmap, DType::F32, &self.device),
        )?;
        Self::assemble(&self.cfg, varmap, net, &self.device)
    }

    /// A hash of the configuration and every weight (names and values, in name order): two
    /// models with the same fingerprint generate the same completions from the same seed.
    pub fn fingerprint(&self) -> Result<String> {
        let config =
            serde_json::to_vec(self.cfg.config()).map_err(|source| DiffusionError::Json {
                path: CONFIG_FILE.into(),
                source,
            })?;
        let mut hash = Fingerprint::of(&config);
        let data =
            self.varmap.data().lock().map_err(|_| {
                DiffusionError::InvalidArgument("variable map lock poisoned".into())
            })?;
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            hash.update(name.as_bytes());
            let values: Vec<f32> = data[name].as_tensor().flatten_all()?.to_vec1()?;
            for v in values {
                hash.update(&v.to_le_bytes());
            }
        }
        Ok(hash.to_string())
    }

    /// Clips of exactly N frames and J joints (root-relative, in data units) as normalised
    /// frames `[B, N, F]` (divided by the config's `scale`).
    pub fn frames_tensor(&self, clips: &[Motion]) -> Result<Tensor> {
        let (n, j) = (self.cfg.frames, self.cfg.joints);
        let mut v = Vec::with_capacity(clips.len() * n * 3 * j);
        for (i, c) in clips.iter().enumerate() {
            if c.frames() != n || c.joints() != j {
                return Err(DiffusionError::Shape {
                    what: format!("clip {i}"),
                    expected: format!("{n} frames of {j} joints (prepare raw clips first)"),
                    got: format!("{} frames of {} joints", c.frames(), c.joints()),
                });
            }
            c.check_finite()?;
            v.extend(c.data().iter().map(|x| x / self.cfg.scale));
        }
        Ok(Tensor::from_vec(v, (clips.len(), n, 3 * j), &self.device)?)
    }

    /// Normalised frames `[B, N, F]` back to clips in data units.
    pub fn tensor_to_clips(&self, frames: &Tensor, fps: Option<f32>) -> Result<Vec<Motion>> {
        let frames = (frames * self.cfg.scale as f64)?;
        let rows: Vec<Vec<Vec<f32>>> = frames.to_vec3()?;
        rows.into_iter()
            .map(|clip| {
                let flat: Vec<f32> = clip.into_iter().flatten().collect();
                Ok(Motion::from_flat(flat, self.cfg.joints, fps)?)
            })
            .collect()
    }

    /// The first K DCT coefficients of frames: `D_K x`, `[B, N, F]` -> `[B, K, F]`.
    pub fn to_dct(&self, frames: &Tensor) -> Result<Tensor> {
        Ok(batched(&self.analysis, frames)?)
    }

    /// Frames from K coefficients: `D_K^T c`, `[B, K, F]` -> `[B, N, F]`.
    pub fn from_dct(&self, coeffs: &Tensor) -> Result<Tensor> {
        Ok(batched(&self.synthesis, coeffs)?)
    }

    /// The conditioning spectrum `[B, K, F]`: the DCT of the frames `[B, N, F]` with every frame
    /// after the first t_his replaced by the last observed one.
    pub fn condition(&self, frames: &Tensor) -> Result<Tensor> {
        let (b, n, f) = frames.dims3()?;
        let h = self.cfg.t_his;
        let last = frames.narrow(1, h - 1, 1)?.broadcast_as((b, n - h, f))?;
        let padded = Tensor::cat(&[&frames.narrow(1, 0, h)?, &last.contiguous()?], 1)?;
        self.to_dct(&padded)
    }

    /// The network's estimates `(x0_hat, eps_hat)`, both `[B, K, F]`, for x_t `[B, K, F]` at
    /// timesteps `t` given the conditioning (no dropout), detached from the computation graph.
    pub fn denoise(&self, x_t: &Tensor, t: &[usize], cond: &Tensor) -> Result<(Tensor, Tensor)> {
        self.denoise_by(&self.net, x_t, t, cond)
    }

    /// [`DiffusionModel::denoise`] through `net`, this model's network or a
    /// [`Denoiser::frozen`] copy of it.
    pub(crate) fn denoise_by(
        &self,
        net: &Denoiser,
        x_t: &Tensor,
        t: &[usize],
        cond: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let out = net.forward(x_t, t, cond, &mut Dropout::off())?.detach();
        self.estimates(x_t, &out, t)
    }

    /// `(sqrt(ab(t)), sqrt(1 - ab(t)))` per timestep as `[B, 1, 1]` tensors.
    pub fn signal_and_noise_scales(&self, t: &[usize]) -> Result<(Tensor, Tensor)> {
        let s = &self.schedule;
        if let Some(&bad) = t.iter().find(|&&ti| ti > s.steps()) {
            return Err(DiffusionError::InvalidArgument(format!(
                "timestep {bad} is outside 0..={}",
                s.steps()
            )));
        }
        let a: Vec<f32> = t.iter().map(|&ti| s.alpha_bar(ti).sqrt() as f32).collect();
        let c: Vec<f32> = t
            .iter()
            .map(|&ti| (1.0 - s.alpha_bar(ti)).sqrt() as f32)
            .collect();
        let b = t.len();
        Ok((
            Tensor::from_vec(a, (b, 1, 1), &self.device)?,
            Tensor::from_vec(c, (b, 1, 1), &self.device)?,
        ))
    }

    /// The training target for x0 and its noise `eps` at timesteps `t`: eps itself or
    /// v = sqrt(ab) eps - sqrt(1 - ab) x0, as the config's [`Prediction`] says.
    pub fn target(&self, x0: &Tensor, eps: &Tensor, t: &[usize]) -> Result<Tensor> {
        Ok(match self.cfg.prediction {
            Prediction::Noise => eps.clone(),
            Prediction::Velocity => {
                let (a, c) = self.signal_and_noise_scales(t)?;
                (eps.broadcast_mul(&a)? - x0.broadcast_mul(&c)?)?
            }
        })
    }

    /// `(x0_hat, eps_hat)` from x_t and a network output `out` at timesteps `t`.
    pub fn estimates(&self, x_t: &Tensor, out: &Tensor, t: &[usize]) -> Result<(Tensor, Tensor)> {
        let (a, c) = self.signal_and_noise_scales(t)?;
        Ok(match self.cfg.prediction {
            Prediction::Noise => {
                let x0 = (x_t - out.broadcast_mul(&c)?)?.broadcast_div(&a)?;
                (x0, out.clone())
            }
            Prediction::Velocity => {
                let x0 = (x_t.broadcast_mul(&a)? - out.broadcast_mul(&c)?)?;
                let eps = (x_t.broadcast_mul(&c)? + out.broadcast_mul(&a)?)?;
                (x0, eps)
            }
        })
    }
}

/// `m x` for every matrix of the batch `x` `[B, R, C]` (`m` `[P, R]`), without copying `m`.
fn batched(m: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, _, _) = x.dims3()?;
    let (p, r) = m.dims2()?;
    haad_kernels::matmul(&m.broadcast_as((b, p, r))?, x)
}
