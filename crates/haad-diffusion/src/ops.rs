//! Fused element-wise operations of the denoiser, with their backward passes.
//!
//! candle builds LayerNorm, softmax, GELU and SiLU (and their gradients) from many generic
//! tensor operations, each a pass over memory, and sums the gradient of a broadcast addition or
//! product over its leading dimensions with a slow strided reduction; in the denoiser's
//! training step those passes cost more than the matrix products. Here each operation is one
//! pass forward and one backward, on f32 or f64 CPU tensors. On other devices and dtypes the
//! functions fall back to candle's own differentiable forms (`ops::layer_norm_slow`,
//! `gelu_erf`, `silu`, broadcast arithmetic), so the results agree everywhere. Softmax lives
//! inside the attention operation (`attention.rs`), which uses this file's row helpers.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, D};
use haad_kernels::{common_dtype, contiguous, dtype_of, into_storage, is_float, with_float};

/// `(x - mean) / sqrt(var + eps)` over the last dimension (no scale or shift), `[.., d]`, in
/// candle's generic operations: the reference form and the fallback off the CPU (on the CPU the
/// denoiser normalises inside [`crate::style::modulated`]).
pub fn normalize(x: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    xc.broadcast_div(&(var + eps)?.sqrt()?)
}

/// LayerNorm over the last dimension with scale `weight` and shift `bias` (both `[d]`).
///
/// One operation forward and one backward on CPU ([`crate::style::modulated`] with one group);
/// elsewhere [`normalize`], then the scale and shift broadcast.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let d = weight.dim(0)?;
    crate::style::modulated(
        x,
        &weight.reshape((1, 1, d))?,
        &bias.reshape((1, 1, d))?,
        eps,
    )
}

/// `x + b` for x `[.., m]` and a row `b` `[m]` added to every row.
pub fn add_rows(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    if fused(x) && b.dtype() == x.dtype() && b.device().is_cpu() {
        x.contiguous()?.apply_op2(&b.contiguous()?, AddRows)
    } else {
        x.broadcast_add(b)
    }
}

/// GELU in its exact form `x Phi(x)` (PyTorch's `nn.GELU()`), Phi the standard normal CDF,
/// then dropout: each value times its entry of `mask` (same element count as `x`, entries 0 or
/// 1 / (1 - p)), `None` for none. Dropout inside the operation saves the graph a product node
/// (and its backward) per use.
pub fn gelu(x: &Tensor, mask: Option<Arc<[f32]>>) -> Result<Tensor> {
    activation(x, Unary::Gelu, mask, |x| x.gelu_erf())
}

/// SiLU, `x sigmoid(x)`, then dropout as for [`gelu`].
pub fn silu(x: &Tensor, mask: Option<Arc<[f32]>>) -> Result<Tensor> {
    activation(x, Unary::Silu, mask, |x| x.silu())
}

fn activation(
    x: &Tensor,
    kind: Unary,
    mask: Option<Arc<[f32]>>,
    generic: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if let Some(m) = &mask {
        if m.len() != x.elem_count() {
            candle_core::bail!(
                "{}: dropout mask of {} values for {:?}",
                kind.label(),
                m.len(),
                x.dims()
            );
        }
    }
    if fused(x) {
        return x.contiguous()?.apply_op1(Activation { kind, mask });
    }
    let y = generic(x)?;
    match mask {
        Some(m) => y.mul(&mask_tensor(&m, &y)?),
        None => Ok(y),
    }
}

/// A dropout mask as a tensor of `like`'s shape, dtype and device (the generic paths).
pub(crate) fn mask_tensor(m: &[f32], like: &Tensor) -> Result<Tensor> {
    Tensor::from_slice(m, like.shape(), like.device())?.to_dtype(like.dtype())
}

/// A Linear layer (`weight` `[out, in]`, optional `bias` `[out]`) on `[.., in]` inputs, as one
/// matrix product over all leading dimensions and a fused bias addition.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    /// W^T `[in, out]`, contiguous, in a [`Linear::frozen`] copy.
    weight_t: Option<Tensor>,
}

impl Linear {
    /// The layer `x W^T + b`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            weight_t: None,
        }
    }

    /// A copy for inference with the weights as they are now: its parameters are copied out
    /// of the variables (later changes to them do not reach the copy, and no gradient reaches
    /// them through it), the weight stored transposed, `[in, out]`, the layout gemm reads
    /// without repacking it in every call ([`haad_kernels::linear_in_out`]). The same values
    /// as `self`'s forward, to gemm's rounding.
    pub fn frozen(&self) -> Result<Self> {
        let bias = self.bias.as_ref().map(frozen_copy).transpose()?;
        Self::transposed(haad_kernels::transpose_detached(&self.weight)?, bias)
    }

    /// The layer with W^T `weight_t` `[in, out]` (a view is fine: products read its strides).
    pub fn transposed(weight_t: Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Self {
            weight: weight_t.t()?,
            bias,
            weight_t: Some(weight_t),
        })
    }

    /// The weight W, `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `forward(x) + r`, `r` the output's shape: in a frozen copy with a bias, the residual is
    /// added in the bias's pass ([`haad_kernels::linear_in_out_add`], the same values).
    pub fn forward_add(&self, x: &Tensor, r: &Tensor) -> Result<Tensor> {
        match (&self.bias, &self.weight_t) {
            (Some(b), Some(wt)) => haad_kernels::linear_in_out_add(x, wt, b, r),
            _ => candle_core::Module::forward(self, x)? + r,
        }
    }
}

impl candle_core::Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (out, inp) = self.weight.dims2()?;
        let dims = x.dims();
        if dims.last() != Some(&inp) {
            candle_core::bail!("linear: input {dims:?} does not end in {inp} features");
        }
        match (&self.bias, &self.weight_t) {
            (Some(b), Some(wt)) => return haad_kernels::linear_in_out(x, wt, b),
            (Some(b), None) => return haad_kernels::linear(x, &self.weight, b),
            (None, _) => {}
        }
        // W^T: a strided view of W, or (frozen: W is itself a view of W^T) the stored W^T.
        let rows = x.elem_count() / inp;
        let y = haad_kernels::matmul(&x.contiguous()?.reshape((rows, inp))?, &self.weight.t()?)?;
        let mut shape = dims.to_vec();
        *shape.last_mut().expect("non-empty") = out;
        y.reshape(shape)
    }
}

/// A copy of `t` with storage of its own, outside the autograd graph: unlike `detach`, which
/// shares the storage, later in-place changes to a variable do not reach it.
pub fn frozen_copy(t: &Tensor) -> Result<Tensor> {
    Ok(t.copy()?.detach())
}

pub(crate) fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && is_float(x.dtype()) && x.rank() > 0
}

/// The float types the kernels run in; f32 kernels compute in f32, f64 in f64.
pub(crate) trait Float: haad_kernels::Element {
    fn f(v: f64) -> Self;
    fn to(self) -> f64;
    fn exp(self) -> Self;
    fn erf(self) -> Self;
}

impl Float for f32 {
    fn f(v: f64) -> Self {
        v as f32
    }
    fn to(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn exp(self) -> Self {
        haad_kernels::exp_f32(self)
    }
    #[inline(always)]
    fn erf(self) -> Self {
        erf_f32(self)
    }
}

impl Float for f64 {
    fn f(v: f64) -> Self {
        v
    }
    fn to(self) -> f64 {
        self
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn erf(self) -> Self {
        candle_core::cpu::erf::erf_f64(self)
    }
}

/// Where [`erf_f32`] stops following `|x|` in its `exp(-x^2)` factor.
const ERF_CLAMP: f32 = 5.0;

/// erf for f32: Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7, one `exp`), in f32.
#[inline]
pub fn erf_f32(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
    // From a = 5 on, `poly e` < 1e-12 and the result is 1 in f32 whatever e is, so e takes
    // a <= 5: with a up to 10, `poly e` was subnormal past a ~ 9.3, and a product with a
    // subnormal result takes a microcode assist (GELU over values in [-20, 20]: 6.8 ns a value
    // with a up to 10, 1.0-1.1 ns with a up to 5, the same bits).
    let e = haad_kernels::exp_f32(-(a.min(ERF_CLAMP) * a.min(ERF_CLAMP)));
    (1.0 - poly * e).copysign(x)
}

/// Runs a kernel `f(inputs...) -> Vec<T>` on one or two contiguous f32/f64 storages.
macro_rules! dispatch {
    ($name:expr, $s:expr, $l:expr, |$x:ident| $body:expr) => {{
        with_float!(dtype_of($s), $name, |T| {
            let $x = contiguous::<T>($s, $l, $name)?;
            into_storage::<T>($body)
        })
    }};
    ($name:expr, $s1:expr, $l1:expr, $s2:expr, $l2:expr, |$a:ident, $b:ident| $body:expr) => {{
        if $l1.shape() != $l2.shape() {
            candle_core::bail!(
                "{}: shapes differ, {:?} and {:?}",
                $name,
                $l1.dims(),
                $l2.dims()
            );
        }
        with_float!(common_dtype(&[$s1, $s2], $name)?, $name, |T| {
            let $a = contiguous::<T>($s1, $l1, $name)?;
            let $b = contiguous::<T>($s2, $l2, $name)?;
            into_storage::<T>($body)
        })
    }};
}

/// A new buffer of `n` values in rows of `d`: `f(first_row, rows, out)` appends rows
/// `first_row..first_row + rows` to `out`; in blocks spread over the kernels' threads when the
/// job is large (`cost` operations a value). Each value is written once (no zero fill first).
fn collect_rows<T: Send>(
    n: usize,
    d: usize,
    cost: usize,
    f: impl Fn(usize, usize, &mut Vec<T>) + Send + Sync,
) -> Vec<T> {
    let d = d.max(1);
    let per = (n / d).div_ceil(4 * haad_kernels::threads()).max(1);
    haad_kernels::collect_chunks(n, per * d, cost * n, |start, len, out| {
        f(start / d, len / d, out)
    })
}

/// `sum f(x)` over the values `x` of `xs`, in f64 over eight independent partial sums (value
/// `i` of each whole block of eight into sum `i`, the sums in order, then the values past the
/// last whole block), so that the loop vectorises and does not wait on one running sum. Over
/// blocks of the slice itself: written with indices through a closure, the bounds checks kept
/// the loop scalar (a scalar f64 add per value, a sixth of the stylisation's time at the
/// `small` size).
#[inline(always)]
pub(crate) fn lane_sum<T: Copy>(xs: &[T], f: impl Fn(T) -> f64) -> f64 {
    let (blocks, tail) = xs.as_chunks::<8>();
    let mut acc = [0f64; 8];
    for b in blocks {
        for (a, &v) in acc.iter_mut().zip(b) {
            *a += f(v);
        }
    }
    let tail: f64 = tail.iter().map(|&v| f(v)).sum();
    acc.iter().sum::<f64>() + tail
}

/// [`lane_sum`] of `f(a[i], b[i])` over the pairs of two slices (as long as the shorter).
#[inline(always)]
pub(crate) fn lane_sum_pairs<T: Copy>(a: &[T], b: &[T], f: impl Fn(T, T) -> f64) -> f64 {
    let n = a.len().min(b.len());
    let (ba, ta) = a[..n].as_chunks::<8>();
    let (bb, tb) = b[..n].as_chunks::<8>();
    let mut acc = [0f64; 8];
    for (x, y) in ba.iter().zip(bb) {
        for ((s, &u), &v) in acc.iter_mut().zip(x).zip(y) {
            *s += f(u, v);
        }
    }
    let tail: f64 = ta.iter().zip(tb).map(|(&u, &v)| f(u, v)).sum();
    acc.iter().sum::<f64>() + tail
}

/// Row mean and 1 / sqrt(var + eps), accumulated in f64.
#[inline(always)]
pub(crate) fn moments<T: Float>(row: &[T], eps: f64) -> (f64, f64) {
    let d = row.len() as f64;
    let mean = lane_sum(row, |v| v.to()) / d;
    let var = lane_sum(row, |v| (v.to() - mean).powi(2)) / d;
    (mean, 1.0 / (var + eps).sqrt())
}

struct AddRows;

impl CustomOp2 for AddRows {
    fn name(&self) -> &'static str {
        "haad-add-rows"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let m = l2.shape().elem_count();
        if m == 0 || l1.dims().last() != Some(&m) {
            candle_core::bail!("add_rows: {:?} + row {:?}", l1.dims(), l2.dims());
        }
        let dtype = common_dtype(&[s1, s2], self.name())?;
        let out = with_float!(dtype, self.name(), |T| into_storage(add_row_kernel::<T>(
            s1, l1, s2, l2
        )?));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let m = b.elem_count();
        let rows = grad.elem_count() / m;
        let g3 = grad.contiguous()?.reshape((1, rows, m))?;
        let db = g3.apply_op1_no_bwd(&GroupSum)?.reshape(b.shape())?;
        Ok((Some(grad.clone()), Some(db)))
    }
}

fn add_row_kernel<T: Float>(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
) -> Result<Vec<T>> {
    let x = contiguous::<T>(s1, l1, "add_rows")?;
    let b = contiguous::<T>(s2, l2, "add_rows")?;
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(b.len()) {
        out.extend(row.iter().zip(b).map(|(&v, &c)| v + c));
    }
    Ok(out)
}

/// `[G, R, d]` -> `[G, 1, d]`: the sum of each group's rows.
struct GroupSum;

impl CustomOp1 for GroupSum {
    fn name(&self) -> &'static str {
        "haad-group-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (g, r, d) = l.shape().dims3()?;
        if r == 0 || d == 0 {
            candle_core::bail!("group sum of an empty tensor {:?}", l.dims());
        }
        fn kernel<T: Float>(x: &[T], r: usize, d: usize) -> Vec<T> {
            let mut out = Vec::with_capacity(x.len() / r);
            for block in x.chunks_exact(r * d) {
                let mut acc = vec![T::zero(); d];
                for row in block.chunks_exact(d) {
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a += v;
                    }
                }
                out.extend(acc);
            }
            out
        }
        let out = with_float!(dtype_of(s), self.name(), |T| into_storage(kernel(
            contiguous::<T>(s, l, self.name())?,
            r,
            d
        )));
        Ok((out, Shape::from((g, 1, d))))
    }
}

/// Softmax of one row, in place: `exp(x - max) / sum`, the sum in f64.
#[inline(always)]
pub(crate) fn softmax_in_place<T: Float>(row: &mut [T]) {
    // The maximum in eight lanes (a maximum is exact, so the order does not matter; NaNs are
    // passed over, as `f64::max` passes them over).
    let larger = |a: T, v: T| if v > a { v } else { a };
    let (blocks, tail) = row.as_chunks::<8>();
    let mut lanes = [T::f(f64::NEG_INFINITY); 8];
    for b in blocks {
        for (a, &v) in lanes.iter_mut().zip(b) {
            *a = larger(*a, v);
        }
    }
    let max = lanes
        .iter()
        .chain(tail)
        .fold(T::f(f64::NEG_INFINITY), |a, &v| larger(a, v));
    for y in row.iter_mut() {
        *y = (*y - max).exp();
    }
    let inv = T::f(1.0 / lane_sum(row, |v| v.to()));
    for y in row.iter_mut() {
        *y *= inv;
    }
}

/// `sum a[i] b[i]` of two rows, accumulated in f64.
#[inline(always)]
pub(crate) fn row_dot<T: Float>(a: &[T], b: &[T]) -> T {
    T::f(lane_sum_pairs(a, b, |u, v| u.to() * v.to()))
}

/// Element-wise activations: value and derivative.
#[derive(Clone, Copy)]
pub(crate) enum Unary {
    Gelu,
    Silu,
}

impl Unary {
    #[inline(always)]
    pub(crate) fn value<T: Float>(self, x: T) -> T {
        let half = T::f(0.5);
        let one = T::f(1.0);
        match self {
            // x Phi(x) = x (1 + erf(x / sqrt 2)) / 2.
            Unary::Gelu => half * x * (one + (x * T::f(std::f64::consts::FRAC_1_SQRT_2)).erf()),
            Unary::Silu => x / (one + (T::f(0.0) - x).exp()),
        }
    }

    #[inline(always)]
    pub(crate) fn derivative<T: Float>(self, x: T) -> T {
        let one = T::f(1.0);
        match self {
            // Phi(x) + x phi(x).
            Unary::Gelu => {
                let cdf = T::f(0.5) * (one + (x * T::f(std::f64::consts::FRAC_1_SQRT_2)).erf());
                let pdf = (T::f(-0.5) * x * x).exp() * T::f(0.398_942_280_401_432_7);
                cdf + x * pdf
            }
            // s (1 + x (1 - s)), s = sigmoid(x).
            Unary::Silu => {
                let s = one / (one + (T::f(0.0) - x).exp());
                s * (one + x * (one - s))
            }
        }
    }

    fn label(self) -> &'static str {
        match self {
            Unary::Gelu => "haad-gelu",
            Unary::Silu => "haad-silu",
        }
    }
}

/// An activation, then dropout by a mask.
struct Activation {
    kind: Unary,
    mask: Option<Arc<[f32]>>,
}

/// Appends `f(x[i]) m[i]` (or `f(x[i])` without a mask) for one block of values. Plain loops
/// over the grown buffer: `Vec::extend` over an iterator runs in a fold that is not inlined
/// into [`activate`], so it would not be compiled for the detected SIMD level.
#[inline(always)]
fn map_masked<T: Float>(out: &mut Vec<T>, x: &[T], m: Option<&[f32]>, f: impl Fn(T) -> T) {
    let o0 = out.len();
    out.resize(o0 + x.len(), T::f(0.0));
    let o = &mut out[o0..];
    match m {
        None => {
            for (o, &v) in o.iter_mut().zip(x) {
                *o = f(v);
            }
        }
        Some(m) => {
            for ((o, &v), &mv) in o.iter_mut().zip(x).zip(m) {
                *o = f(v) * T::f(mv as f64);
            }
        }
    }
}

/// Appends `f'(x[i]) (g[i] m[i])` for one block of values (plain loops, as [`map_masked`]).
#[inline(always)]
fn map_masked_grad<T: Float>(
    out: &mut Vec<T>,
    x: &[T],
    g: &[T],
    m: Option<&[f32]>,
    df: impl Fn(T) -> T,
) {
    let o0 = out.len();
    out.resize(o0 + x.len(), T::f(0.0));
    let o = &mut out[o0..];
    match m {
        None => {
            for ((o, &v), &gv) in o.iter_mut().zip(x).zip(g) {
                *o = df(v) * gv;
            }
        }
        Some(m) => {
            for (((o, &v), &gv), &mv) in o.iter_mut().zip(x).zip(g).zip(m) {
                *o = df(v) * (gv * T::f(mv as f64));
            }
        }
    }
}

haad_kernels::multiversion! {
    /// Appends `kind(x[i]) m[i]` (or without the mask) to `out`.
    fn activate<T: Float>(out: &mut Vec<T>, x: &[T], m: Option<&[f32]>, kind: Unary) {
        match kind {
            Unary::Gelu => map_masked(out, x, m, |v| Unary::Gelu.value(v)),
            Unary::Silu => map_masked(out, x, m, |v| Unary::Silu.value(v)),
        }
    }
}

haad_kernels::multiversion! {
    /// Appends `kind'(x[i]) (g[i] m[i])` (or without the mask) to `out`.
    fn activate_grad<T: Float>(
        out: &mut Vec<T>,
        x: &[T],
        g: &[T],
        m: Option<&[f32]>,
        kind: Unary,
    ) {
        match kind {
            Unary::Gelu => map_masked_grad(out, x, g, m, |v| Unary::Gelu.derivative(v)),
            Unary::Silu => map_masked_grad(out, x, g, m, |v| Unary::Silu.derivative(v)),
        }
    }
}

impl CustomOp1 for Activation {
    fn name(&self) -> &'static str {
        self.kind.label()
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let m = self.mask.as_deref();
        let from = |i0: usize, n: usize| m.map(|m| &m[i0..i0 + n]);
        // Operations per value, for the threading rule ([`activate`] has one loop per kind).
        let cost = match self.kind {
            Unary::Gelu => 40,
            Unary::Silu => 30,
        };
        let out = dispatch!(self.name(), s, l, |x| {
            collect_rows(x.len(), 1, cost, |i0, n, out| {
                activate(out, &x[i0..i0 + n], from(i0, n), self.kind)
            })
        });
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = ActivationGrad {
            kind: self.kind,
            mask: self.mask.clone(),
        };
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &op)?))
    }
}

struct ActivationGrad {
    kind: Unary,
    mask: Option<Arc<[f32]>>,
}

impl CustomOp2 for ActivationGrad {
    fn name(&self) -> &'static str {
        "haad-activation-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let m = self.mask.as_deref();
        let from = |i0: usize, n: usize| m.map(|m| &m[i0..i0 + n]);
        let cost = match self.kind {
            Unary::Gelu => 50,
            Unary::Silu => 30,
        };
        let out = dispatch!(self.name(), s1, l1, s2, l2, |x, g| {
            collect_rows(x.len(), 1, cost, |i0, n, out| {
                activate_grad(out, &x[i0..i0 + n], &g[i0..i0 + n], from(i0, n), self.kind)
            })
        });
        Ok((out, l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block sums add in the same order as sums over indices in eight lanes (the form they
    /// replaced), bit for bit, on lengths with and without a tail; pairs stop at the shorter.
    #[test]
    fn lane_sums_keep_the_order_of_eight_index_lanes() {
        fn by_index(n: usize, f: impl Fn(usize) -> f64) -> f64 {
            let mut acc = [0f64; 8];
            let full = n / 8 * 8;
            for base in (0..full).step_by(8) {
                for (l, a) in acc.iter_mut().enumerate() {
                    *a += f(base + l);
                }
            }
            let tail: f64 = (full..n).map(&f).sum();
            acc.iter().sum::<f64>() + tail
        }
        for n in [0, 1, 7, 8, 9, 64, 77] {
            // Magnitudes 1e-8..1e8, so that the order of the additions shows in the bits.
            let a: Vec<f32> = (0..n)
                .map(|i| ((i as f32 * 0.7).sin()) * 10f32.powi((i % 17) as i32 - 8))
                .collect();
            let b: Vec<f32> = (0..n + 3).map(|i| (i as f32 * 1.3).cos()).collect();
            let want = by_index(n, |i| a[i] as f64);
            assert_eq!(
                lane_sum(&a, |v| v as f64).to_bits(),
                want.to_bits(),
                "n = {n}"
            );
            let want = by_index(n, |i| a[i] as f64 * b[i] as f64);
            let got = lane_sum_pairs(&a, &b, |u, v| u as f64 * v as f64);
            assert_eq!(got.to_bits(), want.to_bits(), "pairs, n = {n}");
        }
    }
    use crate::testing::{assert_same_values_and_grads, mask, max_diff, var};
    use candle_core::{DType, Device, Var};
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// Clamping at 5 instead of 10 leaves every value as it was: past 5 the result is 1 in f32
    /// whatever `exp(-x^2)` is (the formula of before, clamped at 10, as the reference).
    #[test]
    fn erf_f32_clamp_keeps_every_bit() {
        let before = |x: f32| {
            let a = x.abs();
            let t = 1.0 / (1.0 + 0.327_591_1 * a);
            let poly = t
                * (0.254_829_6
                    + t * (-0.284_496_74
                        + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
            let e = haad_kernels::exp_f32(-(a.min(10.0) * a.min(10.0)));
            (1.0 - poly * e).copysign(x)
        };
        let xs = (-400_000..=400_000).map(|i| i as f32 * 5e-5).chain([
            1e3,
            -1e3,
            1e30,
            -1e30,
            f32::MAX,
            f32::INFINITY,
            -f32::INFINITY,
        ]);
        for x in xs {
            assert_eq!(erf_f32(x).to_bits(), before(x).to_bits(), "x = {x}");
        }
    }

    #[test]
    fn erf_f32_is_accurate() {
        let mut worst = 0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 5e-5; // [-10, 10]
            let err = (erf_f32(x) as f64 - candle_core::cpu::erf::erf_f64(x as f64)).abs();
            worst = worst.max(err);
        }
        // A&S's 1.5e-7 plus f32 rounding of the polynomial.
        assert!(worst < 1e-6, "max error {worst}");
        assert!(erf_f32(0.0).abs() < 1e-7);
        assert_eq!(erf_f32(30.0), 1.0);
        assert_eq!(erf_f32(-30.0), -1.0);
        assert!(erf_f32(f32::NAN).is_nan());
    }

    /// A random `[rows, d]` f64 variable and a non-contiguous view of it (`[d, rows]` transposed
    /// back), so that the fused paths also see strided inputs.
    fn input(rows: usize, d: usize, seed: u64) -> (Var, Tensor) {
        let mut rng = StdRng::seed_from_u64(seed);
        let v: Vec<f64> = (0..rows * d).map(|_| rng.random_range(-4.0..4.0)).collect();
        let var = Var::from_vec(v, (d, rows), &Device::Cpu).unwrap();
        let view = var.as_tensor().t().unwrap();
        (var, view)
    }

    /// Values and gradients (of a random linear functional) of `fast` and `reference` agree in
    /// f64 (gradients to `grad_tol` relative to their largest entry), and the f32 kernels agree
    /// with the f64 reference to `f32_tol`.
    fn check(
        fast: impl Fn(&Tensor) -> Result<Tensor>,
        reference: impl Fn(&Tensor) -> Result<Tensor>,
        grad_tol: f64,
        f32_tol: f64,
    ) {
        let (rows, d) = (37, 19);
        let (var, x) = input(rows, d, 1);
        let (_, w) = input(rows, d, 2);
        let (y_fast, y_ref) = (fast(&x).unwrap(), reference(&x).unwrap());
        assert!(max_diff(&y_fast, &y_ref) < 1e-12);
        let g = |y: &Tensor| {
            let grads = (y * &w).unwrap().sum_all().unwrap().backward().unwrap();
            grads.get(var.as_tensor()).unwrap().clone()
        };
        let (g_fast, g_ref) = (g(&y_fast), g(&y_ref));
        let scale = g_ref
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let err = max_diff(&g_fast, &g_ref);
        assert!(err < grad_tol * scale.max(1.0), "gradient error {err}");
        let x32 = x.to_dtype(DType::F32).unwrap();
        let y32 = fast(&x32).unwrap().to_dtype(DType::F64).unwrap();
        assert!(max_diff(&y32, &y_ref) < f32_tol);
    }

    #[test]
    fn normalize_matches_the_generic_form() {
        check(
            |x| normalize(x, 1e-5),
            |x| {
                let ones = Tensor::ones(x.dim(1)?, DType::F64, x.device())?;
                let zeros = Tensor::zeros(x.dim(1)?, DType::F64, x.device())?;
                candle_nn::ops::layer_norm_slow(x, &ones, &zeros, 1e-5)
            },
            1e-10,
            1e-5,
        );
    }

    /// An optional dropout mask, as the activations take it.
    type Mask = Option<Arc<[f32]>>;

    /// [`check`] for an activation, without and with a dropout mask (against the generic
    /// activation times the mask), and its refusal of a mask of the wrong size.
    fn check_activation(
        fast: fn(&Tensor, Mask) -> Result<Tensor>,
        generic: fn(&Tensor) -> Result<Tensor>,
        grad_tol: f64,
    ) {
        check(|x| fast(x, None), generic, grad_tol, 2e-6);
        let m = mask(37 * 19, 5);
        let masked = |x: &Tensor| {
            let y = generic(x)?;
            y.mul(&mask_tensor(&m, &y)?)
        };
        check(|x| fast(x, Some(m.clone())), masked, grad_tol, 3e-6);
        let x = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(fast(&x, Some(mask(5, 7))).is_err());
    }

    #[test]
    fn gelu_matches_the_generic_form() {
        // candle's GELU gradient rounds 1 / sqrt(2 pi) to 0.398942 (2.8e-7 off).
        check_activation(gelu, |x| x.gelu_erf(), 1e-6);
    }

    #[test]
    fn silu_matches_the_generic_form() {
        check_activation(silu, |x| x.silu(), 1e-10);
    }

    /// Values and the gradients with respect to every input agree between `fast` and
    /// `reference` (f64, a random linear functional of the output).
    fn check_inputs(
        inputs: &[Var],
        fast: impl Fn(&[Tensor]) -> Result<Tensor>,
        reference: impl Fn(&[Tensor]) -> Result<Tensor>,
    ) {
        let ts: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
        let (a, b) = (fast(&ts).unwrap(), reference(&ts).unwrap());
        assert_same_values_and_grads(&a, &b, &ts.iter().collect::<Vec<_>>());
    }

    #[test]
    fn add_rows_matches_broadcast_add() {
        check_inputs(
            &[var(&[3, 5, 4], 1), var(&[4], 2)],
            |t| add_rows(&t[0], &t[1]),
            |t| t[0].broadcast_add(&t[1]),
        );
        let x = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        let b = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
        assert!(add_rows(&x, &b).is_err());
    }

    #[test]
    fn linear_matches_candle_linear() {
        use candle_core::Module;
        check_inputs(
            &[var(&[3, 5, 4], 1), var(&[6, 4], 2), var(&[6], 3)],
            |t| Linear::new(t[1].clone(), Some(t[2].clone())).forward(&t[0]),
            |t| candle_nn::Linear::new(t[1].clone(), Some(t[2].clone())).forward(&t[0]),
        );
        check_inputs(
            &[var(&[7, 4], 1), var(&[2, 4], 2)],
            |t| Linear::new(t[1].clone(), None).forward(&t[0]),
            |t| candle_nn::Linear::new(t[1].clone(), None).forward(&t[0]),
        );
        let w = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
        let x = Tensor::zeros((3, 5), DType::F32, &Device::Cpu).unwrap();
        assert!(Linear::new(w, None).forward(&x).is_err());
    }

    #[test]
    fn layer_norm_applies_scale_and_shift() {
        let x = Tensor::new(&[[1f32, 2.0, 3.0], [-1.0, 0.0, 5.0]], &Device::Cpu).unwrap();
        let w = Tensor::new(&[2f32, 1.0, 0.5], &Device::Cpu).unwrap();
        let b = Tensor::new(&[0f32, 1.0, -1.0], &Device::Cpu).unwrap();
        let y: Vec<Vec<f32>> = layer_norm(&x, &w, &b, 0.0).unwrap().to_vec2().unwrap();
        // Row 1: mean 2, var 2/3, xhat = (-1, 0, 1) sqrt(3/2).
        let s = 1.5f32.sqrt();
        let want = [-2.0 * s, 1.0, 0.5 * s - 1.0];
        for (a, b) in y[0].iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        let empty = |dims: &[usize]| Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
        assert!(layer_norm(&empty(&[2, 0]), &empty(&[0]), &empty(&[0]), 1e-5).is_err());
    }
}
