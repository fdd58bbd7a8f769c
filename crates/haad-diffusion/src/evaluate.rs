//! Evaluating completions of held-out clips: best-of-G ADE/FDE, APD and the zero-velocity
//! baseline ([`evaluate`]), and writing them as `.npy` ([`write_npy`]).

use std::path::Path;

use haad_motion::{preprocess, Motion, Progress};
use ndarray::{Array4, Array5};
use serde::{Deserialize, Serialize};

use crate::error::{DiffusionError, Result};
use crate::metrics::{clip_metrics, mean, zero_velocity, PredictionMetrics};
use crate::model::DiffusionModel;

/// ADE and FDE of a deterministic baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BaselineMetrics {
    /// Average displacement error over the predicted frames.
    pub ade: f64,
    /// Error at the last frame.
    pub fde: f64,
}

/// What `complete_motion --out` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionReport {
    /// Best-of-G ADE over frames t_his..N (data units).
    pub ade: f64,
    /// Best-of-G FDE at frame N - 1.
    pub fde: f64,
    /// Average pairwise distance of the G completions' predicted parts.
    pub apd: f64,
    /// The zero-velocity baseline (the last observed frame repeated).
    pub zero_velocity: BaselineMetrics,
    /// Number of clips evaluated.
    pub clips: usize,
    /// G, completions per clip.
    pub samples: usize,
}

/// The evaluated clips (prepared ground truth) and their completions, clip-major.
pub struct Completions {
    /// Prepared clips (N frames, root-relative), the ground truth.
    pub truth: Vec<Motion>,
    /// `samples` completions of each clip, clip-major.
    pub samples: Vec<Motion>,
    /// G.
    pub per_clip: usize,
}

/// Prepares raw clips (first N frames, root-relative to joint `root`), completes each `samples`
/// times from its first t_his frames and scores the completions against the clip's frames
/// t_his..N, beside the zero-velocity baseline. `progress` advances by one per clip.
pub fn evaluate(
    model: &DiffusionModel,
    raw: &[Motion],
    root: usize,
    samples: usize,
    seed: u64,
    progress: &dyn Progress,
) -> Result<(CompletionReport, Completions)> {
    if raw.is_empty() {
        return Err(DiffusionError::InvalidArgument(
            "no clips to evaluate".into(),
        ));
    }
    let cfg = model.config();
    let truth = raw
        .iter()
        .map(|c| preprocess::prepare(c, cfg.frames, root))
        .collect::<haad_motion::Result<Vec<_>>>()?;
    progress.start(truth.len() as u64, 0);
    let chunk = (crate::sample::SAMPLE_BATCH / samples.max(1)).max(1);
    let mut all = Vec::with_capacity(truth.len() * samples);
    for (i, part) in truth.chunks(chunk).enumerate() {
        all.extend(model.complete(part, samples, seed.wrapping_add(i as u64))?);
        progress.advance(part.len() as u64);
    }
    progress.finish();
    let mut ours = Vec::with_capacity(truth.len());
    let mut zv = Vec::with_capacity(truth.len());
    for (i, t) in truth.iter().enumerate() {
        ours.push(clip_metrics(
            t,
            &all[i * samples..(i + 1) * samples],
            cfg.t_his,
        )?);
        zv.push(clip_metrics(t, &[zero_velocity(t, cfg.t_his)?], cfg.t_his)?);
    }
    let PredictionMetrics { ade, fde, apd } = mean(&ours);
    let z = mean(&zv);
    let report = CompletionReport {
        ade,
        fde,
        apd,
        zero_velocity: BaselineMetrics {
            ade: z.ade,
            fde: z.fde,
        },
        clips: truth.len(),
        samples,
    };
    Ok((
        report,
        Completions {
            truth,
            samples: all,
            per_clip: samples,
        },
    ))
}

/// Writes `observed.npy` `[clips, N, J, 3]` (the prepared ground truth) and `completions.npy`
/// `[clips, G, N, J, 3]` into `dir`.
pub fn write_npy(c: &Completions, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| DiffusionError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let first = c
        .truth
        .first()
        .ok_or_else(|| DiffusionError::InvalidArgument("no completions to write".into()))?;
    let (n, j) = (first.frames(), first.joints());
    let k = c.truth.len();
    let truth: Vec<f32> = c
        .truth
        .iter()
        .flat_map(|m| m.data().iter().copied())
        .collect();
    let gen: Vec<f32> = c
        .samples
        .iter()
        .flat_map(|m| m.data().iter().copied())
        .collect();
    let shape_err = |e: ndarray::ShapeError| DiffusionError::Shape {
        what: "completions".into(),
        expected: "clips of equal length and joints".into(),
        got: e.to_string(),
    };
    let truth = Array4::from_shape_vec((k, n, j, 3), truth).map_err(shape_err)?;
    let gen = Array5::from_shape_vec((k, c.per_clip, n, j, 3), gen).map_err(shape_err)?;
    for (name, res) in [
        (
            "observed.npy",
            ndarray_npy::write_npy(dir.join("observed.npy"), &truth),
        ),
        (
            "completions.npy",
            ndarray_npy::write_npy(dir.join("completions.npy"), &gen),
        ),
    ] {
        res.map_err(|e| DiffusionError::Io {
            path: dir.join(name),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    Ok(())
}
