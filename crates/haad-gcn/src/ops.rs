//! Small tensor operations the encoder needs, faster on CPU than their generic candle forms.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use haad_kernels::{contiguous, dtype_of, into_storage, with_float, Element};

/// `tanh` with a cheaper f32 kernel on CPU: `sign(x) (1 - e) / (1 + e)`, `e = exp(-2|x|)`
/// (absolute error below 1e-6 against the exact value; candle's generic f32 `tanh` is several
/// times slower). f64 uses the exact `tanh`; other devices use candle's `tanh`. The gradient
/// is `1 - y^2`.
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        x.contiguous()?.apply_op1(FastTanh)
    } else {
        x.tanh()
    }
}

/// The f32 kernel of [`tanh`]. `|x|` is clamped at 10, where `tanh` already rounds to 1 in f32.
/// Branch-free (the exponential is [`haad_kernels::exp_f32`]), so loops over it vectorise.
#[inline]
pub fn tanh_f32(x: f32) -> f32 {
    // Not `min`: it would turn NaN into 10; a comparison keeps NaN.
    let a = x.abs();
    let e = haad_kernels::exp_f32(-2.0 * if a > 10.0 { 10.0 } else { a });
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// The float types of the encoder's kernels: f32 computes `tanh` with [`tanh_f32`], f64 exactly.
pub(crate) trait Float: Element {
    fn tanh(self) -> Self;
    /// The spare buffers of this type ([`crate::spare`]).
    fn spares() -> &'static crate::spare::Spares<Self>;
}

impl Float for f32 {
    #[inline(always)]
    fn tanh(self) -> Self {
        tanh_f32(self)
    }

    fn spares() -> &'static crate::spare::Spares<f32> {
        static S: crate::spare::Spares<f32> = std::sync::Mutex::new(Vec::new());
        &S
    }
}

impl Float for f64 {
    #[inline(always)]
    fn tanh(self) -> Self {
        f64::tanh(self)
    }

    fn spares() -> &'static crate::spare::Spares<f64> {
        static S: crate::spare::Spares<f64> = std::sync::Mutex::new(Vec::new());
        &S
    }
}

struct FastTanh;

impl CustomOp1 for FastTanh {
    fn name(&self) -> &'static str {
        "haad-fast-tanh"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = with_float!(dtype_of(storage), "fast tanh", |T| into_storage(
            contiguous::<T>(storage, layout, "fast tanh")?
                .iter()
                .map(|&x| Float::tanh(x))
                .collect::<Vec<T>>()
        ));
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_res.mul(&res.sqr()?.affine(-1.0, 1.0)?)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn fast_tanh_is_accurate() {
        let mut worst = 0f64;
        for i in -400_000..=400_000 {
            let x = i as f32 * 5e-5; // [-20, 20]
            let err = (tanh_f32(x) as f64 - (x as f64).tanh()).abs();
            worst = worst.max(err);
        }
        assert!(worst < 1e-6, "max error {worst}");
        assert_eq!(tanh_f32(0.0), 0.0);
        assert_eq!(tanh_f32(100.0), 1.0);
        assert_eq!(tanh_f32(-100.0), -1.0);
        assert_eq!(tanh_f32(10.0), 10f32.tanh());
        assert_eq!(tanh_f32(12.0), 1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
    }

    #[test]
    fn tensor_tanh_values_and_gradient() {
        let dev = Device::Cpu;
        let x = candle_core::Var::new(&[[-3.0f32, -0.5, 0.0], [0.25, 1.0, 4.0]], &dev).unwrap();
        let y = tanh(&x.as_tensor().t().unwrap()).unwrap(); // non-contiguous input
        let want = x.as_tensor().t().unwrap().tanh().unwrap();
        let diff = (&y - &want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        let g = y.sum_all().unwrap().backward().unwrap();
        let g: Vec<Vec<f32>> = g.get(x.as_tensor()).unwrap().to_vec2().unwrap();
        for (row, xs) in g.iter().zip([[-3.0f32, -0.5, 0.0], [0.25, 1.0, 4.0]]) {
            for (gv, xv) in row.iter().zip(xs) {
                let want = 1.0 - (xv as f64).tanh().powi(2);
                assert!((*gv as f64 - want).abs() < 1e-6, "{gv} vs {want}");
            }
        }
        let x64 = x.as_tensor().to_dtype(DType::F64).unwrap();
        let y64: Vec<Vec<f64>> = tanh(&x64).unwrap().to_vec2().unwrap();
        assert_eq!(y64[1][1], 1f64.tanh());
    }
}
