//! Seeded parameter initialisation: a `VarBuilder` backend that honours candle's init hints with
//! numbers drawn from a seeded [`StdRng`] (candle's own CPU RNG cannot be seeded).

use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{NormalOrUniform, DEFAULT_KAIMING_NORMAL};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// Creates missing variables in a [`VarMap`] from a seeded generator; present ones are reused.
///
/// The values depend only on the seed and on the order in which the model asks for its
/// variables, which is fixed by its constructor.
struct SeededBackend {
    varmap: VarMap,
    rng: Mutex<StdRng>,
}

fn draw(init: Init, shape: &Shape, rng: &mut StdRng) -> Vec<f32> {
    let n = shape.elem_count();
    let normal = |rng: &mut StdRng, mean: f64, std: f64| -> f32 {
        let z: f64 = StandardNormal.sample(rng);
        (mean + std * z) as f32
    };
    match init {
        Init::Const(c) => vec![c as f32; n],
        Init::Randn { mean, stdev } => (0..n).map(|_| normal(rng, mean, stdev)).collect(),
        Init::Uniform { lo, up } => (0..n)
            .map(|_| (lo + (up - lo) * rng.random::<f64>()) as f32)
            .collect(),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Normal => (0..n).map(|_| normal(rng, 0.0, std)).collect(),
                NormalOrUniform::Uniform => {
                    let b = 3f64.sqrt() * std;
                    (0..n)
                        .map(|_| (-b + 2.0 * b * rng.random::<f64>()) as f32)
                        .collect()
                }
            }
        }
    }
}

impl SimpleBackend for SeededBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("variable map lock poisoned".into()))?;
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!("shape mismatch on {name}: {s:?} <> {:?}", v.shape());
            }
            return Ok(v.as_tensor().clone());
        }
        let values = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| candle_core::Error::Msg("rng lock poisoned".into()))?;
            draw(h, &s, &mut rng)
        };
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}: a seeded builder needs a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}

/// A `VarBuilder` (f32) that fills `varmap` with trainable variables drawn from `seed`.
pub fn seeded_var_builder(varmap: &VarMap, seed: u64, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(
        Box::new(SeededBackend {
            varmap: varmap.clone(),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }),
        DType::F32,
        device.clone(),
    )
}

/// candle's default weight init (Kaiming normal), re-exported for the layers of this crate.
pub(crate) const WEIGHT_INIT: Init = DEFAULT_KAIMING_NORMAL;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values_and_hints_honoured() {
        let make = |seed| {
            let vm = VarMap::new();
            let vb = seeded_var_builder(&vm, seed, &Device::Cpu);
            let a = vb
                .get_with_hints(
                    (200, 50),
                    "a",
                    Init::Randn {
                        mean: 1.0,
                        stdev: 2.0,
                    },
                )
                .unwrap();
            let b = vb.get_with_hints(7, "b", Init::Const(3.0)).unwrap();
            (
                a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                b.to_vec1::<f32>().unwrap(),
                vm,
            )
        };
        let (a1, b1, vm) = make(5);
        let (a2, _, _) = make(5);
        let (a3, _, _) = make(6);
        assert_eq!(a1, a2);
        assert_ne!(a1, a3);
        assert_eq!(b1, vec![3.0; 7]);
        let mean = a1.iter().sum::<f32>() / a1.len() as f32;
        let var = a1.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / a1.len() as f32;
        assert!((mean - 1.0).abs() < 0.1 && (var.sqrt() - 2.0).abs() < 0.1);
        assert_eq!(vm.all_vars().len(), 2);
    }
}
