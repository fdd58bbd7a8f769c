//! One training step of the denoiser ([`Trainer`]), the EMA of its weights, the training
//! augmentation (rotation about the vertical axis, mirroring) and the data scale.

use std::path::Path;

use candle_core::{backprop::GradStore, Device, Tensor, Var};
use haad_motion::augment::{Axis3, RotateJitterAugmenter};
use haad_motion::{preprocess, Motion};
use haad_train::{Adam, AdamParams, OptimizerKind};
use rand::{rngs::StdRng, Rng};

use crate::config::ValidConfig;
use crate::denoiser::Dropout;
use crate::error::{DiffusionError, Result};
use crate::model::DiffusionModel;
use crate::sample::randn;

fn axis_index(a: Axis3) -> usize {
    match a {
        Axis3::X => 0,
        Axis3::Y => 1,
        Axis3::Z => 2,
    }
}

/// The training augmentation of one prepared clip (root at the origin at frame 0): a rotation
/// by a uniform angle in `[-max_rotation, max_rotation]` about the vertical axis through joint `root`'s frame-0
/// position (when `cfg.rotate`), then, with probability 1/2, a mirror image that negates the
/// lateral coordinate (when `cfg.mirror`).
///
/// Mirroring does not swap left and right joint labels: the loaders' joint names are generic
/// and the model only needs plausible motion, so a mirrored clip is a left-handed performer with
/// the original joint order.
pub fn augment_clip(
    clip: &Motion,
    cfg: &ValidConfig,
    root: usize,
    rng: &mut StdRng,
) -> Result<Motion> {
    let mut m = clip.clone();
    if cfg.rotate {
        let angle = rng.random_range(-cfg.max_rotation..=cfg.max_rotation);
        let rot = RotateJitterAugmenter {
            up: cfg.up,
            max_angle: 0.0,
            jitter_std: 0.0,
            root,
        };
        m = rot.rotate(&m, angle)?;
    }
    if cfg.mirror && rng.random_bool(0.5) {
        let lat = axis_index(cfg.lateral);
        let mut data = m.into_data();
        data.index_axis_mut(ndarray::Axis(2), lat)
            .mapv_inplace(|v| -v);
        m = Motion::new(data, clip.fps())?;
    }
    Ok(m)
}

/// The normalisation scale of a set of raw clips: the RMS of all coordinates after
/// `prepare(clip, frames, root)` (first N frames, frame-0 root subtracted).
pub fn data_scale(clips: &[Motion], frames: usize, root: usize) -> Result<f32> {
    let (mut sum, mut n) = (0f64, 0usize);
    for c in clips {
        let p = preprocess::prepare(c, frames, root)?;
        sum += p
            .data()
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>();
        n += p.data().len();
    }
    let rms = (sum / n.max(1) as f64).sqrt() as f32;
    if !(rms.is_finite() && rms > 0.0) {
        return Err(DiffusionError::InvalidArgument(format!(
            "cannot normalise: {} clips have coordinate RMS {rms}",
            clips.len()
        )));
    }
    Ok(rms)
}

/// Trains a [`DiffusionModel`] with Adam (`haad_train::Adam`, AdamW with weight decay 0) and
/// keeps an exponential moving average of its weights (the model used for sampling).
pub struct Trainer {
    model: DiffusionModel,
    ema: DiffusionModel,
    opt: Adam,
    steps: usize,
}

/// The model's variables with their names, sorted by name (the optimiser's saved order).
fn named_vars(model: &DiffusionModel) -> Result<Vec<(String, Var)>> {
    let data = model
        .varmap()
        .data()
        .lock()
        .map_err(|_| DiffusionError::InvalidArgument("variable map lock poisoned".into()))?;
    let mut named: Vec<(String, Var)> = data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(named)
}

impl Trainer {
    /// A fresh model drawn from `seed`, its EMA copy and the optimiser.
    pub fn new(cfg: &ValidConfig, seed: u64, device: &Device) -> Result<Self> {
        Self::from_model(DiffusionModel::new(cfg, seed, device)?)
    }

    /// Continues training `model` (its EMA starts as a copy of it).
    pub fn from_model(model: DiffusionModel) -> Result<Self> {
        let ema = model.duplicate()?;
        let opt = Adam::new(
            named_vars(&model)?,
            AdamParams::new(OptimizerKind::AdamW, model.config().learning_rate, 0.0),
        )?;
        Ok(Self {
            model,
            ema,
            opt,
            steps: 0,
        })
    }

    /// Resumes from trained weights, their EMA (same configuration) and the optimiser state
    /// saved by `haad_train::Adam::save_state` (moments and step count) at `optimizer`.
    pub fn resume(model: DiffusionModel, ema: DiffusionModel, optimizer: &Path) -> Result<Self> {
        let mut t = Self::from_model(model)?;
        t.ema = ema;
        t.opt.load_state(optimizer)?;
        t.steps = t.opt.step_count();
        Ok(t)
    }

    /// The optimiser (its state is saved with every checkpoint).
    pub fn optimizer(&self) -> &Adam {
        &self.opt
    }

    /// The model being trained.
    pub fn model(&self) -> &DiffusionModel {
        &self.model
    }

    /// The EMA of the weights (use it for sampling).
    pub fn ema(&self) -> &DiffusionModel {
        &self.ema
    }

    /// Optimiser steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Sets the normalisation scale of both models (before training starts).
    pub fn set_scale(&mut self, scale: f32) -> Result<()> {
        self.model.set_scale(scale)?;
        self.ema.set_scale(scale)
    }

    /// Sets the learning rate.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.opt.set_learning_rate(lr);
    }

    /// The loss `MSE(net(x_t, t, c), target)` of `clips` (prepared, N frames, root-relative, data
    /// units), target eps or v as the config's `prediction` says ([`DiffusionModel::target`]),
    /// with t uniform in `[1, T)`, eps ~ N(0, I), conditioning dropped
    /// with probability `1 - p_cond`, and dropout when `train`. Returns the scalar loss tensor.
    pub fn loss(
        model: &DiffusionModel,
        clips: &[Motion],
        rng: &mut StdRng,
        train: bool,
    ) -> Result<Tensor> {
        let batch = Batch::draw(model, clips, rng)?;
        let (out, target) = batch.forward(model, 0, batch.len(), train)?;
        Ok((out - target)?.sqr()?.mean_all()?)
    }

    /// The loss of [`Trainer::loss`] (with dropout) and its gradient, the batch cut into parts of
    /// [`STEP_PART`] clips, each part's forward and backward pass whole on one of the kernels'
    /// threads ([`haad_kernels::split_batch`]), the parts' gradients summed in order. Part `i`
    /// draws its dropout masks from its own generator, seeded from the batch's dropout seed and
    /// `i`; the parts do not depend on the thread count, so neither do the numbers. A batch of one
    /// part draws the same numbers as [`Trainer::loss`]. Off the CPU the batch is one part.
    pub fn loss_and_grads(
        model: &DiffusionModel,
        clips: &[Motion],
        rng: &mut StdRng,
    ) -> Result<(f32, GradStore)> {
        let batch = Batch::draw(model, clips, rng)?;
        let values = batch.x_t.elem_count() as f64;
        // On other devices the batch stays one graph: the parts exist for the CPU's threads.
        let part = if model.device().is_cpu() {
            STEP_PART
        } else {
            batch.len()
        };
        let parts = haad_kernels::split_batch(batch.len(), part, |start, len| {
            let (out, target) = batch.forward(model, start, len, true)?;
            // Each part's share of the batch mean, so that the parts' losses and gradients sum to
            // the batch's.
            let loss = ((out - target)?.sqr()?.sum_all()? / values)?;
            let value = loss.to_scalar::<f32>()?;
            Ok::<_, DiffusionError>((value as f64, loss.backward()?))
        });
        let mut total = 0f64;
        let mut stores = Vec::with_capacity(parts.len());
        for part in parts {
            let (value, grads) = part?;
            total += value;
            stores.push(grads);
        }
        let vars = model.varmap().all_vars();
        let mut stores = stores.into_iter();
        let mut grads = stores.next().unwrap_or_default();
        for more in stores {
            for var in &vars {
                let v = var.as_tensor();
                if let Some(g) = more.get(v) {
                    let sum = match grads.get(v) {
                        Some(acc) => (acc + g)?,
                        None => g.clone(),
                    };
                    grads.insert(v, sum);
                }
            }
        }
        Ok((total as f32, grads))
    }

    /// One Adam step on a batch of prepared clips (augment them first), then the EMA update.
    /// Returns the batch loss.
    ///
    /// The step runs on a thread of the kernels' pool ([`haad_kernels::on_pool`]); its forward
    /// and backward passes are cut into parts of [`STEP_PART`] clips ([`Trainer::loss`] with
    /// dropout, its gradient summed over the parts).
    pub fn step(&mut self, clips: &[Motion], rng: &mut StdRng) -> Result<f32> {
        haad_kernels::on_pool(|| self.step_here(clips, rng))
    }

    fn step_here(&mut self, clips: &[Motion], rng: &mut StdRng) -> Result<f32> {
        let (value, grads) = Self::loss_and_grads(&self.model, clips, rng)?;
        if !value.is_finite() {
            return Err(DiffusionError::InvalidArgument(format!(
                "training diverged at step {}: loss {value}",
                self.steps
            )));
        }
        self.opt.step(&grads)?;
        self.update_ema()?;
        self.steps += 1;
        Ok(value)
    }

    fn update_ema(&mut self) -> Result<()> {
        let d = self.model.config().ema_decay as f64;
        let poisoned = || DiffusionError::InvalidArgument("variable map lock poisoned".into());
        let src = self.model.varmap().data().lock().map_err(|_| poisoned())?;
        let dst = self.ema.varmap().data().lock().map_err(|_| poisoned())?;
        for (name, var) in src.iter() {
            let e = dst.get(name).ok_or_else(|| {
                DiffusionError::InvalidArgument(format!("EMA lacks weight {name}"))
            })?;
            let new = ((e.as_tensor() * d)? + (var.as_tensor() * (1.0 - d))?)?.detach();
            e.set(&new)?;
        }
        Ok(())
    }
}

/// Clips per part of a training step ([`Trainer::step`]): each part's forward and backward
/// pass runs whole on one thread. The denoiser has no operation across clips, so the parts'
/// gradients sum to the batch's. Measured: see docs/performance.md.
pub const STEP_PART: usize = 32;

/// The random draws of one training batch: the network's input, timesteps, conditioning and
/// target, and the seed of its dropout masks.
struct Batch {
    /// x_t `[B, K, F]`.
    x_t: Tensor,
    t: Vec<usize>,
    /// c `[B, K, F]` (zero where the conditioning is dropped).
    cond: Tensor,
    /// eps or v `[B, K, F]`.
    target: Tensor,
    drop_seed: u64,
}

impl Batch {
    /// Draws, in this order: the conditioning keeps, the timesteps, eps, the dropout seed.
    fn draw(model: &DiffusionModel, clips: &[Motion], rng: &mut StdRng) -> Result<Self> {
        let cfg = model.config();
        let frames = model.frames_tensor(clips)?;
        let x0 = model.to_dct(&frames)?;
        let (b, k, f) = x0.dims3()?;
        let keep: Vec<f32> = (0..b)
            .map(|_| {
                if rng.random::<f32>() < cfg.p_cond {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let keep = Tensor::from_vec(keep, (b, 1, 1), model.device())?;
        let cond = model.condition(&frames)?.broadcast_mul(&keep)?;
        let t: Vec<usize> = (0..b)
            .map(|_| rng.random_range(1..cfg.diffusion_steps))
            .collect();
        let eps = randn(&[b, k, f], rng, model.device())?;
        let x_t = q_sample(model, &x0, &t, &eps)?;
        let target = model.target(&x0, &eps, &t)?;
        Ok(Self {
            x_t,
            t,
            cond,
            target,
            drop_seed: rng.random(),
        })
    }

    fn len(&self) -> usize {
        self.t.len()
    }

    /// The network's output and the target for clips `start..start + len`, with dropout (its
    /// masks from the part's own generator) when `train`.
    fn forward(
        &self,
        model: &DiffusionModel,
        start: usize,
        len: usize,
        train: bool,
    ) -> Result<(Tensor, Tensor)> {
        let mut drop = if train {
            let part = (start / STEP_PART) as u64;
            Dropout::new(
                model.config().dropout,
                Some(self.drop_seed ^ part.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            )
        } else {
            Dropout::off()
        };
        // A narrow over the whole batch is the tensor itself (no graph node).
        let part = |x: &Tensor| -> Result<Tensor> { Ok(x.narrow(0, start, len)?) };
        let out = model.denoiser().forward(
            &part(&self.x_t)?,
            &self.t[start..start + len],
            &part(&self.cond)?,
            &mut drop,
        )?;
        Ok((out, part(&self.target)?))
    }
}

/// x_t = sqrt(ab(t)) x0 + sqrt(1 - ab(t)) eps, per row of `x0` `[B, K, F]`.
pub fn q_sample(model: &DiffusionModel, x0: &Tensor, t: &[usize], eps: &Tensor) -> Result<Tensor> {
    let (a, c) = model.signal_and_noise_scales(t)?;
    Ok((x0.broadcast_mul(&a)? + eps.broadcast_mul(&c)?)?)
}
