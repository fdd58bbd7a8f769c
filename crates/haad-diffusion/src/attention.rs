//! The core of multi-head self-attention as one operation with its backward pass.
//!
//! Written with candle's generic operations, the denoiser's attention is about twenty graph
//! nodes per layer (splitting q, k and v into heads, transposes and copies, the two batched
//! products, scaling, softmax, dropout, merging the heads back), and candle's backward pass
//! clears and adds a gradient the size of each node's input: at the `small` size that
//! bookkeeping cost more than the products. Here the whole core, from the packed projections
//! to the merged heads, is one node: per clip and head, `S = q k^T / sqrt(dh)`, `P = softmax(S)`
//! by rows, dropout `P' = P * M` and `y = P' v`, written straight into the clip's rows, the
//! small products by `haad_kernels::gemm` on strided views of the packed rows (no copies).
//! The backward pass recomputes `P` (the token count K is small) instead of keeping it. Clips
//! are spread over the kernels' threads; each clip's numbers do not depend on the count.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, D};
use haad_kernels::{common_dtype, contiguous, dtype_of, gemm, into_storage, with_float, MatRef};

use crate::ops::{self, softmax_in_place, Float};

/// Self-attention of `tokens` tokens per clip over `qkv` `[B K, 3 d]` (or `[B, K, 3 d]`): each
/// token's query, key and value projections side by side, head h in columns `h dh .. (h + 1) dh`
/// of each (dh = d / `heads`). Returns the heads' outputs merged, `[B, K, d]`:
/// `y_h = (softmax(q_h k_h^T / sqrt(dh)) * M_h) v_h`. `mask` is the dropout mask M
/// `[B, heads, K, K]` (entries 0 or 1 / (1 - p), row-major), `None` for none.
///
/// f32 and f64 CPU tensors run the fused kernel; other devices and dtypes candle's own
/// operations (the same computation, node by node).
pub fn attention(
    qkv: &Tensor,
    tokens: usize,
    heads: usize,
    mask: Option<Arc<[f32]>>,
) -> Result<Tensor> {
    let dims = AttentionDims::of(qkv, tokens, heads)?;
    if let Some(m) = &mask {
        if m.len() != dims.batch * heads * tokens * tokens {
            candle_core::bail!(
                "attention: dropout mask of {} values for [{}, {heads}, {tokens}, {tokens}]",
                m.len(),
                dims.batch
            );
        }
    }
    if qkv.device().is_cpu() && haad_kernels::is_float(qkv.dtype()) {
        qkv.contiguous()?.apply_op1(Attention { dims, mask })
    } else {
        attention_generic(qkv, &dims, mask.as_deref())
    }
}

/// The batch B, tokens K, heads H, head width dh and model width d = H dh.
#[derive(Clone, Copy, Debug)]
struct AttentionDims {
    batch: usize,
    tokens: usize,
    heads: usize,
    dh: usize,
    d: usize,
}

impl AttentionDims {
    fn of(qkv: &Tensor, tokens: usize, heads: usize) -> Result<Self> {
        let width = qkv.dim(D::Minus1)?;
        let n = qkv.elem_count();
        if tokens == 0 || heads == 0 || width == 0 || width % (3 * heads) != 0 {
            candle_core::bail!(
                "attention: last dimension {width} of {:?} is not 3 d with d a multiple of \
                 {heads} heads (and {tokens} tokens)",
                qkv.dims()
            );
        }
        if !n.is_multiple_of(tokens * width) {
            candle_core::bail!(
                "attention: {:?} is not a whole number of clips of {tokens} tokens",
                qkv.dims()
            );
        }
        let d = width / 3;
        Ok(Self {
            batch: n / (tokens * width),
            tokens,
            heads,
            dh: d / heads,
            d,
        })
    }

    fn scale(&self) -> f64 {
        1.0 / (self.dh as f64).sqrt()
    }

    /// The cost of the forward pass in the threading rule's unit (matrix-product FLOPs, about
    /// 200 M a millisecond on one core here). Per clip and head the products are tiny
    /// (K x dh by dh x K), and softmax and the copies come on top: at the `small` size (B = 64,
    /// K = 20, 4 heads of 32) the forward pass took 0.84 ms and the backward 1.6 ms for 16 M
    /// FLOPs (release build, one thread), so the FLOPs count 8 times (the backward 3 x that).
    fn flops(&self) -> usize {
        8 * self.batch * self.heads * self.tokens * self.tokens * (4 * self.dh + 32)
    }
}

/// The same computation in candle's generic operations: the fallback on other devices and
/// the reference of the tests.
fn attention_generic(qkv: &Tensor, a: &AttentionDims, mask: Option<&[f32]>) -> Result<Tensor> {
    let (b, k, h, dh, d) = (a.batch, a.tokens, a.heads, a.dh, a.d);
    let qkv = qkv.reshape((b, k, 3 * d))?;
    let split = |i: usize| -> Result<Tensor> {
        qkv.narrow(2, i * d, d)?
            .reshape((b, k, h, dh))?
            .transpose(1, 2)?
            .contiguous()
    };
    let (q, kk, v) = (split(0)?, split(1)?, split(2)?);
    let att = (q.matmul(&kk.t()?)? * a.scale())?;
    let mut att = candle_nn::ops::softmax(&att, D::Minus1)?;
    if let Some(m) = mask {
        att = att.mul(&ops::mask_tensor(m, &att)?)?;
    }
    att.matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, k, d))
}

struct Attention {
    dims: AttentionDims,
    mask: Option<Arc<[f32]>>,
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "haad-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let a = self.dims;
        let mask = self.mask.as_deref();
        let out = with_float!(dtype_of(s), self.name(), |T| {
            let qkv = contiguous::<T>(s, l, self.name())?;
            let mut y = vec![T::f(0.0); a.batch * a.tokens * a.d];
            let rows = a.tokens * 3 * a.d;
            haad_kernels::for_each_chunk(&mut y, a.tokens * a.d, a.flops(), |b, yb| {
                forward_clip(&qkv[b * rows..][..rows], &a, b, mask, yb)
            });
            into_storage(y)
        });
        Ok((out, Shape::from((a.batch, a.tokens, a.d))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad.contiguous()?;
        let dqkv = arg.apply_op2_no_bwd(
            &g,
            &AttentionGrad {
                dims: self.dims,
                mask: self.mask.clone(),
            },
        )?;
        Ok(Some(dqkv.reshape(arg.shape())?))
    }
}

/// dL/dqkv `[B K, 3 d]` from qkv and dL/dy `[B, K, d]`.
struct AttentionGrad {
    dims: AttentionDims,
    mask: Option<Arc<[f32]>>,
}

impl CustomOp2 for AttentionGrad {
    fn name(&self) -> &'static str {
        "haad-attention-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let a = self.dims;
        if l2.shape().elem_count() != a.batch * a.tokens * a.d {
            candle_core::bail!("{}: gradient {:?} for {a:?}", self.name(), l2.dims());
        }
        let mask = self.mask.as_deref();
        let out = with_float!(common_dtype(&[s1, s2], self.name())?, self.name(), |T| {
            let qkv = contiguous::<T>(s1, l1, self.name())?;
            let g = contiguous::<T>(s2, l2, self.name())?;
            let mut dqkv = vec![T::f(0.0); qkv.len()];
            let row = a.tokens * 3 * a.d;
            let grow = a.tokens * a.d;
            haad_kernels::for_each_chunk(&mut dqkv, row, 3 * a.flops(), |b, out| {
                backward_clip(
                    &qkv[b * row..][..row],
                    &g[b * grow..][..grow],
                    &a,
                    b,
                    mask,
                    out,
                )
            });
            into_storage(dqkv)
        });
        Ok((out, Shape::from((a.batch * a.tokens, 3 * a.d))))
    }
}

/// Head `h`'s part `part` (0: q, 1: k, 2: v) of a clip's rows `[K, 3 d]`, as a `[K, dh]`
/// strided view; `g` rows `[K, d]` with `part` 0 and width `d` instead of `3 d`.
fn view<'a, T>(
    rows: &'a [T],
    a: &AttentionDims,
    width: usize,
    part: usize,
    h: usize,
) -> MatRef<'a, T> {
    MatRef::strided(&rows[part * a.d + h * a.dh..], a.tokens, a.dh, width, 1)
        .expect("the view lies inside the clip's rows (checked shapes)")
}

/// `a b` (small: one clip, one head) on this thread.
fn product<T: Float>(a: MatRef<T>, b: MatRef<T>) -> Vec<T> {
    gemm(a, b).expect("matching inner dimensions (checked shapes)")
}

/// P = softmax(q k^T scale) `[K, K]` of head `h` of a clip's rows `[K, 3 d]`.
#[inline(always)]
fn probabilities<T: Float>(clip: &[T], a: &AttentionDims, h: usize) -> Vec<T> {
    let w = 3 * a.d;
    let mut p = product(view(clip, a, w, 0, h), view(clip, a, w, 1, h).t());
    let scale = T::f(a.scale());
    for row in p.chunks_exact_mut(a.tokens) {
        for s in row.iter_mut() {
            *s *= scale;
        }
        softmax_in_place(row);
    }
    p
}

/// The mask of clip `b`, head `h`, `[K, K]`.
fn mask_of<'m>(
    mask: Option<&'m [f32]>,
    a: &AttentionDims,
    b: usize,
    h: usize,
) -> Option<&'m [f32]> {
    let kk = a.tokens * a.tokens;
    mask.map(|m| &m[(b * a.heads + h) * kk..][..kk])
}

/// `x *= m` entry by entry (a dropout mask).
#[inline(always)]
fn apply_mask<T: Float>(x: &mut [T], m: Option<&[f32]>) {
    if let Some(m) = m {
        for (v, &mv) in x.iter_mut().zip(m) {
            *v *= T::f(mv as f64);
        }
    }
}

/// Writes a head's `[K, dh]` block into columns `c0 .. c0 + dh` of rows `width` wide.
#[inline(always)]
fn put<T: Float>(block: &[T], a: &AttentionDims, width: usize, c0: usize, rows: &mut [T]) {
    for (src, dst) in block.chunks_exact(a.dh).zip(rows.chunks_exact_mut(width)) {
        dst[c0..c0 + a.dh].copy_from_slice(src);
    }
}

haad_kernels::multiversion! {
    /// y `[K, d]` of clip `b` from its rows of qkv `[K, 3 d]`.
    fn forward_clip<T: Float>(
        clip: &[T],
        a: &AttentionDims,
        b: usize,
        mask: Option<&[f32]>,
        y: &mut [T],
    ) {
        let (k, w) = (a.tokens, 3 * a.d);
        for h in 0..a.heads {
            let mut p = probabilities(clip, a, h);
            apply_mask(&mut p, mask_of(mask, a, b, h));
            let yh = product(
                MatRef::new(&p, k, k).expect("[K, K]"),
                view(clip, a, w, 2, h),
            );
            put(&yh, a, a.d, h * a.dh, y);
        }
    }
}

haad_kernels::multiversion! {
    /// dL/dqkv `[K, 3 d]` of clip `b` from its rows of qkv and of dL/dy (`g`, `[K, d]`).
    fn backward_clip<T: Float>(
        clip: &[T],
        g: &[T],
        a: &AttentionDims,
        b: usize,
        mask: Option<&[f32]>,
        out: &mut [T],
    ) {
        let (k, w, d) = (a.tokens, 3 * a.d, a.d);
        let scale = T::f(a.scale());
        for h in 0..a.heads {
            let mut p = probabilities(clip, a, h);
            let m = mask_of(mask, a, b, h);
            let gh = view(g, a, d, 0, h);
            // dP = (g v^T) * M; dS = P (dP - sum(dP P)) scale by rows; then P' = P * M.
            let mut ds = product(gh, view(clip, a, w, 2, h).t());
            apply_mask(&mut ds, m);
            for (row, pr) in ds.chunks_exact_mut(k).zip(p.chunks_exact(k)) {
                let s = ops::row_dot(pr, row);
                for (v, &pv) in row.iter_mut().zip(pr) {
                    *v = pv * (*v - s) * scale;
                }
            }
            apply_mask(&mut p, m);
            let ds_m = MatRef::new(&ds, k, k).expect("[K, K]");
            let p_m = MatRef::new(&p, k, k).expect("[K, K]");
            // dq = dS k, dk = dS^T q, dv = P'^T g.
            put(&product(ds_m, view(clip, a, w, 1, h)), a, w, h * a.dh, out);
            put(
                &product(ds_m.t(), view(clip, a, w, 0, h)),
                a,
                w,
                d + h * a.dh,
                out,
            );
            put(&product(p_m.t(), gh), a, w, 2 * d + h * a.dh, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{mask, max_diff, var};
    use candle_core::{DType, Device};

    /// Values and gradients (of a random linear functional of y) of the fused kernel agree with
    /// candle's generic operations in f64, with and without a dropout mask, and the f32 kernel
    /// with the f64 values.
    #[test]
    fn matches_the_generic_form() {
        let (b, k, heads, dh) = (3, 5, 2, 4);
        let d = heads * dh;
        let qkv = var(&[b * k, 3 * d], 1);
        let r = var(&[b, k, d], 2);
        for mask in [None, Some(mask(b * heads * k * k, 3))] {
            let dims = AttentionDims::of(qkv.as_tensor(), k, heads).unwrap();
            let fast = attention(qkv.as_tensor(), k, heads, mask.clone()).unwrap();
            let slow = attention_generic(qkv.as_tensor(), &dims, mask.as_deref()).unwrap();
            assert_eq!(fast.dims(), &[b, k, d]);
            assert!(max_diff(&fast, &slow) < 1e-12, "{}", max_diff(&fast, &slow));
            let grad = |y: &Tensor| {
                let gs = (y * r.as_tensor()).unwrap().sum_all().unwrap().backward();
                gs.unwrap().get(qkv.as_tensor()).unwrap().clone()
            };
            let (gf, gs) = (grad(&fast), grad(&slow));
            assert_eq!(gf.dims(), qkv.dims());
            assert!(max_diff(&gf, &gs) < 1e-12, "{}", max_diff(&gf, &gs));
            let f32_y = attention(
                &qkv.as_tensor().to_dtype(DType::F32).unwrap(),
                k,
                heads,
                mask.clone(),
            )
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
            assert!(max_diff(&f32_y, &slow) < 1e-5);
        }
    }

    /// One token per clip attends only to itself: y is its value whatever the queries and
    /// keys, and no gradient reaches them.
    #[test]
    fn one_token_returns_its_value() {
        let qkv = var(&[2, 1, 6], 4);
        let y = attention(qkv.as_tensor(), 1, 2, None).unwrap();
        let v = qkv.as_tensor().narrow(2, 4, 2).unwrap();
        assert!(max_diff(&y, &v) < 1e-15);
        let g = y.sum_all().unwrap().backward().unwrap();
        let g: Vec<f64> = g
            .get(qkv.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (i, gv) in g.iter().enumerate() {
            let want = if i % 6 >= 4 { 1.0 } else { 0.0 };
            assert!((gv - want).abs() < 1e-12, "entry {i}: {gv}");
        }
    }

    #[test]
    fn rejects_bad_shapes_and_masks() {
        let x = Tensor::zeros((4, 12), DType::F32, &Device::Cpu).unwrap();
        assert!(attention(&x, 2, 5, None).is_err()); // 12 is not 3 d with d a multiple of 5
        assert!(attention(&x, 3, 2, None).is_err()); // 4 rows are not clips of 3 tokens
        assert!(attention(&x, 2, 2, Some(vec![1.0; 3].into())).is_err());
        assert!(attention(&x, 2, 2, Some(vec![1.0; 16].into())).is_ok());
    }
}
