//! The trunk's forward and backward passes ([`crate::trunk`]) cut by joints: each part (one per
//! thread) takes a fixed range of joints through a whole layer, and the threads meet once per
//! layer, where a graph product needs every joint's rows.
//!
//! Forward, layer `k` (`y_k = tanh(BN(A (y_{k-1} W)))`, `[J, B, F]` maps): the rows of
//! `P = y_{k-1} W` are per joint, so each part computes its joints' rows of `P` at the end of
//! the previous layer; then `A[jr, :] P` (every joint's `P`), BatchNorm + tanh of the joints
//! `jr` (the statistics are per joint, over the batch) and the next layer's `P[jr]`. Backward,
//! mirrored: `dA[jr, :] = dZ[jr] P^T`, `dP[jr] = A[:, jr]^T dZ`, `dy[jr] = dP[jr] W^T` and the
//! BatchNorm backward of `jr`, in one region; `dW = y^T dP` (every joint's `dP`) in the next,
//! cut by rows of `dW`. Before, each product, BatchNorm and sum was a parallel region of its own
//! (four to six a layer), and the second thread slept and woke between them.
//!
//! Every output element is computed by the same kernel in the same order whichever part it
//! falls in, so the numbers do not depend on the number of parts (tested).
//!
//! `forward.rs` and `backward.rs` hold the two passes; this file their shared pieces.

use std::ops::Range;

use candle_core::Result;
use haad_kernels::{Crew, MatRef};

use crate::trunk::{GcPlace, Plan};

mod backward;
mod forward;

pub(crate) use backward::{backward, TapeRef};
pub(crate) use forward::{forward, Forward};

/// The forward pass's work for a batch of `b` clips in FLOPs: a hidden layer's two products
/// (`2 J B F^2 + 2 J^2 B F`) times the layers. The backward pass's is about twice this.
pub(crate) fn work(plan: &Plan, b: usize) -> usize {
    let (j, f) = (plan.joints, plan.hidden);
    (2 * j * b * f * f + 2 * j * j * b * f) * plan.norms.len()
}

/// How a pass is cut by joints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Parts {
    /// One part per thread of the pass's gang ([`haad_kernels::gang`]), at most this many: one
    /// when the gang runs alone, where more parts would only repeat their fixed costs.
    UpTo(usize),
    /// Exactly this many, however many threads run them (the tests' way to compare cuts).
    Exactly(usize),
}

impl Parts {
    /// The threads to ask the gang for.
    fn wanted(self, joints: usize) -> usize {
        match self {
            Parts::UpTo(n) | Parts::Exactly(n) => n.clamp(1, joints.max(1)),
        }
    }

    /// The joints' cut on `crew`.
    fn cut(self, joints: usize, crew: &Crew) -> Vec<Range<usize>> {
        match self {
            Parts::UpTo(n) => cuts(joints, n.min(crew.threads())),
            Parts::Exactly(n) => cuts(joints, n),
        }
    }
}

/// `0..n` in `parts` contiguous ranges of near-equal length (at most `n` ranges, at least 1).
fn cuts(n: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    let (q, r) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|p| {
            let len = q + usize::from(p < r);
            start += len;
            start - len..start
        })
        .collect()
}

/// `buf` cut into one slice per range of `cuts`, `per` values an item.
fn split_mut<'a, T>(mut buf: &'a mut [T], cuts: &[Range<usize>], per: usize) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(cuts.len());
    for c in cuts {
        let (head, tail) = std::mem::take(&mut buf).split_at_mut(c.len() * per);
        out.push(head);
        buf = tail;
    }
    out
}

/// One region of a pass on the gang's threads ([`Crew::region`]).
fn region<I: Send>(
    crew: &Crew,
    items: Vec<I>,
    f: impl Fn(usize, I) -> Result<()> + Sync,
) -> Result<()> {
    crew.region(items, f)
}

/// Whether BatchNorm `k`'s output adds `y_{k-2}` (the second half of a residual block).
fn residual(k: usize) -> bool {
    k >= 2 && k.is_multiple_of(2)
}

/// Whether graph convolution `g` multiplies by `A` first (`(A x) W`), as [`crate::gc`] does
/// when it widens the features.
fn a_first(g: &GcPlace) -> bool {
    g.f_in < g.f_out
}

/// `W` `[F_in, F_out]` of graph convolution `g` in the packed parameters.
fn weight<'a, T>(p: &'a [T], g: &GcPlace) -> Result<MatRef<'a, T>> {
    MatRef::new(&p[g.wb.clone()], g.f_in, g.f_out)
}

/// Rows `jr` of `A` `[J, J]`.
fn att_rows<'a, T>(a: &'a [T], jr: &Range<usize>, j: usize) -> Result<MatRef<'a, T>> {
    MatRef::new(&a[jr.start * j..jr.end * j], jr.len(), j)
}

/// Rows `r` of `M^T` for the row-major `M` `[rows, cols]`: `M[:, r]^T`.
fn t_rows<'a, T>(m: &'a [T], r: &Range<usize>, rows: usize, cols: usize) -> Result<MatRef<'a, T>> {
    MatRef::strided(&m[r.start..], r.len(), rows, 1, cols)
}

/// Rows `jr` of a `[J, B, F]` map (`B * F` values a joint).
fn joint_rows<'a, T>(m: &'a [T], jr: &Range<usize>, per: usize) -> &'a [T] {
    &m[jr.start * per..jr.end * per]
}

/// `items` as options, padded with `None` to `len` (a cut of fewer items than the joints').
fn pad<I>(items: Vec<I>, len: usize) -> Vec<Option<I>> {
    let mut v: Vec<Option<I>> = items.into_iter().map(Some).collect();
    v.resize_with(len.max(v.len()), || None);
    v
}
