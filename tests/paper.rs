//! Every experiment of `haad::paper` on a tiny synthetic dataset with an untrained tiny
//! generator: the plumbing (pools, encoder caching, evaluation, files) rather than the numbers.

use std::path::PathBuf;

use candle_core::Device;
use haad::diffusion::{DiffusionAugmenter, DiffusionConfig, DiffusionModel};
use haad::motion::split::Split;
use haad::motion::{Clip, Dataset, Motion, Skeleton};
use haad::paper::{fig34, fig5, fig7, table2, table3, table4, Settings, Study};
use ndarray::Array3;

/// 3 categories x 8 clips of 3 joints, each category its own frequency.
fn dataset() -> Dataset {
    let skel = Skeleton::new(
        vec!["root".into(), "a".into(), "b".into()],
        vec![None, Some(0), Some(1)],
        0,
    )
    .unwrap();
    let mut clips = Vec::new();
    for c in 0..3 {
        for i in 0..8 {
            let data = Array3::from_shape_fn((64 + i, 3, 3), |(t, j, x)| {
                let f = 0.05 * (c + 1) as f32;
                (t as f32 * f + i as f32 * 0.3).sin() * j as f32 + x as f32 * 0.1
            });
            clips.push(Clip {
                motion: Motion::new(data, Some(30.0)).unwrap(),
                category: c,
                source: format!("c{c}/clip{i}").into(),
            });
        }
    }
    Dataset::new(
        skel,
        vec!["slow".into(), "mid".into(), "fast".into()],
        clips,
        vec![],
    )
    .unwrap()
}

fn generator(joints: usize) -> DiffusionAugmenter {
    let cfg = DiffusionConfig {
        joints,
        d_model: 16,
        heads: 2,
        layers: 2,
        diffusion_steps: 20,
        ddim_steps: 2,
        ..DiffusionConfig::default()
    }
    .check()
    .unwrap();
    DiffusionAugmenter::new(DiffusionModel::new(&cfg, 0, &Device::Cpu).unwrap(), 0).unwrap()
}

fn work() -> PathBuf {
    let d = std::env::temp_dir().join(format!("haad-paper-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn every_experiment_runs_and_writes_its_files() {
    let ds = dataset();
    let split = Split::new(&ds, 0.75, &["fast".to_string()]).unwrap();
    let work = work();
    let settings = Settings {
        k: 2,
        seeds: 2,
        epochs: 2,
        train_variants: 1,
        support_variants: 2,
        pool_size: 2,
        progress: false,
        ..Settings::default()
    };
    let study = Study::new(ds, split, generator(3), &work, settings.clone()).unwrap();
    // 3 categories x 6 training clips, 2 completions each.
    assert_eq!((study.pool().len(), study.pool().per_clip()), (18, 2));

    let t2 = table2(&study).unwrap();
    assert_eq!(t2.full.per_category.len(), 3);
    assert_eq!(t2.full.config.augment_per_clip, 2);
    assert!(t2.many_shot.config.many_shot);
    assert!(t2.format().contains("fast"));
    // Two encoders were trained and cached, and a second run reuses them unchanged.
    let encoders = std::fs::read_dir(work.join("encoders")).unwrap().count();
    assert_eq!(encoders, 2);
    let again = table2(&study).unwrap();
    assert_eq!(again.full, t2.full);

    let t3 = table3(&study, 1).unwrap();
    assert_eq!(t3.rows.len(), 4);
    assert_eq!(
        t3.rows
            .iter()
            .map(|r| (r.train_variants, r.support_variants))
            .collect::<Vec<_>>(),
        vec![(0, 0), (0, 2), (1, 0), (1, 2)]
    );
    // Rows without generation at inference are Table 2's contrastive / full-encoder runs.
    assert_eq!(t3.rows[0].mean, t2.contrastive.mean_auc);
    assert_eq!(t3.rows[3].mean, t2.full.mean_auc);

    let f5 = fig5(&study, &[1, 2], &[0, 2]).unwrap();
    assert_eq!((f5.grid.len(), f5.grid[0].len()), (2, 2));
    assert_eq!(f5.grid[1][1].all, t2.full.mean_auc);
    assert!(fig5(&study, &[1], &[3]).is_err()); // more than the pool holds

    let f7 = fig7(&study, &[1, 2]).unwrap();
    assert_eq!(f7.points.len(), 2);
    assert_eq!(f7.points[0].generated_support.all, t2.full.mean_auc);
    assert!(fig7(&study, &[0]).is_err());

    let t4 = table4(&study, &[20, 40]).unwrap();
    assert_eq!(
        t4.rows
            .iter()
            .map(|r| (r.observed, r.predicted))
            .collect::<Vec<_>>(),
        vec![(20, 40), (40, 20)]
    );
    assert!(table4(&study, &[60]).is_err()); // nothing left to predict

    let f = fig34(&study, "mid", 0).unwrap();
    assert_eq!(f.scores.len(), 6); // 2 test clips per category
    assert_eq!(f.map_plain.len(), 6);
    assert_eq!(f.tsne_generated.len(), 6);
    assert!(fig34(&study, "nope", 0).is_err());

    for name in [
        "table2.json",
        "table2.svg",
        "table3.json",
        "table3.svg",
        "fig5.json",
        "fig5.svg",
        "fig7.json",
        "fig7.svg",
        "table4.json",
        "table4.svg",
        "fig34.json",
        "fig3.svg",
        "fig4_plain.svg",
        "fig4_generated.svg",
        "fig4_plain_tsne.svg",
        "fig4_generated_tsne.svg",
    ] {
        assert!(work.join(name).is_file(), "{name} missing");
    }
    // Settings are checked before any work.
    let ds = dataset();
    let split = Split::new(&ds, 0.75, &[]).unwrap();
    let bad = Settings {
        pool_size: 1,
        ..settings
    };
    assert!(Study::new(ds, split, generator(3), &work, bad).is_err());
    std::fs::remove_dir_all(&work).unwrap();
}
