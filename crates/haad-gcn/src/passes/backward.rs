//! The backward pass cut by joints ([`crate::passes`]).

use std::ops::Range;

use candle_core::Result;
use haad_kernels::{gang, gemm_into, gemm_nt_into, transposed, Crew, MatRef};

use super::{a_first, cuts, joint_rows, pad, region, residual, split_mut, t_rows, work, Parts};
use crate::norm::{backward_joint, Scale};
use crate::ops::Float;
use crate::spare;
use crate::trunk::Plan;

/// The forward pass's record, borrowed for the backward pass.
pub(crate) struct TapeRef<'a, T> {
    pub(crate) mids: Vec<&'a [T]>,
    pub(crate) z: Vec<&'a [T]>,
    pub(crate) y: Vec<&'a [T]>,
    pub(crate) st: Vec<&'a [T]>,
    pub(crate) stats: &'a [Vec<f64>],
}

/// The gradients of one graph convolution: `dA` `[J, J]`, `dW` `[F_in, F_out]`, `db` `[F_out]`.
struct GcGrads<T> {
    da: Vec<T>,
    dw: Vec<T>,
    db: Vec<T>,
}

/// BatchNorm `m`'s backward for the joints `jr`: `gy` its output gradient rows, into `dzp`
/// (`[|jr|, B, F]`) and `dstp` (`[|jr|, 2, F]`).
#[allow(clippy::too_many_arguments)]
fn norm_rows<T: Float>(
    tape: &TapeRef<T>,
    plan: &Plan,
    m: usize,
    (b, f): (usize, usize),
    jr: &Range<usize>,
    gy: &[T],
    dzp: &mut [T],
    dstp: &mut [T],
) {
    let eps = plan.norms[m].2;
    let res = residual(m).then(|| tape.y[m - 2]);
    for (i, jj) in jr.clone().enumerate() {
        let (rows, whole) = (i * b * f..(i + 1) * b * f, jj * b * f..(jj + 1) * b * f);
        let sts = 2 * jj * f..2 * (jj + 1) * f;
        backward_joint(
            &tape.z[m][whole.clone()],
            &tape.st[m][sts.clone()],
            &tape.y[m][whole.clone()],
            res.map(|r| &r[whole.clone()]),
            &gy[rows.clone()],
            &tape.stats[m][sts],
            Scale::Batch(eps),
            &mut dzp[rows],
            &mut dstp[2 * i * f..2 * (i + 1) * f],
        );
    }
}

/// The rows `fr` of `dW = In^T dP` (`dp` `[J*B, F_out]`, `input` `[J*B, F_in]`) into `out`.
fn dw_rows<T: Float>(
    out: &mut [T],
    input: &[T],
    dp: &[T],
    (rows, fi, fo): (usize, usize, usize),
    fr: &Range<usize>,
) -> Result<()> {
    gemm_into(
        out,
        t_rows(input, fr, rows, fi)?,
        MatRef::new(dp, rows, fo)?,
    )
}

/// The backward pass for the output gradient `g` in `parts` parts, on a gang of as many
/// threads: (`dX` when `want_dx`, the packed parameters' gradient).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward<T: Float>(
    x: &[T],
    p: &[T],
    tape: &TapeRef<T>,
    g: &[T],
    plan: &Plan,
    want_dx: bool,
    parts: Parts,
) -> Result<(Option<Vec<T>>, Vec<T>)> {
    let b = x.len() / (plan.joints * plan.features).max(1);
    gang(parts.wanted(plan.joints), 2 * work(plan, b), |crew| {
        let jc = parts.cut(plan.joints, crew);
        backward_in(crew, (x, p, g), tape, plan, want_dx, &jc)
    })
}

/// [`backward`] on `crew` for `(x, p, g)`, the joints cut as `jc`.
fn backward_in<T: Float>(
    crew: &Crew,
    (x, p, g): (&[T], &[T], &[T]),
    tape: &TapeRef<T>,
    plan: &Plan,
    want_dx: bool,
    jc: &[Range<usize>],
) -> Result<(Option<Vec<T>>, Vec<T>)> {
    let (j, f, c) = (plan.joints, plan.hidden, plan.features);
    let b = x.len() / (j * c);
    let n = plan.norms.len();
    let mut grads: Vec<Option<GcGrads<T>>> = (0..plan.gcs.len()).map(|_| None).collect();
    let mut dsts: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
    // The gradient of each y_k, kept for the residual that skips a layer.
    let mut gys: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
    // The gradient at the output of the graph convolution `k` taken next.
    let (mut dz, top) = if plan.output {
        (g.to_vec(), n)
    } else {
        let (mut dz, mut dst) = (spare::take(j * b * f), vec![T::zero(); j * 2 * f]);
        let items = split_mut(&mut dz, jc, b * f)
            .into_iter()
            .zip(split_mut(&mut dst, jc, 2 * f))
            .collect();
        region(crew, items, |pi, (dzp, dstp)| {
            let jr = &jc[pi];
            norm_rows(
                tape,
                plan,
                n - 1,
                (b, f),
                jr,
                joint_rows(g, jr, b * f),
                dzp,
                dstp,
            );
            Ok(())
        })?;
        gys[n - 1] = g.to_vec();
        dsts[n - 1] = dst;
        (dz, n - 1)
    };
    // A graph convolution that multiplied by W first leaves its dW for the next region:
    // (its index, its dP).
    let mut pending: Option<(usize, Vec<T>)> = None;
    let np = jc.len();
    let mut dx = None;
    for k in (0..=top).rev() {
        let gk = &plan.gcs[k];
        let (fi, fo) = (gk.f_in, gk.f_out);
        let input: &[T] = if k == 0 { x } else { tape.y[k - 1] };
        let mid = tape.mids[k];
        let att = &p[gk.att.clone()];
        // W^T [F_out, F_in] as a copy: `gemm` on a transposed (strided) right factor gave
        // other bits for a block of rows than for the whole (small products).
        let wt = transposed(&p[gk.wb.clone()], fi, fo);
        let wt = MatRef::new(&wt, fo, fi)?;
        let mut da = vec![T::zero(); j * j];
        // dW is computed here when A comes first; else it is the next region's pending dW,
        // which replaces this empty one.
        let mut dw = if a_first(gk) {
            vec![T::zero(); fi * fo]
        } else {
            Vec::new()
        };
        let mut db = vec![T::zero(); if gk.bias { fo } else { 0 }];
        // The pending dW, its rows cut across the parts.
        let (pend_k, pend_dp) = match &pending {
            Some((kk, dp)) => (Some(*kk), dp.as_slice()),
            None => (None, &[][..]),
        };
        let pend_fi = pend_k.map_or(0, |kk| plan.gcs[kk].f_in);
        let pend_fo = pend_k.map_or(0, |kk| plan.gcs[kk].f_out);
        let pfc = cuts(pend_fi, np);
        let mut pend_dw = vec![T::zero(); pend_fi * pend_fo];
        let pend_items = pad(split_mut(&mut pend_dw, &pfc, pend_fo), np);
        let pend_job = |pi: usize, out: Option<&mut [T]>| -> Result<()> {
            if let (Some(kk), Some(out)) = (pend_k, out) {
                let input = if kk == 0 { x } else { tape.y[kk - 1] };
                dw_rows(out, input, pend_dp, (j * b, pend_fi, pend_fo), &pfc[pi])?;
            }
            Ok(())
        };
        // dz's column sums over every row, in order, into db's columns `oc[pi]`.
        let oc = cuts(fo, np);
        let db_items = pad(split_mut(&mut db, &oc, usize::from(gk.bias)), np);
        let db_job = |pi: usize, dbp: Option<&mut [T]>| {
            if let Some(dbp) = dbp.filter(|d| !d.is_empty()) {
                let fr = oc[pi].clone();
                for row in dz.chunks_exact(fo) {
                    dbp.iter_mut()
                        .zip(&row[fr.clone()])
                        .for_each(|(d, &v)| *d += v);
                }
            }
        };
        // The residual's share of y_{k-1}'s gradient: y_{k+1}'s gradient when layer k + 1
        // added y_{k-1}.
        let skip = (k + 1 < n && residual(k + 1)).then(|| gys[k + 1].as_slice());
        // y_{k-1}'s gradient, BatchNorm k - 1's input gradient and d[gamma; beta] (k > 0).
        let zf = if k > 0 { f } else { 0 };
        let mut din = spare::take(if k > 0 || want_dx { j * b * fi } else { 0 });
        let (mut gy, mut dzn) = (spare::take(j * b * zf), spare::take(j * b * zf));
        let mut dst = vec![T::zero(); j * 2 * zf];
        // Once dIn's rows `jr` are known: y_{k-1}'s gradient and BatchNorm k - 1's backward,
        // or for k = 0 the global residual's share of dX.
        let tail =
            |jr: &Range<usize>, dinp: &mut [T], gyp: &mut [T], dzp: &mut [T], dstp: &mut [T]| {
                if k == 0 {
                    if plan.output {
                        dinp.iter_mut()
                            .zip(joint_rows(g, jr, b * c))
                            .for_each(|(d, &v)| *d += v);
                    }
                    return;
                }
                gyp.copy_from_slice(dinp);
                if let Some(s) = skip {
                    gyp.iter_mut()
                        .zip(joint_rows(s, jr, b * f))
                        .for_each(|(d, &v)| *d += v);
                }
                norm_rows(tape, plan, k - 1, (b, f), jr, gyp, dzp, dstp);
            };
        let want_din = k > 0 || want_dx;
        let din_per = if want_din { b * fi } else { 0 };
        let next_pending = if !a_first(gk) {
            // y = A P + b, P = In W: dA, dP and dIn rows here, dW in the next region.
            let mut dp = spare::take(j * b * fo);
            let items = split_mut(&mut da, jc, j)
                .into_iter()
                .zip(split_mut(&mut dp, jc, b * fo))
                .zip(split_mut(&mut din, jc, din_per))
                .zip(db_items)
                .zip(pend_items)
                .zip(split_mut(&mut gy, jc, b * zf))
                .zip(split_mut(&mut dzn, jc, b * zf))
                .zip(split_mut(&mut dst, jc, 2 * zf))
                .collect();
            region(
                crew,
                items,
                |pi, (((((((dap, dpp), dinp), dbp), pw), gyp), dzp), dstp)| {
                    let jr = &jc[pi];
                    gemm_nt_into(dap, joint_rows(&dz, jr, b * fo), mid, (jr.len(), j, b * fo))?;
                    gemm_into(dpp, t_rows(att, jr, j, j)?, MatRef::new(&dz, j, b * fo)?)?;
                    db_job(pi, dbp);
                    pend_job(pi, pw)?;
                    if want_din {
                        gemm_into(dinp, MatRef::new(dpp, jr.len() * b, fo)?, wt)?;
                        tail(jr, dinp, gyp, dzp, dstp);
                    }
                    Ok(())
                },
            )?;
            Some((k, dp))
        } else {
            // y = Q W + b, Q = A In: dQ, dA and dW rows here, dIn in a second region.
            let mut dq = spare::take(j * b * fi);
            let ic = cuts(fi, np);
            let items = split_mut(&mut da, jc, j)
                .into_iter()
                .zip(split_mut(&mut dq, jc, b * fi))
                .zip(pad(split_mut(&mut dw, &ic, fo), np))
                .zip(db_items)
                .zip(pend_items)
                .collect();
            region(crew, items, |pi, ((((dap, dqp), dwp), dbp), pw)| {
                let jr = &jc[pi];
                let dzr = MatRef::new(joint_rows(&dz, jr, b * fo), jr.len() * b, fo)?;
                gemm_into(dqp, dzr, wt)?;
                gemm_nt_into(dap, dqp, input, (jr.len(), j, b * fi))?;
                if let Some(dwp) = dwp {
                    let q = t_rows(mid, &ic[pi], j * b, fi)?;
                    gemm_into(dwp, q, MatRef::new(&dz, j * b, fo)?)?;
                }
                db_job(pi, dbp);
                pend_job(pi, pw)
            })?;
            if want_din {
                let items = split_mut(&mut din, jc, b * fi)
                    .into_iter()
                    .zip(split_mut(&mut gy, jc, b * zf))
                    .zip(split_mut(&mut dzn, jc, b * zf))
                    .zip(split_mut(&mut dst, jc, 2 * zf))
                    .collect();
                region(crew, items, |pi, (((dinp, gyp), dzp), dstp)| {
                    let jr = &jc[pi];
                    gemm_into(dinp, t_rows(att, jr, j, j)?, MatRef::new(&dq, j, b * fi)?)?;
                    tail(jr, dinp, gyp, dzp, dstp);
                    Ok(())
                })?;
            }
            spare::give(dq);
            None
        };
        if let Some(kk) = pend_k {
            if let Some(prev) = grads[kk].as_mut() {
                prev.dw = pend_dw;
            }
        }
        if let Some((_, dp)) = std::mem::replace(&mut pending, next_pending) {
            spare::give(dp);
        }
        grads[k] = Some(GcGrads { da, dw, db });
        if k > 0 {
            gys[k - 1] = gy;
            dsts[k - 1] = dst;
            spare::give(std::mem::replace(&mut dz, dzn));
            spare::give(din);
        } else if want_dx {
            dx = Some(din);
        }
    }
    spare::give(dz);
    gys.into_iter().for_each(spare::give);
    if let Some((kk, dp)) = pending.take() {
        // The last pending dW (graph convolution 0 multiplied by W first).
        let gk = &plan.gcs[kk];
        let (fi, fo) = (gk.f_in, gk.f_out);
        let ic = cuts(fi, np);
        let mut dw = vec![T::zero(); fi * fo];
        let input = if kk == 0 { x } else { tape.y[kk - 1] };
        region(crew, split_mut(&mut dw, &ic, fo), |pi, out| {
            dw_rows(out, input, &dp, (j * b, fi, fo), &ic[pi])
        })?;
        if let Some(prev) = grads[kk].as_mut() {
            prev.dw = dw;
        }
        spare::give(dp);
    }
    Ok((dx, pack(plan, grads, dsts)?))
}

/// The gradients in the packed parameters' order.
fn pack<T: Float>(
    plan: &Plan,
    grads: Vec<Option<GcGrads<T>>>,
    dsts: Vec<Vec<T>>,
) -> Result<Vec<T>> {
    let f = plan.hidden;
    let mut dp = vec![T::zero(); plan.len];
    for (gp, gr) in plan.gcs.iter().zip(grads) {
        let Some(gr) = gr else {
            candle_core::bail!("encoder trunk: a layer's gradient was not computed");
        };
        dp[gp.att.clone()].copy_from_slice(&gr.da);
        let wb = &mut dp[gp.wb.clone()];
        wb[..gp.f_in * gp.f_out].copy_from_slice(&gr.dw);
        wb[gp.f_in * gp.f_out..].copy_from_slice(&gr.db);
    }
    for ((gamma, beta, _), dst) in plan.norms.iter().zip(dsts) {
        for (jj, d) in dst.chunks_exact(2 * f).enumerate() {
            let (g0, b0) = (gamma.start + jj * f, beta.start + jj * f);
            dp[g0..g0 + f].copy_from_slice(&d[..f]);
            dp[b0..b0 + f].copy_from_slice(&d[f..]);
        }
    }
    Ok(dp)
}
