//! Proof that the whole encoder trains: a linear probe on its embeddings, trained jointly with
//! it by cross-entropy, separates three MSR Action3D categories of real clips.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, ModuleT, Optimizer, ParamsAdamW};
use haad_gcn::{batch_tensor, EncoderConfig, EncoderModel};
use haad_motion::{preprocess, Motion};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn msr_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/msr_action3d/MSRAction3DSkeletonReal3D")
}

/// A minimal MSR Action3D reader for this test: rows `x y z confidence`, 20 rows per frame.
fn read_msr(path: &Path) -> Motion {
    let text = std::fs::read_to_string(path).unwrap();
    let mut values = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let cols: Vec<f32> = line
            .split_whitespace()
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(cols.len(), 4, "{}:{}", path.display(), i + 1);
        values.extend_from_slice(&cols[..3]);
    }
    Motion::from_flat(values, 20, Some(15.0)).unwrap()
}

#[test]
fn supervised_toy_objective_decreases_on_real_clips() {
    let dir = msr_dir();
    if !dir.is_dir() {
        eprintln!("SKIPPED: MSR Action3D not found at {}", dir.display());
        return;
    }
    // Actions 01 high arm wave, 05 forward punch, 14 forward kick; subjects 1..8, repetition 1.
    let actions = [1, 5, 14];
    let mut clips = Vec::new();
    let mut labels = Vec::new();
    for (label, a) in actions.iter().enumerate() {
        for s in 1..=8 {
            let path = dir.join(format!("a{a:02}_s{s:02}_e01_skeleton3D.txt"));
            if !path.exists() {
                continue;
            }
            let clip = read_msr(&path);
            clips.push(preprocess::prepare(&clip, 60, 6).unwrap());
            labels.push(label as u32);
        }
    }
    assert!(clips.len() >= 18, "only {} clips found", clips.len());

    let dev = Device::Cpu;
    let cfg = EncoderConfig {
        joints: 20,
        hidden: 64,
        blocks: 2,
        ..Default::default()
    };
    let model = EncoderModel::new(&cfg, 21, &dev).unwrap();
    let e = cfg.embedding_dim();
    let mut rng = StdRng::seed_from_u64(22);
    let s = 1.0 / (e as f32).sqrt();
    let head_w: Vec<f32> = (0..e * actions.len())
        .map(|_| rng.random_range(-s..s))
        .collect();
    let head_w =
        Var::from_tensor(&Tensor::from_vec(head_w, (e, actions.len()), &dev).unwrap()).unwrap();
    let head_b = Var::zeros(actions.len(), DType::F32, &dev).unwrap();

    let xs = batch_tensor(&clips, &dev).unwrap();
    let ys = Tensor::new(labels.as_slice(), &dev).unwrap();
    let mut vars = model.trainable_vars();
    vars.push(head_w.clone());
    vars.push(head_b.clone());
    let params = ParamsAdamW {
        lr: 1e-3,
        weight_decay: 0.01,
        ..Default::default()
    };
    let mut opt = AdamW::new(vars, params).unwrap();
    let logits = |train: bool| -> Tensor {
        let emb = model.encoder().forward_t(&xs, train).unwrap();
        emb.matmul(head_w.as_tensor())
            .unwrap()
            .broadcast_add(head_b.as_tensor())
            .unwrap()
    };
    let mut losses = Vec::new();
    for _ in 0..100 {
        let loss = candle_nn::loss::cross_entropy(&logits(true), &ys).unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
        opt.backward_step(&loss).unwrap();
    }
    let first = losses[0];
    let last: f32 = losses[losses.len() - 10..].iter().sum::<f32>() / 10.0;
    eprintln!("cross-entropy: first {first:.4}, mean of last 10 {last:.4}");
    assert!(first > 0.5, "initial loss {first} is suspiciously low");
    assert!(
        last < 0.3 * first,
        "loss did not drop enough: {first} -> {last}"
    );
    // The running statistics followed: eval-mode predictions classify the clips.
    let pred: Vec<u32> = logits(false).argmax(1).unwrap().to_vec1().unwrap();
    let correct = pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
    assert!(
        correct as f32 >= 0.9 * labels.len() as f32,
        "eval accuracy {correct}/{}",
        labels.len()
    );
}
