//! Trainer behaviour on small synthetic datasets: rejections, loss falling, exact resume.

use std::path::PathBuf;

use candle_core::Device;
use haad_contrastive::{train, ContrastiveError, TrainConfig, TrainOptions};
use haad_motion::augment::CropAugmenter;
use haad_motion::{Clip, Dataset, Motion, Skeleton};
use ndarray::Array3;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// `per_cat` clips of each of `cats` categories, 70 frames, 5 joints: category c swings joint
/// `c % 5` along axis `c % 3` (a small random phase per clip), plus seeded noise on every joint.
fn synthetic(cats: usize, per_cat: usize) -> Dataset {
    let mut rng = StdRng::seed_from_u64(1);
    let names = (0..5).map(|j| format!("j{j}")).collect();
    let skel = Skeleton::new(names, vec![None, Some(0), Some(1), Some(0), Some(3)], 0).unwrap();
    let mut clips = Vec::new();
    for c in 0..cats {
        for i in 0..per_cat {
            let phase: f32 = rng.random_range(-0.3..0.3);
            let a = Array3::from_shape_fn((70, 5, 3), |(t, j, k)| {
                let s = t as f32 / 60.0;
                let swing = if j == c % 5 && k == c % 3 {
                    (6.0 * s + phase).sin()
                } else {
                    0.0
                };
                0.1 * j as f32 + swing
            });
            let noise = Array3::from_shape_fn((70, 5, 3), |_| rng.random_range(-0.05..0.05));
            clips.push(Clip {
                motion: Motion::new(a + noise, Some(30.0)).unwrap(),
                category: c,
                source: PathBuf::from(format!("cat{c}/clip{i:02}")),
            });
        }
    }
    let cats = (0..cats).map(|c| format!("cat{c}")).collect();
    Dataset::new(skel, cats, clips, vec![]).unwrap()
}

fn tiny(epochs: usize, seed: u64) -> TrainConfig {
    let mut c = TrainConfig {
        epochs,
        seed,
        checkpoint_every: 1,
        ..Default::default()
    };
    c.encoder.hidden = 16;
    c.encoder.blocks = 1;
    c.temperature = 0.5;
    c
}

fn out(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("haad-trainer-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

fn opts(dir: &std::path::Path, resume: bool) -> TrainOptions {
    TrainOptions {
        resume,
        ..TrainOptions::new(dir)
    }
}

#[test]
fn loss_falls_on_separable_data() {
    let ds = synthetic(4, 10);
    let dir = out("falls");
    let cfg = TrainConfig {
        learning_rate: 3e-3,
        ..tiny(12, 3)
    }
    .check()
    .unwrap();
    let o = train(&cfg, &ds, None, None, &opts(&dir, false), &Device::Cpu).unwrap();
    let first = o.log.first().unwrap().loss;
    let last = o.log.last().unwrap().loss;
    assert!(last < first - 0.1, "loss {first} -> {last}");
    assert_eq!(o.log.len(), 12);
    // 4 categories x 8 training clips, 2 per category a batch: 4 steps an epoch.
    assert_eq!(o.log[0].steps, 4);
    let lines = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 12);
    assert!(dir.join("last/encoder.safetensors").exists());
    std::fs::remove_dir_all(&dir).ok();
}

fn weights(dir: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    let map =
        candle_core::safetensors::load(dir.join("encoder.safetensors"), &Device::Cpu).unwrap();
    let mut v: Vec<_> = map
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn resume_reproduces_uninterrupted_run() {
    let ds = synthetic(3, 8);
    let aug = CropAugmenter { frames: 60 };
    let cfg = TrainConfig {
        variants_per_clip: 2,
        ..tiny(4, 9)
    }
    .check()
    .unwrap();

    let full_dir = out("full");
    let full = train(
        &cfg,
        &ds,
        Some(&aug),
        None,
        &opts(&full_dir, false),
        &Device::Cpu,
    )
    .unwrap();

    // Interrupted after epoch 2, then resumed.
    let cut_dir = out("cut");
    let stop = TrainOptions {
        stop_after_epoch: Some(2),
        ..opts(&cut_dir, false)
    };
    let part = train(&cfg, &ds, Some(&aug), None, &stop, &Device::Cpu).unwrap();
    assert_eq!(part.log.len(), 2);
    assert!(weights(&cut_dir.join("last")) != weights(&full_dir.join("last")));
    let resumed = train(
        &cfg,
        &ds,
        Some(&aug),
        None,
        &opts(&cut_dir, true),
        &Device::Cpu,
    )
    .unwrap();

    assert!(
        weights(&cut_dir.join("last")) == weights(&full_dir.join("last")),
        "resumed weights differ from the uninterrupted run's"
    );
    let losses = |l: &[haad_contrastive::EpochLog]| l.iter().map(|e| e.loss).collect::<Vec<_>>();
    assert_eq!(losses(&resumed.log), losses(&full.log));
    let log = std::fs::read_to_string(cut_dir.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 4);

    // Resuming under another configuration is refused.
    let other = TrainConfig {
        temperature: 0.1,
        ..(*cfg).clone()
    }
    .check()
    .unwrap();
    let err = train(
        &other,
        &ds,
        Some(&aug),
        None,
        &opts(&cut_dir, true),
        &Device::Cpu,
    );
    assert!(matches!(err, Err(ContrastiveError::Resume { .. })));
    std::fs::remove_dir_all(&cut_dir).ok();
    std::fs::remove_dir_all(&full_dir).ok();
}

#[test]
fn same_seed_same_weights_other_seed_differs() {
    let ds = synthetic(3, 6);
    let run = |seed, name: &str| {
        let dir = out(name);
        let cfg = tiny(2, seed).check().unwrap();
        train(&cfg, &ds, None, None, &opts(&dir, false), &Device::Cpu).unwrap();
        let w = weights(&dir.join("last"));
        std::fs::remove_dir_all(&dir).ok();
        w
    };
    assert!(
        run(5, "s5a") == run(5, "s5b"),
        "same seed gave different weights"
    );
    assert!(
        run(5, "s5c") != run(6, "s6"),
        "different seeds gave the same weights"
    );
}

fn rejected(ds: &Dataset, cfg: TrainConfig, expected: impl Fn(&ContrastiveError) -> bool) {
    let dir = out("reject");
    let err = match cfg.check() {
        Err(e) => e,
        Ok(cfg) => match train(&cfg, ds, None, None, &opts(&dir, false), &Device::Cpu) {
            Err(e) => e,
            Ok(_) => panic!("expected an error"),
        },
    };
    assert!(expected(&err), "unexpected error {err:?}");
    assert!(
        !dir.join("log.jsonl").exists(),
        "no work may start before the checks"
    );
}

#[test]
fn rejects_category_with_too_few_training_clips() {
    // 2 clips: 1 trains, 1 tests, fewer than the 2 a batch takes.
    let mut clips = synthetic(3, 6).clips().to_vec();
    clips.retain(|c| {
        c.category != 1
            || c.source.to_str().unwrap().ends_with("0")
            || c.source.to_str().unwrap().ends_with("1")
    });
    let base = synthetic(3, 6);
    let ds = Dataset::new(
        base.skeleton().clone(),
        base.categories().to_vec(),
        clips,
        vec![],
    )
    .unwrap();
    rejected(&ds, tiny(1, 0), |e| {
        matches!(
            e,
            ContrastiveError::Config {
                field: "clips_per_category",
                ..
            }
        )
    });
}

#[test]
fn rejects_unknown_unseen_category() {
    let ds = synthetic(3, 6);
    rejected(
        &ds,
        TrainConfig {
            unseen: vec!["nope".into()],
            ..tiny(1, 0)
        },
        |e| matches!(e, ContrastiveError::Motion(_)),
    );
}

#[test]
fn rejects_zero_epochs() {
    rejected(&synthetic(3, 6), tiny(0, 0), |e| {
        matches!(
            e,
            ContrastiveError::Config {
                field: "epochs",
                ..
            }
        )
    });
}

#[test]
fn rejects_single_seen_category() {
    let ds = synthetic(2, 6);
    rejected(
        &ds,
        TrainConfig {
            unseen: vec!["cat0".into()],
            ..tiny(1, 0)
        },
        |e| {
            matches!(
                e,
                ContrastiveError::Config {
                    field: "unseen",
                    ..
                }
            )
        },
    );
}

#[test]
fn rejects_validation_without_validator() {
    let ds = synthetic(3, 6);
    rejected(
        &ds,
        TrainConfig {
            validation_fraction: 0.2,
            ..tiny(1, 0)
        },
        |e| {
            matches!(
                e,
                ContrastiveError::Config {
                    field: "validation_fraction",
                    ..
                }
            )
        },
    );
}

/// MSR Action3D from the shared data folder, when present.
fn msr() -> Option<Dataset> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/msr_action3d/MSRAction3DSkeletonReal3D");
    if !root.is_dir() {
        eprintln!("SKIPPED: {} not found", root.display());
        return None;
    }
    Some(haad_motion::load(haad_motion::DataFormat::Msr, &root).unwrap())
}

#[test]
fn loss_falls_on_a_small_real_subset() {
    let Some(full) = msr() else { return };
    // Four actions (high arm wave, hammer, hand clap, jogging), ten clips each in path order.
    let keep = [0usize, 2, 9, 15];
    let mut clips = Vec::new();
    for (new, &c) in keep.iter().enumerate() {
        let mut of_c: Vec<_> = full
            .clips()
            .iter()
            .filter(|x| x.category == c)
            .cloned()
            .collect();
        of_c.sort_by(|a, b| a.source.cmp(&b.source));
        for mut clip in of_c.into_iter().take(10) {
            clip.category = new;
            clips.push(clip);
        }
    }
    let names = keep.iter().map(|&c| full.categories()[c].clone()).collect();
    let ds = Dataset::new(full.skeleton().clone(), names, clips, vec![]).unwrap();
    let dir = out("real");
    let cfg = TrainConfig {
        learning_rate: 3e-3,
        temperature: 0.2,
        ..tiny(8, 1)
    }
    .check()
    .unwrap();
    let o = train(&cfg, &ds, None, None, &opts(&dir, false), &Device::Cpu).unwrap();
    let (first, last) = (o.log[0].loss, o.log.last().unwrap().loss);
    assert!(last < first - 0.2, "loss {first} -> {last}");
    assert_eq!(
        o.model.config().joints,
        20,
        "the encoder takes its joint count from the data"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn validation_keeps_the_best_epoch() {
    use haad_contrastive::{ValidationData, Validator};
    use haad_gcn::EncoderModel;
    let ds = synthetic(3, 10);
    let dir = out("best");
    let cfg = TrainConfig {
        validation_fraction: 0.25,
        ..tiny(4, 2)
    }
    .check()
    .unwrap();
    // A score that peaks after the second epoch; it also checks what the validator is given.
    let mut calls = 0;
    let mut validator = |_: &EncoderModel, data: &ValidationData<'_>| {
        calls += 1;
        for c in 0..3 {
            assert_eq!(data.validation[c].len(), 2, "ceil(0.25 * 8) clips held out");
            assert!(data.validation[c]
                .iter()
                .all(|i| !data.split.train(c).contains(i)));
        }
        Ok(1.0 - (calls as f64 - 2.0).abs() / 10.0)
    };
    let v: Option<&mut dyn Validator> = Some(&mut validator);
    let o = train(&cfg, &ds, None, v, &opts(&dir, false), &Device::Cpu).unwrap();
    let (best, best_dir) = o.best.unwrap();
    assert_eq!(best.epoch, 2);
    assert!((best.score - 1.0).abs() < 1e-12);
    assert!(best_dir.join("encoder.safetensors").exists());
    let scores: Vec<f64> = o.log.iter().map(|e| e.validation.unwrap()).collect();
    assert_eq!(scores, vec![0.9, 1.0, 0.9, 0.8]);
    std::fs::remove_dir_all(&dir).ok();
}
