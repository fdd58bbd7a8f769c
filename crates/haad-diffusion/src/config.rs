//! [`DiffusionConfig`]: the hyper-parameters, their paper values, the `small` preset, and the
//! checked [`ValidConfig`].

use std::ops::Deref;
use std::str::FromStr;

use haad_motion::augment::Axis3;
use haad_motion::limits;
use serde::{Deserialize, Serialize};

use crate::error::{DiffusionError, Result};
use crate::schedule::Schedule;

/// Hyper-parameters of the masked DCT-completion diffusion model (HumanMAC, ICCV 2023).
///
/// `Default` gives the paper's values for a 20-joint skeleton (MSR Action3D); set `joints` to the
/// dataset's J. Tensor shapes below use B for the batch, K = `n_pre`, F = 3 J.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffusionConfig {
    /// J, joints per frame; each frame has F = 3 J features.
    pub joints: usize,
    /// N, frames per clip (the method's T = 60).
    pub frames: usize,
    /// t_his, observed frames at the start of each clip (30); the rest is completed.
    pub t_his: usize,
    /// n_pre = K, DCT coefficients kept: the model works on x0 of shape `[K, F]`.
    pub n_pre: usize,
    /// d, the transformer width.
    pub d_model: usize,
    /// Attention heads; must divide `d_model`.
    pub heads: usize,
    /// L, transformer layers; even (the first half skips to the second half).
    pub layers: usize,
    /// Dropout probability in attention and feed-forward (training only).
    pub dropout: f32,
    /// Whether each token also gets a projection of its own coefficient of the conditioning
    /// DCT (`Linear(F -> d)`), beside HumanMAC's projection of the whole flattened conditioning
    /// into the time embedding. Off in HumanMAC (and by default); configs saved before this
    /// field existed read as off.
    #[serde(default)]
    pub condition_tokens: bool,
    /// T, diffusion steps of the noise schedule (1000).
    pub diffusion_steps: usize,
    /// S, DDIM steps used when sampling (100), evenly spaced over the T steps.
    pub ddim_steps: usize,
    /// The noise schedule: alpha-bar(t).
    pub schedule: Schedule,
    /// What the network predicts from x_t (the paper: the noise eps). Configs saved before this
    /// field existed read as `noise`.
    #[serde(default)]
    pub prediction: Prediction,
    /// p, probability that the conditioning is kept during training (0.8); dropped otherwise.
    pub p_cond: f32,
    /// Decay of the exponential moving average of the weights used for sampling (0.995).
    pub ema_decay: f32,
    /// Adam learning rate (3e-4).
    pub learning_rate: f64,
    /// Clips per training batch (64).
    pub batch_size: usize,
    /// Input normalisation: root-relative coordinates are divided by `scale` before the DCT and
    /// generated ones multiplied by it. The trainer sets it to the RMS of the training clips'
    /// coordinates so that the model sees O(1) values; 1.0 means none.
    pub scale: f32,
    /// The vertical axis: training rotates clips about it by a uniform random angle.
    pub up: Axis3,
    /// The lateral axis: training mirrors half of the clips by negating it.
    pub lateral: Axis3,
    /// Whether training rotates clips about the vertical axis.
    pub rotate: bool,
    /// Largest rotation angle in radians: angles are uniform in `[-max_rotation, max_rotation]`
    /// (pi: any heading; the paper does not give a range).
    pub max_rotation: f32,
    /// Whether training mirrors clips (left and right joint labels are not swapped).
    pub mirror: bool,
}

impl Default for DiffusionConfig {
    fn default() -> Self {
        Self {
            joints: 20,
            frames: 60,
            t_his: 30,
            n_pre: 20,
            d_model: 512,
            heads: 8,
            layers: 8,
            dropout: 0.2,
            condition_tokens: false,
            diffusion_steps: 1000,
            ddim_steps: 100,
            schedule: Schedule::default(),
            prediction: Prediction::Noise,
            p_cond: 0.8,
            ema_decay: 0.995,
            learning_rate: 3e-4,
            batch_size: 64,
            scale: 1.0,
            up: Axis3::Y,
            lateral: Axis3::X,
            rotate: true,
            max_rotation: std::f32::consts::PI,
            mirror: true,
        }
    }
}

/// The network's training target, from which x0 and eps are both recovered at sampling time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prediction {
    /// eps, the noise added to x0 (HumanMAC, DDPM). x0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab)
    /// divides by sqrt(ab), about 0.014 at the first DDIM step of the cosine schedule, so the
    /// network's error there reaches x0 amplified 70 times.
    #[default]
    Noise,
    /// v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans and Ho, 2022): x0 = sqrt(ab) x_t -
    /// sqrt(1 - ab) v and eps = sqrt(1 - ab) x_t + sqrt(ab) v, with no division, so errors are
    /// not amplified at any noise level.
    Velocity,
}

impl FromStr for Prediction {
    type Err = DiffusionError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "noise" => Ok(Prediction::Noise),
            "velocity" => Ok(Prediction::Velocity),
            _ => Err(DiffusionError::InvalidArgument(format!(
                "unknown prediction {s:?}; known: noise, velocity"
            ))),
        }
    }
}

/// Named configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The CPU recipe: d = 128, 4 heads, 4 layers, and three changes that make it train
    /// usefully in minutes on 2 cores (measured on MSR Action3D, docs/results.md): velocity
    /// prediction ([`Prediction::Velocity`]), per-token conditioning (`condition_tokens`),
    /// learning rate 1e-3 and rotations within +-0.5 rad.
    Small,
    /// The paper's (HumanMAC's) size and training: d = 512, 8 heads, 8 layers, noise
    /// prediction, conditioning through the time embedding only, learning rate 3e-4, any
    /// heading.
    Paper,
}

impl FromStr for Preset {
    type Err = DiffusionError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "small" => Ok(Preset::Small),
            "paper" => Ok(Preset::Paper),
            _ => Err(DiffusionError::InvalidArgument(format!(
                "unknown preset {s:?}; known: small, paper"
            ))),
        }
    }
}

impl DiffusionConfig {
    /// The configuration of `preset` for a skeleton of `joints` joints (`Paper`: the defaults).
    pub fn preset(preset: Preset, joints: usize) -> Self {
        let base = Self {
            joints,
            ..Self::default()
        };
        match preset {
            Preset::Paper => base,
            Preset::Small => Self {
                d_model: 128,
                heads: 4,
                layers: 4,
                prediction: Prediction::Velocity,
                condition_tokens: true,
                learning_rate: 1e-3,
                max_rotation: 0.5,
                ..base
            },
        }
    }

    /// F = 3 J, features per frame.
    pub fn features(&self) -> usize {
        3 * self.joints
    }

    /// Checks every field; see [`DiffusionError::Config`] for what is rejected.
    pub fn check(self) -> Result<ValidConfig> {
        let bad = |field, rule: String| Err(DiffusionError::Config { field, rule });
        if self.joints == 0 {
            return bad("joints", "need at least one joint".into());
        }
        let within = |field, value, limit| {
            limits::check(field, value, limit)
                .map_err(|rule| DiffusionError::Config { field, rule })
        };
        within("joints", self.joints, limits::MAX_JOINTS)?;
        within("frames", self.frames, limits::MAX_CLIP_FRAMES)?;
        within("d_model", self.d_model, limits::MAX_WIDTH)?;
        within("layers", self.layers, limits::MAX_LAYERS)?;
        within(
            "diffusion_steps",
            self.diffusion_steps,
            limits::MAX_DIFFUSION_STEPS,
        )?;
        if self.frames < 2 {
            return bad(
                "frames",
                format!("need at least 2 frames, got {}", self.frames),
            );
        }
        if self.t_his == 0 || self.t_his >= self.frames {
            return bad(
                "t_his",
                format!(
                    "must lie in 1..{} (frames), got {}",
                    self.frames, self.t_his
                ),
            );
        }
        if self.n_pre == 0 || self.n_pre > self.frames {
            return bad(
                "n_pre",
                format!(
                    "must lie in 1..={} (frames), got {}",
                    self.frames, self.n_pre
                ),
            );
        }
        if self.d_model == 0 {
            return bad("d_model", "must be positive".into());
        }
        if self.heads == 0 || !self.d_model.is_multiple_of(self.heads) {
            return bad(
                "heads",
                format!(
                    "must be positive and divide d_model = {}, got {}",
                    self.d_model, self.heads
                ),
            );
        }
        if self.layers < 2 || !self.layers.is_multiple_of(2) {
            return bad(
                "layers",
                format!("must be even and at least 2, got {}", self.layers),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(
                "dropout",
                format!("must lie in [0, 1), got {}", self.dropout),
            );
        }
        if self.diffusion_steps < 2 {
            return bad(
                "diffusion_steps",
                format!("need at least 2 steps, got {}", self.diffusion_steps),
            );
        }
        if self.ddim_steps == 0 || self.ddim_steps >= self.diffusion_steps {
            return bad(
                "ddim_steps",
                format!(
                    "must lie in 1..{} (diffusion_steps), got {}",
                    self.diffusion_steps, self.ddim_steps
                ),
            );
        }
        self.schedule.check()?;
        if !(0.0..=1.0).contains(&self.p_cond) {
            return bad("p_cond", format!("must lie in [0, 1], got {}", self.p_cond));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return bad(
                "ema_decay",
                format!("must lie in [0, 1), got {}", self.ema_decay),
            );
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(
                "learning_rate",
                format!("must be positive and finite, got {}", self.learning_rate),
            );
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be positive".into());
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return bad(
                "scale",
                format!("must be positive and finite, got {}", self.scale),
            );
        }
        if !(self.max_rotation.is_finite()
            && (0.0..=std::f32::consts::PI).contains(&self.max_rotation))
        {
            return bad(
                "max_rotation",
                format!("must lie in [0, pi], got {}", self.max_rotation),
            );
        }
        if self.lateral == self.up {
            return bad(
                "lateral",
                format!("must differ from the vertical axis {:?}", self.up),
            );
        }
        Ok(ValidConfig(self))
    }
}

/// A [`DiffusionConfig`] that passed [`DiffusionConfig::check`]; read its fields through `Deref`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidConfig(DiffusionConfig);

impl Deref for ValidConfig {
    type Target = DiffusionConfig;
    fn deref(&self) -> &DiffusionConfig {
        &self.0
    }
}

impl ValidConfig {
    /// The checked configuration.
    pub fn config(&self) -> &DiffusionConfig {
        &self.0
    }

    /// The same configuration with another normalisation scale (checked).
    pub fn with_scale(&self, scale: f32) -> Result<Self> {
        DiffusionConfig {
            scale,
            ..self.0.clone()
        }
        .check()
    }

    /// The DDIM grid: S timesteps `1 + floor(i T / S)`, `i = 0..S`, ascending (HumanMAC's).
    pub fn ddim_grid(&self) -> Vec<usize> {
        let (t, s) = (self.diffusion_steps, self.ddim_steps);
        (0..s).map(|i| 1 + i * t / s).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> DiffusionConfig {
        DiffusionConfig {
            joints: 2,
            frames: 8,
            t_his: 4,
            n_pre: 5,
            d_model: 8,
            heads: 2,
            layers: 2,
            diffusion_steps: 20,
            ddim_steps: 5,
            ..DiffusionConfig::default()
        }
    }

    fn rejects(field: &str, f: impl FnOnce(&mut DiffusionConfig)) {
        let mut c = tiny();
        f(&mut c);
        match c.check() {
            Err(DiffusionError::Config { field: got, .. }) => assert_eq!(got, field),
            other => panic!("expected rejection of {field}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_paper_values_and_valid() {
        let c = DiffusionConfig::default();
        assert_eq!((c.d_model, c.heads, c.layers), (512, 8, 8));
        assert_eq!((c.n_pre, c.t_his, c.frames), (20, 30, 60));
        assert_eq!((c.diffusion_steps, c.ddim_steps), (1000, 100));
        assert_eq!(c.schedule, Schedule::Cosine { s: 0.008 });
        assert_eq!((c.dropout, c.p_cond, c.ema_decay), (0.2, 0.8, 0.995));
        assert_eq!(
            (c.prediction, c.condition_tokens),
            (Prediction::Noise, false)
        );
        let v = c.check().unwrap();
        let grid = v.ddim_grid();
        assert_eq!(grid.len(), 100);
        assert_eq!((grid[0], grid[1], grid[99]), (1, 11, 991));
        let s = DiffusionConfig::preset(Preset::Small, 22);
        assert_eq!((s.d_model, s.heads, s.layers, s.joints), (128, 4, 4, 22));
        assert_eq!(
            (s.prediction, s.condition_tokens),
            (Prediction::Velocity, true)
        );
        assert_eq!((s.learning_rate, s.max_rotation), (1e-3, 0.5));
        assert!(s.check().is_ok());
        assert_eq!(
            DiffusionConfig::preset(Preset::Paper, 20),
            DiffusionConfig::default()
        );
        assert_eq!("small".parse::<Preset>().unwrap(), Preset::Small);
        assert!("big".parse::<Preset>().is_err());
    }

    #[test]
    fn json_round_trip() {
        let c = tiny();
        let back: DiffusionConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(serde_json::from_str::<DiffusionConfig>(r#"{"joints": 2}"#).is_err());
    }

    #[test]
    fn rejects_joints() {
        rejects("joints", |c| c.joints = 0);
    }
    #[test]
    fn rejects_frames() {
        rejects("frames", |c| c.frames = 1);
    }
    #[test]
    fn rejects_t_his() {
        rejects("t_his", |c| c.t_his = 0);
        rejects("t_his", |c| c.t_his = 8);
    }
    #[test]
    fn rejects_n_pre() {
        rejects("n_pre", |c| c.n_pre = 0);
        rejects("n_pre", |c| c.n_pre = 9);
    }
    #[test]
    fn rejects_d_model() {
        rejects("d_model", |c| c.d_model = 0);
    }
    #[test]
    fn rejects_heads() {
        rejects("heads", |c| c.heads = 0);
        rejects("heads", |c| c.heads = 3);
    }
    #[test]
    fn rejects_layers() {
        rejects("layers", |c| c.layers = 0);
        rejects("layers", |c| c.layers = 3);
    }
    #[test]
    fn rejects_dropout() {
        rejects("dropout", |c| c.dropout = 1.0);
        rejects("dropout", |c| c.dropout = -0.1);
    }
    #[test]
    fn rejects_diffusion_steps() {
        rejects("diffusion_steps", |c| c.diffusion_steps = 1);
    }
    #[test]
    fn rejects_ddim_steps() {
        rejects("ddim_steps", |c| c.ddim_steps = 0);
        rejects("ddim_steps", |c| c.ddim_steps = 20);
    }
    #[test]
    fn rejects_schedule() {
        rejects("schedule", |c| c.schedule = Schedule::Cosine { s: 0.0 });
        rejects("schedule", |c| {
            c.schedule = Schedule::Linear {
                beta_start: 0.02,
                beta_end: 0.01,
            }
        });
    }
    #[test]
    fn rejects_p_cond() {
        rejects("p_cond", |c| c.p_cond = 1.5);
    }
    #[test]
    fn rejects_ema_decay() {
        rejects("ema_decay", |c| c.ema_decay = 1.0);
    }
    #[test]
    fn rejects_learning_rate() {
        rejects("learning_rate", |c| c.learning_rate = 0.0);
        rejects("learning_rate", |c| c.learning_rate = f64::NAN);
    }
    #[test]
    fn rejects_batch_size() {
        rejects("batch_size", |c| c.batch_size = 0);
    }
    #[test]
    fn rejects_scale() {
        rejects("scale", |c| c.scale = 0.0);
        rejects("scale", |c| c.scale = f32::INFINITY);
    }
    #[test]
    fn rejects_max_rotation() {
        rejects("max_rotation", |c| c.max_rotation = -0.1);
        rejects("max_rotation", |c| c.max_rotation = 4.0);
    }
    #[test]
    fn rejects_lateral() {
        rejects("lateral", |c| c.lateral = Axis3::Y);
    }
}
