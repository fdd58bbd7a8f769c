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
use haad_kernels::{
    common_dtype, contiguous, into_storage, threads, with_float, worth_splitting, Inputs, Stash,
};

use crate::norm;
use crate::ops::Float;
use crate::passes::{self, Parts, TapeRef};
use crate::spare;

const OP: &str = "encoder_trunk";

/// One graph convolution's place in the packed parameters: `A` `[J, J]`, then `W`
/// `[F_in, F_out]` and (with bias) `b` `[F_out]` back to back.
#[derive(Debug, Clone)]
pub(crate) struct GcPlace {
    pub(crate) att: Range<usize>,
    pub(crate) wb: Range<usize>,
    pub(crate) f_in: usize,
    pub(crate) f_out: usize,
    pub(crate) bias: bool,
}

/// The sizes of the trunk and where each parameter lies in the packed vector.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) joints: usize,
    pub(crate) features: usize,
    pub(crate) hidden: usize,
    /// Graph convolutions `0 ..= 2L` (and `2L + 1`, the output layer, when present).
    pub(crate) gcs: Vec<GcPlace>,
    /// BatchNorms `0 ..= 2L`: `(gamma, beta)` (`[J*F]` each) and `eps`.
    pub(crate) norms: Vec<(Range<usize>, Range<usize>, f64)>,
    pub(crate) output: bool,
    pub(crate) len: usize,
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
///
/// The passes are cut in exactly `parts` parts by joints ([`crate::passes`]); `None`: one part
/// per thread of each pass's gang where the pass's work is worth splitting, else one.
pub(crate) fn trunk(
    x: &Tensor,
    p: &Tensor,
    plan: &Plan,
    parts: Option<usize>,
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
    let parts = match parts {
        Some(n) => Parts::Exactly(n),
        // A pass is one gang ([`haad_kernels::gang`]): its threads are handed work once, not
        // per layer, so the whole pass's work decides.
        None if worth_splitting(passes::work(plan, b)) => Parts::UpTo(threads()),
        None => Parts::UpTo(1),
    };
    let op = Trunk {
        plan: plan.clone(),
        tape: tape.clone(),
        parts,
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
    /// How each pass is cut.
    parts: Parts,
}

impl Drop for Tape {
    /// The maps go back to the spare buffers ([`crate::spare`]).
    fn drop(&mut self) {
        for s in self.mids.iter_mut().chain(&mut self.z).chain(&mut self.y) {
            match s {
                CpuStorage::F32(v) => spare::give(std::mem::take(v)),
                CpuStorage::F64(v) => spare::give(std::mem::take(v)),
                _ => {}
            }
        }
    }
}

impl Tape {
    fn new<T: Float>(fw: passes::Forward<T>) -> Self {
        let store = |v: Vec<Vec<T>>| v.into_iter().map(into_storage).collect();
        Self {
            mids: store(fw.mids),
            z: store(fw.z),
            y: store(fw.y),
            st: store(fw.st),
            stats: fw.stats,
        }
    }

    fn slices<T: Float>(&self) -> Result<TapeRef<'_, T>> {
        fn view<T: Float>(v: &[CpuStorage]) -> Result<Vec<&[T]>> {
            v.iter().map(|s| s.as_slice::<T>()).collect()
        }
        Ok(TapeRef {
            mids: view(&self.mids)?,
            z: view(&self.z)?,
            y: view(&self.y)?,
            st: view(&self.st)?,
            stats: &self.stats,
        })
    }
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
            let (x, p) = (contiguous(s1, l1, OP)?, contiguous(s2, l2, OP)?);
            let mut fw = passes::forward::<T>(x, p, &self.plan, self.parts)?;
            let out = std::mem::take(&mut fw.out);
            (into_storage(out), Tape::new(fw))
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
            let t = tape.slices::<T>()?;
            let (dx, dp) = passes::backward(v[0], v[1], &t, v[2], &self.plan, want_dx, self.parts)?;
            let dx = match dx {
                Some(d) => Some(Tensor::from_vec(d, x.shape(), dev)?),
                None => None,
            };
            Ok((dx, Some(Tensor::from_vec(dp, p.shape(), dev)?)))
        })
    }
}
