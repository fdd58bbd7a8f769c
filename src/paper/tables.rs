//! Table 2 (per-category AUC), Table 3 (the generation ablation) and Table 4 (the
//! generator's observed / predicted frames).

use std::fmt::Write as _;
use std::time::Instant;

use haad_detect::{Embedder, Evaluation};
use haad_report::{auc_series, plot_bars, plot_lines, Series};
use serde::{Deserialize, Serialize};

use super::{fmt_opt, seconds, Study, Summary, Training};
use crate::error::Result;
use crate::pipeline::{clips_at, support_clips};

/// Table 2: per-category AUC of the raw-DCT baseline, the encoder trained without generation,
/// the full method (encoder trained with A generated variants, support of K real clips plus M
/// generated variants each) and the many-shot reference (the full method's encoder, support =
/// every training clip of the category).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table2 {
    /// Raw-DCT baseline, K real clips.
    pub baseline: Evaluation,
    /// Encoder trained without generation, K real clips.
    pub contrastive: Evaluation,
    /// The full method.
    pub full: Evaluation,
    /// The full method's encoder with many-shot supports.
    pub many_shot: Evaluation,
    /// Wall time of the experiment (training included when it ran).
    pub seconds: f64,
}

/// Runs Table 2; writes `table2.json` and `table2.svg` (per-category bars).
pub fn table2(study: &Study) -> Result<Table2> {
    let start = Instant::now();
    let s = study.settings();
    let plain = study.encoder(Training::Plain)?;
    let full = study.encoder(Training::Generated(s.train_variants))?;
    let baseline = study.evaluate(&Embedder::raw_dct(), s.k, 0, None, false)?;
    let contrastive = study.evaluate(&plain, s.k, 0, None, false)?;
    let full_method = study.evaluate(&full, s.k, s.support_variants, None, false)?;
    let many_shot = study.evaluate(&full, s.k, 0, None, true)?;
    let t = Table2 {
        baseline,
        contrastive,
        full: full_method,
        many_shot,
        seconds: seconds(start),
    };
    study.write_json("table2", &t)?;
    let groups: Vec<String> = t
        .baseline
        .per_category
        .iter()
        .map(|(n, r)| format!("{n}{}", if r.seen { "" } else { " *" }))
        .collect();
    plot_bars(
        &study.work().join("table2.svg"),
        "Table 2: per-category ROC AUC, mean +- std over support seeds (* = unseen)",
        "AUC",
        &groups,
        &[
            auc_series("raw-DCT baseline", &t.baseline),
            auc_series("contrastive, no generation", &t.contrastive),
            auc_series("full method", &t.full),
            auc_series("many-shot (full encoder)", &t.many_shot),
        ],
        1.0,
    )?;
    Ok(t)
}

impl Table2 {
    /// The table as text: one row per category, then the means.
    pub fn format(&self) -> String {
        let cols = [
            &self.baseline,
            &self.contrastive,
            &self.full,
            &self.many_shot,
        ];
        let w = self
            .baseline
            .per_category
            .iter()
            .map(|(n, _)| n.len())
            .max()
            .unwrap_or(8)
            .max(13);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<w$}  {:<6}  {:>15}  {:>15}  {:>15}  {:>10}",
            "category", "split", "raw DCT", "contrastive", "full method", "many-shot"
        );
        for (i, (name, r)) in self.baseline.per_category.iter().enumerate() {
            let cell = |e: &Evaluation| {
                let c = &e.per_category[i].1;
                format!("{:.3} +- {:.3}", c.mean, c.std)
            };
            let _ = writeln!(
                s,
                "{name:<w$}  {:<6}  {:>15}  {:>15}  {:>15}  {:>10.3}",
                if r.seen { "seen" } else { "unseen" },
                cell(cols[0]),
                cell(cols[1]),
                cell(cols[2]),
                cols[3].per_category[i].1.mean
            );
        }
        for (label, pick) in [
            (
                "mean (all)",
                (|e: &Evaluation| Some(e.mean_auc)) as fn(&Evaluation) -> _,
            ),
            ("mean (seen)", |e| e.seen_mean_auc),
            ("mean (unseen)", |e| e.unseen_mean_auc),
        ] {
            let _ = writeln!(
                s,
                "{label:<w2$}  {:>15}  {:>15}  {:>15}  {:>10}",
                fmt_opt(pick(cols[0])),
                fmt_opt(pick(cols[1])),
                fmt_opt(pick(cols[2])),
                fmt_opt(pick(cols[3])),
                w2 = w + 8
            );
        }
        s
    }
}

/// One row of Table 3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AblationRow {
    /// Generated variants in training batches (A; 0 = none).
    pub train_variants: usize,
    /// Generated variants per support clip (M; 0 = none).
    pub support_variants: usize,
    /// Per training seed: the mean AUCs.
    pub per_train_seed: Vec<Summary>,
    /// Mean over training seeds of the mean AUC over all categories.
    pub mean: f64,
    /// Std over training seeds (population) of the same; with one training seed, the std
    /// over support seeds instead.
    pub std: f64,
    /// Mean over training seeds of the unseen categories' mean AUC.
    pub unseen_mean: Option<f64>,
}

/// Table 3: generation at training x generation at inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table3 {
    /// Rows: (no, no), (no, yes), (yes, no), (yes, yes).
    pub rows: Vec<AblationRow>,
    /// Training seeds used.
    pub train_seeds: Vec<u64>,
    /// Wall time of the experiment.
    pub seconds: f64,
}

/// Runs Table 3 over training seeds `train_seed .. train_seed + train_seeds`; writes
/// `table3.json` and `table3.svg`.
pub fn table3(study: &Study, train_seeds: usize) -> Result<Table3> {
    let start = Instant::now();
    let s = study.settings();
    let seeds: Vec<u64> = (0..train_seeds.max(1) as u64)
        .map(|i| s.train_seed + i)
        .collect();
    let mut rows = Vec::new();
    for (training, a) in [
        (Training::Plain, 0),
        (Training::Generated(s.train_variants), s.train_variants),
    ] {
        let encoders = seeds
            .iter()
            .map(|&seed| study.encoder_seeded(training, seed))
            .collect::<Result<Vec<_>>>()?;
        for m in [0, s.support_variants] {
            let per_train_seed = encoders
                .iter()
                .map(|e| Ok(Summary::from(&study.evaluate(e, s.k, m, None, false)?)))
                .collect::<Result<Vec<Summary>>>()?;
            let alls: Vec<f64> = per_train_seed.iter().map(|r| r.all).collect();
            let mean = alls.iter().sum::<f64>() / alls.len() as f64;
            let std = if alls.len() > 1 {
                (alls.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / alls.len() as f64).sqrt()
            } else {
                per_train_seed[0].std_over_seeds
            };
            let unseen: Vec<f64> = per_train_seed.iter().filter_map(|r| r.unseen).collect();
            rows.push(AblationRow {
                train_variants: a,
                support_variants: m,
                per_train_seed,
                mean,
                std,
                unseen_mean: (!unseen.is_empty())
                    .then(|| unseen.iter().sum::<f64>() / unseen.len() as f64),
            });
        }
    }
    let t = Table3 {
        rows,
        train_seeds: seeds,
        seconds: seconds(start),
    };
    study.write_json("table3", &t)?;
    let groups: Vec<String> = t
        .rows
        .iter()
        .map(|r| {
            format!(
                "train {} / support {}",
                yes_no(r.train_variants),
                yes_no(r.support_variants)
            )
        })
        .collect();
    plot_bars(
        &study.work().join("table3.svg"),
        "Table 3: generation at training x at inference (mean AUC, all categories)",
        "AUC",
        &groups,
        &[Series {
            label: "mean AUC".into(),
            values: t.rows.iter().map(|r| (r.mean, r.std)).collect(),
        }],
        1.0,
    )?;
    Ok(t)
}

fn yes_no(n: usize) -> String {
    if n == 0 {
        "no".into()
    } else {
        format!("yes ({n})")
    }
}

impl Table3 {
    /// The table as text.
    pub fn format(&self) -> String {
        let mut s = String::new();
        let over = if self.train_seeds.len() > 1 {
            "training seeds"
        } else {
            "support seeds"
        };
        let _ = writeln!(
            s,
            "{:<22}  {:<22}  {:>16}  {:>8}   (std over {over})",
            "generation at training", "generation at inference", "AUC all", "unseen"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<22}  {:<22}  {:>16}  {:>8}",
                yes_no(r.train_variants),
                yes_no(r.support_variants),
                format!("{:.3} +- {:.3}", r.mean, r.std),
                fmt_opt(r.unseen_mean)
            );
        }
        s
    }
}

/// One row of Table 4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitRow {
    /// Observed frames (t_his).
    pub observed: usize,
    /// Predicted frames (N - t_his).
    pub predicted: usize,
    /// The mean AUCs.
    pub summary: Summary,
}

/// Table 4: AUC of the full method's encoder with supports of K real clips plus M
/// completions each, by how many frames the generator observes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table4 {
    /// One row per observed / predicted split.
    pub rows: Vec<SplitRow>,
    /// Wall time of the experiment.
    pub seconds: f64,
}

/// Runs Table 4 for the observed frame counts `observed` (the paper's 10, 20, 30, 40, 50 of
/// 60). The generator is the study's, completing from `t_his` observed frames at inference
/// (DCT completion takes any mask); each split has its own pool over the clips the K-shot
/// supports draw. Writes `table4.json` and `table4.svg`.
pub fn table4(study: &Study, observed: &[usize]) -> Result<Table4> {
    let start = Instant::now();
    let s = study.settings();
    let full = study.encoder(Training::Generated(s.train_variants))?;
    let support = support_clips(&study.split, s.k, s.seeds)?;
    let clips = clips_at(study.dataset(), &support);
    let frames = study.generator.model().config().frames;
    let mut rows = Vec::new();
    for &t_his in observed {
        let generator = study.generator.with_observed_frames(t_his)?;
        let pool = generator.pool(
            &clips,
            s.support_variants.max(1),
            s.pool_seed,
            &study.work().join("pools"),
            &crate::progress::Bar::shown(s.progress, "chunks of generated variants"),
        )?;
        let e = study.evaluate(&full, s.k, s.support_variants, Some(&pool), false)?;
        rows.push(SplitRow {
            observed: t_his,
            predicted: frames.saturating_sub(t_his),
            summary: Summary::from(&e),
        });
    }
    let t = Table4 {
        rows,
        seconds: seconds(start),
    };
    study.write_json("table4", &t)?;
    let xs: Vec<f64> = t.rows.iter().map(|r| r.observed as f64).collect();
    let mut series = vec![Series {
        label: "all categories".into(),
        values: t
            .rows
            .iter()
            .map(|r| (r.summary.all, r.summary.std_over_seeds))
            .collect(),
    }];
    if t.rows.iter().all(|r| r.summary.unseen.is_some()) {
        series.push(Series {
            label: "unseen categories".into(),
            values: t
                .rows
                .iter()
                .map(|r| (r.summary.unseen.unwrap_or(0.0), 0.0))
                .collect(),
        });
    }
    plot_lines(
        &study.work().join("table4.svg"),
        "Table 4: AUC by frames the generator observes (of 60)",
        "observed frames",
        "mean AUC",
        &xs,
        &series,
    )?;
    Ok(t)
}

impl Table4 {
    /// The table as text.
    pub fn format(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:>18}  {:>16}  {:>8}  {:>8}",
            "observed/predicted", "AUC all", "seen", "unseen"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:>18}  {:>16}  {:>8}  {:>8}",
                format!("{}/{}", r.observed, r.predicted),
                format!("{:.3} +- {:.3}", r.summary.all, r.summary.std_over_seeds),
                fmt_opt(r.summary.seen),
                fmt_opt(r.summary.unseen)
            );
        }
        s
    }
}
