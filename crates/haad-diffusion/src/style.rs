//! The stylisation's normalise-modulate-activate step as one operation:
//! `SiLU(x_hat s + t) m`, x_hat the row-normalised input, per-clip scale `s` and shift `t`, `m`
//! the dropout mask.
//!
//! Composed from [`ops::normalize`], a scale and shift and [`ops::silu`] it is three passes
//! over the `[B, K, d]` map forward and three backward, three buffers, and three autograd nodes
//! (each of which costs candle's backward a zero fill and an addition of its input's size).
//! Here it is one pass forward and one backward; the backward recomputes x_hat and
//! `x_hat s + t` from x instead of keeping them.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use haad_kernels::{common_dtype, contiguous, into_storage, with_float};

use crate::ops::{self, Float, Unary};

/// `SiLU(x_hat s + t)` times `mask`, for x `[G, R, d]` (any `[.., d]` whose rows split into G
/// equal groups) and per-group scale `s` and shift `t` `[G, 1, d]`, where x_hat is x normalised
/// over its last dimension (`(x - mean) / sqrt(var + eps)`, no affine of its own). `mask`:
/// dropout, one entry per value of x (0 or 1 / (1 - p)), `None` for none.
///
/// One operation on f32/f64 CPU tensors; elsewhere the composition of [`ops::normalize`],
/// broadcast scale and shift and [`ops::silu`], which computes the same.
pub fn modulated_silu(
    x: &Tensor,
    s: &Tensor,
    t: &Tensor,
    eps: f64,
    mask: Option<Arc<[f32]>>,
) -> Result<Tensor> {
    modulate(x, s, t, eps, mask, true)
}

/// `x_hat s + t` as [`modulated_silu`] without the activation and the mask: with one group
/// (`s`, `t` `[1, 1, d]`) a LayerNorm ([`ops::layer_norm`]) in one pass forward and one
/// backward.
pub fn modulated(x: &Tensor, s: &Tensor, t: &Tensor, eps: f64) -> Result<Tensor> {
    modulate(x, s, t, eps, None, false)
}

fn modulate(
    x: &Tensor,
    s: &Tensor,
    t: &Tensor,
    eps: f64,
    mask: Option<Arc<[f32]>>,
    silu: bool,
) -> Result<Tensor> {
    if s.dims() != t.dims() || s.rank() != 3 || s.dim(1)? != 1 {
        candle_core::bail!(
            "modulated: scale {:?} and shift {:?} must both be [G, 1, d]",
            s.dims(),
            t.dims()
        );
    }
    let (g, _, d) = s.dims3()?;
    let n = x.elem_count();
    if n == 0 || g == 0 || x.dims().last() != Some(&d) || !n.is_multiple_of(g * d) {
        candle_core::bail!(
            "modulated: {:?} is not [{g}, R, {d}]-shaped like its scale {:?}",
            x.dims(),
            s.dims()
        );
    }
    if let Some(m) = &mask {
        if m.len() != n {
            candle_core::bail!(
                "modulated: dropout mask of {} values for {:?}",
                m.len(),
                x.dims()
            );
        }
    }
    let same = |o: &Tensor| o.dtype() == x.dtype() && o.device().is_cpu();
    if !(ops::fused(x) && same(s) && same(t)) {
        let h = ops::normalize(x, eps)?.broadcast_mul(s)?.broadcast_add(t)?;
        return if silu { ops::silu(&h, mask) } else { Ok(h) };
    }
    let x3 = x.contiguous()?.reshape((g, n / (g * d), d))?;
    let st = Tensor::cat(&[s, t], 1)?.contiguous()?; // [G, 2, d]
    x3.apply_op2(&st, Modulated { eps, mask, silu })?
        .reshape(x.shape())
}

/// Operations per value, for the kernels' threading rule (measured against the row kernels:
/// the moments, one `exp`, a few products).
const FORWARD_COST: usize = 40;
const BACKWARD_COST: usize = 60;

/// `x_hat s + t`, then SiLU when `silu`, then the mask.
struct Modulated {
    eps: f64,
    mask: Option<Arc<[f32]>>,
    silu: bool,
}

/// Group `gi`'s slice of the mask.
fn mask_of(mask: Option<&[f32]>, gi: usize, len: usize) -> Option<&[f32]> {
    mask.map(|m| &m[gi * len..][..len])
}

fn forward<T: Float>(
    x: &[T],
    st: &[T],
    (r, d): (usize, usize),
    eps: f64,
    mask: Option<&[f32]>,
    silu: bool,
) -> Vec<T> {
    let group = r * d;
    // Each value written once: no zero-filled buffer first (a pass over memory as long as
    // this kernel's own).
    haad_kernels::collect_chunks(x.len(), group, FORWARD_COST * x.len(), |start, len, out| {
        forward_groups(
            x,
            st,
            r,
            d,
            eps,
            mask,
            silu,
            start / group..(start + len) / group,
            out,
        )
    })
}

haad_kernels::multiversion! {
    /// Appends the output of groups `groups` of x (see [`forward`]) to `out`.
    fn forward_groups<T: Float>(
        x: &[T],
        st: &[T],
        r: usize,
        d: usize,
        eps: f64,
        mask: Option<&[f32]>,
        silu: bool,
        groups: std::ops::Range<usize>,
        out: &mut Vec<T>,
    ) {
        let group = r * d;
        for gi in groups {
            let (s, t) = st[gi * 2 * d..][..2 * d].split_at(d);
            let xg = &x[gi * group..][..group];
            let mg = mask_of(mask, gi, group);
            for (ri, xr) in xg.chunks_exact(d).enumerate() {
                let (mean, inv) = ops::moments(xr, eps);
                let (mean, inv) = (T::f(mean), T::f(inv));
                // Written in place with plain loops: `Vec::extend` over an iterator runs in a
                // fold that is not inlined here, so it would not be compiled for this level.
                let o0 = out.len();
                out.resize(o0 + d, T::f(0.0));
                let rows = out[o0..].iter_mut().zip(xr).zip(s.iter().zip(t));
                let h = |v: T, a: T, b: T| (v - mean) * inv * a + b;
                match (mg, silu) {
                    (None, false) => {
                        for ((o, &v), (&a, &b)) in rows {
                            *o = h(v, a, b);
                        }
                    }
                    (None, true) => {
                        for ((o, &v), (&a, &b)) in rows {
                            *o = Unary::Silu.value(h(v, a, b));
                        }
                    }
                    (Some(m), _) => {
                        for (((o, &v), (&a, &b)), &mv) in rows.zip(&m[ri * d..][..d]) {
                            let y = h(v, a, b);
                            let y = if silu { Unary::Silu.value(y) } else { y };
                            *o = y * T::f(mv as f64);
                        }
                    }
                }
            }
        }
    }
}

/// dL/dx (the first `x.len()` values) and dL/d[s; t] (`[G, 2, d]`, after them) from x, [s; t]
/// and dL/dy, in one buffer.
fn backward<T: Float>(
    x: &[T],
    st: &[T],
    g: &[T],
    (r, d): (usize, usize),
    eps: f64,
    mask: Option<&[f32]>,
    silu: bool,
) -> Vec<T> {
    let n = x.len();
    let mut out = vec![T::f(0.0); n + st.len()];
    let (dx, dst) = out.split_at_mut(n);
    let cost = BACKWARD_COST * n;
    haad_kernels::for_each_chunk_pair(dx, r * d, dst, 2 * d, cost, |gi, dxg, dstg| {
        backward_group(x, st, g, r, d, eps, mask, silu, gi, dxg, dstg)
    });
    out
}

haad_kernels::multiversion! {
    /// Group `gi`'s dL/dx into `dxg` and dL/d[s; t] into `dstg` (see [`backward`]).
    fn backward_group<T: Float>(
        x: &[T],
        st: &[T],
        g: &[T],
        r: usize,
        d: usize,
        eps: f64,
        mask: Option<&[f32]>,
        silu: bool,
        gi: usize,
        dxg: &mut [T],
        dstg: &mut [T],
    ) {
        let df = d as f64;
        let (s, t) = st[gi * 2 * d..][..2 * d].split_at(d);
        let (ds, dt) = dstg.split_at_mut(d);
        let (xg, gg) = (&x[gi * r * d..][..r * d], &g[gi * r * d..][..r * d]);
        let mg = mask_of(mask, gi, r * d);
        let mut xhat = vec![T::f(0.0); d];
        for (ri, ((xr, gr), dxr)) in xg
            .chunks_exact(d)
            .zip(gg.chunks_exact(d))
            .zip(dxg.chunks_exact_mut(d))
            .enumerate()
        {
            let (mean, inv) = ops::moments(xr, eps);
            let (mean, inv) = (T::f(mean), T::f(inv));
            for (xh, &v) in xhat.iter_mut().zip(xr) {
                *xh = (v - mean) * inv;
            }
            // dL/dh into dx's row, h = x_hat s + t: SiLU'(h) (g m), or g m without SiLU.
            if silu {
                for (((o, &xh), &a), (&b, &gv)) in
                    dxr.iter_mut().zip(&xhat).zip(s).zip(t.iter().zip(gr))
                {
                    *o = Unary::Silu.derivative(xh * a + b) * gv;
                }
            } else {
                dxr.copy_from_slice(gr);
            }
            if let Some(m) = mg {
                for (o, &mv) in dxr.iter_mut().zip(&m[ri * d..][..d]) {
                    *o *= T::f(mv as f64);
                }
            }
            for (((gh, &xh), dsv), dtv) in
                dxr.iter().zip(&xhat).zip(ds.iter_mut()).zip(dt.iter_mut())
            {
                *dsv += *gh * xh;
                *dtv += *gh;
            }
            // dL/dx_hat = dL/dh s, then the normalisation's backward:
            // inv (dx_hat - mean(dx_hat) - x_hat mean(dx_hat x_hat)).
            for (o, &a) in dxr.iter_mut().zip(s) {
                *o *= a;
            }
            let sg = ops::lane_sum(&dxr[..d], |v| v.to());
            let sgx = ops::lane_sum_pairs(&dxr[..d], &xhat[..d], |u, v| u.to() * v.to());
            let (mg, mgx) = (T::f(sg / df), T::f(sgx / df));
            for (o, &xh) in dxr.iter_mut().zip(&xhat) {
                *o = inv * (*o - mg - xh * mgx);
            }
        }
    }
}

impl Modulated {
    fn dims(l1: &Layout, l2: &Layout) -> Result<(usize, usize, usize)> {
        let (g, r, d) = l1.shape().dims3()?;
        if l2.dims() != [g, 2, d] {
            candle_core::bail!(
                "modulated: x {:?}, scale and shift {:?}",
                l1.dims(),
                l2.dims()
            );
        }
        Ok((g, r, d))
    }
}

impl CustomOp2 for Modulated {
    fn name(&self) -> &'static str {
        if self.silu {
            "haad-modulated-silu"
        } else {
            "haad-modulated"
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, r, d) = Self::dims(l1, l2)?;
        let mask = self.mask.as_deref();
        let out = with_float!(common_dtype(&[s1, s2], self.name())?, self.name(), |T| {
            let x = contiguous::<T>(s1, l1, self.name())?;
            let st = contiguous::<T>(s2, l2, self.name())?;
            into_storage(forward(x, st, (r, d), self.eps, mask, self.silu))
        });
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        st: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let both = x.apply_op3_no_bwd(
            st,
            &grad.contiguous()?,
            &ModulatedGrad {
                eps: self.eps,
                mask: self.mask.clone(),
                silu: self.silu,
            },
        )?;
        let n = x.elem_count();
        let dx = both.narrow(0, 0, n)?.reshape(x.shape())?;
        let dst = both.narrow(0, n, st.elem_count())?.reshape(st.shape())?;
        Ok((Some(dx), Some(dst)))
    }
}

/// The backward of [`Modulated`]: dL/dx and dL/d[s; t] in one flat buffer.
struct ModulatedGrad {
    eps: f64,
    mask: Option<Arc<[f32]>>,
    silu: bool,
}

impl CustomOp3 for ModulatedGrad {
    fn name(&self) -> &'static str {
        "haad-modulated-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, r, d) = Modulated::dims(l1, l2)?;
        if l3.shape() != l1.shape() {
            candle_core::bail!(
                "{}: gradient {:?} for {:?}",
                self.name(),
                l3.dims(),
                l1.dims()
            );
        }
        let mask = self.mask.as_deref();
        let name = self.name();
        let out = with_float!(common_dtype(&[s1, s2, s3], name)?, name, |T| {
            let x = contiguous::<T>(s1, l1, name)?;
            let st = contiguous::<T>(s2, l2, name)?;
            let g = contiguous::<T>(s3, l3, name)?;
            into_storage(backward(x, st, g, (r, d), self.eps, mask, self.silu))
        });
        let len = l1.shape().elem_count() + l2.shape().elem_count();
        Ok((out, Shape::from(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_same_values_and_grads, mask, max_diff, var};
    use candle_core::{DType, Device, Var};

    /// The composition the operation replaces.
    fn composed(x: &Tensor, s: &Tensor, t: &Tensor, m: Option<Arc<[f32]>>) -> Result<Tensor> {
        let h = ops::normalize(x, 1e-5)?
            .broadcast_mul(s)?
            .broadcast_add(t)?;
        let y = h.silu()?;
        match m {
            Some(m) => y.mul(&ops::mask_tensor(&m, &y)?),
            None => Ok(y),
        }
    }

    /// Values and the gradient of every input (a random linear functional of the output) agree
    /// with the composition in f64; the f32 kernel agrees with the f64 values.
    fn check(x: &Var, view: impl Fn(&Tensor) -> Tensor, m: Option<Arc<[f32]>>) {
        let x_in = view(x.as_tensor());
        let dims = x_in.dims().to_vec();
        let (g, d) = (dims[0], dims[2]);
        let (s, t) = (var(&[g, 1, d], 11), var(&[g, 1, d], 12));
        let fast = modulated_silu(&x_in, s.as_tensor(), t.as_tensor(), 1e-5, m.clone()).unwrap();
        let slow = composed(&x_in, s.as_tensor(), t.as_tensor(), m.clone()).unwrap();
        let inputs = [x.as_tensor(), s.as_tensor(), t.as_tensor()];
        assert_same_values_and_grads(&fast, &slow, &inputs);
        let f32s = |v: &Tensor| v.to_dtype(DType::F32).unwrap();
        let y32 = modulated_silu(
            &f32s(&x_in),
            &f32s(s.as_tensor()),
            &f32s(t.as_tensor()),
            1e-5,
            m,
        )
        .unwrap();
        assert_eq!(y32.dtype(), DType::F32);
        let err = max_diff(&y32.to_dtype(DType::F64).unwrap(), &fast);
        assert!(err < 1e-5, "f32 against f64: {err}");
    }

    #[test]
    fn matches_normalize_scale_shift_silu_with_gradients() {
        let (g, r, d) = (3, 5, 19);
        let x = var(&[g, r, d], 1);
        check(&x, |x| x.clone(), None);
        check(&x, |x| x.clone(), Some(mask(g * r * d, 2)));
        // A non-contiguous input.
        let xt = var(&[g, d, r], 3);
        check(
            &xt,
            |x| x.transpose(1, 2).unwrap(),
            Some(mask(g * r * d, 4)),
        );
    }

    /// Without the activation and with one group: LayerNorm, against [`ops::normalize`] then
    /// the broadcast scale and shift, values and the gradients of x, the scale and the shift (f64).
    #[test]
    fn layer_norm_is_normalize_then_scale_shift() {
        let (r, d) = (11, 7);
        let (x, w, b) = (var(&[2, r, d], 1), var(&[d], 2), var(&[d], 3));
        let fast = ops::layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap();
        let row = |v: &Var| v.as_tensor().reshape((1, 1, d)).unwrap();
        let slow = ops::normalize(x.as_tensor(), 1e-5)
            .unwrap()
            .broadcast_mul(&row(&w))
            .unwrap()
            .broadcast_add(&row(&b))
            .unwrap();
        assert_eq!(fast.dims(), [2, r, d]);
        let inputs = [x.as_tensor(), w.as_tensor(), b.as_tensor()];
        assert_same_values_and_grads(&fast, &slow, &inputs);
    }

    #[test]
    fn refuses_mismatched_shapes_and_masks() {
        let z = |dims: &[usize]| Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
        let (x, s) = (z(&[2, 3, 4]), z(&[2, 1, 4]));
        assert!(modulated_silu(&x, &s, &s, 1e-5, None).is_ok());
        assert!(modulated_silu(&x, &z(&[2, 1, 5]), &z(&[2, 1, 5]), 1e-5, None).is_err());
        assert!(modulated_silu(&x, &s, &z(&[2, 1, 3]), 1e-5, None).is_err());
        assert!(modulated_silu(&x, &z(&[2, 2, 4]), &z(&[2, 2, 4]), 1e-5, None).is_err());
        assert!(modulated_silu(&x, &s, &s, 1e-5, Some(mask(23, 1))).is_err());
        assert!(modulated_silu(&z(&[0, 3, 4]), &s, &s, 1e-5, None).is_err());
    }
}
