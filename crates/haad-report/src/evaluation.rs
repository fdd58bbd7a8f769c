//! The figure of an evaluation run: per-category AUC bars, baseline beside encoder.

use std::path::Path;

use haad_detect::{Comparison, Evaluation};

use crate::error::Result;
use crate::figures::{plot_bars, Series};

/// Grouped bars of the per-category mean AUCs (baseline, and encoder when present), with
/// +- one standard deviation whiskers ([`plot_bars`]); unseen categories are marked `*`.
pub fn plot_auc_bars(c: &Comparison, path: &Path) -> Result<()> {
    let groups: Vec<String> = c
        .baseline
        .per_category
        .iter()
        .map(|(name, r)| format!("{name}{}", if r.seen { "" } else { " *" }))
        .collect();
    let mut series = vec![auc_series("raw-DCT baseline", &c.baseline)];
    if let Some(e) = c.encoder() {
        series.push(auc_series("encoder", e));
    }
    plot_bars(
        path,
        "Per-category ROC AUC, mean +- std over seeds (* = unseen)",
        "AUC",
        &groups,
        &series,
        1.0,
    )
}

/// The per-category `(mean, std)` AUCs of an evaluation as a figure series.
pub fn auc_series(label: &str, e: &Evaluation) -> Series {
    Series {
        label: label.to_string(),
        values: e
            .per_category
            .iter()
            .map(|(_, r)| (r.mean, r.std))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReportError;
    use haad_detect::{CategoryAuc, EvalConfig};

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
    fn series_follow_the_categories() {
        let s = auc_series("x", &ev("raw_dct", &[0.5, 0.7]));
        assert_eq!(s.values, vec![(0.5, 0.01), (0.7, 0.01)]);
    }

    #[test]
    fn svg_plot_is_written_and_png_is_refused() {
        let c = Comparison::new(ev("raw_dct", &[0.5, 0.7]), Some(ev("encoder", &[0.9, 0.8])));
        let dir = std::env::temp_dir().join(format!("haad-report-auc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let svg = dir.join("auc.svg");
        plot_auc_bars(&c, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("<svg") && text.contains("cat1") && text.contains("encoder"));
        assert!(text.contains("cat0 *"));
        assert!(matches!(
            plot_auc_bars(&c, &dir.join("auc.png")),
            Err(ReportError::Format { .. })
        ));
        assert!(!dir.join("auc.png").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
