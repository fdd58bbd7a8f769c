//! The denoiser's frozen copy (every weight copied out and stored transposed, see
//! [`Denoiser::frozen`]) kept from one sampling call to the next.
//!
//! Making the copy of the paper-size network (25 M weights: transposes, and page faults in
//! fresh memory) made each call slower by about 140 ms: 2 clips x 3 completions at 5 DDIM steps
//! took 0.46-0.50 s a call with a copy made per call and 0.30-0.36 s with the kept one (one
//! thread; docs/performance.md). A trainer changes the variables in place through shared
//! references, so a kept copy is only used when every weight is, bit for bit, what it was made
//! from: the weights are compared with a snapshot taken when the copy was made (one read of
//! each, about 15 ms for the paper size). The snapshot costs as much memory as the weights.

use std::sync::{Arc, Mutex};

use candle_core::{DType, Storage, Var};
use candle_nn::VarMap;

use crate::denoiser::Denoiser;
use crate::error::{DiffusionError, Result};

/// The weights of a variable map, by name in name order, as the bits of their f32 values.
type Snapshot = Vec<(String, Vec<u32>)>;

/// A frozen copy and the weights it was made from.
struct Kept {
    net: Arc<Denoiser>,
    weights: Snapshot,
}

/// The last frozen copy of a model's denoiser, with the snapshot that says whether it still
/// holds.
#[derive(Default)]
pub(crate) struct FrozenCache {
    kept: Mutex<Option<Arc<Kept>>>,
}

fn poisoned() -> DiffusionError {
    DiffusionError::InvalidArgument("frozen copy lock poisoned".into())
}

/// The values of `var` when it is a contiguous f32 tensor on the CPU, else `None`.
fn with_values<R>(var: &Var, f: impl FnOnce(&[f32]) -> R) -> Result<Option<R>> {
    if var.dtype() != DType::F32 || !var.device().is_cpu() {
        return Ok(None);
    }
    let (storage, layout) = var.as_tensor().storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Ok(None);
    };
    if !layout.is_contiguous() {
        return Ok(None);
    }
    Ok(Some(f(haad_kernels::contiguous::<f32>(
        cpu,
        layout,
        "frozen copy",
    )?)))
}

/// The variables of `varmap` in name order.
fn sorted_vars(varmap: &VarMap) -> Result<Vec<(String, Var)>> {
    let data = varmap.data().lock().map_err(|_| poisoned())?;
    let mut vars: Vec<(String, Var)> = data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(vars)
}

/// The snapshot of `varmap`'s weights; `None` when one is not a contiguous f32 tensor on the CPU
/// (no copy is kept then).
fn snapshot(varmap: &VarMap) -> Result<Option<Snapshot>> {
    let mut out = Vec::new();
    for (name, var) in sorted_vars(varmap)? {
        match with_values(&var, |v| v.iter().map(|x| x.to_bits()).collect())? {
            Some(bits) => out.push((name, bits)),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// Whether the bits of `values` are `bits` (compared a block at a time, without a branch per
/// value, so that the loop vectorises).
fn same_bits(values: &[f32], bits: &[u32]) -> bool {
    const BLOCK: usize = 256;
    values.len() == bits.len()
        && values.chunks(BLOCK).zip(bits.chunks(BLOCK)).all(|(v, b)| {
            v.iter()
                .zip(b)
                .fold(0, |acc, (x, y)| acc | (x.to_bits() ^ y))
                == 0
        })
}

/// Whether the weights in `varmap` are exactly `weights` (the same names, lengths and bits).
fn unchanged(varmap: &VarMap, weights: &Snapshot) -> Result<bool> {
    let vars = sorted_vars(varmap)?;
    if vars.len() != weights.len() {
        return Ok(false);
    }
    for ((name, var), (kept_name, bits)) in vars.iter().zip(weights) {
        if name != kept_name || with_values(var, |v| same_bits(v, bits))? != Some(true) {
            return Ok(false);
        }
    }
    Ok(true)
}

impl FrozenCache {
    /// A frozen copy of `net`, whose variables are those of `varmap`, with the weights as they
    /// are now: the kept copy when they have not changed since it was made, else a new one,
    /// kept for the next call (when every weight is an f32 tensor on the CPU). As with a copy
    /// made per call, the weights must not change while the copy is being made (another thread
    /// training the same model meanwhile).
    pub(crate) fn get(&self, net: &Denoiser, varmap: &VarMap) -> Result<Arc<Denoiser>> {
        let kept = self.kept.lock().map_err(|_| poisoned())?.clone();
        if let Some(kept) = kept {
            if unchanged(varmap, &kept.weights)? {
                return Ok(kept.net.clone());
            }
        }
        let weights = snapshot(varmap)?;
        let fresh = Arc::new(net.frozen()?);
        let mut slot = self.kept.lock().map_err(|_| poisoned())?;
        *slot = weights.map(|weights| {
            Arc::new(Kept {
                net: fresh.clone(),
                weights,
            })
        });
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DiffusionConfig, DiffusionModel};
    use candle_core::{Device, Tensor};

    fn model() -> DiffusionModel {
        let cfg = DiffusionConfig {
            joints: 3,
            d_model: 16,
            heads: 2,
            layers: 2,
            ..DiffusionConfig::default()
        }
        .check()
        .unwrap();
        DiffusionModel::new(&cfg, 3, &Device::Cpu).unwrap()
    }

    fn var(m: &DiffusionModel, name: &str) -> Var {
        m.varmap().data().lock().unwrap()[name].clone()
    }

    /// The copy is kept while the weights stay, made again after any change (one value's last
    /// bit), and kept again once made.
    #[test]
    fn the_copy_is_kept_until_a_weight_changes() {
        let m = model();
        let first = m.frozen_denoiser().unwrap();
        assert!(Arc::ptr_eq(&first, &m.frozen_denoiser().unwrap()));
        let w = var(&m, "layers.1.attn.q.weight");
        let mut v: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        v[7] = f32::from_bits(v[7].to_bits() ^ 1);
        w.set(&Tensor::from_vec(v, w.shape(), &Device::Cpu).unwrap())
            .unwrap();
        let second = m.frozen_denoiser().unwrap();
        assert!(
            !Arc::ptr_eq(&first, &second),
            "a changed weight must not reuse the copy"
        );
        assert!(Arc::ptr_eq(&second, &m.frozen_denoiser().unwrap()));
    }

    #[test]
    fn same_bits_tells_every_kind_of_change() {
        let v: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        let bits: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
        assert!(same_bits(&v, &bits));
        // One value anywhere, the sign of a zero, a NaN for itself, and a length.
        for i in [0, 255, 256, 999] {
            let mut w = v.clone();
            w[i] = f32::from_bits(w[i].to_bits() ^ 1);
            assert!(!same_bits(&w, &bits), "last bit of value {i}");
        }
        let zeros = [0.0f32; 3];
        assert!(!same_bits(&[0.0, -0.0, 0.0], &zeros.map(f32::to_bits)));
        assert!(same_bits(&[f32::NAN], &[f32::NAN.to_bits()]));
        assert!(!same_bits(&v[..999], &bits));
    }
}
