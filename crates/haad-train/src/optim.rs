//! Adam and AdamW with a state that can be saved and restored, so that a resumed run continues
//! exactly where it stopped (candle's own `AdamW` keeps its moments private). [`Adam`]
//! implements [`candle_nn::Optimizer`].
//!
//! Update for a parameter `theta` with gradient `g` at step `t` (1-based):
//! `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
//! `theta -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`.
//! Weight decay `wd`: AdamW first shrinks `theta *= 1 - lr wd` (decoupled, the reference code);
//! Adam adds `wd theta` to `g` (L2, as PyTorch's `Adam`).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{backprop::GradStore, DType, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The key of the step count in a saved optimiser state.
const STEP_KEY: &str = "step";

/// Which optimiser: the reference code uses AdamW, the paper's text says Adam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam with decoupled weight decay (the reference code).
    #[default]
    AdamW,
    /// Adam with L2 weight decay added to the gradient.
    Adam,
}

/// Adam's constants.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamParams {
    /// Which variant.
    pub kind: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay b1.
    pub beta1: f64,
    /// Second-moment decay b2.
    pub beta2: f64,
    /// Denominator guard.
    pub eps: f64,
    /// Weight decay (see the module doc for how each kind applies it).
    pub weight_decay: f64,
}

impl AdamParams {
    /// `kind` at learning rate `lr` and weight decay `weight_decay`, with the usual
    /// b1 = 0.9, b2 = 0.999, eps = 1e-8.
    pub fn new(kind: OptimizerKind, lr: f64, weight_decay: f64) -> Self {
        Self {
            kind,
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        }
    }
}

/// The fused update's weight per value in the kernels' threading rule
/// (`haad_kernels::worth_splitting`, counted in product FLOPs): off the kernels' pool models
/// from 524,288 values split their update across threads, on it (a step run through
/// `haad_kernels::on_pool`) from 131,072. Measured: the `small` denoiser (about a million
/// values) gains 2 % a step at two threads; the encoder (about 190,000) split at weight 256
/// made `train_encoder` (batches of 30, its steps off the pool) 1.05x slower at two threads
/// than at one, so off the pool it stays on one thread.
const UPDATE_COST: usize = 64;

/// The update of one f32 CPU variable in one pass over its values, `(theta, m, v)`; `None`
/// where the tensors are not all contiguous f32 on the CPU (the caller then uses candle's
/// operations, which compute the same formulas).
fn fused_step(
    p: &AdamParams,
    (bc1, bc2): (f64, f64),
    theta: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
) -> candle_core::Result<Option<(Tensor, Tensor, Tensor)>> {
    let ts = [theta, g, m, v];
    if !ts
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous())
    {
        return Ok(None);
    }
    let inputs = haad_kernels::Inputs::new(&ts, "adam")?;
    let slices = inputs.values::<f32>()?;
    let (th, gr, m0, v0) = (slices[0], slices[1], slices[2], slices[3]);
    let n = th.len();
    if [gr.len(), m0.len(), v0.len()] != [n, n, n] {
        return Ok(None);
    }
    let (b1, b2) = (p.beta1 as f32, p.beta2 as f32);
    let (ib1, ib2) = ((1.0 / bc1) as f32, (1.0 / bc2) as f32);
    let (lr, eps) = (p.lr as f32, p.eps as f32);
    let l2 = match p.kind {
        OptimizerKind::Adam => p.weight_decay as f32,
        OptimizerKind::AdamW => 0.0,
    };
    let shrink = match p.kind {
        OptimizerKind::AdamW => (1.0 - p.lr * p.weight_decay) as f32,
        OptimizerKind::Adam => 1.0,
    };
    let (mut t1, mut m1, mut v1) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    adam_values(
        (th, gr, m0, v0),
        [b1, b2, ib1, ib2, lr, eps, l2, shrink],
        (&mut t1, &mut m1, &mut v1),
    );
    drop(slices);
    drop(inputs);
    let dev = theta.device();
    let shape = theta.shape();
    Ok(Some((
        Tensor::from_vec(t1, shape, dev)?,
        Tensor::from_vec(m1, shape, dev)?,
        Tensor::from_vec(v1, shape, dev)?,
    )))
}

haad_kernels::multiversion! {
    /// The update of [`fused_step`] value by value: `(theta, g, m, v)` in, `(theta', m', v')`
    /// out, with `[beta1, beta2, 1 / bc1, 1 / bc2, lr, eps, l2, shrink]`.
    fn adam_values(
        inputs: (&[f32], &[f32], &[f32], &[f32]),
        consts: [f32; 8],
        outputs: (&mut [f32], &mut [f32], &mut [f32]),
    ) {
        let (th, gr, m0, v0) = inputs;
        let [b1, b2, ib1, ib2, lr, eps, l2, shrink] = consts;
        let (t1, m1, v1) = outputs;
        let n = th.len().min(gr.len()).min(m0.len()).min(v0.len());
        let n = n.min(t1.len()).min(m1.len()).min(v1.len());
        for i in 0..n {
            let g = gr[i] + l2 * th[i];
            let m = m0[i] * b1 + g * (1.0 - b1);
            let v = v0[i] * b2 + g * g * (1.0 - b2);
            let update = (m * ib1) / ((v * ib2).sqrt() + eps);
            t1[i] = th[i] * shrink - update * lr;
            m1[i] = m;
            v1[i] = v;
        }
    }
}

/// Adam / AdamW over a fixed, named list of variables.
pub struct Adam {
    params: AdamParams,
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: usize,
}

impl candle_nn::Optimizer for Adam {
    type Config = AdamParams;

    /// Names the variables by position (`p0`, `p1`, ...): a saved state fits an optimiser over
    /// the same variables in the same order. Use [`Adam::new`] for stable names.
    fn new(vars: Vec<Var>, config: AdamParams) -> candle_core::Result<Self> {
        let named = vars
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("p{i}"), v))
            .collect();
        Adam::new(named, config).map_err(candle_core::Error::wrap)
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        Adam::step(self, grads).map_err(candle_core::Error::wrap)
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }
}

impl Adam {
    /// An optimiser over `vars` (name, variable); moments start at zero.
    pub fn new(vars: Vec<(String, Var)>, params: AdamParams) -> Result<Self> {
        let m = vars
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self {
            params,
            vars,
            m,
            v,
            step: 0,
        })
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> usize {
        self.step
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    /// Sets the learning rate (for schedules).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    /// One update from the gradients of a backward pass; variables without a gradient are
    /// left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let p = self.params;
        let t = self.step as i32;
        let (bc1, bc2) = (1.0 - p.beta1.powi(t), 1.0 - p.beta2.powi(t));
        // The fused updates first, every variable on its own (on several threads when the
        // model is large enough: the same numbers at any thread count), then applied in order.
        let (m0, v0) = (&self.m, &self.v);
        let one = |i: usize, var: &Var| -> Result<Option<(Tensor, Tensor, Tensor)>> {
            match grads.get(var.as_tensor()) {
                Some(g) => Ok(fused_step(
                    &p,
                    (bc1, bc2),
                    var.as_tensor(),
                    g,
                    &m0[i],
                    &v0[i],
                )?),
                None => Ok(None),
            }
        };
        let values: usize = self.vars.iter().map(|(_, v)| v.elem_count()).sum();
        let fused: Vec<Option<(Tensor, Tensor, Tensor)>> =
            if haad_kernels::worth_splitting(UPDATE_COST * values) {
                self.vars
                    .par_iter()
                    .enumerate()
                    .map(|(i, (_, var))| one(i, var))
                    .collect::<Result<_>>()?
            } else {
                self.vars
                    .iter()
                    .enumerate()
                    .map(|(i, (_, var))| one(i, var))
                    .collect::<Result<_>>()?
            };
        for (i, ((_, var), done)) in self.vars.iter().zip(fused).enumerate() {
            if let Some((theta, m, v)) = done {
                var.set(&theta)?;
                self.m[i] = m;
                self.v[i] = v;
                continue;
            }
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            // Gradients may carry the forward graph's history; the moments must not, or every
            // step would keep all earlier graphs alive.
            let theta = var.as_tensor().detach();
            let g = g.detach();
            let g = match p.kind {
                OptimizerKind::Adam if p.weight_decay > 0.0 => (g + (&theta * p.weight_decay)?)?,
                _ => g,
            };
            let m = ((&self.m[i] * p.beta1)? + (&g * (1.0 - p.beta1))?)?;
            let v = ((&self.v[i] * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + p.eps)?)?;
            let base = match p.kind {
                OptimizerKind::AdamW if p.weight_decay > 0.0 => {
                    (theta * (1.0 - p.lr * p.weight_decay))?
                }
                _ => theta.clone(),
            };
            var.set(&(base - (update * p.lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The variables' names, in the optimiser's order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.iter().map(|(n, _)| n.as_str())
    }

    /// Writes the state to `path` (safetensors): the moments as `m.NAME` / `v.NAME` and the
    /// step count as `step`.
    pub fn save_state(&self, path: &Path) -> Result<()> {
        let mut map = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            map.insert(format!("m.{name}"), self.m[i].clone());
            map.insert(format!("v.{name}"), self.v[i].clone());
        }
        let device = candle_core::Device::Cpu;
        map.insert(
            STEP_KEY.to_string(),
            Tensor::new(&[self.step as i64], &device)?,
        );
        candle_core::safetensors::save(&map, path).map_err(|e| TrainError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// Restores a state written by [`Adam::save_state`]: every variable's moments (same names,
    /// same shapes, finite, `v >= 0`) and the step count; anything else there is refused.
    pub fn load_state(&mut self, path: &Path) -> Result<()> {
        let bad = |reason: String| TrainError::Resume {
            path: path.to_path_buf(),
            reason,
        };
        let device = self
            .vars
            .first()
            .map(|(_, v)| v.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let map = candle_core::safetensors::load(path, &device)
            .map_err(|e| bad(format!("unreadable optimiser state: {e}")))?;
        let step = map
            .get(STEP_KEY)
            .ok_or_else(|| bad(format!("optimiser state has no {STEP_KEY}")))?
            .to_dtype(DType::I64)?
            .flatten_all()?
            .to_vec1::<i64>()?;
        let step = match step[..] {
            [s] if s >= 0 => s as usize,
            _ => return Err(bad(format!("{STEP_KEY} is {step:?}, not one count"))),
        };
        if map.len() != 2 * self.vars.len() + 1 {
            return Err(bad(format!(
                "optimiser state holds {} tensors, the model has {} variables (2 moments each + {STEP_KEY})",
                map.len(),
                self.vars.len()
            )));
        }
        let mut m = Vec::with_capacity(self.vars.len());
        let mut v = Vec::with_capacity(self.vars.len());
        for (name, var) in &self.vars {
            for (prefix, out) in [("m", &mut m), ("v", &mut v)] {
                let key = format!("{prefix}.{name}");
                let t = map
                    .get(&key)
                    .ok_or_else(|| bad(format!("optimiser state has no {key}")))?;
                if t.dims() != var.dims() {
                    return Err(bad(format!(
                        "{key} has shape {:?}, the model {:?}",
                        t.dims(),
                        var.dims()
                    )));
                }
                let t = t.to_dtype(var.dtype())?;
                let f = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
                if f.iter()
                    .any(|x| !x.is_finite() || (prefix == "v" && *x < 0.0))
                {
                    return Err(bad(format!("{key} holds non-finite or negative values")));
                }
                out.push(t);
            }
        }
        self.m = m;
        self.v = v;
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn params(kind: OptimizerKind, wd: f64) -> AdamParams {
        AdamParams {
            kind,
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: wd,
        }
    }

    /// Two steps on f(x) = sum x^2 computed by hand in f64.
    fn hand(kind: OptimizerKind, wd: f64, x0: f64, steps: i32) -> f64 {
        let p = params(kind, wd);
        let (mut x, mut m, mut v) = (x0, 0.0, 0.0);
        for t in 1..=steps {
            let mut g = 2.0 * x;
            if kind == OptimizerKind::Adam {
                g += wd * x;
            }
            m = p.beta1 * m + (1.0 - p.beta1) * g;
            v = p.beta2 * v + (1.0 - p.beta2) * g * g;
            let upd =
                (m / (1.0 - p.beta1.powi(t))) / ((v / (1.0 - p.beta2.powi(t))).sqrt() + p.eps);
            if kind == OptimizerKind::AdamW {
                x *= 1.0 - p.lr * wd;
            }
            x -= p.lr * upd;
        }
        x
    }

    #[test]
    fn matches_hand_computed_steps() {
        for kind in [OptimizerKind::Adam, OptimizerKind::AdamW] {
            for wd in [0.0, 0.5] {
                let var = Var::from_tensor(&Tensor::new(&[1.5f64, -0.25], &Device::Cpu).unwrap())
                    .unwrap();
                let mut opt = Adam::new(vec![("x".into(), var.clone())], params(kind, wd)).unwrap();
                for _ in 0..2 {
                    let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
                    opt.step(&loss.backward().unwrap()).unwrap();
                }
                let got: Vec<f64> = var.as_tensor().to_vec1().unwrap();
                for (g, x0) in got.iter().zip([1.5, -0.25]) {
                    assert!(
                        (g - hand(kind, wd, x0, 2)).abs() < 1e-12,
                        "{kind:?} wd={wd}: {g}"
                    );
                }
            }
        }
    }

    #[test]
    fn moments_keep_no_graph_history() {
        // A gradient of x * x depends on x, a variable, so it carries the forward graph; moments
        // that kept it would chain every step's graph to the next (an unbounded memory leak).
        let var = Var::from_tensor(&Tensor::new(&[1.5f32, -0.5], &Device::Cpu).unwrap()).unwrap();
        for kind in [OptimizerKind::Adam, OptimizerKind::AdamW] {
            let mut opt = Adam::new(vec![("x".into(), var.clone())], params(kind, 0.1)).unwrap();
            for _ in 0..3 {
                let x = var.as_tensor();
                let loss = (x * x).unwrap().sum_all().unwrap();
                let grads = loss.backward().unwrap();
                assert!(
                    grads.get(x).unwrap().track_op(),
                    "the premise: gradients carry history"
                );
                opt.step(&grads).unwrap();
            }
            assert!(
                !opt.m[0].track_op() && !opt.v[0].track_op(),
                "{kind:?} moments track ops"
            );
        }
    }

    #[test]
    fn moments_round_trip() {
        let dir = std::env::temp_dir().join(format!("haad-optim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let make =
            || Var::from_tensor(&Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap()).unwrap();
        let (a, b) = (make(), make());
        let mut oa = Adam::new(
            vec![("w".into(), a.clone())],
            params(OptimizerKind::AdamW, 0.1),
        )
        .unwrap();
        let mut ob = Adam::new(
            vec![("w".into(), b.clone())],
            params(OptimizerKind::AdamW, 0.1),
        )
        .unwrap();
        let loss = |v: &Var| {
            v.as_tensor()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        };
        oa.step(&loss(&a)).unwrap();
        oa.save_state(&dir.join("opt.safetensors")).unwrap();
        b.set(a.as_tensor()).unwrap();
        ob.load_state(&dir.join("opt.safetensors")).unwrap();
        assert_eq!(ob.step_count(), 1);
        oa.step(&loss(&a)).unwrap();
        ob.step(&loss(&b)).unwrap();
        let (va, vb): (Vec<f32>, Vec<f32>) = (a.to_vec1().unwrap(), b.to_vec1().unwrap());
        assert_eq!(va, vb);
        let wrong = Var::zeros(3, DType::F32, &Device::Cpu).unwrap();
        let mut oc =
            Adam::new(vec![("w".into(), wrong)], params(OptimizerKind::AdamW, 0.1)).unwrap();
        assert!(matches!(
            oc.load_state(&dir.join("opt.safetensors")),
            Err(TrainError::Resume { .. })
        ));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn optimizer_trait_matches_the_named_optimiser() {
        use candle_nn::Optimizer;
        let make =
            || Var::from_tensor(&Tensor::new(&[0.7f64, -1.25], &Device::Cpu).unwrap()).unwrap();
        let (a, b) = (make(), make());
        let p = params(OptimizerKind::AdamW, 0.3);
        let mut named = Adam::new(vec![("x".into(), a.clone())], p).unwrap();
        let mut generic = <Adam as Optimizer>::new(vec![b.clone()], p).unwrap();
        assert_eq!(generic.names().collect::<Vec<_>>(), vec!["p0"]);
        for _ in 0..3 {
            let la = a.as_tensor().sqr().unwrap().sum_all().unwrap();
            named.step(&la.backward().unwrap()).unwrap();
            let lb = b.as_tensor().sqr().unwrap().sum_all().unwrap();
            generic.backward_step(&lb).unwrap();
        }
        generic.set_learning_rate(0.05);
        assert_eq!(Optimizer::learning_rate(&generic), 0.05);
        let (va, vb): (Vec<f64>, Vec<f64>) = (a.to_vec1().unwrap(), b.to_vec1().unwrap());
        assert_eq!(va, vb);
        assert!((va[0] - hand(OptimizerKind::AdamW, 0.3, 0.7, 3)).abs() < 1e-12);
    }
}
