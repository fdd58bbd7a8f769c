//! Tables and JSON of evaluation results: a learned encoder beside the raw-DCT baseline.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use haad_motion::split::Split;
use haad_motion::Progress;
use haad_motion::{Augmenter, Dataset};

use crate::embed::Embedder;
use crate::error::{DetectError, Result};
use crate::eval::{evaluate, Evaluation, ValidEvalConfig};

/// Which evaluation a [`Comparison`]'s top-level keys describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopLevel {
    /// The learned encoder.
    Encoder,
    /// The raw-DCT baseline (no encoder was evaluated).
    Baseline,
}

/// The JSON an evaluation run writes: the encoder's results at the top level (or the
/// baseline's, when no encoder was evaluated; `top_level` says which), and the baseline's
/// under `baseline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The results the top-level keys hold.
    #[serde(flatten)]
    pub top: Evaluation,
    /// Whose results are at the top level.
    pub top_level: TopLevel,
    /// The raw-DCT baseline's results.
    pub baseline: Evaluation,
}

impl Comparison {
    /// Builds the comparison; `encoder = None` puts the baseline at the top level.
    pub fn new(baseline: Evaluation, encoder: Option<Evaluation>) -> Self {
        match encoder {
            Some(top) => Self {
                top,
                top_level: TopLevel::Encoder,
                baseline,
            },
            None => Self {
                top: baseline.clone(),
                top_level: TopLevel::Baseline,
                baseline,
            },
        }
    }

    /// The encoder's results, if one was evaluated.
    pub fn encoder(&self) -> Option<&Evaluation> {
        (self.top_level == TopLevel::Encoder).then_some(&self.top)
    }

    /// Writes the comparison as pretty JSON.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|source| DetectError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(haad_motion::atomic::write_file(
            path,
            (json + "\n").as_bytes(),
        )?)
    }
}

/// Runs the protocol for the raw-DCT baseline (T = 60, K = 10) and, if given, the encoder,
/// with the same supports, seeds and support variants (`augmenter`, as in [`evaluate`]).
/// `progress` (if given) is sized and advanced for both.
pub fn compare(
    dataset: &Dataset,
    split: &Split,
    encoder: Option<&Embedder>,
    config: &ValidEvalConfig,
    augmenter: Option<&dyn Augmenter>,
    progress: Option<&dyn Progress>,
) -> Result<Comparison> {
    let runs = 1 + u64::from(encoder.is_some());
    if let Some(p) = progress {
        p.start(runs * (config.seeds * dataset.categories().len()) as u64, 0);
    }
    let baseline = evaluate(
        dataset,
        split,
        &Embedder::raw_dct(),
        config,
        augmenter,
        progress,
    )?;
    let encoder = encoder
        .map(|e| evaluate(dataset, split, e, config, augmenter, progress))
        .transpose()?;
    if let Some(p) = progress {
        p.finish();
    }
    Ok(Comparison::new(baseline, encoder))
}

fn cell(mean: f64, std: f64) -> String {
    format!("{mean:.3} +- {std:.3}")
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}

/// A plain-text table: category, seen/unseen, baseline AUC and encoder AUC (mean +- std over
/// seeds), the top-level evaluation's average precision and equal error rate (means over
/// seeds), then the means over all, seen and unseen categories.
pub fn format_table(c: &Comparison) -> String {
    let enc = c.encoder();
    let name_w = c
        .baseline
        .per_category
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<name_w$}  {:<6}  {:>15}  {:>15}  {:>6}  {:>6}",
        "category", "split", "baseline AUC", "encoder AUC", "AP", "EER"
    );
    let _ = writeln!(s, "{}", "-".repeat(name_w + 60));
    for (i, (name, b)) in c.baseline.per_category.iter().enumerate() {
        let e = enc
            .and_then(|e| e.per_category.get(i))
            .map_or_else(|| "-".to_string(), |(_, r)| cell(r.mean, r.std));
        let split = if b.seen { "seen" } else { "unseen" };
        let t = &c.top.per_category[i].1;
        let _ = writeln!(
            s,
            "{name:<name_w$}  {split:<6}  {:>15}  {e:>15}  {:>6}  {:>6}",
            cell(b.mean, b.std),
            opt(t.ap),
            opt(t.eer)
        );
    }
    let _ = writeln!(s, "{}", "-".repeat(name_w + 60));
    type Pick = fn(&Evaluation) -> Option<f64>;
    let rows: [(&str, Pick); 3] = [
        ("mean (all)", |e| Some(e.mean_auc)),
        ("mean (seen)", |e| e.seen_mean_auc),
        ("mean (unseen)", |e| e.unseen_mean_auc),
    ];
    for (label, f) in rows {
        let e = enc.map_or_else(|| "-".to_string(), |e| opt(f(e)));
        let _ = writeln!(
            s,
            "{label:<w$}  {:>15}  {e:>15}",
            opt(f(&c.baseline)),
            w = name_w + 8
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{CategoryAuc, EvalConfig};

    /// Counts the units advanced.
    #[derive(Default)]
    struct Counter(std::sync::atomic::AtomicU64);

    impl Progress for Counter {
        fn advance(&self, n: u64) {
            self.0.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn ev(method: &str, means: &[f64]) -> Evaluation {
        let per_category: Vec<(String, CategoryAuc)> = means
            .iter()
            .enumerate()
            .map(|(i, &m)| {
                (
                    format!("cat{i}"),
                    CategoryAuc {
                        mean: m,
                        std: 0.01,
                        seen: i != 0,
                        per_seed: vec![m - 0.01, m + 0.01],
                        ap: Some(m),
                        eer: Some(1.0 - m),
                    },
                )
            })
            .collect();
        Evaluation {
            mean_auc: means.iter().sum::<f64>() / means.len() as f64,
            seen_mean_auc: Some(means[1..].iter().sum::<f64>() / (means.len() - 1) as f64),
            unseen_mean_auc: Some(means[0]),
            per_category,
            mean_auc_std_over_seeds: 0.0,
            method: method.into(),
            config: EvalConfig::default(),
        }
    }

    #[test]
    fn json_puts_the_encoder_on_top() {
        let c = Comparison::new(ev("raw_dct", &[0.5, 0.7]), Some(ev("encoder", &[0.9, 0.8])));
        let v: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(v["top_level"], "encoder");
        assert!((v["mean_auc"].as_f64().unwrap() - 0.85).abs() < 1e-12);
        assert!((v["baseline"]["mean_auc"].as_f64().unwrap() - 0.6).abs() < 1e-12);
        assert_eq!(v["per_category"]["cat0"]["seen"], false);
        let back: Comparison = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        let solo = Comparison::new(ev("raw_dct", &[0.5, 0.7]), None);
        let v: serde_json::Value = serde_json::to_value(&solo).unwrap();
        assert_eq!(v["top_level"], "baseline");
        assert_eq!(v["mean_auc"], v["baseline"]["mean_auc"]);
        assert!(solo.encoder().is_none());
    }

    #[test]
    fn compare_runs_both_on_the_same_supports() {
        use crate::embed::RawDctConfig;
        use haad_motion::{Clip, Motion, Skeleton};
        use ndarray::Array3;
        let skel = Skeleton::new(vec!["a".into(), "b".into()], vec![None, Some(0)], 0).unwrap();
        let mut clips = Vec::new();
        for c in 0..3 {
            for i in 0..6 {
                let a = Array3::from_shape_fn((50 + i, 2, 3), |(t, j, x)| {
                    (t as f32 * 0.07 * (c + 1) as f32 + i as f32).sin() * (j + x + 1) as f32
                });
                clips.push(Clip {
                    motion: Motion::new(a, None).unwrap(),
                    category: c,
                    source: format!("{c}/{i}").into(),
                });
            }
        }
        let cats = vec!["x".into(), "y".into(), "z".into()];
        let ds = Dataset::new(skel, cats, clips, vec![]).unwrap();
        let split = Split::new(&ds, 0.8, &["z".to_string()]).unwrap();
        let cfg = crate::eval::EvalConfig {
            seeds: 2,
            ..Default::default()
        }
        .check()
        .unwrap();
        let other = Embedder::RawDct(
            RawDctConfig {
                frames: 60,
                coefficients: 3,
            }
            .check()
            .unwrap(),
        );
        let bar = Counter::default();
        let c = compare(&ds, &split, Some(&other), &cfg, None, Some(&bar)).unwrap();
        assert_eq!(bar.0.load(std::sync::atomic::Ordering::SeqCst), 12);
        let base = evaluate(&ds, &split, &Embedder::raw_dct(), &cfg, None, None).unwrap();
        let enc = evaluate(&ds, &split, &other, &cfg, None, None).unwrap();
        assert_eq!(c.baseline, base);
        assert_eq!(c.encoder(), Some(&enc));
    }

    #[test]
    fn table_lists_every_category_and_the_means() {
        let c = Comparison::new(ev("raw_dct", &[0.5, 0.7]), Some(ev("encoder", &[0.9, 0.8])));
        let t = format_table(&c);
        assert!(t.contains("cat0") && t.contains("unseen") && t.contains("0.500 +- 0.010"));
        assert!(t.contains("0.900 +- 0.010"));
        // AP and EER of the encoder (the test data sets them to m and 1 - m).
        let cat0 = t.lines().find(|l| l.starts_with("cat0")).unwrap();
        assert!(cat0.ends_with("0.900   0.100"), "{cat0}");
        let last = t.lines().last().unwrap();
        assert!(
            last.starts_with("mean (unseen)") && last.contains("0.500") && last.contains("0.900")
        );
    }
}
