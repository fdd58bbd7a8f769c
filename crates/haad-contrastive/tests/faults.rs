//! Crash safety of encoder training: a fault at any write point (a checkpoint file, a rename,
//! a log line, the configuration), then a resume, ends with the uninterrupted run's weights,
//! optimiser state and log, bit for bit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use haad_contrastive::{train, ContrastiveError, TrainConfig, TrainOptions, ValidTrainConfig};
use haad_motion::atomic::{Disk, FailAfter, Storage};
use haad_motion::augment::CropAugmenter;
use haad_motion::{Clip, Dataset, Motion, Skeleton};
use ndarray::Array3;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// 3 categories of 6 noisy 70-frame clips, 4 joints.
fn dataset() -> Dataset {
    let mut rng = StdRng::seed_from_u64(2);
    let names = (0..4).map(|j| format!("j{j}")).collect();
    let skel = Skeleton::new(names, vec![None, Some(0), Some(1), Some(0)], 0).unwrap();
    let mut clips = Vec::new();
    for c in 0..3 {
        for i in 0..6 {
            let a = Array3::from_shape_fn((70, 4, 3), |(t, j, k)| {
                let swing = if j == c + 1 && k == c {
                    (t as f32 / 10.0).sin()
                } else {
                    0.0
                };
                0.1 * j as f32 + swing + rng.random_range(-0.05..0.05)
            });
            clips.push(Clip {
                motion: Motion::new(a, Some(30.0)).unwrap(),
                category: c,
                source: PathBuf::from(format!("cat{c}/clip{i}")),
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

fn config() -> ValidTrainConfig {
    let mut c = TrainConfig {
        epochs: 2,
        seed: 4,
        checkpoint_every: 1,
        variants_per_clip: 1,
        ..Default::default()
    };
    c.encoder.hidden = 8;
    c.encoder.blocks = 1;
    c.check().unwrap()
}

fn out(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("haad-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn tensor_bits(path: &Path) -> Vec<(String, Vec<u64>)> {
    let map = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let mut v: Vec<_> = map
        .into_iter()
        .map(|(k, t)| {
            let x = t.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
            (
                k,
                x.to_vec1::<f64>()
                    .unwrap()
                    .iter()
                    .map(|f| f.to_bits())
                    .collect(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The checkpoint's tensors and state, and the log without wall times.
/// Named tensors as bit patterns, per file; the state file; the log lines.
type Outcome = (Vec<Vec<(String, Vec<u64>)>>, String, Vec<String>);

fn outcome(dir: &Path) -> Outcome {
    let last = dir.join("last");
    let tensors = ["encoder.safetensors", "optimizer.safetensors"]
        .iter()
        .map(|f| tensor_bits(&last.join(f)))
        .collect();
    let state = std::fs::read_to_string(last.join("state.json")).unwrap();
    let log = std::fs::read_to_string(dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("wall_seconds");
            v.to_string()
        })
        .collect();
    (tensors, state, log)
}

#[test]
fn a_fault_at_any_write_point_then_resume_gives_the_uninterrupted_run() {
    let (ds, cfg) = (dataset(), config());
    let aug = CropAugmenter { frames: 60 };
    let run = |dir: &Path, resume: bool, storage: Arc<dyn Storage>| {
        let options = TrainOptions {
            resume,
            storage,
            ..TrainOptions::new(dir)
        };
        train(&cfg, &ds, Some(&aug), None, &options, &Device::Cpu)
    };
    let full = out("full");
    let counter = Arc::new(FailAfter::new(usize::MAX));
    run(&full, false, counter.clone()).unwrap();
    let points = counter.passed();
    // config.json and the empty log (flush + rename each), then per epoch a log line and a
    // checkpoint of 5 files and 1 (first) or 2 renames.
    let before_first_checkpoint = 4 + 1 + 5 + 1;
    assert_eq!(points, before_first_checkpoint + 1 + 5 + 2);
    let want = outcome(&full);
    for n in 0..points {
        let dir = out(&format!("n{n}"));
        assert!(
            run(&dir, false, Arc::new(FailAfter::new(n))).is_err(),
            "fault {n} did not stop the run"
        );
        match run(&dir, true, Arc::new(Disk)) {
            Ok(_) => assert!(
                n >= before_first_checkpoint,
                "fault {n}: resumed from nothing"
            ),
            Err(ContrastiveError::Resume { .. }) if n < before_first_checkpoint => {
                // Interrupted before the first checkpoint: nothing to resume, start again.
                run(&dir, false, Arc::new(Disk)).unwrap();
            }
            Err(e) => panic!("fault {n}: resume failed: {e}"),
        }
        assert_eq!(outcome(&dir), want, "fault {n}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::remove_dir_all(&full).unwrap();
}
