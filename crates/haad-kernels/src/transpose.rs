//! `transpose_detached`: a 2-D tensor's transpose as a new contiguous tensor, for weights that
//! are read many times unchanged (a sampler's Linear layers, see [`crate::linear_in_out`]).

use candle_core::{Result, Tensor};

use crate::gemm::Element;
use crate::storage::{is_float, Inputs};
use crate::with_float;

/// The side of the square blocks copied at once: a 32 x 32 block of f64 is 8 KiB, so the
/// block's source rows and destination rows stay in the L1 cache.
const BLOCK: usize = 32;

/// `t^T` for `t` `[rows, cols]`: a new contiguous `[cols, rows]` tensor, not connected to `t` in
/// the autograd graph (no gradient flows back through it). On CPU in f32/f64 a blocked copy;
/// elsewhere candle's `t().contiguous()`, detached.
pub fn transpose_detached(t: &Tensor) -> Result<Tensor> {
    let (rows, cols) = t.dims2()?;
    if !(t.device().is_cpu() && is_float(t.dtype())) {
        return Ok(t.t()?.contiguous()?.detach());
    }
    let src = t.contiguous()?;
    let inputs = Inputs::new(&[&src], "transpose")?;
    with_float!(inputs.dtype(), "transpose", |T| {
        let v = inputs.values::<T>()?;
        Tensor::from_vec(transposed::<T>(v[0], rows, cols), (cols, rows), t.device())
    })
}

/// The transpose of the row-major `rows x cols` matrix `a` (the first `rows * cols` values):
/// a new row-major `cols x rows` matrix, copied block by block.
pub fn transposed<T: Element>(a: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::zero(); rows * cols];
    for i0 in (0..rows).step_by(BLOCK) {
        let i1 = (i0 + BLOCK).min(rows);
        for j0 in (0..cols).step_by(BLOCK) {
            let j1 = (j0 + BLOCK).min(cols);
            for i in i0..i1 {
                let row = &a[i * cols..][j0..j1];
                for (j, &v) in (j0..j1).zip(row) {
                    out[j * rows + i] = v;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Every entry against the definition, on shapes that are and are not multiples of the
    /// block, in f64 and f32; the result is a fresh tensor outside the autograd graph.
    #[test]
    fn matches_the_definition_and_is_detached() {
        for (rows, cols) in [(1, 1), (3, 5), (32, 64), (70, 33), (100, 1)] {
            let n = rows * cols;
            let v: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let a = Tensor::from_vec(v.clone(), (rows, cols), &Device::Cpu).unwrap();
            for dtype in [DType::F64, DType::F32] {
                let a = Var::from_tensor(&a.to_dtype(dtype).unwrap()).unwrap();
                let t = transpose_detached(&a).unwrap();
                assert_eq!(t.dims(), [cols, rows]);
                assert!(t.is_contiguous());
                assert!(!t.track_op(), "the copy must not track the variable");
                let got: Vec<Vec<f64>> = t.to_dtype(DType::F64).unwrap().to_vec2().unwrap();
                for (j, row) in got.iter().enumerate() {
                    for (i, &g) in row.iter().enumerate() {
                        let want = v[i * cols + j];
                        let want = if dtype == DType::F32 {
                            want as f32 as f64
                        } else {
                            want
                        };
                        assert_eq!(g, want, "({j}, {i}) of {rows}x{cols} {dtype:?}");
                    }
                }
            }
        }
    }
}
