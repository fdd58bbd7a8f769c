//! The encoder's layers in training mode as one CPU operation: every graph convolution,
//! BatchNorm + tanh and residual of [`crate::Encoder`] from the DCT features `X` `[J, B, 3K]` to
//! the map the embedding pools, forward and backward in the kernels of [`crate::gc`] and
//! [`crate::norm`].
//!
//! One node in candle's autograd graph instead of two per layer: candle gives each node's
//! inputs a zero-filled gradient buffer and adds into it, on one thread, which was a tenth of a
//! training step at two threads (docs/performance.md). Here each layer's backward writes its
//! gradients once, the residual sums are the only additions, and the parameters arrive packed
//! in one vector (candle's `cat` hands each its slice of the packed gradient).
//!
//! The layers, in order (`L` residual blocks, `k = 0 .. 2L`): graph convolution `k`, then
//! BatchNorm `k` + tanh, plus the residual `y_{k-2}` when `k` is even and at least 2 (the
//! second half of a block); graph convolution `k` reads `X` (`k = 0`) or `y_{k-1}`. With the
//! output layer, graph convolution `2L + 1` reads `y_{2L}`, and `X` is added (the global
//! residual).

use std::ops::Range;
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use haad_kernels::{common_dtype, contiguous, into_storage, with_float, Inputs, Stash};

use crate::gc;
use crate::norm::{self, Scale};
use crate::ops::Float;

const OP: &str = "encoder_trunk";

/// One graph convolution's place in the packed parameters: `A` `[J, J]`, then `W`
/// `[F_in, F_out]` and (with bias) `b` `[F_out]` back to back.
#[derive(Debug, Clone)]
struct GcPlace {
    att: Range<usize>,
    wb: Range<usize>,
    f_in: usize,
    f_out: usize,
    bias: bool,
}

/// The sizes of the trunk and where each parameter lies in the packed vector.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    joints: usize,
    features: usize,
    hidden: usize,
    /// Graph convolutions `0 ..= 2L` (and `2L + 1`, the output layer, when present).
    gcs: Vec<GcPlace>,
    /// BatchNorms `0 ..= 2L`: `(gamma, beta)` (`[J*F]` each) and `eps`.
    norms: Vec<(Range<usize>, Range<usize>, f64)>,
    output: bool,
    len: usize,
}

impl Plan {
    /// The plan for `J` joints, `C = 3K` input features, width `F`, the BatchNorms' `eps` (one
    /// per BatchNorm, `2L + 1` of them) and the output layer when `output`. The packed order:
    /// for `k = 0 ..= 2L`, graph convolution `k`'s `A`, `W` (and `b`, for `k = 0` only), then
    /// BatchNorm `k`'s `gamma` and `beta`; last the output layer's `A`, `W` and `b`.
    pub(crate) fn new(
        joints: usize,
        features: usize,
        hidden: usize,
        eps: &[f64],
        output: bool,
    ) -> Self {
        let mut plan = Self {
            joints,
            features,
            hidden,
            gcs: Vec::new(),
            norms: Vec::new(),
            output,
            len: 0,
        };
        for (k, &e) in eps.iter().enumerate() {
            let f_in = if k == 0 { features } else { hidden };
            plan.gc(f_in, hidden, k == 0);
            let jf = joints * hidden;
            let gamma = plan.take(jf);
            let beta = plan.take(jf);
            plan.norms.push((gamma, beta, e));
        }
        if output {
            plan.gc(hidden, features, true);
        }
        plan
    }

    fn take(&mut self, n: usize) -> Range<usize> {
        self.len += n;
        self.len - n..self.len
    }

    fn gc(&mut self, f_in: usize, f_out: usize, bias: bool) {
        let j = self.joints;
        let att = self.take(j * j);
        let wb = self.take(f_in * f_out + if bias { f_out } else { 0 });
        self.gcs.push(GcPlace {
            att,
            wb,
            f_in,
            f_out,
            bias,
        });
    }

    /// Features of the output map: `3K` with the output layer, else `F`.
    fn out_features(&self) -> usize {
        if self.output {
            self.features
        } else {
            self.hidden
        }
    }
}

/// The trunk for `x` `[J, B, 3K]` and the packed parameters `p` (every value of the plan): the output map
/// `[J, B, 3K]` (or `[J, B, F]` without the output layer) and each BatchNorm's batch mean and
/// biased variance `[J*F]` (for the running statistics). CPU, f32/f64, one dtype (the caller
/// checks with [`crate::cpu::fused`]); at least 2 clips.
pub(crate) fn trunk(
    x: &Tensor,
    p: &Tensor,
    plan: &Plan,
) -> Result<(Tensor, Vec<norm::BatchStats>)> {
    let (j, b, c) = x.dims3()?;
    if j != plan.joints || c != plan.features || p.dims() != [plan.len] {
        candle_core::bail!(
            "{OP}: input {:?} and parameters {:?} do not fit J = {}, 3K = {}, {} values",
            x.dims(),
            p.dims(),
            plan.joints,
            plan.features,
            plan.len
        );
    }
    if b < 2 {
        candle_core::bail!("training-mode BatchNorm needs at least 2 samples, got {b}");
    }
    let tape = Arc::new(Stash::default());
    let op = Trunk {
        plan: plan.clone(),
        tape: tape.clone(),
    };
    let y = x.contiguous()?.apply_op2(&p.contiguous()?, op)?;
    let stats = match tape.get().as_ref() {
        Some(t) => t
            .stats
            .iter()
            .map(|s| norm::split_stats(s, plan.hidden))
            .collect(),
        None => candle_core::bail!("{OP}: forward kept nothing"),
    };
    Ok((y, stats))
}

/// What the forward keeps: per graph convolution its intermediate product; per BatchNorm its
/// input `z_k`, output `y_k` (with the residual added), scale/shift input `[J, 2, F]` and batch
/// statistics.
struct Tape {
    mids: Vec<CpuStorage>,
    z: Vec<CpuStorage>,
    y: Vec<CpuStorage>,
    st: Vec<CpuStorage>,
    stats: Vec<Vec<f64>>,
}

struct Trunk {
    plan: Plan,
    tape: Arc<Stash<Tape>>,
}

/// BatchNorm `k`'s `gamma` and `beta` as the `[J, 2, F]` scale/shift input of [`norm`].
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

fn gc_dims(place: &GcPlace, j: usize, b: usize) -> (usize, usize, usize, usize) {
    (j, b, place.f_in, place.f_out)
}

/// The forward pass: (output, tape).
fn forward<T: Float>(x: &[T], p: &[T], plan: &Plan) -> Result<(Vec<T>, Tape)> {
    let (j, f) = (plan.joints, plan.hidden);
    let b = x.len() / (j * plan.features);
    let n = plan.norms.len();
    let mut tape = Tape {
        mids: Vec::with_capacity(plan.gcs.len()),
        z: Vec::with_capacity(n),
        y: Vec::with_capacity(n),
        st: Vec::with_capacity(n),
        stats: Vec::with_capacity(n),
    };
    let gc_forward = |k: usize, input: &[T]| {
        let g = &plan.gcs[k];
        let dims = gc_dims(g, j, b);
        gc::forward(input, &p[g.att.clone()], &p[g.wb.clone()], dims, g.bias)
    };
    let mut ys: Vec<Vec<T>> = Vec::with_capacity(n);
    for (k, (gamma, beta, eps)) in plan.norms.iter().enumerate() {
        let input = if k == 0 { x } else { &ys[k - 1] };
        let (z, mid) = gc_forward(k, input)?;
        let st = interleave(p, gamma, beta, f);
        let r = (k >= 2 && k % 2 == 0).then(|| ys[k - 2].as_slice());
        let (y, stats) = norm::forward(&z, &st, r, (j, b, f), Scale::Batch(*eps));
        tape.mids.push(into_storage(mid));
        tape.z.push(into_storage(z));
        tape.st.push(into_storage(st));
        tape.stats.push(stats);
        ys.push(y);
    }
    let last = ys.last().map(Vec::as_slice).unwrap_or_default();
    let out = if plan.output {
        let (mut o, mid) = gc_forward(n, last)?;
        o.iter_mut().zip(x).for_each(|(o, &v)| *o += v);
        tape.mids.push(into_storage(mid));
        o
    } else {
        last.to_vec()
    };
    tape.y = ys.into_iter().map(into_storage).collect();
    Ok((out, tape))
}

fn map<T: Float>(maps: &[CpuStorage], k: usize) -> Result<&[T]> {
    maps[k].as_slice::<T>()
}

/// The backward pass for the output gradient `g`: (`dX` when `want_dx`, `dp`).
fn backward<T: Float>(
    x: &[T],
    p: &[T],
    tape: &Tape,
    g: &[T],
    plan: &Plan,
    want_dx: bool,
) -> Result<(Option<Vec<T>>, Vec<T>)> {
    let (j, f) = (plan.joints, plan.hidden);
    let b = x.len() / (j * plan.features);
    let n = plan.norms.len();
    let mut dp = vec![T::zero(); plan.len];
    // Graph convolution k's backward: its parameters' gradients into `dp`, its input's returned.
    let mut gc_back = |k: usize, input: &[T], dy: &[T]| -> Result<Vec<T>> {
        let gp = &plan.gcs[k];
        let (din, da, dwb) = gc::backward(
            input,
            &p[gp.att.clone()],
            &p[gp.wb.clone()],
            map(&tape.mids, k)?,
            dy,
            gc_dims(gp, j, b),
            gp.bias,
        )?;
        dp[gp.att.clone()].copy_from_slice(&da);
        dp[gp.wb.clone()].copy_from_slice(&dwb);
        Ok(din)
    };
    // The gradient of y_{2L}, then of each y_{k-1} in turn.
    let mut gy = if plan.output {
        gc_back(n, map(&tape.y, n - 1)?, g)?
    } else {
        g.to_vec()
    };
    let mut dnorms = Vec::with_capacity(n);
    // The residual's share of y_{k-2}'s gradient, waiting for graph convolution k - 1.
    let mut pending: Option<Vec<T>> = None;
    let mut dx = None;
    for k in (0..n).rev() {
        let eps = plan.norms[k].2;
        let residual = k >= 2 && k % 2 == 0;
        let r = if residual {
            Some(map(&tape.y, k - 2)?)
        } else {
            None
        };
        let (dz, dst) = norm::backward(
            map(&tape.z, k)?,
            map(&tape.st, k)?,
            map(&tape.y, k)?,
            r,
            &gy,
            &tape.stats[k],
            (j, b, f),
            Scale::Batch(eps),
        );
        dnorms.push((k, dst));
        let from_residual = residual.then_some(gy);
        let input = if k == 0 { x } else { map(&tape.y, k - 1)? };
        let mut din = gc_back(k, input, &dz)?;
        if k == 0 {
            if want_dx {
                // The global residual's share: the output gradient itself.
                if plan.output {
                    din.iter_mut().zip(g).for_each(|(d, &v)| *d += v);
                }
                dx = Some(din);
            }
            break;
        }
        if let Some(w) = pending.take() {
            din.iter_mut().zip(&w).for_each(|(d, &v)| *d += v);
        }
        pending = from_residual;
        gy = din;
    }
    for (k, dst) in dnorms {
        let (gamma, beta, _) = &plan.norms[k];
        for (jj, d) in dst.chunks_exact(2 * f).enumerate() {
            let (g0, b0) = (gamma.start + jj * f, beta.start + jj * f);
            dp[g0..g0 + f].copy_from_slice(&d[..f]);
            dp[b0..b0 + f].copy_from_slice(&d[f..]);
        }
    }
    Ok((dx, dp))
}

impl CustomOp2 for Trunk {
    fn name(&self) -> &'static str {
        "haad-encoder-trunk"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (j, b, _) = l1.shape().dims3()?;
        let (out, tape) = with_float!(common_dtype(&[s1, s2], OP)?, OP, |T| {
            let (o, t) =
                forward::<T>(contiguous(s1, l1, OP)?, contiguous(s2, l2, OP)?, &self.plan)?;
            (into_storage(o), t)
        });
        self.tape.put(tape);
        Ok((out, Shape::from((j, b, self.plan.out_features()))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        p: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let tape = self.tape.get();
        let Some(tape) = tape.as_ref() else {
            candle_core::bail!("{OP}: backward before forward");
        };
        let inputs = Inputs::new(&[x, p, &grad], OP)?;
        let dev = x.device();
        let want_dx = x.track_op();
        with_float!(inputs.dtype(), OP, |T| {
            let v = inputs.values::<T>()?;
            let (dx, dp) = backward(v[0], v[1], tape, v[2], &self.plan, want_dx)?;
            let dx = match dx {
                Some(d) => Some(Tensor::from_vec(d, x.shape(), dev)?),
                None => None,
            };
            Ok((dx, Some(Tensor::from_vec(dp, p.shape(), dev)?)))
        })
    }
}
