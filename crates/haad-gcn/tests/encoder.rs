//! Behaviour of the encoder: shapes, modes, seeds, save/load, gradients and errors.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use candle_nn::ModuleT;
use haad_gcn::{batch_tensor, EmbeddingLayer, EncoderConfig, EncoderModel, GcnError, Pooling};
use haad_motion::Motion;
use ndarray::Array3;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn random_clips(n: usize, t: usize, j: usize, seed: u64) -> Vec<Motion> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let data = Array3::from_shape_fn((t, j, 3), |_| rng.random_range(-1.0f32..1.0));
            Motion::new(data, None).unwrap()
        })
        .collect()
}

fn all_configs(joints: usize) -> Vec<EncoderConfig> {
    let mut out = Vec::new();
    for pooling in [Pooling::MaxOverFeatures, Pooling::MaxOverJoints] {
        for embedding in [EmbeddingLayer::Output, EmbeddingLayer::Hidden] {
            out.push(EncoderConfig {
                joints,
                pooling: pooling.clone(),
                embedding,
                ..Default::default()
            });
        }
    }
    out
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("haad-gcn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn output_shapes_for_20_22_24_joints() {
    let dev = Device::Cpu;
    for j in [20, 22, 24] {
        let clips = random_clips(3, 60, j, j as u64);
        let xs = batch_tensor(&clips, &dev).unwrap();
        assert_eq!(xs.dims(), &[3, 60, j, 3]);
        for cfg in all_configs(j) {
            let model = EncoderModel::new(&cfg, 1, &dev).unwrap();
            let e = cfg.embedding_dim();
            let want = match (&cfg.pooling, cfg.embedding) {
                (Pooling::MaxOverFeatures, _) => j,
                (Pooling::MaxOverJoints, EmbeddingLayer::Output) => 30,
                (Pooling::MaxOverJoints, EmbeddingLayer::Hidden) => 128,
            };
            assert_eq!(e, want);
            for train in [false, true] {
                let emb = model.encoder().forward_t(&xs, train).unwrap();
                assert_eq!(emb.dims(), &[3, e], "{cfg:?} train={train}");
            }
            let map = model.encoder().feature_map(&xs, false).unwrap();
            let width = if cfg.embedding == EmbeddingLayer::Output {
                30
            } else {
                128
            };
            assert_eq!(map.dims(), &[3, j, width]);
            assert_eq!(model.embed(&clips).unwrap().dim(), (3, e));
        }
    }
}

#[test]
fn pooling_is_the_max_of_the_feature_map() {
    let dev = Device::Cpu;
    let clips = random_clips(2, 60, 20, 5);
    let xs = batch_tensor(&clips, &dev).unwrap();
    for cfg in all_configs(20) {
        let model = EncoderModel::new(&cfg, 2, &dev).unwrap();
        let map: Vec<Vec<Vec<f32>>> = model
            .encoder()
            .feature_map(&xs, false)
            .unwrap()
            .to_vec3()
            .unwrap();
        let emb: Vec<Vec<f32>> = model
            .encoder()
            .forward_t(&xs, false)
            .unwrap()
            .to_vec2()
            .unwrap();
        for b in 0..2 {
            let want: Vec<f32> = match cfg.pooling {
                Pooling::MaxOverFeatures => map[b]
                    .iter()
                    .map(|row| row.iter().copied().fold(f32::MIN, f32::max))
                    .collect(),
                Pooling::MaxOverJoints => (0..map[b][0].len())
                    .map(|f| map[b].iter().map(|row| row[f]).fold(f32::MIN, f32::max))
                    .collect(),
            };
            assert_eq!(emb[b], want);
        }
    }
}

#[test]
fn eval_mode_is_deterministic_and_per_clip() {
    let dev = Device::Cpu;
    let model = EncoderModel::new(&EncoderConfig::default(), 3, &dev).unwrap();
    let clips = random_clips(5, 60, 20, 9);
    let xs = batch_tensor(&clips, &dev).unwrap();
    let a = values(&model.encoder().forward_t(&xs, false).unwrap());
    let b = values(&model.encoder().forward_t(&xs, false).unwrap());
    assert_eq!(a, b);
    // Eval mode uses running statistics: a clip's embedding does not depend on its batch.
    let single = model.embed(&clips[2..3]).unwrap();
    let e = single.ncols();
    for (k, v) in single.iter().enumerate() {
        assert!((v - a[2 * e + k]).abs() < 1e-5, "{v} vs {}", a[2 * e + k]);
    }
}

#[test]
fn training_mode_uses_batch_statistics_and_updates_running_ones() {
    let dev = Device::Cpu;
    let model = EncoderModel::new(&EncoderConfig::default(), 3, &dev).unwrap();
    let xs = batch_tensor(&random_clips(4, 60, 20, 1), &dev).unwrap();
    let mean_before = values(model.varmap().data().lock().unwrap()["bn1.running_mean"].as_tensor());
    let train = values(&model.encoder().forward_t(&xs, true).unwrap());
    let mean_after = values(model.varmap().data().lock().unwrap()["bn1.running_mean"].as_tensor());
    assert!(mean_before.iter().all(|&v| v == 0.0));
    assert!(
        mean_after.iter().any(|&v| v != 0.0),
        "running mean did not move"
    );
    // Eval with the (barely moved) running statistics differs from batch statistics.
    let eval = values(&model.encoder().forward_t(&xs, false).unwrap());
    assert!(train.iter().zip(&eval).any(|(a, b)| (a - b).abs() > 1e-3));
}

#[test]
fn same_seed_same_weights_different_seed_different() {
    let dev = Device::Cpu;
    let cfg = EncoderConfig {
        joints: 22,
        ..Default::default()
    };
    let a = EncoderModel::new(&cfg, 11, &dev).unwrap();
    let b = EncoderModel::new(&cfg, 11, &dev).unwrap();
    let c = EncoderModel::new(&cfg, 12, &dev).unwrap();
    let (va, vb, vc) = (a.named_vars(), b.named_vars(), c.named_vars());
    assert_eq!(va.len(), vb.len());
    let mut differing = 0;
    for (((na, xa), (nb, xb)), (_, xc)) in va.iter().zip(&vb).zip(&vc) {
        assert_eq!(na, nb);
        assert_eq!(values(xa.as_tensor()), values(xb.as_tensor()), "{na}");
        if values(xa.as_tensor()) != values(xc.as_tensor()) {
            differing += 1;
        }
    }
    // Every graph-convolution parameter is random; BatchNorm ones are constant.
    let gc_params = va
        .iter()
        .filter(|(n, _)| !n.split('.').any(|p| p.starts_with("bn")))
        .count();
    assert_eq!(differing, gc_params);
}

#[test]
fn init_follows_the_reference_bounds() {
    let model = EncoderModel::new(&EncoderConfig::default(), 4, &Device::Cpu).unwrap();
    for (name, var) in model.named_vars() {
        let v = values(var.as_tensor());
        let bound = if name.starts_with("gc1.") || name.contains(".gc") {
            Some(1.0 / 128f32.sqrt())
        } else if name.starts_with("gc7.") {
            Some(1.0 / 30f32.sqrt())
        } else {
            None
        };
        match bound {
            Some(s) => {
                assert!(v.iter().all(|x| x.abs() <= s), "{name} exceeds {s}");
                let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
                assert!(max > 0.8 * s, "{name}: max |x| = {max}, bound {s}");
            }
            None => {
                let want = if name.ends_with("weight") || name.ends_with("running_var") {
                    1.0
                } else {
                    0.0
                };
                assert!(v.iter().all(|&x| x == want), "{name}");
            }
        }
    }
}

#[test]
fn weight_names_are_stable_and_running_stats_not_trainable() {
    let model = EncoderModel::new(&EncoderConfig::default(), 0, &Device::Cpu).unwrap();
    let names: Vec<String> = model.named_vars().into_iter().map(|(n, _)| n).collect();
    for want in [
        "gc1.att",
        "gc1.weight",
        "gc1.bias",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "gcbs.0.gc1.att",
        "gcbs.0.gc1.weight",
        "gcbs.0.bn1.weight",
        "gcbs.0.gc2.att",
        "gcbs.3.bn2.running_var",
        "gc7.att",
        "gc7.weight",
        "gc7.bias",
    ] {
        assert!(names.iter().any(|n| n == want), "missing {want}");
    }
    // Block convolutions have no bias (issue 3); 4 blocks.
    assert!(!names.iter().any(|n| n == "gcbs.0.gc1.bias"));
    assert!(!names.iter().any(|n| n.starts_with("gcbs.4.")));
    // gc1 (3) + bn1 (4) + 4 blocks x (2 x 2 + 2 x 4) + gc7 (3).
    assert_eq!(names.len(), 3 + 4 + 4 * 12 + 3);
    let trainable = model.trainable_vars();
    assert_eq!(trainable.len(), names.len() - 9 * 2);
    let stats: Vec<_> = model
        .named_vars()
        .into_iter()
        .filter(|(n, _)| n.contains("running"))
        .map(|(_, v)| v.as_tensor().id())
        .collect();
    assert!(trainable
        .iter()
        .all(|v| !stats.contains(&v.as_tensor().id())));
    // Hidden embedding: no output layer.
    let hidden = EncoderConfig {
        embedding: EmbeddingLayer::Hidden,
        ..Default::default()
    };
    let model = EncoderModel::new(&hidden, 0, &Device::Cpu).unwrap();
    assert!(!model.named_vars().iter().any(|(n, _)| n.starts_with("gc7")));
}

#[test]
fn save_load_gives_identical_outputs() {
    let dev = Device::Cpu;
    for cfg in [
        EncoderConfig::default(),
        EncoderConfig {
            joints: 22,
            pooling: Pooling::MaxOverJoints,
            embedding: EmbeddingLayer::Hidden,
            blocks: 2,
            ..Default::default()
        },
    ] {
        let model = EncoderModel::new(&cfg, 5, &dev).unwrap();
        let xs = batch_tensor(&random_clips(6, 60, cfg.joints, 2), &dev).unwrap();
        for _ in 0..3 {
            model.encoder().forward_t(&xs, true).unwrap(); // moves the running statistics
        }
        let dir = temp_dir(&format!("save-{}", cfg.joints));
        model.save(&dir).unwrap();
        assert!(dir.join("encoder.safetensors").exists() && dir.join("encoder.json").exists());
        let loaded = EncoderModel::load(&dir, &dev).unwrap();
        assert_eq!(loaded.config(), model.config());
        let (va, vb) = (model.named_vars(), loaded.named_vars());
        assert_eq!(va.len(), vb.len());
        for ((na, a), (nb, b)) in va.iter().zip(&vb) {
            assert_eq!(na, nb);
            assert_eq!(values(a.as_tensor()), values(b.as_tensor()), "{na}");
        }
        let running = values(
            vb.iter()
                .find(|(n, _)| n == "bn1.running_var")
                .unwrap()
                .1
                .as_tensor(),
        );
        assert!(
            running.iter().any(|&v| v != 1.0),
            "running stats were not saved"
        );
        assert_eq!(
            values(&model.encoder().forward_t(&xs, false).unwrap()),
            values(&loaded.encoder().forward_t(&xs, false).unwrap())
        );
        // The loaded variables are live: training mode moves them.
        loaded.encoder().forward_t(&xs, true).unwrap();
        let after = values(loaded.varmap().data().lock().unwrap()["bn1.running_var"].as_tensor());
        assert_ne!(after, running);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn load_reports_missing_files_and_mismatched_weights() {
    let dev = Device::Cpu;
    let missing = temp_dir("missing");
    assert!(matches!(
        EncoderModel::load(&missing, &dev),
        Err(GcnError::Io { .. })
    ));

    let dir = temp_dir("mismatch");
    EncoderModel::new(&EncoderConfig::default(), 0, &dev)
        .unwrap()
        .save(&dir)
        .unwrap();
    // Same weights, but the config now says 22 joints.
    let cfg = EncoderConfig {
        joints: 22,
        ..Default::default()
    };
    std::fs::write(
        dir.join("encoder.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    match EncoderModel::load(&dir, &dev) {
        Err(GcnError::Weights { path, message }) => {
            assert!(path.ends_with("encoder.safetensors"));
            assert!(
                message.contains("gc1.att") || message.contains("bn1"),
                "{message}"
            );
        }
        other => panic!("expected a weights error, got {other:?}"),
    }
    // Fewer blocks than the file holds: extra tensors are reported.
    let cfg = EncoderConfig {
        blocks: 3,
        ..Default::default()
    };
    std::fs::write(
        dir.join("encoder.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    match EncoderModel::load(&dir, &dev) {
        Err(GcnError::Weights { message, .. }) => assert!(message.contains("gcbs.3"), "{message}"),
        other => panic!("expected a weights error, got {other:?}"),
    }
    std::fs::write(dir.join("encoder.json"), "{ not json").unwrap();
    assert!(matches!(
        EncoderModel::load(&dir, &dev),
        Err(GcnError::Json { .. })
    ));
    // A rule broken in the file: the error names the file and the field.
    std::fs::write(dir.join("encoder.json"), r#"{"hidden": 0}"#).unwrap();
    match EncoderModel::load(&dir, &dev) {
        Err(GcnError::InvalidFile { path, message }) => {
            assert!(path.ends_with("encoder.json") && message.contains("hidden"));
        }
        other => panic!("expected an invalid-file error, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_inputs_are_errors() {
    let dev = Device::Cpu;
    let model = EncoderModel::new(&EncoderConfig::default(), 0, &dev).unwrap();
    let mut clips = random_clips(3, 60, 20, 0);
    clips.push(random_clips(1, 59, 20, 0).remove(0));
    match batch_tensor(&clips, &dev) {
        Err(GcnError::Shape { what, .. }) => assert_eq!(what, "clip 3"),
        other => panic!("expected a shape error, got {other:?}"),
    }
    assert!(matches!(
        batch_tensor(&[], &dev),
        Err(GcnError::Shape { .. })
    ));
    match model.embed(&clips) {
        Err(GcnError::Shape { what, .. }) => assert_eq!(what, "clip 3"),
        other => panic!("expected a shape error, got {other:?}"),
    }
    assert_eq!(model.embed(&[]).unwrap().dim(), (0, 20));
    // Wrong joint count, wrong rank, and a one-clip batch in training mode.
    let xs22 = batch_tensor(&random_clips(2, 60, 22, 0), &dev).unwrap();
    assert!(model.encoder().forward_t(&xs22, false).is_err());
    assert!(model
        .encoder()
        .forward_t(&xs22.flatten_from(2).unwrap(), false)
        .is_err());
    let one = batch_tensor(&random_clips(1, 60, 20, 0), &dev).unwrap();
    assert!(model.encoder().forward_t(&one, true).is_err());
    assert!(model.encoder().forward_t(&one, false).is_ok());
}

#[test]
fn dropout_is_seeded_and_only_in_training() {
    let dev = Device::Cpu;
    let cfg = EncoderConfig {
        dropout: 0.5,
        ..Default::default()
    };
    let a = EncoderModel::new(&cfg, 8, &dev).unwrap();
    let b = EncoderModel::new(&cfg, 8, &dev).unwrap();
    let plain = EncoderModel::new(&EncoderConfig::default(), 8, &dev).unwrap();
    let xs = batch_tensor(&random_clips(4, 60, 20, 3), &dev).unwrap();
    // Eval: dropout off, so identical to the same weights without dropout.
    assert_eq!(
        values(&a.encoder().forward_t(&xs, false).unwrap()),
        values(&plain.encoder().forward_t(&xs, false).unwrap())
    );
    let a1 = values(&a.encoder().forward_t(&xs, true).unwrap());
    let a2 = values(&a.encoder().forward_t(&xs, true).unwrap());
    let b1 = values(&b.encoder().forward_t(&xs, true).unwrap());
    let p1 = values(&plain.encoder().forward_t(&xs, true).unwrap());
    assert_eq!(a1, b1, "same seed, same masks");
    assert_ne!(a1, a2, "fresh masks each call");
    assert_ne!(a1, p1, "dropout changes the training forward");
}

/// A loss that touches every embedding entry with a fixed random weight.
fn probe_loss(emb: &Tensor, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = emb.elem_count();
    let r: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let r = Tensor::from_vec(r, emb.shape(), emb.device()).unwrap();
    (emb * r).unwrap().sum_all().unwrap()
}

#[test]
fn gradients_reach_every_trainable_variable() {
    let dev = Device::Cpu;
    for cfg in all_configs(20) {
        let model = EncoderModel::new(&cfg, 6, &dev).unwrap();
        let xs = batch_tensor(&random_clips(8, 60, 20, 4), &dev).unwrap();
        let loss = probe_loss(&model.encoder().forward_t(&xs, true).unwrap(), 1);
        let grads = loss.backward().unwrap();
        for (name, var) in model.named_vars() {
            let g = grads.get(var.as_tensor());
            if name.contains("running") {
                continue;
            }
            let g = g.unwrap_or_else(|| panic!("{cfg:?}: no gradient for {name}"));
            let norm = g
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{cfg:?}: gradient of {name} is {norm}"
            );
        }
    }
}

#[test]
fn eval_embeddings_are_the_same_at_any_thread_count() {
    // 70 clips: chunks of 32, 32 and 6, spread over the threads, or in turn inside `serial`.
    let clips = random_clips(70, 60, 20, 3);
    let model = EncoderModel::new(&EncoderConfig::default(), 1, &Device::Cpu).unwrap();
    let xs = batch_tensor(&clips, &Device::Cpu).unwrap();
    let split = values(&model.encoder().forward_t(&xs, false).unwrap());
    let whole = values(&haad_kernels::serial(|| model.encoder().forward_t(&xs, false)).unwrap());
    assert_eq!(split, whole);
}
