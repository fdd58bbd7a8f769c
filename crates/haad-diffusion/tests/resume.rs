//! Exact resume and crash safety of diffusion training (`fit`): a run cut short (by a stop or
//! by a fault at any write point) and resumed ends with the uninterrupted run's weights, EMA,
//! optimiser state and log, bit for bit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use haad_diffusion::fit::{fit, model_dir, FitOptions, LAST_DIR, LOG_FILE, STATE_FILE};
use haad_diffusion::{DiffusionConfig, DiffusionError, ValidConfig};
use haad_motion::atomic::{FailAfter, Storage};
use haad_motion::Motion;
use ndarray::Array3;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn tiny() -> ValidConfig {
    DiffusionConfig {
        joints: 2,
        d_model: 16,
        heads: 2,
        layers: 2,
        diffusion_steps: 50,
        ddim_steps: 5,
        batch_size: 4,
        ..DiffusionConfig::default()
    }
    .check()
    .unwrap()
}

/// Raw clips of 2 joints and several lengths.
fn clips() -> Vec<Motion> {
    let mut rng = StdRng::seed_from_u64(11);
    [50usize, 64, 80]
        .iter()
        .map(|&n| {
            let ph: f32 = rng.random_range(0.0..6.0);
            let data = Array3::from_shape_fn((n, 2, 3), |(t, j, c)| {
                (t as f32 * 0.07 + ph + (j * 3 + c) as f32).sin() + 2.0
            });
            Motion::new(data, Some(15.0)).unwrap()
        })
        .collect()
}

fn out(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("haad-fit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn options(dir: &Path, resume: bool) -> FitOptions {
    FitOptions {
        // A decaying rate, so that the schedule must survive a resume too.
        final_learning_rate: Some(2e-4),
        seed: 5,
        resume,
        ..FitOptions::new(dir, 3, 2)
    }
}

/// Every tensor of a safetensors file, by name, as bit patterns.
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

/// What a finished run leaves: checkpoint tensors and state, and the log without wall times.
/// Named tensors as bit patterns, per file; the state file; the log lines.
type Outcome = (Vec<Vec<(String, Vec<u64>)>>, String, Vec<String>);

fn outcome(dir: &Path) -> Outcome {
    let last = dir.join(LAST_DIR);
    let tensors = [
        "model.safetensors",
        "train.safetensors",
        "optimizer.safetensors",
    ]
    .iter()
    .map(|f| tensor_bits(&last.join(f)))
    .collect();
    let state = std::fs::read_to_string(last.join(STATE_FILE)).unwrap();
    let log = std::fs::read_to_string(dir.join(LOG_FILE))
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
fn resume_after_a_stop_is_bit_for_bit() {
    let (cfg, clips) = (tiny(), clips());
    let full = out("full");
    fit(&cfg, &clips, 0, &options(&full, false), &Device::Cpu).unwrap();
    let want = outcome(&full);
    assert_eq!(want.2.len(), 3);
    // A training folder stands for its checkpoint wherever a model folder is asked for.
    assert_eq!(model_dir(&full), full.join(LAST_DIR));
    assert_eq!(model_dir(&full.join(LAST_DIR)), full.join(LAST_DIR));
    haad_diffusion::DiffusionAugmenter::load(&full, 0, &Device::Cpu).unwrap();

    let cut = out("cut");
    let first = FitOptions {
        stop_after_epoch: Some(1),
        ..options(&cut, false)
    };
    let (t, log) = fit(&cfg, &clips, 0, &first, &Device::Cpu).unwrap();
    assert_eq!((t.steps(), log.len()), (2, 1));
    assert_ne!(outcome(&cut).0, want.0);
    let (t, log) = fit(&cfg, &clips, 0, &options(&cut, true), &Device::Cpu).unwrap();
    assert_eq!((t.steps(), log.len(), log[0].epoch), (6, 2, 2));
    assert_eq!(
        outcome(&cut),
        want,
        "resumed run differs from the uninterrupted one"
    );
    std::fs::remove_dir_all(&full).unwrap();
    std::fs::remove_dir_all(&cut).unwrap();
}

#[test]
fn resume_without_checkpoint_is_an_error() {
    let dir = out("none");
    let res = fit(&tiny(), &clips(), 0, &options(&dir, true), &Device::Cpu);
    assert!(matches!(res, Err(DiffusionError::Resume { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_fault_at_any_write_point_then_resume_gives_the_uninterrupted_run() {
    let (cfg, clips) = (tiny(), clips());
    let opts = |dir: &Path, storage: Arc<dyn Storage>| FitOptions {
        epochs: 2,
        storage,
        ..options(dir, false)
    };
    let full = out("fault-full");
    let counter = Arc::new(FailAfter::new(usize::MAX));
    fit(&cfg, &clips, 0, &opts(&full, counter.clone()), &Device::Cpu).unwrap();
    let points = counter.passed();
    // Empty log (flush + rename), then per epoch a log line and a checkpoint of 5 files and
    // 1 (first) or 2 renames.
    assert_eq!(points, 2 + (1 + 5 + 1) + (1 + 5 + 2));
    let want = outcome(&full);
    for n in 0..points {
        let dir = out(&format!("fault-{n}"));
        let crash = fit(
            &cfg,
            &clips,
            0,
            &opts(&dir, Arc::new(FailAfter::new(n))),
            &Device::Cpu,
        );
        assert!(crash.is_err(), "fault {n} did not stop the run");
        let resumed = fit(
            &cfg,
            &clips,
            0,
            &FitOptions {
                resume: true,
                ..opts(&dir, Arc::new(haad_motion::atomic::Disk))
            },
            &Device::Cpu,
        );
        match resumed {
            Ok(_) => {}
            // Interrupted before the first checkpoint: nothing to resume, start again.
            Err(DiffusionError::Resume { .. }) => {
                assert!(n < 2 + 1 + 5 + 1, "fault {n}: a checkpoint should exist");
                fit(
                    &cfg,
                    &clips,
                    0,
                    &opts(&dir, Arc::new(haad_motion::atomic::Disk)),
                    &Device::Cpu,
                )
                .unwrap();
            }
            Err(e) => panic!("fault {n}: resume failed: {e}"),
        }
        assert_eq!(outcome(&dir), want, "fault {n}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::remove_dir_all(&full).unwrap();
}
