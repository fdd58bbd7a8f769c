//! When the encoder's fused kernels ([`crate::gc`], [`crate::norm`]) apply; their typed
//! storage access is [`haad_kernels`]'s.

use candle_core::Tensor;

/// Whether the fused kernels apply: every tensor on the CPU, in f32 or f64, of one dtype.
pub(crate) fn fused(ts: &[&Tensor]) -> bool {
    let d = ts[0].dtype();
    haad_kernels::is_float(d) && ts.iter().all(|t| t.device().is_cpu() && t.dtype() == d)
}
