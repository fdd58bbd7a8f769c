//! The forward pass cut by joints ([`crate::passes`]).

use std::ops::Range;

use candle_core::Result;
use haad_kernels::{gang, gemm_into, Crew, MatRef};

use super::{a_first, att_rows, joint_rows, region, residual, split_mut, weight, work, Parts};
use crate::norm::{forward_joint, Scale};
use crate::ops::Float;
use crate::spare;
use crate::trunk::{GcPlace, Plan};

/// What the forward pass keeps: per graph convolution its intermediate product (`A x`
/// `[J, B, F_in]` or `x W` `[J, B, F_out]`); per BatchNorm its input `z_k`, output `y_k`
/// (with the residual), scale/shift `[J, 2, F]` and batch statistics `[J, 2, F]` (mean, then
/// biased variance, per joint).
pub(crate) struct Forward<T> {
    pub(crate) out: Vec<T>,
    pub(crate) mids: Vec<Vec<T>>,
    pub(crate) z: Vec<Vec<T>>,
    pub(crate) y: Vec<Vec<T>>,
    pub(crate) st: Vec<Vec<T>>,
    pub(crate) stats: Vec<Vec<f64>>,
}

/// BatchNorm `k`'s `gamma` and `beta` as the `[J, 2, F]` scale/shift input of the kernels.
fn interleave<T: Copy>(p: &[T], gamma: &Range<usize>, beta: &Range<usize>, f: usize) -> Vec<T> {
    let mut st = Vec::with_capacity(2 * gamma.len());
    for (g, b) in p[gamma.clone()]
        .chunks_exact(f)
        .zip(p[beta.clone()].chunks_exact(f))
    {
        st.extend_from_slice(g);
        st.extend_from_slice(b);
    }
    st
}

/// One graph convolution's output rows `jr` into `zp` (`[|jr|, B, F_out]`), bias added: from the
/// whole input `input` `[J, B, F_in]` when `A` comes first (its `A x` rows into `qp`), else from
/// the whole `x W` `pk` `[J, B, F_out]`.
#[allow(clippy::too_many_arguments)]
fn gc_rows<T: Float>(
    p: &[T],
    g: &GcPlace,
    (j, b): (usize, usize),
    jr: &Range<usize>,
    input: &[T],
    pk: Option<&[T]>,
    qp: &mut [T],
    zp: &mut [T],
) -> Result<()> {
    let att = att_rows(&p[g.att.clone()], jr, j)?;
    if a_first(g) {
        gemm_into(qp, att, MatRef::new(input, j, b * g.f_in)?)?;
        gemm_into(zp, MatRef::new(qp, jr.len() * b, g.f_in)?, weight(p, g)?)?;
    } else {
        let Some(pk) = pk else {
            candle_core::bail!("encoder trunk: x W of a layer was not computed");
        };
        gemm_into(zp, att, MatRef::new(pk, j, b * g.f_out)?)?;
    }
    if g.bias {
        let bv = &p[g.wb.clone()][g.f_in * g.f_out..];
        for row in zp.chunks_exact_mut(g.f_out) {
            row.iter_mut().zip(bv).for_each(|(v, &c)| *v += c);
        }
    }
    Ok(())
}

/// The forward pass of `x` `[J, B, 3K]` in `parts` parts, on a gang of as many threads.
pub(crate) fn forward<T: Float>(x: &[T], p: &[T], plan: &Plan, parts: Parts) -> Result<Forward<T>> {
    let b = x.len() / (plan.joints * plan.features).max(1);
    gang(parts.wanted(plan.joints), work(plan, b), |crew| {
        let jc = parts.cut(plan.joints, crew);
        forward_in(crew, x, p, plan, &jc)
    })
}

/// [`forward`] on `crew`, the joints cut as `jc`.
fn forward_in<T: Float>(
    crew: &Crew,
    x: &[T],
    p: &[T],
    plan: &Plan,
    jc: &[Range<usize>],
) -> Result<Forward<T>> {
    let (j, f, c) = (plan.joints, plan.hidden, plan.features);
    let b = x.len() / (j * c);
    let n = plan.norms.len();
    let mut fw = Forward {
        out: Vec::new(),
        mids: Vec::with_capacity(plan.gcs.len()),
        z: Vec::with_capacity(n),
        y: Vec::with_capacity(n),
        st: Vec::with_capacity(n),
        stats: Vec::with_capacity(n),
    };
    // `x W` of the next graph convolution, when it multiplies by W first.
    let mut next_p: Option<Vec<T>> = None;
    let g0 = &plan.gcs[0];
    if !a_first(g0) {
        let mut pm = spare::take(j * b * g0.f_out);
        region(crew, split_mut(&mut pm, jc, b * g0.f_out), |pi, out| {
            let rows = MatRef::new(joint_rows(x, &jc[pi], b * c), jc[pi].len() * b, c)?;
            gemm_into(out, rows, weight(p, g0)?)
        })?;
        next_p = Some(pm);
    }
    for (k, (gamma, beta, eps)) in plan.norms.iter().enumerate() {
        let g = &plan.gcs[k];
        let st = interleave(p, gamma, beta, f);
        let next = plan.gcs.get(k + 1).filter(|gn| !a_first(gn));
        let next_out = next.map_or(0, |gn| gn.f_out);
        let qf = if a_first(g) { g.f_in } else { 0 };
        let (mut z, mut y) = (spare::take(j * b * f), spare::take(j * b * f));
        let mut stats = vec![0f64; j * 2 * f];
        let (mut q, mut pn) = (spare::take(j * b * qf), spare::take(j * b * next_out));
        let pk = next_p.take();
        {
            let input: &[T] = if k == 0 { x } else { &fw.y[k - 1] };
            let res = residual(k).then(|| fw.y[k - 2].as_slice());
            let items = split_mut(&mut z, jc, b * f)
                .into_iter()
                .zip(split_mut(&mut y, jc, b * f))
                .zip(split_mut(&mut stats, jc, 2 * f))
                .zip(split_mut(&mut q, jc, b * qf))
                .zip(split_mut(&mut pn, jc, b * next_out))
                .collect();
            region(crew, items, |pi, ((((zp, yp), sp), qp), pnp)| {
                let jr = &jc[pi];
                gc_rows(p, g, (j, b), jr, input, pk.as_deref(), qp, zp)?;
                for (i, jj) in jr.clone().enumerate() {
                    let rows = i * b * f..(i + 1) * b * f;
                    let rj = res.map(|r| &r[jj * b * f..(jj + 1) * b * f]);
                    let stj = &st[2 * jj * f..2 * (jj + 1) * f];
                    let sj = &mut sp[2 * i * f..2 * (i + 1) * f];
                    forward_joint(
                        &zp[rows.clone()],
                        stj,
                        rj,
                        Scale::Batch(*eps),
                        &mut yp[rows],
                        sj,
                    );
                }
                if let Some(gn) = next {
                    gemm_into(pnp, MatRef::new(yp, jr.len() * b, f)?, weight(p, gn)?)?;
                }
                Ok(())
            })?;
        }
        fw.mids.push(if a_first(g) {
            q
        } else {
            pk.unwrap_or_default()
        });
        next_p = next.map(|_| pn);
        fw.z.push(z);
        fw.y.push(y);
        fw.st.push(st);
        fw.stats.push(stats);
    }
    fw.out = if plan.output {
        let g = &plan.gcs[n];
        let qf = if a_first(g) { g.f_in } else { 0 };
        let (mut o, mut q) = (spare::take(j * b * g.f_out), spare::take(j * b * qf));
        let pk = next_p.take();
        {
            let last = &fw.y[n - 1];
            let items = split_mut(&mut o, jc, b * g.f_out)
                .into_iter()
                .zip(split_mut(&mut q, jc, b * qf))
                .collect();
            region(crew, items, |pi, (op, qp)| {
                let jr = &jc[pi];
                gc_rows(p, g, (j, b), jr, last, pk.as_deref(), qp, op)?;
                // The global residual.
                op.iter_mut()
                    .zip(joint_rows(x, jr, b * c))
                    .for_each(|(o, &v)| *o += v);
                Ok(())
            })?;
        }
        fw.mids.push(if a_first(g) {
            q
        } else {
            pk.unwrap_or_default()
        });
        o
    } else {
        fw.y[n - 1].clone()
    };
    Ok(fw)
}
