//! Fig. 5 (support sizes), Fig. 7 (generated variants in training), Fig. 3 and 4 (scores by
//! category; 2-D maps of test embeddings).

use std::fmt::Write as _;
use std::time::Instant;

use haad_detect::{Augmentation, Detector, Embedder, Embedding, InputSpec, Scoring};
use haad_motion::split::sample_support;
use haad_report::{pca_2d, plot_lines, plot_scatter, plot_strips, tsne_2d, Series, TsneConfig};
use serde::{Deserialize, Serialize};

use super::{fmt_opt, seconds, Study, Summary, Training};
use crate::error::{HaadError, Result};
use crate::pipeline::clips_at;

/// Fig. 5: mean AUC of the full method's encoder by real support clips K (x axis) and
/// generated variants per support clip M (one line each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fig5 {
    /// The K values.
    pub ks: Vec<usize>,
    /// The M values.
    pub ms: Vec<usize>,
    /// `grid[m][k]`: the mean AUCs with `ms[m]` variants and `ks[k]` real clips.
    pub grid: Vec<Vec<Summary>>,
    /// Wall time.
    pub seconds: f64,
}

/// Runs Fig. 5; writes `fig5.json` and `fig5.svg`.
pub fn fig5(study: &Study, ks: &[usize], ms: &[usize]) -> Result<Fig5> {
    let start = Instant::now();
    let s = study.settings();
    if let Some(&m) = ms.iter().find(|&&m| m > s.pool_size) {
        return Err(HaadError::InvalidArgument(format!(
            "{m} variants per support clip exceed the pool's {}",
            s.pool_size
        )));
    }
    let full = study.encoder(Training::Generated(s.train_variants))?;
    let grid = ms
        .iter()
        .map(|&m| {
            ks.iter()
                .map(|&k| Ok(Summary::from(&study.evaluate(&full, k, m, None, false)?)))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    let f = Fig5 {
        ks: ks.to_vec(),
        ms: ms.to_vec(),
        grid,
        seconds: seconds(start),
    };
    study.write_json("fig5", &f)?;
    let series: Vec<Series> =
        f.ms.iter()
            .zip(&f.grid)
            .map(|(m, row)| Series {
                label: format!("{m} generated per real clip"),
                values: row.iter().map(|r| (r.all, r.std_over_seeds)).collect(),
            })
            .collect();
    plot_lines(
        &study.work().join("fig5.svg"),
        "Fig. 5: AUC by real support clips K and generated variants per clip",
        "K (real support clips)",
        "mean AUC (all categories)",
        &f.ks.iter().map(|&k| k as f64).collect::<Vec<_>>(),
        &series,
    )?;
    Ok(f)
}

impl Fig5 {
    /// The grid as text: rows M, columns K.
    pub fn format(&self) -> String {
        let mut s = String::new();
        let _ = write!(s, "{:>22}", "generated \\ K");
        for k in &self.ks {
            let _ = write!(s, "  {k:>14}");
        }
        let _ = writeln!(s);
        for (m, row) in self.ms.iter().zip(&self.grid) {
            let _ = write!(s, "{m:>22}");
            for r in row {
                let _ = write!(
                    s,
                    "  {:>14}",
                    format!("{:.3} +- {:.3}", r.all, r.std_over_seeds)
                );
            }
            let _ = writeln!(s);
        }
        s
    }
}

/// One point of Fig. 7.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fig7Point {
    /// A, generated variants per clip in training batches.
    pub train_variants: usize,
    /// K real support clips only.
    pub real_support: Summary,
    /// K real support clips plus M generated each.
    pub generated_support: Summary,
}

/// Fig. 7: AUC by generated variants per clip in training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fig7 {
    /// One point per A.
    pub points: Vec<Fig7Point>,
    /// Wall time (training included when it ran).
    pub seconds: f64,
}

/// Runs Fig. 7 for the A values `variants` (each trains an encoder unless cached); writes
/// `fig7.json` and `fig7.svg`.
pub fn fig7(study: &Study, variants: &[usize]) -> Result<Fig7> {
    let start = Instant::now();
    let s = study.settings();
    if let Some(&a) = variants.iter().find(|&&a| a == 0 || a > s.pool_size) {
        return Err(HaadError::InvalidArgument(format!(
            "A = {a}: training variants must lie in 1..={} (the pool size)",
            s.pool_size
        )));
    }
    let mut points = Vec::new();
    for &a in variants {
        let enc = study.encoder(Training::Generated(a))?;
        points.push(Fig7Point {
            train_variants: a,
            real_support: Summary::from(&study.evaluate(&enc, s.k, 0, None, false)?),
            generated_support: Summary::from(&study.evaluate(
                &enc,
                s.k,
                s.support_variants,
                None,
                false,
            )?),
        });
    }
    let f = Fig7 {
        points,
        seconds: seconds(start),
    };
    study.write_json("fig7", &f)?;
    let xs: Vec<f64> = f.points.iter().map(|p| p.train_variants as f64).collect();
    let line = |label: &str, pick: fn(&Fig7Point) -> Summary| Series {
        label: label.into(),
        values: f
            .points
            .iter()
            .map(|p| (pick(p).all, pick(p).std_over_seeds))
            .collect(),
    };
    plot_lines(
        &study.work().join("fig7.svg"),
        "Fig. 7: AUC by generated variants per clip in training (A)",
        "A (generated variants per clip in training)",
        "mean AUC (all categories)",
        &xs,
        &[
            line("support: real clips only", |p| p.real_support),
            line("support: real + generated", |p| p.generated_support),
        ],
    )?;
    Ok(f)
}

impl Fig7 {
    /// The points as text.
    pub fn format(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:>3}  {:>16}  {:>8}  {:>16}  {:>8}",
            "A", "real support", "unseen", "+ generated", "unseen"
        );
        for p in &self.points {
            let cell = |r: &Summary| format!("{:.3} +- {:.3}", r.all, r.std_over_seeds);
            let _ = writeln!(
                s,
                "{:>3}  {:>16}  {:>8}  {:>16}  {:>8}",
                p.train_variants,
                cell(&p.real_support),
                fmt_opt(p.real_support.unseen),
                cell(&p.generated_support),
                fmt_opt(p.generated_support.unseen)
            );
        }
        s
    }
}

/// The scores of every test clip for one support set, and 2-D maps of the test embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fig34 {
    /// The normal category.
    pub normal: String,
    /// Support seed.
    pub seed: u64,
    /// Category names, in dataset order.
    pub categories: Vec<String>,
    /// Per test clip: its category index.
    pub test_category: Vec<usize>,
    /// Per test clip: its anomaly score under the full method (Fig. 3).
    pub scores: Vec<f32>,
    /// Per test clip: PCA coordinates of its embedding by the encoder trained without
    /// generation (Fig. 4, left).
    pub map_plain: Vec<[f32; 2]>,
    /// The same for the encoder trained with generated variants (Fig. 4, right).
    pub map_generated: Vec<[f32; 2]>,
    /// Per test clip: t-SNE coordinates of its embedding by the encoder trained without
    /// generation (the paper's Fig. 4 is a t-SNE map; [`tsne_settings`]).
    pub tsne_plain: Vec<[f32; 2]>,
    /// The same for the encoder trained with generated variants.
    pub tsne_generated: Vec<[f32; 2]>,
    /// Wall time.
    pub seconds: f64,
}

/// The t-SNE settings of Fig. 4 for `n` points: perplexity 30, or (n - 1) / 3 when there are
/// fewer than 91 points; 1000 iterations, learning rate 200, seed 0.
pub fn tsne_settings(n: usize) -> TsneConfig {
    TsneConfig {
        perplexity: 30f64.min(n.saturating_sub(1) as f64 / 3.0).max(1.0),
        ..TsneConfig::default()
    }
}

/// Runs Fig. 3 (scores of the test clips by category for the support of `normal` drawn with
/// `seed`, full method) and Fig. 4 (PCA and t-SNE maps of the test embeddings by the encoders
/// trained without and with generated variants). Writes `fig34.json`, `fig3.svg`,
/// `fig4_plain.svg`, `fig4_generated.svg` (PCA), `fig4_plain_tsne.svg` and
/// `fig4_generated_tsne.svg`.
pub fn fig34(study: &Study, normal: &str, seed: u64) -> Result<Fig34> {
    let start = Instant::now();
    let s = study.settings();
    let ds = study.dataset();
    let c = ds.category_index(normal)?;
    let plain = study.encoder(Training::Plain)?;
    let full = study.encoder(Training::Generated(s.train_variants))?;
    let input = InputSpec::for_skeleton(ds.skeleton());
    let support = clips_at(ds, &sample_support(study.split.train(c), s.k, seed)?);
    let augmentation = (s.support_variants > 0).then_some(Augmentation {
        augmenter: study.pool(),
        per_clip: s.support_variants,
        seed,
    });
    let detector = Detector::fit(
        full.clone(),
        input.clone(),
        Scoring::MeanDistance,
        &support,
        augmentation,
    )?;
    let test = study.split.all_test();
    let test_clips = clips_at(ds, &test);
    let scores = detector.score_batch(&test_clips)?;
    let test_category: Vec<usize> = test.iter().map(|&i| ds.clips()[i].category).collect();
    let tsne = tsne_settings(test_clips.len()).check()?;
    let pairs = |m: ndarray::Array2<f32>| m.rows().into_iter().map(|r| [r[0], r[1]]).collect();
    type Map = Vec<[f32; 2]>;
    let maps = |e: &Embedder| -> Result<(Map, Map)> {
        let emb = e.embed_raw(&test_clips, &input)?;
        Ok((
            pairs(pca_2d(emb.view())?),
            pairs(tsne_2d(emb.view(), &tsne)?),
        ))
    };
    let (map_plain, tsne_plain) = maps(&plain)?;
    let (map_generated, tsne_generated) = maps(&full)?;
    let f = Fig34 {
        normal: normal.to_string(),
        seed,
        categories: ds.categories().to_vec(),
        test_category,
        scores,
        map_plain,
        map_generated,
        tsne_plain,
        tsne_generated,
        seconds: seconds(start),
    };
    study.write_json("fig34", &f)?;
    let by_cat: Vec<Vec<f32>> = (0..f.categories.len())
        .map(|k| {
            f.scores
                .iter()
                .zip(&f.test_category)
                .filter(|(_, &tc)| tc == k)
                .map(|(&v, _)| v)
                .collect()
        })
        .collect();
    plot_strips(
        &study.work().join("fig3.svg"),
        &format!("Fig. 3: anomaly scores of test clips, normal = {normal} (red)"),
        "anomaly score (mean distance to the support)",
        &f.categories,
        &by_cat,
        Some(c),
    )?;
    let without = "trained without generation";
    let with = "trained with generated variants";
    for (name, pts, what, method) in [
        ("fig4_plain.svg", &f.map_plain, without, "PCA"),
        ("fig4_generated.svg", &f.map_generated, with, "PCA"),
        ("fig4_plain_tsne.svg", &f.tsne_plain, without, "t-SNE"),
        ("fig4_generated_tsne.svg", &f.tsne_generated, with, "t-SNE"),
    ] {
        let flat: Vec<f32> = pts.iter().flatten().copied().collect();
        let arr = ndarray::Array2::from_shape_vec((pts.len(), 2), flat)
            .expect("two coordinates per point");
        plot_scatter(
            &study.work().join(name),
            &format!("Fig. 4: {method} of test embeddings, encoder {what}"),
            arr.view(),
            &f.test_category,
            &f.categories,
        )?;
    }
    Ok(f)
}
