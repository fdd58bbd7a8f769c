//! [`DiffusionAugmenter`]: the generative augmentation of the method, as a
//! `haad_motion::Augmenter`.

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use haad_motion::{preprocess, Augmenter, Motion, MotionError, Progress};
use haad_motion::{PoolSpec, VariantPool};
use rand::{rngs::StdRng, Rng};

use crate::error::{DiffusionError, Result};
use crate::model::DiffusionModel;

/// Completes each clip `per_clip` times with a trained model.
///
/// The augmenter receives *raw* clips (as loaded, any length, absolute coordinates), like every
/// `Augmenter`: it first prepares each one as the model was trained (its first N = 60 frames,
/// padded by repeating the last frame if shorter, minus joint `root`'s frame-0 position), keeps
/// the first t_his frames as the observation and generates the rest. The variants it returns are
/// N-frame root-relative clips (preparing them again is a no-op up to the small frame-0 offset
/// of the low-pass reconstruction). One seed is drawn from `rng` per call, so the result is
/// deterministic given `rng`.
#[derive(Clone)]
pub struct DiffusionAugmenter {
    model: Arc<DiffusionModel>,
    root: usize,
}

impl DiffusionAugmenter {
    /// Wraps a trained model; `root` is the dataset skeleton's root joint.
    pub fn new(model: DiffusionModel, root: usize) -> Result<Self> {
        if root >= model.config().joints {
            return Err(DiffusionError::InvalidArgument(format!(
                "root joint {root} out of range for {} joints",
                model.config().joints
            )));
        }
        Ok(Self {
            model: Arc::new(model),
            root,
        })
    }

    /// Loads a model saved in `dir` (see [`DiffusionModel::save`]), or the checkpoint of a
    /// training folder `dir` ([`crate::fit::model_dir`]).
    pub fn load(dir: &Path, root: usize, device: &Device) -> Result<Self> {
        Self::new(
            DiffusionModel::load(&crate::fit::model_dir(dir), device)?,
            root,
        )
    }

    /// The same generator observing the first `t_his` frames of each clip instead of the
    /// model's trained t_his ([`DiffusionModel::with_observed_frames`]).
    pub fn with_observed_frames(&self, t_his: usize) -> Result<Self> {
        Self::new(self.model.with_observed_frames(t_his)?, self.root)
    }

    /// The model.
    pub fn model(&self) -> &DiffusionModel {
        &self.model
    }

    /// Identifies the generator: the model's [`DiffusionModel::fingerprint`] and the root joint.
    pub fn key(&self) -> Result<String> {
        Ok(format!(
            "diffusion-{}-root{}",
            self.model.fingerprint()?,
            self.root
        ))
    }

    /// The variant pool of `clips` (raw clips, as the trainer and support sets pass them): G =
    /// `per_clip` completions of each, generated once with `seed` and cached under `cache_dir`
    /// (see [`VariantPool::build`]); `progress` is started with the chunk count and advanced
    /// per chunk.
    pub fn pool(
        &self,
        clips: &[Motion],
        per_clip: usize,
        seed: u64,
        cache_dir: &Path,
        progress: &dyn Progress,
    ) -> Result<VariantPool> {
        let spec = PoolSpec {
            dir: cache_dir.to_path_buf(),
            generator_key: self.key()?,
            per_clip,
            seed,
        };
        progress.message("chunks of generated variants");
        let mut started = false;
        let pool = VariantPool::build(&spec, clips, self, &mut |done, total| {
            if !started {
                progress.start(total as u64, done.saturating_sub(1) as u64);
                started = true;
            }
            progress.advance(1);
        })?;
        progress.finish();
        Ok(pool)
    }

    fn run(&self, clips: &[Motion], per_clip: usize, seed: u64) -> Result<Vec<Motion>> {
        let n = self.model.config().frames;
        let prepared = clips
            .iter()
            .map(|c| preprocess::prepare(c, n, self.root))
            .collect::<haad_motion::Result<Vec<_>>>()?;
        self.model.complete(&prepared, per_clip, seed)
    }
}

impl Augmenter for DiffusionAugmenter {
    fn augment(
        &self,
        clips: &[Motion],
        per_clip: usize,
        rng: &mut StdRng,
    ) -> haad_motion::Result<Vec<Motion>> {
        let seed: u64 = rng.random();
        if per_clip == 0 || clips.is_empty() {
            return Ok(Vec::new());
        }
        self.run(clips, per_clip, seed)
            .map_err(|e| MotionError::Augment(Box::new(e)))
    }
}
