//! BatchNorm + tanh (+ the residual) as one fused CPU operation on the encoder's `[J, B, F]`
//! maps (node-major, batch in the middle, features last):
//!
//! `y = tanh(x s + t) (+ r)`, with a scale and shift per `(j, f)` given as `st` `[J, 2, F]`
//! (`s` then `t` for each joint). In [`Scale::Batch`] mode `st` holds BatchNorm's `gamma` and
//! `beta`, and `s = gamma / sqrt(var + eps)`, `t = beta - mean s` with the batch mean and biased
//! variance of each `(j, f)`; in [`Scale::Fixed`] mode `st` is used as it is (eval, the running
//! statistics folded in by the caller).
//!
//! One pass forward (after the two passes of the statistics), two backward, and one node in the
//! autograd graph. The caller checks [`crate::cpu::fused`]; elsewhere the encoder uses candle's
//! own operations.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use haad_kernels::{
    common_dtype, contiguous, for_each_chunk_pair, into_storage, with_float, Inputs, Stash,
};

const OP: &str = "norm_tanh";
use crate::ops::Float;

/// How the scale and shift are formed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scale {
    /// From the batch statistics (training), with this `eps`.
    Batch(f64),
    /// As given.
    Fixed,
}

/// The batch mean and biased variance `[J*F]` of a training-mode call.
pub(crate) type BatchStats = (Vec<f64>, Vec<f64>);

/// `(y, stats)`: `y = tanh(x s + t) (+ residual)` `[J, B, F]`, and in [`Scale::Batch`] mode the
/// batch mean and biased variance `[J*F]` each (for the running statistics).
pub(crate) fn norm_tanh(
    x: &Tensor,
    st: &Tensor,
    residual: Option<&Tensor>,
    scale: Scale,
) -> Result<(Tensor, Option<BatchStats>)> {
    let (j, b, f) = x.dims3()?;
    if st.dims() != [j, 2, f] || residual.is_some_and(|r| r.dims() != x.dims()) {
        candle_core::bail!(
            "norm_tanh: scale/shift {:?} do not fit {:?}",
            st.dims(),
            x.dims()
        );
    }
    if matches!(scale, Scale::Batch(_)) && b < 2 {
        candle_core::bail!("training-mode BatchNorm needs at least 2 samples, got {b}");
    }
    let shared = Arc::new(Stash::default());
    let op = NormTanh {
        scale,
        stats: shared.clone(),
    };
    let (x, st) = (x.contiguous()?, st.contiguous()?);
    let y = match residual {
        Some(r) => x.apply_op3(&st, &r.contiguous()?, op)?,
        None => x.apply_op2(&st, op)?,
    };
    let stats = match scale {
        Scale::Batch(_) => {
            let s = shared.get();
            Some(split_stats(s.as_deref().unwrap_or_default(), f))
        }
        Scale::Fixed => None,
    };
    Ok((y, stats))
}

/// The forward's per-joint `[mean F, var F]` -> (mean `[J*F]`, var `[J*F]`).
pub(crate) fn split_stats(s: &[f64], f: usize) -> BatchStats {
    let (mut mean, mut var) = (
        Vec::with_capacity(s.len() / 2),
        Vec::with_capacity(s.len() / 2),
    );
    for c in s.chunks_exact(2 * f) {
        mean.extend_from_slice(&c[..f]);
        var.extend_from_slice(&c[f..]);
    }
    (mean, var)
}

struct NormTanh {
    scale: Scale,
    /// Written by the forward in [`Scale::Batch`] mode: per joint, the mean `[F]` then the
    /// biased variance `[F]`.
    stats: Arc<Stash<Vec<f64>>>,
}

/// A size for the threading rule, in the matrix-product FLOPs that take as long
/// ([`haad_kernels::PARALLEL_MIN_FLOPS`] is counted in those): the statistics, the scale and
/// the `tanh` take about 1.4 ns a value on one core (perf: the forward was 14 % of a 16.9 ms
/// training step at batch 72, nine calls on 184,320 values), as long as about 300 FLOPs of a
/// product at one core's 214 GFLOP/s; counted as 256. Batch 72 is split across threads, the
/// trainer's default batch of 30 is not.
fn work(n: usize) -> usize {
    256 * n
}

/// Joint `jj`'s scale and shift `(s, t)` and, in batch mode, its `(mean, var)`.
#[inline(always)]
fn scale_shift<T: Float>(
    xj: &[T],
    stj: &[T],
    f: usize,
    scale: Scale,
) -> (Vec<T>, Vec<T>, Vec<f64>, Vec<f64>) {
    let (gamma, beta) = stj.split_at(f);
    let eps = match scale {
        Scale::Fixed => return (gamma.to_vec(), beta.to_vec(), Vec::new(), Vec::new()),
        Scale::Batch(eps) => eps,
    };
    let b = xj.len() / f;
    let inv_b = 1.0 / b as f64;
    let mut acc = vec![T::zero(); f];
    for row in xj.chunks_exact(f) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
    let mean: Vec<T> = acc
        .iter()
        .map(|&a| T::from_f64(a.to_f64() * inv_b))
        .collect();
    acc.iter_mut().for_each(|a| *a = T::zero());
    for row in xj.chunks_exact(f) {
        for ((a, &v), &m) in acc.iter_mut().zip(row).zip(&mean) {
            *a += (v - m) * (v - m);
        }
    }
    let var: Vec<f64> = acc.iter().map(|&a| a.to_f64() * inv_b).collect();
    let s: Vec<T> = (0..f)
        .map(|k| T::from_f64(gamma[k].to_f64() / (var[k] + eps).sqrt()))
        .collect();
    let t: Vec<T> = (0..f).map(|k| beta[k] - mean[k] * s[k]).collect();
    (s, t, mean.iter().map(|m| m.to_f64()).collect(), var)
}

haad_kernels::multiversion! {
    /// One joint's part of [`forward`]: its inputs `xj` `[B, F]`, scale/shift `stj` `[2, F]`
    /// and residual `rj` `[B, F]`; its outputs into `out` `[B, F]`, its statistics (batch mode)
    /// into `sj` `[2, F]`.
    pub(crate) fn forward_joint<T: Float>(
        xj: &[T],
        stj: &[T],
        rj: Option<&[T]>,
        scale: Scale,
        out: &mut [T],
        sj: &mut [f64],
    ) {
        let f = stj.len() / 2;
        let (s, t, mean, var) = scale_shift(xj, stj, f, scale);
        for (orow, row) in out.chunks_exact_mut(f).zip(xj.chunks_exact(f)) {
            for (((o, &v), &sk), &tk) in orow.iter_mut().zip(row).zip(&s).zip(&t) {
                *o = (v * sk + tk).tanh();
            }
        }
        if let Some(r) = rj {
            for (o, &v) in out.iter_mut().zip(r) {
                *o += v;
            }
        }
        if !mean.is_empty() {
            sj[..f].copy_from_slice(&mean);
            sj[f..].copy_from_slice(&var);
        }
    }
}

/// Forward: `y` and per joint `[mean f, var f]` (batch mode).
pub(crate) fn forward<T: Float>(
    x: &[T],
    st: &[T],
    r: Option<&[T]>,
    (_, b, f): (usize, usize, usize),
    scale: Scale,
) -> (Vec<T>, Vec<f64>) {
    let mut y = vec![T::zero(); x.len()];
    let mut stats = vec![0f64; 2 * x.len() / b];
    for_each_chunk_pair(
        &mut y,
        b * f,
        &mut stats,
        2 * f,
        work(x.len()),
        |jj, out, sj| {
            let range = jj * b * f..(jj + 1) * b * f;
            let stj = &st[2 * jj * f..2 * (jj + 1) * f];
            let rj = r.map(|r| &r[range.clone()]);
            forward_joint(&x[range], stj, rj, scale, out, sj)
        },
    );
    (y, stats)
}

haad_kernels::multiversion! {
    /// One joint's part of [`backward`]: from its `xj`, `yj`, `rj` and output gradient `gj`
    /// (`[B, F]` each), scale/shift `stj` `[2, F]` and statistics `statsj` `[2, F]` (batch
    /// mode), its dx into `out` `[B, F]` and its d[s; t] into `dj` `[2, F]`.
    pub(crate) fn backward_joint<T: Float>(
        xj: &[T],
        stj: &[T],
        yj: &[T],
        rj: Option<&[T]>,
        gj: &[T],
        statsj: &[f64],
        scale: Scale,
        out: &mut [T],
        dj: &mut [T],
    ) {
        let f = stj.len() / 2;
        let b = xj.len() / f;
        // Pass 1: dz = g (1 - tanh^2) into `out`.
        for ((o, &yv), &gv) in out.iter_mut().zip(yj).zip(gj) {
            *o = gv * (T::one() - yv * yv);
        }
        if let Some(r) = rj {
            // y held tanh + r: recompute dz with the tanh alone.
            for (((o, &yv), &gv), &rv) in out.iter_mut().zip(yj).zip(gj).zip(r) {
                let a = yv - rv;
                *o = gv * (T::one() - a * a);
            }
        }
        let (ds, dt) = dj.split_at_mut(f);
        match scale {
            Scale::Fixed => {
                // dx = dz s; ds = sum dz x; dt = sum dz.
                let s = &stj[..f];
                for (orow, xr) in out.chunks_exact_mut(f).zip(xj.chunks_exact(f)) {
                    let cols = orow
                        .iter_mut()
                        .zip(xr)
                        .zip(s)
                        .zip(ds.iter_mut().zip(dt.iter_mut()));
                    for (((o, &xv), &sk), (dsk, dtk)) in cols {
                        *dsk += *o * xv;
                        *dtk += *o;
                        *o *= sk;
                    }
                }
            }
            Scale::Batch(eps) => {
                // x_hat = (x - mean) rstd; dgamma = sum dz x_hat; dbeta = sum dz;
                // dx = gamma rstd (dz - dbeta / B - x_hat dgamma / B).
                let (mean, var) = statsj.split_at(f);
                let m: Vec<T> = mean.iter().map(|&v| T::from_f64(v)).collect();
                let rstd: Vec<T> = var
                    .iter()
                    .map(|&v| T::from_f64(1.0 / (v + eps).sqrt()))
                    .collect();
                for (orow, xr) in out.chunks_exact(f).zip(xj.chunks_exact(f)) {
                    let cols = orow.iter().zip(xr).zip(m.iter().zip(&rstd));
                    for (((&o, &xv), (&mk, &rk)), (dsk, dtk)) in
                        cols.zip(ds.iter_mut().zip(dt.iter_mut()))
                    {
                        *dsk += o * (xv - mk) * rk;
                        *dtk += o;
                    }
                }
                let inv_b = T::from_f64(1.0 / b as f64);
                let c: Vec<T> = (0..f).map(|k| stj[k] * rstd[k]).collect();
                let mg: Vec<T> = dt.iter().map(|&v| v * inv_b).collect();
                let mgx: Vec<T> = ds.iter().map(|&v| v * inv_b).collect();
                for (orow, xr) in out.chunks_exact_mut(f).zip(xj.chunks_exact(f)) {
                    let cols = orow.iter_mut().zip(xr).zip(m.iter().zip(&rstd));
                    for (((o, &xv), (&mk, &rk)), ((&ck, &gk), &gxk)) in
                        cols.zip(c.iter().zip(&mg).zip(&mgx))
                    {
                        *o = ck * (*o - gk - (xv - mk) * rk * gxk);
                    }
                }
            }
        }

    }
}

/// Backward: `(dx, dst)` for the output gradient `g`, with `y` the output (minus `r`: the
/// tanh) and `dst` `[J, 2, F]` the gradient of `st`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward<T: Float>(
    x: &[T],
    st: &[T],
    y: &[T],
    r: Option<&[T]>,
    g: &[T],
    stats: &[f64],
    (_, b, f): (usize, usize, usize),
    scale: Scale,
) -> (Vec<T>, Vec<T>) {
    let mut dx = vec![T::zero(); x.len()];
    let mut dst = vec![T::zero(); 2 * x.len() / b];
    for_each_chunk_pair(
        &mut dx,
        b * f,
        &mut dst,
        2 * f,
        work(x.len()),
        |jj, out, dj| {
            let range = jj * b * f..(jj + 1) * b * f;
            let sts = 2 * jj * f..2 * (jj + 1) * f;
            // Fixed mode has no statistics.
            let statsj = stats.get(sts.clone()).unwrap_or_default();
            let rj = r.map(|r| &r[range.clone()]);
            let (xj, yj, gj) = (&x[range.clone()], &y[range.clone()], &g[range]);
            backward_joint(xj, &st[sts], yj, rj, gj, statsj, scale, out, dj)
        },
    );
    (dx, dst)
}

impl NormTanh {
    fn fwd(
        &self,
        x: (&CpuStorage, &Layout),
        st: (&CpuStorage, &Layout),
        r: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = x.1.shape().dims3()?;
        let mut storages = vec![x.0, st.0];
        storages.extend(r.map(|r| r.0));
        let (y, stats) = with_float!(common_dtype(&storages, OP)?, OP, |T| {
            let rv = match r {
                Some((s, l)) => Some(contiguous::<T>(s, l, OP)?),
                None => None,
            };
            let xv = contiguous(x.0, x.1, OP)?;
            let (y, s) = forward(xv, contiguous(st.0, st.1, OP)?, rv, dims, self.scale);
            (into_storage(y), s)
        });
        self.stats.put(stats);
        Ok((y, x.1.shape().clone()))
    }

    fn grads(
        &self,
        x: &Tensor,
        st: &Tensor,
        r: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let dims = x.dims3()?;
        let grad = grad.contiguous()?;
        let stats = self.stats.get().clone().unwrap_or_default();
        let mut ts = vec![x, st, res, &grad];
        ts.extend(r);
        let inputs = Inputs::new(&ts, OP)?;
        let dev = x.device();
        let out = with_float!(inputs.dtype(), OP, |T| {
            let v = inputs.values::<T>()?;
            let (dx, dst): (Vec<T>, Vec<T>) = backward(
                v[0],
                v[1],
                v[2],
                v.get(4).copied(),
                v[3],
                &stats,
                dims,
                self.scale,
            );
            (
                Tensor::from_vec(dx, x.shape(), dev)?,
                Tensor::from_vec(dst, st.shape(), dev)?,
            )
        });
        Ok(out)
    }
}

impl CustomOp2 for NormTanh {
    fn name(&self) -> &'static str {
        "haad-norm-tanh"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.fwd((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        st: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dst) = self.grads(x, st, None, res, grad)?;
        Ok((Some(dx), Some(dst)))
    }
}

impl CustomOp3 for NormTanh {
    fn name(&self) -> &'static str {
        "haad-norm-tanh-residual"
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
        self.fwd((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        st: &Tensor,
        r: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dst) = self.grads(x, st, Some(r), res, grad)?;
        Ok((Some(dx), Some(dst), Some(grad.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use haad_kernels::testing::{assert_close as close, grads_of_weighted_sum, uniform, values};

    fn random(dims: (usize, usize, usize), seed: u64, scale: f64) -> Var {
        let v = uniform(dims.0 * dims.1 * dims.2, seed, scale);
        Var::from_tensor(&Tensor::from_vec(v, dims, &Device::Cpu).unwrap()).unwrap()
    }

    /// The fused op against candle's generic operations (batch statistics, tanh, residual),
    /// value, statistics and every gradient, in f64 (1e-12) and f32; both modes, with and
    /// without the residual; sizes below and above the threading threshold.
    #[test]
    fn fused_op_matches_the_generic_forms_with_gradients() {
        let eps = 1e-5;
        for dims in [(3, 5, 4), (20, 72, 128)] {
            let (j, _, f) = dims;
            let x = random(dims, 1, 2.0);
            let st = random((j, 2, f), 2, 1.5);
            let res = random(dims, 3, 1.0);
            let w = random(dims, 4, 1.0);
            for (dtype, tol) in [(DType::F64, 1e-11), (DType::F32, 2e-4)] {
                let c = |v: &Var| Var::from_tensor(&v.to_dtype(dtype).unwrap()).unwrap();
                let (x, st, res, w) = (c(&x), c(&st), c(&res), c(&w));
                for scale in [Scale::Batch(eps), Scale::Fixed] {
                    for with_res in [false, true] {
                        let r = with_res.then_some(res.as_tensor());
                        let (y, stats) = norm_tanh(&x, &st, r, scale).unwrap();
                        let s = st.narrow(1, 0, 1).unwrap();
                        let t = st.narrow(1, 1, 1).unwrap();
                        let mut want = match scale {
                            Scale::Batch(eps) => {
                                let mean = x.mean_keepdim(1).unwrap();
                                let xc = x.broadcast_sub(&mean).unwrap();
                                let var = xc.sqr().unwrap().mean_keepdim(1).unwrap();
                                let (m, v) = stats.clone().unwrap();
                                close(&m, &values(&mean), tol, "mean");
                                close(&v, &values(&var), tol, "var");
                                let xh = xc
                                    .broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
                                    .unwrap();
                                xh.broadcast_mul(&s).unwrap().broadcast_add(&t).unwrap()
                            }
                            Scale::Fixed => x.broadcast_mul(&s).unwrap().broadcast_add(&t).unwrap(),
                        }
                        .tanh()
                        .unwrap();
                        if let Some(r) = r {
                            want = (want + r).unwrap();
                        }
                        let what = format!("{dims:?} {dtype:?} {scale:?} residual {with_res}");
                        close(&values(&y), &values(&want), tol, &format!("y {what}"));
                        let g1 = grads_of_weighted_sum(&y, &w);
                        let g2 = grads_of_weighted_sum(&want, &w);
                        let mut vars = vec![(&x, "dx"), (&st, "dst")];
                        if with_res {
                            vars.push((&res, "dr"));
                        }
                        for (v, name) in vars {
                            let a = values(g1.get(v.as_tensor()).unwrap());
                            let b = values(g2.get(v.as_tensor()).unwrap());
                            close(&a, &b, tol * 10.0, &format!("{name} {what}"));
                        }
                    }
                }
            }
        }
    }
}
