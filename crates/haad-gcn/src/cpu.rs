//! Access to CPU tensor storage for the encoder's fused kernels ([`crate::gc`], [`crate::norm`]).

use candle_core::{CpuStorage, DType, Layout, Result, Tensor};

/// Whether the fused kernels apply: every tensor on the CPU, in f32 or f64, of one dtype.
pub(crate) fn fused(ts: &[&Tensor]) -> bool {
    let d = ts[0].dtype();
    matches!(d, DType::F32 | DType::F64) && ts.iter().all(|t| t.device().is_cpu() && t.dtype() == d)
}

/// The contiguous values of a kernel's input.
pub(crate) fn values<'a, T: candle_core::WithDType>(v: &'a [T], l: &Layout) -> Result<&'a [T]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("encoder kernel: non-contiguous input".into()))?;
    Ok(&v[a..b])
}

/// Runs `$body` with `$v` bound to the contiguous values of each tensor of `$ts` (CPU tensors
/// of one float dtype) and `$t` to that dtype's Rust type.
macro_rules! with_values {
    ($ts:expr, |$v:ident: $t:ident| $body:expr) => {{
        let guards: Vec<_> = $ts.iter().map(|t| t.storage_and_layout()).collect();
        match $ts[0].dtype() {
            candle_core::DType::F32 => {
                #[allow(dead_code)]
                type $t = f32;
                let mut $v: Vec<&[f32]> = Vec::new();
                for (s, l) in &guards {
                    match &**s {
                        candle_core::Storage::Cpu(candle_core::CpuStorage::F32(x)) => {
                            $v.push($crate::cpu::values(x, l)?)
                        }
                        _ => candle_core::bail!("encoder kernel: f32 CPU tensors of one dtype"),
                    }
                }
                $body
            }
            candle_core::DType::F64 => {
                #[allow(dead_code)]
                type $t = f64;
                let mut $v: Vec<&[f64]> = Vec::new();
                for (s, l) in &guards {
                    match &**s {
                        candle_core::Storage::Cpu(candle_core::CpuStorage::F64(x)) => {
                            $v.push($crate::cpu::values(x, l)?)
                        }
                        _ => candle_core::bail!("encoder kernel: f64 CPU tensors of one dtype"),
                    }
                }
                $body
            }
            d => candle_core::bail!("encoder kernel: f32 or f64, got {d:?}"),
        }
    }};
}
pub(crate) use with_values;

/// A tensor of `shape` on `like`'s device from a kernel's output.
pub(crate) fn tensor<T: candle_core::WithDType>(
    v: Vec<T>,
    shape: impl Into<candle_core::Shape>,
    like: &Tensor,
) -> Result<Tensor> {
    Tensor::from_vec(v, shape, like.device())
}

/// A kernel output kept by an operation for its backward pass.
#[derive(Debug, Default)]
pub(crate) struct Stash(std::sync::Mutex<Option<CpuStorage>>);

impl Stash {
    pub(crate) fn put(&self, s: CpuStorage) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
    }

    pub(crate) fn get(&self) -> std::sync::MutexGuard<'_, Option<CpuStorage>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
