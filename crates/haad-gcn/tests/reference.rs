//! The candle encoder against an independent float64 implementation (plain loops, the DCT from
//! its formula, BatchNorm from its definition), and autograd against finite differences.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use haad_gcn::{EmbeddingLayer, Encoder, EncoderConfig, EncoderModel, Pooling};
use rand::{rngs::StdRng, Rng, SeedableRng};

const EPS: f64 = 1e-5;
const MOMENTUM: f64 = 0.1;

fn tiny(pooling: Pooling, embedding: EmbeddingLayer) -> EncoderConfig {
    EncoderConfig {
        joints: 5,
        frames: 12,
        dct_coefficients: 4,
        hidden: 6,
        blocks: 2,
        dropout: 0.0,
        pooling,
        embedding,
    }
}

fn all_tiny() -> Vec<EncoderConfig> {
    let mut v = Vec::new();
    for p in [Pooling::MaxOverFeatures, Pooling::MaxOverJoints] {
        for e in [EmbeddingLayer::Output, EmbeddingLayer::Hidden] {
            v.push(tiny(p.clone(), e));
        }
    }
    v
}

fn to_f64(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Gives every variable non-trivial values: graph convolutions keep their (seeded) init,
/// BatchNorm gets random affine parameters and running statistics.
fn randomise(vars: &[(String, Var)], seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for (name, var) in vars {
        let range = if name.ends_with("running_var") {
            0.5..2.0
        } else if name.ends_with("running_mean") {
            -0.5..0.5
        } else if name.contains(".bn") || name.starts_with("bn") {
            if name.ends_with("weight") {
                0.5..1.5
            } else {
                -0.3..0.3
            }
        } else if name.ends_with("bias") || name.ends_with("att") || name.ends_with("weight") {
            -0.5..0.5
        } else {
            panic!("unknown variable {name}")
        };
        let t = var.as_tensor();
        let v: Vec<f64> = (0..t.elem_count())
            .map(|_| rng.random_range(range.clone()))
            .collect();
        let new = Tensor::from_vec(v, t.shape(), t.device())
            .unwrap()
            .to_dtype(t.dtype())
            .unwrap();
        var.set(&new).unwrap();
    }
}

/// The float64 reference of the whole encoder, reading the weights by name.
struct Reference {
    cfg: EncoderConfig,
    p: HashMap<String, Vec<f64>>,
}

impl Reference {
    fn new(cfg: &EncoderConfig, vars: &[(String, Var)]) -> Self {
        let p = vars
            .iter()
            .map(|(n, v)| (n.clone(), to_f64(v.as_tensor())))
            .collect();
        Self {
            cfg: cfg.clone(),
            p,
        }
    }

    fn w(&self, name: &str) -> &[f64] {
        self.p.get(name).unwrap_or_else(|| panic!("no {name}"))
    }

    /// `x`: `[B, T, J, 3]` row-major. Returns `[B][J][3K]` as flat `[B, J, 3K]`.
    fn features(&self, x: &[f64], b: usize) -> Vec<f64> {
        let (t, j, k) = (self.cfg.frames, self.cfg.joints, self.cfg.dct_coefficients);
        let n = t as f64;
        let mut out = vec![0.0; b * j * 3 * k];
        for bb in 0..b {
            for jj in 0..j {
                for c in 0..3 {
                    for kk in 0..k {
                        let wk = if kk == 0 {
                            (1.0 / n).sqrt()
                        } else {
                            (2.0 / n).sqrt()
                        };
                        let mut s = 0.0;
                        for tt in 0..t {
                            let d = wk
                                * (std::f64::consts::PI * (tt as f64 + 0.5) * kk as f64 / n).cos();
                            s += d * x[((bb * t + tt) * j + jj) * 3 + c];
                        }
                        // Coordinate-major: feature index c * K + k.
                        out[(bb * j + jj) * 3 * k + c * k + kk] = s;
                    }
                }
            }
        }
        out
    }

    fn gc(&self, x: &[f64], b: usize, f_in: usize, name: &str) -> (Vec<f64>, usize) {
        let j = self.cfg.joints;
        let a = self.w(&format!("{name}.att"));
        let w = self.w(&format!("{name}.weight"));
        let f_out = w.len() / f_in;
        let bias = self.p.get(&format!("{name}.bias"));
        let mut out = vec![0.0; b * j * f_out];
        for bb in 0..b {
            let mut support = vec![0.0; j * f_out];
            for jj in 0..j {
                for o in 0..f_out {
                    support[jj * f_out + o] = (0..f_in)
                        .map(|f| x[(bb * j + jj) * f_in + f] * w[f * f_out + o])
                        .sum();
                }
            }
            for i in 0..j {
                for o in 0..f_out {
                    let mut s: f64 = (0..j)
                        .map(|jj| a[i * j + jj] * support[jj * f_out + o])
                        .sum();
                    if let Some(bias) = bias {
                        s += bias[o];
                    }
                    out[(bb * j + i) * f_out + o] = s;
                }
            }
        }
        (out, f_out)
    }

    /// BatchNorm over the `n = J * F` flattened features; in training returns the updated
    /// running statistics too.
    fn bn(
        &self,
        x: &[f64],
        b: usize,
        name: &str,
        train: bool,
        stats: &mut HashMap<String, Vec<f64>>,
    ) -> Vec<f64> {
        let n = x.len() / b;
        let g = self.w(&format!("{name}.weight"));
        let beta = self.w(&format!("{name}.bias"));
        let rm = self.w(&format!("{name}.running_mean"));
        let rv = self.w(&format!("{name}.running_var"));
        let mut out = vec![0.0; x.len()];
        let mut new_m = vec![0.0; n];
        let mut new_v = vec![0.0; n];
        for f in 0..n {
            let (mean, var) = if train {
                let mean = (0..b).map(|bb| x[bb * n + f]).sum::<f64>() / b as f64;
                let var = (0..b).map(|bb| (x[bb * n + f] - mean).powi(2)).sum::<f64>() / b as f64;
                new_m[f] = (1.0 - MOMENTUM) * rm[f] + MOMENTUM * mean;
                new_v[f] = (1.0 - MOMENTUM) * rv[f] + MOMENTUM * var * b as f64 / (b as f64 - 1.0);
                (mean, var)
            } else {
                (rm[f], rv[f])
            };
            for bb in 0..b {
                out[bb * n + f] = (x[bb * n + f] - mean) / (var + EPS).sqrt() * g[f] + beta[f];
            }
        }
        if train {
            stats.insert(format!("{name}.running_mean"), new_m);
            stats.insert(format!("{name}.running_var"), new_v);
        }
        out
    }

    /// Embeddings `[B, E]` (flat) and, in training, the updated running statistics.
    fn forward(&self, x: &[f64], b: usize, train: bool) -> (Vec<f64>, HashMap<String, Vec<f64>>) {
        let (j, f, fi) = (
            self.cfg.joints,
            self.cfg.hidden,
            3 * self.cfg.dct_coefficients,
        );
        let mut stats = HashMap::new();
        let input = self.features(x, b);
        let (y, _) = self.gc(&input, b, fi, "gc1");
        let mut y: Vec<f64> = self
            .bn(&y, b, "bn1", train, &mut stats)
            .iter()
            .map(|v| v.tanh())
            .collect();
        for i in 0..self.cfg.blocks {
            let (z, _) = self.gc(&y, b, f, &format!("gcbs.{i}.gc1"));
            let z: Vec<f64> = self
                .bn(&z, b, &format!("gcbs.{i}.bn1"), train, &mut stats)
                .iter()
                .map(|v| v.tanh())
                .collect();
            let (z, _) = self.gc(&z, b, f, &format!("gcbs.{i}.gc2"));
            let z: Vec<f64> = self
                .bn(&z, b, &format!("gcbs.{i}.bn2"), train, &mut stats)
                .iter()
                .map(|v| v.tanh())
                .collect();
            y = z.iter().zip(&y).map(|(a, c)| a + c).collect();
        }
        let (map, width) = match self.cfg.embedding {
            EmbeddingLayer::Hidden => (y, f),
            EmbeddingLayer::Output => {
                let (o, _) = self.gc(&y, b, f, "gc7");
                (o.iter().zip(&input).map(|(a, c)| a + c).collect(), fi)
            }
        };
        let mut emb = Vec::new();
        for bb in 0..b {
            let at = |jj: usize, ff: usize| map[(bb * j + jj) * width + ff];
            match self.cfg.pooling {
                Pooling::MaxOverFeatures => {
                    for jj in 0..j {
                        emb.push((0..width).map(|ff| at(jj, ff)).fold(f64::MIN, f64::max));
                    }
                }
                Pooling::MaxOverJoints => {
                    for ff in 0..width {
                        emb.push((0..j).map(|jj| at(jj, ff)).fold(f64::MIN, f64::max));
                    }
                }
            }
        }
        (emb, stats)
    }
}

fn random_input(cfg: &EncoderConfig, b: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..b * cfg.frames * cfg.joints * 3)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn dct_features_match_the_formula() {
    let cfg = tiny(Pooling::MaxOverFeatures, EmbeddingLayer::Output);
    let model = EncoderModel::new(&cfg, 1, &Device::Cpu).unwrap();
    let x = random_input(&cfg, 3, 2);
    let xs = Tensor::from_vec(x.clone(), (3, 12, 5, 3), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let got = to_f64(&model.encoder().features(&xs).unwrap());
    let want = Reference::new(&cfg, &model.named_vars()).features(&x, 3);
    assert!(max_abs_diff(&got, &want) < 1e-5);
}

#[test]
fn eval_forward_matches_float64_reference() {
    let mut configs = all_tiny();
    for embedding in [EmbeddingLayer::Output, EmbeddingLayer::Hidden] {
        configs.push(EncoderConfig {
            blocks: 0,
            ..tiny(Pooling::MaxOverJoints, embedding)
        });
    }
    for cfg in configs {
        let model = EncoderModel::new(&cfg, 3, &Device::Cpu).unwrap();
        let vars = model.named_vars();
        randomise(&vars, 4);
        let b = 3;
        let x = random_input(&cfg, b, 5);
        let xs = Tensor::from_vec(x.clone(), (b, 12, 5, 3), &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let got = to_f64(&model.encoder().forward_t(&xs, false).unwrap());
        let (want, _) = Reference::new(&cfg, &vars).forward(&x, b, false);
        let err = max_abs_diff(&got, &want);
        assert!(err < 1e-4, "{cfg:?}: max error {err}");
        assert!(
            want.iter().map(|v| v.abs()).sum::<f64>() > 0.1,
            "degenerate reference"
        );
    }
}

#[test]
fn train_forward_and_running_stats_match_float64_reference() {
    for cfg in all_tiny() {
        let model = EncoderModel::new(&cfg, 6, &Device::Cpu).unwrap();
        let vars = model.named_vars();
        randomise(&vars, 7);
        let reference = Reference::new(&cfg, &vars); // weights before the update
        let b = 4;
        let x = random_input(&cfg, b, 8);
        let xs = Tensor::from_vec(x.clone(), (b, 12, 5, 3), &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let got = to_f64(&model.encoder().forward_t(&xs, true).unwrap());
        let (want, stats) = reference.forward(&x, b, true);
        let err = max_abs_diff(&got, &want);
        assert!(err < 1e-4, "{cfg:?}: max error {err}");
        assert_eq!(stats.len(), 2 * (1 + 2 * cfg.blocks));
        for (name, var) in model.named_vars() {
            if let Some(want) = stats.get(&name) {
                let err = max_abs_diff(&to_f64(var.as_tensor()), want);
                assert!(err < 1e-4, "{cfg:?} {name}: max error {err}");
            }
        }
    }
}

/// A float64 encoder with seeded, non-trivial weights.
fn f64_encoder(cfg: &EncoderConfig, seed: u64) -> (Encoder, Vec<(String, Var)>) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let enc = Encoder::new(&cfg.check().unwrap(), vb).unwrap();
    let mut vars: Vec<(String, Var)> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    randomise(&vars, seed);
    (enc, vars)
}

#[test]
fn autograd_matches_finite_differences() {
    let dev = Device::Cpu;
    for cfg in all_tiny() {
        let (enc, vars) = f64_encoder(&cfg, 9);
        let b = 4;
        let xs = Tensor::from_vec(random_input(&cfg, b, 10), (b, 12, 5, 3), &dev).unwrap();
        let mut rng = StdRng::seed_from_u64(11);
        let e = cfg.embedding_dim();
        let r: Vec<f64> = (0..b * e).map(|_| rng.random_range(-1.0..1.0)).collect();
        let r = Tensor::from_vec(r, (b, e), &dev).unwrap();
        let loss = |enc: &Encoder| -> f64 {
            (enc.forward_t(&xs, true).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        let l0 = enc.forward_t(&xs, true).unwrap();
        let grads = (l0 * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let h = 1e-6;
        let mut checked = 0;
        for (name, var) in vars.iter().filter(|(n, _)| !n.contains("running")) {
            let g = to_f64(
                grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("no grad {name}")),
            );
            let base = to_f64(var.as_tensor());
            for _ in 0..3 {
                let i = rng.random_range(0..base.len());
                let mut v = base.clone();
                v[i] = base[i] + h;
                var.set(&Tensor::from_vec(v.clone(), var.shape(), &dev).unwrap())
                    .unwrap();
                let up = loss(&enc);
                v[i] = base[i] - h;
                var.set(&Tensor::from_vec(v, var.shape(), &dev).unwrap())
                    .unwrap();
                let down = loss(&enc);
                var.set(&Tensor::from_vec(base.clone(), var.shape(), &dev).unwrap())
                    .unwrap();
                let fd = (up - down) / (2.0 * h);
                let tol = 1e-7 + 1e-5 * g[i].abs().max(fd.abs());
                assert!(
                    (fd - g[i]).abs() < tol,
                    "{cfg:?} {name}[{i}]: fd {fd} vs autograd {}",
                    g[i]
                );
                checked += (g[i] != 0.0) as usize;
            }
        }
        assert!(
            checked > 20,
            "{cfg:?}: only {checked} non-zero gradients checked"
        );
    }
}
