//! Behaviour of the diffusion model on tiny configurations (CI time).

use std::path::Path;

use approx::assert_abs_diff_eq;
use candle_core::{Device, Tensor};
use haad_diffusion::sample::randn;
use haad_diffusion::train::{augment_clip, data_scale, q_sample};
use haad_diffusion::{
    DiffusionAugmenter, DiffusionConfig, DiffusionError, DiffusionModel, Dropout, Prediction,
    Trainer, ValidConfig,
};
use haad_motion::{preprocess, Augmenter, Motion};
use ndarray::Array3;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn tiny(joints: usize) -> ValidConfig {
    DiffusionConfig {
        joints,
        d_model: 16,
        heads: 2,
        layers: 2,
        diffusion_steps: 100,
        ddim_steps: 10,
        batch_size: 8,
        ..DiffusionConfig::default()
    }
    .check()
    .unwrap()
}

/// A smooth random 60-frame motion of `j` joints, root (joint 0) at the origin at frame 0.
fn smooth_clip(j: usize, rng: &mut StdRng) -> Motion {
    let ph: Vec<f32> = (0..j * 3)
        .map(|_| rng.random_range(0.0..std::f32::consts::TAU))
        .collect();
    let amp: Vec<f32> = (0..j * 3).map(|_| rng.random_range(0.2..1.0)).collect();
    let data = Array3::from_shape_fn((60, j, 3), |(t, jj, c)| {
        let i = jj * 3 + c;
        amp[i] * ((t as f32 * 0.08 + ph[i]).sin() - ph[i].sin())
    });
    Motion::new(data, Some(15.0)).unwrap()
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    to_vec(a)
        .iter()
        .zip(to_vec(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A model whose zero-initialised weights (the output projection, every `ffn.lin2` and
/// `style.out`) are replaced by random ones, so that the untrained network predicts non-trivial
/// values.
fn random_model(cfg: &ValidConfig, seed: u64) -> DiffusionModel {
    random_model_scaled(cfg, seed, 0.3)
}

fn random_model_scaled(cfg: &ValidConfig, seed: u64, std: f64) -> DiffusionModel {
    let m = DiffusionModel::new(cfg, seed, &Device::Cpu).unwrap();
    {
        let data = m.varmap().data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        let mut rng = StdRng::seed_from_u64(seed + 1);
        let mut replaced = 0;
        for name in names {
            let zero_init = name == "out.weight"
                || name.ends_with("ffn.lin2.weight")
                || name.ends_with("style.out.weight");
            if zero_init {
                let w = &data[name];
                let r = (randn(w.dims(), &mut rng, &Device::Cpu).unwrap() * std).unwrap();
                w.set(&r).unwrap();
                replaced += 1;
            }
        }
        // out + per layer lin2 and two style.out.
        assert_eq!(replaced, 1 + 3 * cfg.layers);
    }
    m
}

#[test]
fn q_sample_has_the_right_mean_and_variance() {
    let cfg = tiny(1);
    let m = DiffusionModel::new(&cfg, 0, &Device::Cpu).unwrap();
    let (b, k, f) = (400, 20, 3);
    let x0 = Tensor::full(2.0f32, (b, k, f), &Device::Cpu).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let eps = randn(&[b, k, f], &mut rng, &Device::Cpu).unwrap();
    for t in [1usize, 50, 99] {
        let xt = to_vec(&q_sample(&m, &x0, &vec![t; b], &eps).unwrap());
        let ab = m.schedule().alpha_bar(t);
        let n = xt.len() as f64;
        let mean = xt.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = xt.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        // 24000 samples: the standard error of the mean is about 0.0065 sqrt(1 - ab).
        assert_abs_diff_eq!(mean, 2.0 * ab.sqrt(), epsilon = 0.03);
        assert_abs_diff_eq!(var, 1.0 - ab, epsilon = 0.03 * (1.0 - ab) + 1e-4);
    }
    assert!(q_sample(&m, &x0, &vec![101; b], &eps).is_err());
}

#[test]
fn targets_and_estimates_invert_each_other() {
    for prediction in [Prediction::Noise, Prediction::Velocity] {
        let cfg = DiffusionConfig {
            prediction,
            ..tiny(2).config().clone()
        }
        .check()
        .unwrap();
        let m = DiffusionModel::new(&cfg, 0, &Device::Cpu).unwrap();
        let mut rng = StdRng::seed_from_u64(8);
        let (b, k, f) = (5, cfg.n_pre, cfg.features());
        let x0 = randn(&[b, k, f], &mut rng, &Device::Cpu).unwrap();
        let eps = randn(&[b, k, f], &mut rng, &Device::Cpu).unwrap();
        let t = [1usize, 10, 50, 90, 99];
        let x_t = q_sample(&m, &x0, &t, &eps).unwrap();
        let target = m.target(&x0, &eps, &t).unwrap();
        let (x0_hat, eps_hat) = m.estimates(&x_t, &target, &t).unwrap();
        // Noise: x0 = (x_t - c eps) / a loses precision where a is small (t = 99 of 100).
        let tol = if prediction == Prediction::Noise {
            2e-3
        } else {
            1e-5
        };
        assert!(max_abs_diff(&x0_hat, &x0) < tol, "{prediction:?} x0");
        assert!(max_abs_diff(&eps_hat, &eps) < 1e-5, "{prediction:?} eps");
        // The velocity target by hand for row 2 (t = 50): sqrt(ab) eps - sqrt(1 - ab) x0.
        if prediction == Prediction::Velocity {
            let ab = m.schedule().alpha_bar(50);
            let want = ((eps.get(2).unwrap() * ab.sqrt()).unwrap()
                - (x0.get(2).unwrap() * (1.0 - ab).sqrt()).unwrap())
            .unwrap();
            assert!(max_abs_diff(&target.get(2).unwrap(), &want) < 1e-6);
        }
    }
    let m = DiffusionModel::new(&tiny(1), 0, &Device::Cpu).unwrap();
    assert!(m.signal_and_noise_scales(&[101]).is_err());
}

#[test]
fn ddim_with_an_oracle_recovers_x0() {
    let cfg = tiny(2);
    let m = DiffusionModel::new(&cfg, 0, &Device::Cpu).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let clips: Vec<Motion> = (0..3).map(|_| smooth_clip(2, &mut rng)).collect();
    let x0 = m.to_dct(&m.frames_tensor(&clips).unwrap()).unwrap();
    let sched = m.schedule().clone();
    let oracle = |x: &Tensor, t: usize| {
        let ab = sched.alpha_bar(t);
        Ok((x0.clone(), ((x - (&x0 * ab.sqrt())?)? / (1.0 - ab).sqrt())?))
    };
    for complete in [false, true] {
        let out = m
            .ddim_with(&x0, complete, &mut StdRng::seed_from_u64(1), oracle)
            .unwrap();
        let err = max_abs_diff(&out, &x0);
        assert!(err < 1e-3, "complete = {complete}: max error {err}");
    }
}

#[test]
fn completion_keeps_the_observed_frames() {
    let cfg = tiny(3);
    let m = random_model_scaled(&cfg, 5, 0.1);
    let mut rng = StdRng::seed_from_u64(2);
    let clips: Vec<Motion> = (0..4).map(|_| smooth_clip(3, &mut rng)).collect();
    let frames = m.frames_tensor(&clips).unwrap();
    let c_obs = m.condition(&frames).unwrap();
    let known = m.from_dct(&c_obs).unwrap().narrow(1, 0, cfg.t_his).unwrap();
    let rows = clips.len();
    let observed_error = |complete: bool| {
        let x0 = m
            .ddim_with(&c_obs, complete, &mut StdRng::seed_from_u64(9), |x, t| {
                m.denoise(x, &vec![t; rows], &c_obs)
            })
            .unwrap();
        let gen = m.from_dct(&x0).unwrap();
        let obs = gen.narrow(1, 0, cfg.t_his).unwrap();
        let d = to_vec(&(obs - &known).unwrap());
        (d.iter().map(|v| v * v).sum::<f32>() / d.len() as f32).sqrt()
    };
    let with = observed_error(true);
    let without = observed_error(false);
    // An untrained model's unconstrained sample drifts far from the observation (measured RMS
    // 19.2 against a signal RMS of 0.5); the completed one follows it up to what leaks through
    // the final low-pass (K-coefficient) projection at the junction with the generated frames
    // (measured 0.57, 34 times less).
    assert!(
        without > 20.0 * with,
        "observed-frame RMS error: without completion {without}, with {with}"
    );
    // The public entry point returns clips in data units, clip-major.
    let out = m.complete(&clips, 2, 4).unwrap();
    assert_eq!(out.len(), 8);
    assert!(out.iter().all(|c| c.frames() == 60 && c.joints() == 3));
    assert!(m.complete(&clips[..1], 0, 4).is_err());
    let short = Motion::new(Array3::zeros((10, 3, 3)), None).unwrap();
    assert!(m.complete(&[short], 1, 4).is_err());
}

#[test]
fn same_seed_same_samples_and_save_load_round_trip() {
    let cfg = tiny(2).with_scale(0.5).unwrap();
    let mut trainer = Trainer::new(&cfg, 7, &Device::Cpu).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let clips: Vec<Motion> = (0..4).map(|_| smooth_clip(2, &mut rng)).collect();
    for _ in 0..3 {
        trainer.step(&clips, &mut rng).unwrap();
    }
    let ema = trainer.ema();
    let a = ema.complete(&clips[..2], 3, 42).unwrap();
    let b = ema.complete(&clips[..2], 3, 42).unwrap();
    let c = ema.complete(&clips[..2], 3, 43).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Completions of one clip differ from each other.
    assert_ne!(a[0], a[1]);
    let dir = std::env::temp_dir().join(format!("haad-diffusion-test-{}", std::process::id()));
    ema.save(&dir).unwrap();
    let loaded = DiffusionModel::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(loaded.config(), ema.config());
    // The fingerprint follows the weights: kept by saving, changed by a training step.
    assert_eq!(loaded.fingerprint().unwrap(), ema.fingerprint().unwrap());
    let before = trainer.ema().fingerprint().unwrap();
    trainer.step(&clips, &mut rng).unwrap();
    assert_ne!(trainer.ema().fingerprint().unwrap(), before);
    let ema = trainer.ema();
    let a = ema.complete(&clips[..2], 3, 42).unwrap();
    ema.save(&dir).unwrap();
    let loaded = DiffusionModel::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(loaded.complete(&clips[..2], 3, 42).unwrap(), a);
    // Same initialisation seed, same weights; another seed, other weights.
    let w = |s| {
        let m = DiffusionModel::new(&cfg, s, &Device::Cpu).unwrap();
        let t = m.varmap().data().lock().unwrap()["joint_embed.weight"]
            .as_tensor()
            .clone();
        to_vec(&t)
    };
    assert_eq!(w(3), w(3));
    assert_ne!(w(3), w(4));
    // A wrong config file is reported with its path.
    std::fs::write(dir.join("config.json"), "{\"joints\": ").unwrap();
    let err = DiffusionModel::load(&dir, &Device::Cpu).err().unwrap();
    assert!(
        matches!(err, DiffusionError::Json { ref path, .. } if path.ends_with("config.json")),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_parameter_gets_a_gradient() {
    for prediction in [Prediction::Noise, Prediction::Velocity] {
        every_parameter_gets_a_gradient_with(prediction);
    }
}

fn every_parameter_gets_a_gradient_with(prediction: Prediction) {
    let cfg = DiffusionConfig {
        prediction,
        ..tiny(2).config().clone()
    }
    .check()
    .unwrap();
    let mut trainer = Trainer::new(&cfg, 1, &Device::Cpu).unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    let clips: Vec<Motion> = (0..8).map(|_| smooth_clip(2, &mut rng)).collect();
    // The output projection and the last Linear of every residual branch start at zero (so
    // little gets a gradient on step 1); after a few steps every weight must receive one.
    for _ in 0..3 {
        trainer.step(&clips, &mut rng).unwrap();
    }
    let model = trainer.model();
    let loss = Trainer::loss(model, &clips, &mut rng, true).unwrap();
    let grads = loss.backward().unwrap();
    let data = model.varmap().data().lock().unwrap();
    assert!(data.len() > 20, "only {} variables", data.len());
    for (name, var) in data.iter() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name} got no gradient"));
        let norm = to_vec(g).iter().map(|v| v.abs()).sum::<f32>();
        assert!(
            norm > 0.0 && norm.is_finite(),
            "{name}: gradient norm {norm}"
        );
    }
}

#[test]
fn augmentation_rotates_about_the_vertical_and_mirrors() {
    let cfg = tiny(3);
    let mut rng = StdRng::seed_from_u64(0);
    let clip = smooth_clip(3, &mut rng);
    let mut mirrored = 0;
    for _ in 0..40 {
        let a = augment_clip(&clip, &cfg, 0, &mut rng).unwrap();
        for t in 0..60 {
            for j in 0..3 {
                let (x, y, z) = (
                    clip.data()[[t, j, 0]],
                    clip.data()[[t, j, 1]],
                    clip.data()[[t, j, 2]],
                );
                let (ax, ay, az) = (
                    a.data()[[t, j, 0]],
                    a.data()[[t, j, 1]],
                    a.data()[[t, j, 2]],
                );
                // Heights and horizontal distances to the pivot (the origin) are kept.
                assert_abs_diff_eq!(ay, y, epsilon = 1e-5);
                assert_abs_diff_eq!(ax.hypot(az), x.hypot(z), epsilon = 1e-4);
            }
        }
        // Mirroring flips the handedness: the sign of a horizontal cross product between two
        // joints' offsets changes.
        let cross = |m: &Motion| {
            let d = m.data();
            d[[10, 1, 0]] * d[[10, 2, 2]] - d[[10, 1, 2]] * d[[10, 2, 0]]
        };
        if cross(&a).signum() != cross(&clip).signum() {
            mirrored += 1;
        }
    }
    assert!((8..=32).contains(&mirrored), "{mirrored} of 40 mirrored");
}

#[test]
fn augmenter_prepares_raw_clips() {
    let cfg = tiny(2);
    let m = random_model(&cfg, 3);
    let aug = DiffusionAugmenter::new(m, 0).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    // Raw clips: 45 and 80 frames, offset from the origin.
    let raw: Vec<Motion> = [45usize, 80]
        .iter()
        .map(|&n| {
            Motion::new(
                Array3::from_shape_fn((n, 2, 3), |(t, j, c)| {
                    5.0 + (t as f32 * 0.1).sin() + (j + c) as f32
                }),
                Some(15.0),
            )
            .unwrap()
        })
        .collect();
    let out = aug.augment(&raw, 3, &mut StdRng::seed_from_u64(1)).unwrap();
    assert_eq!(out.len(), 6);
    assert!(out.iter().all(|c| c.frames() == 60 && c.joints() == 2));
    // The same as completing the prepared clips with the seed the augmenter draws.
    let prepared: Vec<Motion> = raw
        .iter()
        .map(|c| preprocess::prepare(c, 60, 0).unwrap())
        .collect();
    let seed: u64 = StdRng::seed_from_u64(1).random();
    assert_eq!(out, aug.model().complete(&prepared, 3, seed).unwrap());
    assert_eq!(
        out,
        aug.augment(&raw, 3, &mut StdRng::seed_from_u64(1)).unwrap()
    );
    assert!(aug.augment(&raw, 0, &mut rng).unwrap().is_empty());
    assert!(DiffusionAugmenter::new(random_model(&cfg, 3), 2).is_err());
}

/// MSR Action3D text skeletons of actions `actions`: 20 rows `x y z confidence` per frame.
/// (A minimal reader for this test; the library loaders live in haad-motion.)
fn read_msr(dir: &Path, actions: &[u32], max_per_action: usize) -> Vec<Motion> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for a in actions {
        let prefix = format!("a{a:02}_");
        for f in files
            .iter()
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .take(max_per_action)
        {
            let text = std::fs::read_to_string(f).unwrap();
            let v: Vec<f32> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .flat_map(|l| {
                    l.split_whitespace()
                        .take(3)
                        .map(|x| x.parse::<f32>().unwrap())
                        .collect::<Vec<_>>()
                })
                .collect();
            let m = Motion::from_flat(v, 20, Some(15.0)).unwrap();
            if !m.is_all_zero() {
                out.push(m);
            }
        }
    }
    out
}

#[test]
fn training_on_real_clips_lowers_the_loss() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/msr_action3d/MSRAction3DSkeletonReal3D");
    if !dir.is_dir() {
        eprintln!("skipping: {} is absent", dir.display());
        return;
    }
    let raw = read_msr(&dir, &[1, 2, 3, 10], 8);
    assert!(raw.len() >= 30);
    let root = 6; // hip centre
    let scale = data_scale(&raw, 60, root).unwrap();
    let cfg = DiffusionConfig {
        joints: 20,
        d_model: 32,
        heads: 2,
        layers: 2,
        dropout: 0.0,
        learning_rate: 1e-3,
        ..DiffusionConfig::default()
    }
    .check()
    .unwrap()
    .with_scale(scale)
    .unwrap();
    let prepared: Vec<Motion> = raw
        .iter()
        .map(|c| preprocess::prepare(c, 60, root).unwrap())
        .collect();
    let mut trainer = Trainer::new(&cfg, 0, &Device::Cpu).unwrap();
    let eval = |m: &DiffusionModel| {
        let mut r = StdRng::seed_from_u64(99);
        (0..4)
            .map(|_| {
                Trainer::loss(m, &prepared, &mut r, false)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            })
            .sum::<f32>()
            / 4.0
    };
    let before = eval(trainer.model());
    let mut rng = StdRng::seed_from_u64(5);
    for _ in 0..200 {
        let batch: Vec<Motion> = (0..16)
            .map(|_| {
                let c = &prepared[rng.random_range(0..prepared.len())];
                augment_clip(c, &cfg, root, &mut rng).unwrap()
            })
            .collect();
        trainer.step(&batch, &mut rng).unwrap();
    }
    let after = eval(trainer.model());
    // The zero-initialised output predicts eps_hat = 0: loss E[eps^2] = 1 before training.
    assert_abs_diff_eq!(before, 1.0, epsilon = 0.05);
    assert!(after < 0.8 * before, "loss {before} -> {after}");
}

#[test]
fn fit_logs_checkpoints_and_resumes() {
    use haad_diffusion::fit::{fit, FitOptions, TrainState, LAST_DIR, LOG_FILE, STATE_FILE};
    let cfg = tiny(2);
    let mut rng = StdRng::seed_from_u64(4);
    // Raw clips of several lengths, away from the origin.
    let clips: Vec<Motion> = [40usize, 70, 90]
        .iter()
        .map(|&n| {
            let c = smooth_clip(2, &mut rng);
            let c = preprocess::fixed_length(&c, n).unwrap();
            Motion::new(c.data() + 3.0, c.fps()).unwrap()
        })
        .collect();
    let out = std::env::temp_dir().join(format!("haad-diffusion-fit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut opts = FitOptions {
        seed: 3,
        ..FitOptions::new(&out, 2, 2)
    };
    let (t1, recs) = fit(&cfg, &clips, 0, &opts, &Device::Cpu).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(t1.steps(), 4);
    // The scale is the RMS of the prepared clips, saved with the model.
    let scale = data_scale(&clips, 60, 0).unwrap();
    let saved = DiffusionModel::load(&out.join(LAST_DIR), &Device::Cpu).unwrap();
    assert_eq!(saved.config().scale, scale);
    assert_ne!(scale, 1.0);
    opts.epochs = 3;
    opts.resume = true;
    let (t2, recs) = fit(&cfg, &clips, 0, &opts, &Device::Cpu).unwrap();
    assert_eq!((recs.len(), recs[0].epoch, t2.steps()), (1, 3, 6));
    let log = std::fs::read_to_string(out.join(LOG_FILE)).unwrap();
    assert_eq!(log.lines().count(), 3);
    let state: TrainState = serde_json::from_str(
        &std::fs::read_to_string(out.join(LAST_DIR).join(STATE_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (state.epochs_done, state.optimizer_steps, state.seed),
        (3, 6, 3)
    );
    // Resuming with another architecture is refused.
    let other = DiffusionConfig {
        d_model: 8,
        ..cfg.config().clone()
    }
    .check()
    .unwrap();
    opts.epochs = 4;
    assert!(fit(&other, &clips, 0, &opts, &Device::Cpu).is_err());
    std::fs::remove_dir_all(&out).unwrap();
}

/// `complete` keeps the network's frozen copy from one call to the next: after a weight
/// changes in place (as a trainer changes them), the completions are those of a fresh model
/// with the new weights, and after it changes back, those of before.
#[test]
fn completions_follow_every_change_of_the_weights() {
    let cfg = tiny(3);
    let m = random_model_scaled(&cfg, 5, 0.1);
    let mut rng = StdRng::seed_from_u64(4);
    let clips: Vec<Motion> = (0..3).map(|_| smooth_clip(3, &mut rng)).collect();
    let data = |c: &[Motion]| c.iter().map(|m| m.data().clone()).collect::<Vec<_>>();
    let before = data(&m.complete(&clips, 2, 7).unwrap());
    assert_eq!(data(&m.complete(&clips, 2, 7).unwrap()), before);
    let w = m.varmap().data().lock().unwrap()["layers.0.ffn.lin1.weight"].clone();
    let old = w.as_tensor().copy().unwrap();
    w.set(&(&old * 1.5).unwrap()).unwrap();
    let changed = data(&m.complete(&clips, 2, 7).unwrap());
    assert_ne!(changed, before);
    let fresh = m.duplicate().unwrap();
    assert_eq!(data(&fresh.complete(&clips, 2, 7).unwrap()), changed);
    w.set(&old).unwrap();
    assert_eq!(data(&m.complete(&clips, 2, 7).unwrap()), before);
}

#[test]
fn completions_are_the_same_at_any_thread_count() {
    // 40 clips x 1 completion: parts of 32 and 8 rows on two threads (or one of 40 at one
    // thread), or one part of 40 rows inside `serial`. The noise is drawn up front and every
    // operation treats each row on its own, so the numbers must not change with the parts.
    let cfg = tiny(3);
    let m = random_model_scaled(&cfg, 5, 0.1);
    let mut rng = StdRng::seed_from_u64(4);
    let clips: Vec<Motion> = (0..40).map(|_| smooth_clip(3, &mut rng)).collect();
    let split = m.complete(&clips, 1, 7).unwrap();
    let whole = haad_kernels::serial(|| m.complete(&clips, 1, 7)).unwrap();
    assert_eq!(split.len(), whole.len());
    for (a, b) in split.iter().zip(&whole) {
        assert_eq!(a.data(), b.data());
    }
}

/// The loss and gradient of a training step, computed in parts of `STEP_PART` clips (each on
/// its own thread where there are several), equal the whole batch's through one graph
/// (dropout off, so both draw the same numbers).
#[test]
fn step_gradient_in_parts_is_the_whole_batch_gradient() {
    let cfg = DiffusionConfig {
        dropout: 0.0,
        ..tiny(3).config().clone()
    }
    .check()
    .unwrap();
    let m = random_model_scaled(&cfg, 6, 0.1);
    let mut rng = StdRng::seed_from_u64(8);
    let n = haad_diffusion::train::STEP_PART + 9;
    let clips: Vec<Motion> = (0..n).map(|_| smooth_clip(3, &mut rng)).collect();
    let whole = Trainer::loss(&m, &clips, &mut StdRng::seed_from_u64(1), true).unwrap();
    let (value, grads) =
        Trainer::loss_and_grads(&m, &clips, &mut StdRng::seed_from_u64(1)).unwrap();
    let want = whole.to_scalar::<f32>().unwrap();
    assert!(
        (value - want).abs() <= 1e-5 * want.abs(),
        "{value} against {want}"
    );
    let want = whole.backward().unwrap();
    for (name, var) in m.varmap().data().lock().unwrap().iter() {
        let (a, b) = (grads.get(var.as_tensor()), want.get(var.as_tensor()));
        let (a, b) = (
            a.unwrap_or_else(|| panic!("{name}: no gradient")),
            b.unwrap(),
        );
        let scale = to_vec(b).iter().fold(0f32, |s, v| s.max(v.abs()));
        assert!(scale > 0.0, "{name}: zero gradient");
        let diff = max_abs_diff(a, b);
        assert!(diff <= 1e-5 * scale, "{name}: {diff} against {scale}");
    }
}

/// With dropout, each part draws its own masks; the parts do not depend on the thread count, so
/// a step computed in parts on several threads or in turn on one gives the same bits.
#[test]
fn step_gradient_is_the_same_at_any_thread_count() {
    let cfg = tiny(3);
    assert!(cfg.dropout > 0.0);
    let m = random_model_scaled(&cfg, 7, 0.1);
    let mut rng = StdRng::seed_from_u64(9);
    let clips: Vec<Motion> = (0..haad_diffusion::train::STEP_PART + 5)
        .map(|_| smooth_clip(3, &mut rng))
        .collect();
    let split = Trainer::loss_and_grads(&m, &clips, &mut StdRng::seed_from_u64(2)).unwrap();
    let alone =
        haad_kernels::serial(|| Trainer::loss_and_grads(&m, &clips, &mut StdRng::seed_from_u64(2)))
            .unwrap();
    assert_eq!(split.0, alone.0);
    for (name, var) in m.varmap().data().lock().unwrap().iter() {
        let (a, b) = (split.1.get(var.as_tensor()), alone.1.get(var.as_tensor()));
        assert_eq!(to_vec(a.unwrap()), to_vec(b.unwrap()), "{name}");
    }
}

/// A frozen copy of the network (weights transposed and detached, q, k and v stacked once)
/// computes the forward of the network it was copied from, also with condition tokens; it does
/// not follow later changes to the variables; and no gradient reaches the variables through it.
#[test]
fn a_frozen_denoiser_computes_the_same_forward() {
    for condition_tokens in [false, true] {
        let cfg = DiffusionConfig {
            condition_tokens,
            ..(*tiny(4)).clone()
        }
        .check()
        .unwrap();
        let m = random_model(&cfg, 11);
        let (b, k, f) = (5, cfg.n_pre, cfg.features());
        let mut rng = StdRng::seed_from_u64(12);
        let x = randn(&[b, k, f], &mut rng, &Device::Cpu).unwrap();
        let c = randn(&[b, k, f], &mut rng, &Device::Cpu).unwrap();
        let t = [1, 7, 30, 64, 100];
        let net = m.denoiser();
        let frozen = net.frozen().unwrap();
        let want = net.forward(&x, &t, &c, &mut Dropout::off()).unwrap();
        let got = frozen.forward(&x, &t, &c, &mut Dropout::off()).unwrap();
        let scale = to_vec(&want).iter().fold(0f32, |a, v| a.max(v.abs()));
        assert!(scale > 0.1, "a non-trivial output ({scale})");
        assert!(
            max_abs_diff(&got, &want) < 1e-5 * scale,
            "condition_tokens {condition_tokens}: {}",
            max_abs_diff(&got, &want)
        );
        let loss = got.sqr().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        for var in m.varmap().all_vars() {
            assert!(
                grads.get(var.as_tensor()).is_none(),
                "a gradient reached a variable"
            );
        }
        // Changing every variable changes the network, not the frozen copy.
        for var in m.varmap().all_vars() {
            var.set(&(var.as_tensor() * 0.5).unwrap()).unwrap();
        }
        let after = frozen.forward(&x, &t, &c, &mut Dropout::off()).unwrap();
        assert_eq!(to_vec(&after), to_vec(&got));
        let changed = net.forward(&x, &t, &c, &mut Dropout::off()).unwrap();
        assert!(max_abs_diff(&changed, &want) > 1e-3 * scale);
    }
}
