//! The paper's few-shot evaluation protocol, for any embedder.
//!
//! For every category `c` (seen and unseen) and every seed `s` in `0..seeds`: the support is
//! `K` clips of `c` drawn from `c`'s train part with `sample_support(split.train(c), K, s)`;
//! the test set is the test parts of all categories (`split.all_test()`), labelled normal iff
//! the clip's category is `c`; the anomaly score is the detector's score; the AUC is
//! [`roc_auc`], with the average precision ([`average_precision`], anomalies positive) and the
//! equal error rate ([`equal_error_rate`]) beside it. Per category the AUC's mean and
//! (population, ddof = 0) standard deviation over seeds are reported (and the means of AP and
//! EER), then means over all, seen and unseen categories.
//!
//! Every clip is prepared and embedded once and reused across categories and seeds; only
//! generated support variants (if any) are embedded per category and seed.

use haad_motion::split::{sample_support, Split};
use haad_motion::{Augmenter, Dataset, Motion, Progress};
use ndarray::{concatenate, Array2, Axis};
use serde::{Deserialize, Serialize};

use crate::embed::{Embedder, Embedding};
use crate::error::{DetectError, Result};
use crate::input::InputSpec;
use crate::metrics::{average_precision, equal_error_rate, roc_auc};
use crate::scoring::Scoring;
use crate::support::{generate, Augmentation};

/// Settings of the evaluation protocol; `Default` is the paper's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvalConfig {
    /// K: real support clips per category (the paper's 3).
    pub k: usize,
    /// Number of seeds; seed `s` in `0..seeds` draws the supports (the paper's 10).
    pub seeds: usize,
    /// How distances to the support become a score (the paper's mean Euclidean distance).
    pub scoring: Scoring,
    /// Clips shorter than this are an error (the method pads short clips; default 1).
    pub min_frames: usize,
    /// Generated variants per real support clip; needs an augmenter (default 0: none).
    pub augment_per_clip: usize,
    /// Many-shot reference: the support is all train clips of the category (`k` unused).
    pub many_shot: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            k: 3,
            seeds: 10,
            scoring: Scoring::MeanDistance,
            min_frames: 1,
            augment_per_clip: 0,
            many_shot: false,
        }
    }
}

/// An [`EvalConfig`] that passed [`EvalConfig::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidEvalConfig(EvalConfig);

impl std::ops::Deref for ValidEvalConfig {
    type Target = EvalConfig;
    fn deref(&self) -> &EvalConfig {
        &self.0
    }
}

impl EvalConfig {
    /// Checks `k >= 1` (unless many-shot), `seeds >= 1`, `min_frames >= 1`, and that
    /// `KNearest(k')` scoring has `k' <= k` (the smallest support it will see).
    pub fn check(&self) -> Result<ValidEvalConfig> {
        let bad = |field, rule| DetectError::Config { field, rule };
        if self.k == 0 && !self.many_shot {
            return Err(bad(
                "k",
                "must be at least 1 (unless many_shot), is 0".into(),
            ));
        }
        if self.seeds == 0 {
            return Err(bad("seeds", "must be at least 1, is 0".into()));
        }
        haad_motion::limits::check("seeds", self.seeds, haad_motion::limits::MAX_SEEDS)
            .map_err(|rule| bad("seeds", rule))?;
        if self.min_frames == 0 {
            return Err(bad("min_frames", "must be at least 1, is 0".into()));
        }
        if !self.many_shot {
            self.scoring
                .check(
                    self.k
                        .saturating_mul(self.augment_per_clip.saturating_add(1)),
                )
                .map_err(|e| bad("scoring", e.to_string()))?;
        }
        Ok(ValidEvalConfig(self.clone()))
    }
}

/// Result of one category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryAuc {
    /// Mean AUC over seeds.
    pub mean: f64,
    /// Population standard deviation of the AUC over seeds.
    pub std: f64,
    /// Whether the category is seen in training.
    pub seen: bool,
    /// The AUC of every seed, in seed order.
    pub per_seed: Vec<f64>,
    /// Mean over seeds of the average precision (area under the precision-recall curve,
    /// anomalies positive; chance level is the share of anomalies). `None` in results saved
    /// before it was measured.
    #[serde(default)]
    pub ap: Option<f64>,
    /// Mean over seeds of the equal error rate (where false-alarm and miss rates meet).
    /// `None` in results saved before it was measured.
    #[serde(default)]
    pub eer: Option<f64>,
}

/// Result of the protocol for one embedder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean of the per-category mean AUCs, over all categories.
    pub mean_auc: f64,
    /// Mean AUC over the seen categories (`None` if there are none).
    pub seen_mean_auc: Option<f64>,
    /// Mean AUC over the unseen categories (`None` if there are none).
    pub unseen_mean_auc: Option<f64>,
    /// Per category, in dataset order: name and result.
    #[serde(with = "ordered_map")]
    pub per_category: Vec<(String, CategoryAuc)>,
    /// Population standard deviation over seeds of the per-seed mean over all categories.
    pub mean_auc_std_over_seeds: f64,
    /// The embedding method ("raw_dct", "encoder").
    pub method: String,
    /// The settings used.
    pub config: EvalConfig,
}

/// Runs the protocol for `embedder` on `dataset` split by `split`.
///
/// `augmenter` must be given iff `config.augment_per_clip > 0`; the variants of category `c`'s
/// support at seed `s` use augmenter seed `(s << 32) | c`. `progress`, if given, advances by one
/// per (seed, category); the caller starts and finishes it.
pub fn evaluate(
    dataset: &Dataset,
    split: &Split,
    embedder: &Embedder,
    config: &ValidEvalConfig,
    augmenter: Option<&dyn Augmenter>,
    progress: Option<&dyn Progress>,
) -> Result<Evaluation> {
    let n_cat = dataset.categories().len();
    if split.categories() != n_cat {
        return Err(DetectError::InvalidArgument(format!(
            "the split has {} categories, the dataset {n_cat}",
            split.categories()
        )));
    }
    if (config.augment_per_clip > 0) != augmenter.is_some() {
        return Err(DetectError::InvalidArgument(
            "give an augmenter exactly when augment_per_clip > 0".into(),
        ));
    }
    for c in 0..n_cat {
        let name = &dataset.categories()[c];
        if !config.many_shot && split.train(c).len() < config.k {
            return Err(DetectError::InvalidArgument(format!(
                "category {name:?} has {} train clips, fewer than k = {}",
                split.train(c).len(),
                config.k
            )));
        }
        if split.train(c).is_empty() {
            return Err(DetectError::InvalidArgument(format!(
                "category {name:?} has no train clips"
            )));
        }
        if split.test(c).is_empty() {
            return Err(DetectError::InvalidArgument(format!(
                "category {name:?} has no test clips: its AUC is undefined"
            )));
        }
    }
    let input = InputSpec::for_skeleton(dataset.skeleton()).with_min_frames(config.min_frames);
    input.check()?;
    if let Some(j) = embedder.joints() {
        if j != input.joints {
            return Err(DetectError::InvalidArgument(format!(
                "the {} embedder takes {j} joints, the dataset has {}",
                embedder.name(),
                input.joints
            )));
        }
    }
    let all = embed_dataset(dataset, embedder, &input)?;
    let test = split.all_test();
    let test_emb = all.select(Axis(0), &test);
    let categories: Vec<usize> = test.iter().map(|&i| dataset.clips()[i].category).collect();

    let mut aucs = vec![Vec::with_capacity(config.seeds); n_cat];
    let mut ap_eer = vec![(0.0f64, 0.0f64); n_cat];
    for seed in 0..config.seeds as u64 {
        for (c, auc) in aucs.iter_mut().enumerate() {
            let chosen = if config.many_shot {
                split.train(c).to_vec()
            } else {
                sample_support(split.train(c), config.k, seed)?
            };
            let mut support = all.select(Axis(0), &chosen);
            if let Some(aug) = augmenter {
                let raw: Vec<Motion> = dataset.motions_at(&chosen);
                let a = Augmentation {
                    augmenter: aug,
                    per_clip: config.augment_per_clip,
                    seed: (seed << 32) | c as u64,
                };
                let generated = embedder.embed_raw(&generate(&raw, &input, &a)?, &input)?;
                support = concatenate(Axis(0), &[support.view(), generated.view()])
                    .expect("real and generated embeddings share their width");
            }
            let scores = test_emb
                .rows()
                .into_iter()
                .enumerate()
                .map(|(i, q)| {
                    config.scoring.score(support.view(), q).map_err(|e| {
                        e.at_clip(test[i], Some(dataset.clips()[test[i]].source.clone()))
                    })
                })
                .collect::<Result<Vec<f32>>>()?;
            let anomaly: Vec<bool> = categories.iter().map(|&k| k != c).collect();
            auc.push(roc_auc(&scores, &anomaly)?);
            ap_eer[c].0 += average_precision(&scores, &anomaly)? / config.seeds as f64;
            ap_eer[c].1 += equal_error_rate(&scores, &anomaly)? / config.seeds as f64;
            if let Some(p) = progress {
                p.advance(1);
            }
        }
    }
    let mut out = summarise(dataset, split, embedder.name(), config, aucs);
    for ((_, r), (ap, eer)) in out.per_category.iter_mut().zip(ap_eer) {
        r.ap = Some(ap);
        r.eer = Some(eer);
    }
    Ok(out)
}

/// Prepares and embeds every clip of the dataset, `[N, E]`; errors name the clip's file.
fn embed_dataset(dataset: &Dataset, embedder: &Embedder, input: &InputSpec) -> Result<Array2<f32>> {
    let prepared = dataset
        .clips()
        .iter()
        .enumerate()
        .map(|(i, clip)| {
            input
                .prepare(&clip.motion, embedder.frames())
                .map_err(|e| e.at_clip(i, Some(clip.source.clone())))
        })
        .collect::<Result<Vec<Motion>>>()?;
    embedder.embed_prepared(&prepared)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn std(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

fn summarise(
    dataset: &Dataset,
    split: &Split,
    method: &str,
    config: &EvalConfig,
    aucs: Vec<Vec<f64>>,
) -> Evaluation {
    let seeds = config.seeds;
    let per_seed_mean: Vec<f64> = (0..seeds)
        .map(|s| mean(&aucs.iter().map(|a| a[s]).collect::<Vec<_>>()))
        .collect();
    let per_category: Vec<(String, CategoryAuc)> = aucs
        .into_iter()
        .enumerate()
        .map(|(c, a)| {
            (
                dataset.categories()[c].clone(),
                CategoryAuc {
                    mean: mean(&a),
                    std: std(&a),
                    seen: split.is_seen(c),
                    per_seed: a,
                    ap: None,
                    eer: None,
                },
            )
        })
        .collect();
    let group = |seen: bool| {
        let v: Vec<f64> = per_category
            .iter()
            .filter(|(_, r)| r.seen == seen)
            .map(|(_, r)| r.mean)
            .collect();
        (!v.is_empty()).then(|| mean(&v))
    };
    Evaluation {
        mean_auc: mean(&per_category.iter().map(|(_, r)| r.mean).collect::<Vec<_>>()),
        seen_mean_auc: group(true),
        unseen_mean_auc: group(false),
        mean_auc_std_over_seeds: std(&per_seed_mean),
        per_category,
        method: method.to_string(),
        config: config.clone(),
    }
}

/// (De)serialises `Vec<(String, T)>` as a JSON object whose keys keep the vector's order.
mod ordered_map {
    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::marker::PhantomData;

    pub fn serialize<S: Serializer, T: Serialize>(
        v: &[(String, T)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(v.len()))?;
        for (k, x) in v {
            m.serialize_entry(k, x)?;
        }
        m.end()
    }

    struct V<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<(String, T)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of per-category results")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry()? {
                out.push(entry);
            }
            Ok(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<(String, T)>, D::Error> {
        d.deserialize_map(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haad_motion::{Clip, Skeleton};
    use ndarray::Array3;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// `n_cat` categories of `per_cat` clips: category c oscillates at frequency 0.05 (c + 1),
    /// with per-clip noise of size `noise` and a random body offset.
    /// Scores and anomaly labels of every test clip under a `Detector` fitted on category
    /// `c`'s support of `seed`: the protocol's cell computed without `evaluate`.
    fn direct_scores(
        ds: &Dataset,
        split: &Split,
        emb: &Embedder,
        c: usize,
        seed: u64,
    ) -> (Vec<f32>, Vec<bool>) {
        let chosen = sample_support(split.train(c), 3, seed).unwrap();
        let normal: Vec<Motion> = chosen
            .iter()
            .map(|&i| ds.clips()[i].motion.clone())
            .collect();
        let det = crate::Detector::fit(
            emb.clone(),
            InputSpec::for_skeleton(ds.skeleton()),
            Scoring::MeanDistance,
            &normal,
            None,
        )
        .unwrap();
        let test = split.all_test();
        let clips: Vec<Motion> = test.iter().map(|&i| ds.clips()[i].motion.clone()).collect();
        let labels = test.iter().map(|&i| ds.clips()[i].category != c).collect();
        (det.score_batch(&clips).unwrap(), labels)
    }

    fn dataset(n_cat: usize, per_cat: usize, noise: f32) -> Dataset {
        let names = (0..3).map(|j| format!("j{j}")).collect();
        let skel = Skeleton::new(names, vec![None, Some(0), Some(1)], 0).unwrap();
        let mut rng = StdRng::seed_from_u64(0);
        let mut clips = Vec::new();
        for c in 0..n_cat {
            for i in 0..per_cat {
                let frames = rng.random_range(40..80);
                let off: f32 = rng.random_range(-1.0..1.0);
                let a = Array3::from_shape_fn((frames, 3, 3), |(t, j, x)| {
                    (t as f32 * 0.05 * (c + 1) as f32).sin() * (j + x + 1) as f32 + off
                });
                let a = a.mapv(|v| v + noise * rng.random_range(-1.0f32..1.0));
                clips.push(Clip {
                    motion: Motion::new(a, None).unwrap(),
                    category: c,
                    source: format!("c{c}/{i:02}.txt").into(),
                });
            }
        }
        let cats = (0..n_cat).map(|c| format!("cat{c}")).collect();
        Dataset::new(skel, cats, clips, vec![]).unwrap()
    }

    #[test]
    fn config_rejections() {
        assert!(EvalConfig::default().check().is_ok());
        let bad = [
            (
                EvalConfig {
                    k: 0,
                    ..Default::default()
                },
                "k",
            ),
            (
                EvalConfig {
                    seeds: 0,
                    ..Default::default()
                },
                "seeds",
            ),
            (
                EvalConfig {
                    min_frames: 0,
                    ..Default::default()
                },
                "min_frames",
            ),
            (
                EvalConfig {
                    scoring: Scoring::KNearest(4),
                    ..Default::default()
                },
                "scoring",
            ),
        ];
        for (b, field) in bad {
            assert!(
                matches!(b.check(), Err(DetectError::Config { field: f, .. }) if f == field),
                "{b:?}"
            );
        }
    }

    #[test]
    fn separable_categories_give_auc_one_and_match_a_direct_detector() {
        let ds = dataset(4, 10, 0.01);
        let split = Split::new(&ds, 0.8, &["cat3".to_string()]).unwrap();
        let cfg = EvalConfig {
            seeds: 3,
            ..Default::default()
        }
        .check()
        .unwrap();
        let emb = Embedder::raw_dct();
        let ev = evaluate(&ds, &split, &emb, &cfg, None, None).unwrap();
        assert_eq!(ev.per_category.len(), 4);
        for (name, r) in &ev.per_category {
            assert_eq!(r.per_seed.len(), 3);
            assert!(r.mean > 0.99, "{name}: {}", r.mean);
        }
        assert!(!ev.per_category[3].1.seen);
        assert!(ev.unseen_mean_auc.is_some() && ev.seen_mean_auc.is_some());

        // Independent path: a Detector fitted on the same support, scored on raw test clips.
        let (c, seed) = (1, 2);
        let (scores, labels) = direct_scores(&ds, &split, &emb, c, seed);
        let auc = roc_auc(&scores, &labels).unwrap();
        assert_eq!(ev.per_category[c].1.per_seed[seed as usize], auc);
    }

    #[test]
    fn ap_and_eer_are_seed_means_of_a_direct_detector() {
        let ds = dataset(3, 10, 0.6);
        let split = Split::new(&ds, 0.5, &[]).unwrap();
        let cfg = EvalConfig {
            seeds: 2,
            ..Default::default()
        }
        .check()
        .unwrap();
        let emb = Embedder::raw_dct();
        let ev = evaluate(&ds, &split, &emb, &cfg, None, None).unwrap();
        for c in 0..3 {
            let (mut ap, mut eer) = (0.0, 0.0);
            for seed in 0..2 {
                let (scores, labels) = direct_scores(&ds, &split, &emb, c, seed);
                ap += crate::metrics::average_precision(&scores, &labels).unwrap() / 2.0;
                eer += crate::metrics::equal_error_rate(&scores, &labels).unwrap() / 2.0;
            }
            let r = &ev.per_category[c].1;
            let (r_ap, r_eer) = (r.ap.unwrap(), r.eer.unwrap());
            assert!(
                (r_ap - ap).abs() < 1e-9 && (r_eer - eer).abs() < 1e-9,
                "{r:?}"
            );
            assert!(r_ap > 0.0 && (0.0..=1.0).contains(&r_eer));
        }
    }

    #[test]
    fn encoder_embedder_runs_the_same_protocol() {
        use haad_gcn::{EncoderConfig, EncoderModel};
        let ds = dataset(3, 8, 0.1);
        let split = Split::new(&ds, 0.8, &["cat2".to_string()]).unwrap();
        let cfg = EvalConfig {
            seeds: 2,
            ..Default::default()
        }
        .check()
        .unwrap();
        let model = EncoderModel::new(
            &EncoderConfig {
                joints: 3,
                hidden: 8,
                blocks: 1,
                ..Default::default()
            },
            1,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let emb = Embedder::encoder(model);
        let ev = evaluate(&ds, &split, &emb, &cfg, None, None).unwrap();
        let four = EncoderModel::new(
            &EncoderConfig {
                joints: 4,
                hidden: 8,
                blocks: 1,
                ..Default::default()
            },
            1,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let err = evaluate(&ds, &split, &Embedder::encoder(four), &cfg, None, None).unwrap_err();
        assert!(matches!(err, DetectError::InvalidArgument(_)), "{err}");
        assert_eq!(ev.method, "encoder");
        // Seed 1, category 0, recomputed through a Detector with the same encoder.
        let (scores, labels) = direct_scores(&ds, &split, &emb, 0, 1);
        let auc = roc_auc(&scores, &labels).unwrap();
        assert_eq!(ev.per_category[0].1.per_seed[1], auc);
    }

    #[test]
    fn noisy_data_summaries_are_consistent() {
        let ds = dataset(3, 10, 2.0);
        let split = Split::new(&ds, 0.8, &[]).unwrap();
        let cfg = EvalConfig {
            seeds: 4,
            ..Default::default()
        }
        .check()
        .unwrap();
        let ev = evaluate(&ds, &split, &Embedder::raw_dct(), &cfg, None, None).unwrap();
        let again = evaluate(&ds, &split, &Embedder::raw_dct(), &cfg, None, None).unwrap();
        assert_eq!(ev, again);
        let means: Vec<f64> = ev.per_category.iter().map(|(_, r)| r.mean).collect();
        assert!((ev.mean_auc - means.iter().sum::<f64>() / 3.0).abs() < 1e-12);
        assert_eq!(ev.unseen_mean_auc, None);
        assert_eq!(ev.seen_mean_auc, Some(ev.mean_auc));
        let r = &ev.per_category[0].1;
        let m = r.per_seed.iter().sum::<f64>() / 4.0;
        let s = (r.per_seed.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 4.0).sqrt();
        assert!((r.mean - m).abs() < 1e-12 && (r.std - s).abs() < 1e-12);
        // JSON keeps the category order and round-trips.
        let json = serde_json::to_string(&ev).unwrap();
        assert!(json.find("cat0").unwrap() < json.find("cat2").unwrap());
        let back: Evaluation = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ev);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v["unseen_mean_auc"].is_null());
        assert!(v["per_category"]["cat1"]["seen"].as_bool().unwrap());
    }

    #[test]
    fn augmentation_and_many_shot_options() {
        use haad_motion::augment::{Axis3, RotateJitterAugmenter};
        let ds = dataset(3, 10, 0.5);
        let split = Split::new(&ds, 0.8, &[]).unwrap();
        let aug = RotateJitterAugmenter {
            up: Axis3::Y,
            max_angle: 0.1,
            jitter_std: 0.05,
            root: 0,
        };
        let with = EvalConfig {
            seeds: 2,
            augment_per_clip: 2,
            ..Default::default()
        }
        .check()
        .unwrap();
        let emb = Embedder::raw_dct();
        assert!(evaluate(&ds, &split, &emb, &with, None, None).is_err());
        let a = evaluate(&ds, &split, &emb, &with, Some(&aug), None).unwrap();
        let b = evaluate(&ds, &split, &emb, &with, Some(&aug), None).unwrap();
        assert_eq!(a, b);
        let plain = EvalConfig {
            seeds: 2,
            ..Default::default()
        }
        .check()
        .unwrap();
        assert!(evaluate(&ds, &split, &emb, &plain, Some(&aug), None).is_err());
        let many = EvalConfig {
            seeds: 2,
            many_shot: true,
            ..Default::default()
        }
        .check()
        .unwrap();
        let m = evaluate(&ds, &split, &emb, &many, None, None).unwrap();
        // Without augmentation the many-shot support does not depend on the seed.
        for (_, r) in &m.per_category {
            assert_eq!(r.per_seed[0], r.per_seed[1]);
            assert_eq!(r.std, 0.0);
        }
    }

    #[test]
    fn too_few_train_clips_is_an_error_naming_the_category() {
        let ds = dataset(2, 3, 0.1); // 2 train clips per category
        let split = Split::new(&ds, 0.8, &[]).unwrap();
        let cfg = EvalConfig::default().check().unwrap();
        let err = evaluate(&ds, &split, &Embedder::raw_dct(), &cfg, None, None).unwrap_err();
        assert!(
            matches!(err, DetectError::InvalidArgument(ref m) if m.contains("\"cat0\"")),
            "{err}"
        );
    }
}
