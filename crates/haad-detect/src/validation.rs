//! Few-shot AUC on held-out validation clips: a model-selection measure for training that never
//! looks at test data.
//!
//! For every seen category `c` that has validation clips and seed `s` in `0..seeds`: the support
//! is `K` clips drawn from `c`'s (reduced) train part with `sample_support(train(c), K, s)`; the
//! queries are the validation clips of all categories, anomalous iff their category is not `c`;
//! the result is the mean AUC over all `(c, s)`.

use std::collections::HashMap;

use haad_motion::split::{sample_support, Split};
use haad_motion::Dataset;
use ndarray::{Array2, Axis};

use crate::embed::Embedding;
use crate::error::{DetectError, Result};
use crate::input::InputSpec;
use crate::metrics::roc_auc;
use crate::scoring::Scoring;

/// The mean few-shot AUC on `validation` (clip indices per category) with supports from
/// `train`. See the module doc.
pub fn few_shot_validation_auc<E: Embedding + ?Sized>(
    embedder: &E,
    dataset: &Dataset,
    train: &Split,
    validation: &[Vec<usize>],
    k: usize,
    seeds: usize,
    scoring: Scoring,
) -> Result<f64> {
    let normal: Vec<usize> = (0..validation.len())
        .filter(|&c| !validation[c].is_empty() && train.train(c).len() >= k)
        .collect();
    if normal.len() < 2 || seeds == 0 || k == 0 {
        return Err(DetectError::InvalidArgument(format!(
            "few-shot validation needs K >= 1, seeds >= 1 and at least 2 categories with \
             validation clips and K train clips; got K = {k}, {seeds} seeds, {} categories",
            normal.len()
        )));
    }
    scoring.check(k)?;
    let queries: Vec<usize> = validation.iter().flatten().copied().collect();
    let mut needed: Vec<usize> = queries.clone();
    for &c in &normal {
        needed.extend_from_slice(train.train(c));
    }
    needed.sort_unstable();
    needed.dedup();
    let input = InputSpec::for_skeleton(dataset.skeleton());
    let raw = dataset.motions_at(&needed);
    let emb = embedder.embed_raw(&raw, &input)?;
    let row: HashMap<usize, usize> = needed.iter().enumerate().map(|(r, &i)| (i, r)).collect();
    let query_emb: Array2<f32> =
        emb.select(Axis(0), &queries.iter().map(|i| row[i]).collect::<Vec<_>>());

    let mut total = 0.0;
    let mut count = 0usize;
    for &c in &normal {
        let anomaly: Vec<bool> = queries
            .iter()
            .map(|&i| dataset.clips()[i].category != c)
            .collect();
        for s in 0..seeds {
            let support = sample_support(train.train(c), k, s as u64)?;
            let sup = emb.select(Axis(0), &support.iter().map(|i| row[i]).collect::<Vec<_>>());
            let scores = query_emb
                .outer_iter()
                .map(|q| scoring.score(sup.view(), q))
                .collect::<Result<Vec<f32>>>()?;
            total += roc_auc(&scores, &anomaly)?;
            count += 1;
        }
    }
    Ok(total / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::Embedder;
    use haad_motion::{Clip, Motion, Skeleton};
    use ndarray::Array3;

    /// Category c's clips hold the constant c (plus a small per-clip offset) in every coordinate
    /// of joint 1: the raw-DCT embedding separates categories perfectly.
    fn dataset() -> Dataset {
        let skel = Skeleton::new(vec!["r".into(), "a".into()], vec![None, Some(0)], 0).unwrap();
        let mut clips = Vec::new();
        for c in 0..3 {
            for i in 0..10 {
                let v = c as f32 * 10.0 + i as f32 * 0.1;
                let a = Array3::from_shape_fn((60, 2, 3), |(_, j, _)| if j == 1 { v } else { 0.0 });
                clips.push(Clip {
                    motion: Motion::new(a, None).unwrap(),
                    category: c,
                    source: format!("c{c}/{i:02}").into(),
                });
            }
        }
        Dataset::new(
            skel,
            vec!["a".into(), "b".into(), "c".into()],
            clips,
            vec![],
        )
        .unwrap()
    }

    #[test]
    fn separable_categories_give_auc_one() {
        let ds = dataset();
        let split = Split::new(&ds, 0.8, &[]).unwrap();
        let (train, val) = split.hold_out(0.25).unwrap();
        let auc = few_shot_validation_auc(
            &Embedder::raw_dct(),
            &ds,
            &train,
            &val,
            3,
            4,
            Scoring::MeanDistance,
        )
        .unwrap();
        assert!((auc - 1.0).abs() < 1e-12, "{auc}");
    }

    #[test]
    fn identical_clips_give_auc_one_half() {
        // Every clip is the same, so every score ties and the AUC is exactly one half.
        let skel = Skeleton::new(vec!["r".into()], vec![None], 0).unwrap();
        let clips = (0..20)
            .map(|i| Clip {
                motion: Motion::new(Array3::zeros((60, 1, 3)), None).unwrap(),
                category: i % 2,
                source: format!("{i:02}").into(),
            })
            .collect();
        let ds = Dataset::new(skel, vec!["a".into(), "b".into()], clips, vec![]).unwrap();
        let split = Split::new(&ds, 0.8, &[]).unwrap();
        let (train, val) = split.hold_out(0.25).unwrap();
        let auc = few_shot_validation_auc(
            &Embedder::raw_dct(),
            &ds,
            &train,
            &val,
            3,
            2,
            Scoring::MeanDistance,
        )
        .unwrap();
        assert!((auc - 0.5).abs() < 1e-12, "{auc}");
    }

    #[test]
    fn rejects_too_little_validation() {
        let ds = dataset();
        let split = Split::new(&ds, 0.8, &[]).unwrap();
        let (train, val) = split.hold_out(0.25).unwrap();
        let one = vec![val[0].clone(), vec![], vec![]];
        assert!(few_shot_validation_auc(
            &Embedder::raw_dct(),
            &ds,
            &train,
            &one,
            3,
            2,
            Scoring::MeanDistance
        )
        .is_err());
        assert!(few_shot_validation_auc(
            &Embedder::raw_dct(),
            &ds,
            &train,
            &val,
            0,
            2,
            Scoring::MeanDistance
        )
        .is_err());
    }
}
