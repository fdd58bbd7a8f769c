//! The method end to end: a pool of generated variants of every training clip, an encoder
//! trained with them (or reused from an earlier run), and the few-shot evaluation with
//! generated support variants. The experiment and quickstart examples are built from these.

use std::path::Path;

use candle_core::Device;
use haad_contrastive::{train, TrainOptions, ValidTrainConfig};
use haad_gcn::EncoderModel;
use haad_motion::split::{sample_support, Split};
use haad_motion::{Augmenter, Dataset, Motion};

use crate::error::Result;

/// The raw training clips of every category (seen and unseen), category by category: the
/// clips that training batches and few-shot supports are drawn from.
pub fn train_clips(dataset: &Dataset, split: &Split) -> Vec<Motion> {
    clips_at(dataset, &split.all_train())
}

/// The raw clips at dataset indices `indices`.
pub fn clips_at(dataset: &Dataset, indices: &[usize]) -> Vec<Motion> {
    dataset.motions_at(indices)
}

/// Dataset indices of every clip that some K-shot support of the protocol draws
/// (`sample_support(split.train(c), k, seed)` for every category c and seed in `0..seeds`),
/// in first-drawn order without repeats: what a generator must cover to enlarge those supports.
pub fn support_clips(split: &Split, k: usize, seeds: usize) -> Result<Vec<usize>> {
    haad_motion::limits::check("seeds", seeds, haad_motion::limits::MAX_SEEDS)
        .map_err(crate::HaadError::InvalidArgument)?;
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for seed in 0..seeds as u64 {
        for c in 0..split.categories() {
            for i in sample_support(split.train(c), k, seed)? {
                if seen.insert(i) {
                    out.push(i);
                }
            }
        }
    }
    Ok(out)
}

/// Trains an encoder with `cfg` into `out`, or takes the run already there: a finished run is
/// loaded as it is and an interrupted one resumed from its last checkpoint. A run of another
/// configuration in `out` is an error (the trainer compares the saved configuration).
pub fn train_encoder(
    cfg: &ValidTrainConfig,
    dataset: &Dataset,
    augmenter: Option<&dyn Augmenter>,
    out: &Path,
    progress: bool,
    device: &Device,
) -> Result<EncoderModel> {
    let options = TrainOptions {
        resume: out.join("last").join("state.json").is_file(),
        progress: std::sync::Arc::new(crate::progress::Bar::shown(progress, "steps")),
        ..TrainOptions::new(out)
    };
    Ok(train(cfg, dataset, augmenter, None, &options, device)?.model)
}
