//! `gemm_nt`: `a b^T` where both factors hold their rows contiguously, every output element the
//! dot product of two long rows. A gradient of this shape (`dA = G P^T`, `[J, B*F] x [B*F, J]`
//! in the encoder's graph convolution) made `gemm` pack its right factor column by column with
//! a stride of `B*F` elements: 0.55 ms for 3.7 MFLOP at batch 72, as long as a product of
//! 47 MFLOP. Here each 2 x 4 block of outputs is summed in vector registers along the rows.

use crate::gemm::Element;
use crate::threads::{threads, worth_splitting};

/// Lanes of each accumulator: one AVX-512 register of f32.
const LANES: usize = 16;

/// What a FLOP here costs in the FLOPs of a `gemm` product, for the threading rule: the rows
/// stream from the L2 cache, so [`gemm_nt`] runs at about a quarter of `gemm`'s rate (measured:
/// `[20, 9216] x [9216, 20]` f32 in 0.14 ms at one thread, 52 GFLOP/s).
pub const NT_COST: usize = 4;

/// `a b^T` for `a` `[m, k]` and `b` `[n, k]`, both row-major: a new row-major `[m, n]` matrix
/// with `out[i, j] = sum_p a[i, p] b[j, p]`.
///
/// Each output element is summed the same way wherever it lies (in `LANES` partial sums over
/// `p`, then those in a fixed order, then the last `k % LANES` products), so the result does
/// not depend on the thread count or on the blocks. Rows of the output are split across
/// threads where the product is worth it ([`worth_splitting`] of [`NT_COST`] times its FLOPs).
pub fn gemm_nt<T: Element>(
    a: &[T],
    b: &[T],
    (m, n, k): (usize, usize, usize),
) -> candle_core::Result<Vec<T>> {
    let need = |rows: usize| rows.checked_mul(k);
    if need(m) != Some(a.len()) || need(n) != Some(b.len()) {
        candle_core::bail!(
            "gemm_nt: {m} x {k} and {n} x {k} do not fit slices of {} and {}",
            a.len(),
            b.len()
        );
    }
    let mut out = vec![T::zero(); m * n];
    if m == 0 || n == 0 {
        return Ok(out);
    }
    let flops = NT_COST * 2 * m * n * k;
    let t = threads();
    if t > 1 && m > 2 && worth_splitting(flops) {
        let per = m.div_ceil(t).div_ceil(2) * 2;
        crate::for_each_chunk(&mut out, per * n, flops, |p, rows| {
            let i0 = p * per;
            let mi = rows.len() / n;
            rows_of(&a[i0 * k..(i0 + mi) * k], b, (mi, n, k), rows);
        });
    } else {
        rows_of(a, b, (m, n, k), &mut out);
    }
    Ok(out)
}

/// [`gemm_nt`] on this thread into `out` `[m, n]`: pairs of output rows by groups of four
/// columns, then the rows and columns left over one output at a time. (The blocks are compiled
/// for the CPU each on its own: inlined into one function, the compiler kept the
/// accumulators on the stack, a scalar loop four times slower than `gemm`.)
fn rows_of<T: Element>(a: &[T], b: &[T], (m, n, k): (usize, usize, usize), out: &mut [T]) {
    let n4 = n - n % 4;
    for i in (0..m).step_by(2) {
        for j in (0..n4).step_by(4) {
            let ys = [
                row(b, k, j),
                row(b, k, j + 1),
                row(b, k, j + 2),
                row(b, k, j + 3),
            ];
            if i + 1 < m {
                let [o0, o1] = two_by_four(row(a, k, i), row(a, k, i + 1), ys, k);
                out[i * n + j..i * n + j + 4].copy_from_slice(&o0);
                out[(i + 1) * n + j..(i + 1) * n + j + 4].copy_from_slice(&o1);
            } else {
                let o = one_by_four(row(a, k, i), ys, k);
                out[i * n + j..i * n + j + 4].copy_from_slice(&o);
            }
        }
        for ii in i..(i + 2).min(m) {
            for j in n4..n {
                out[ii * n + j] = one_by_one(row(a, k, ii), row(b, k, j), k);
            }
        }
    }
}

/// Row `i` of the row-major `v` with rows of `k`.
#[inline(always)]
fn row<T>(v: &[T], k: usize, i: usize) -> &[T] {
    &v[i * k..(i + 1) * k]
}

/// `x[c * LANES..][..LANES]` as an array.
#[inline(always)]
fn chunk<T>(x: &[T], c: usize) -> &[T; LANES] {
    x[c * LANES..(c + 1) * LANES]
        .try_into()
        .expect("a whole chunk of lanes")
}

/// One accumulator's sum: its lanes, then the products past the last whole chunk.
#[inline(always)]
fn finish<T: Element>(acc: &[T; LANES], x: &[T], y: &[T], k: usize) -> T {
    let mut v = lanes_sum(acc);
    for p in k - k % LANES..k {
        v += x[p] * y[p];
    }
    v
}

/// Two rows of `a` against four of `b`.
#[inline]
fn two_by_four<T: Element>(x0: &[T], x1: &[T], ys: [&[T]; 4], k: usize) -> [[T; 4]; 2] {
    #[cfg(target_arch = "x86_64")]
    if crate::simd_level() == crate::SimdLevel::Avx512 {
        if let (Some(a0), Some(a1), Some(b0), Some(b1), Some(b2), Some(b3)) = (
            T::as_f32(x0),
            T::as_f32(x1),
            T::as_f32(ys[0]),
            T::as_f32(ys[1]),
            T::as_f32(ys[2]),
            T::as_f32(ys[3]),
        ) {
            // SAFETY: `simd_level` found AVX-512 F on this CPU.
            #[allow(unsafe_code)]
            let acc = unsafe { avx512::two_by_four(a0, a1, [b0, b1, b2, b3], k) };
            let back = |l: &[f32; LANES]| l.map(|v| T::from_f64(f64::from(v)));
            return [
                std::array::from_fn(|s| finish(&back(&acc[0][s]), x0, ys[s], k)),
                std::array::from_fn(|s| finish(&back(&acc[1][s]), x1, ys[s], k)),
            ];
        }
    }
    let acc = two_by_four_lanes(x0, x1, ys, k);
    [
        std::array::from_fn(|s| finish(&acc[0][s], x0, ys[s], k)),
        std::array::from_fn(|s| finish(&acc[1][s], x1, ys[s], k)),
    ]
}

/// The lane sums of [`two_by_four`] in f32 with AVX-512 registers: the same products added in
/// the same order as [`two_by_four_lanes`] (a multiply, then an add; no fused multiply-add),
/// so the numbers are the same. Written with intrinsics because the compiler, left to itself,
/// kept the eight accumulators on the stack (a scalar loop, four times slower than `gemm`).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{chunk, LANES};
    use std::arch::x86_64::{
        __m512, _mm512_add_ps, _mm512_loadu_ps, _mm512_mul_ps, _mm512_setzero_ps, _mm512_storeu_ps,
    };

    #[target_feature(enable = "avx512f")]
    fn load(x: &[f32; LANES]) -> __m512 {
        // SAFETY: `x` holds 16 f32, the 64 bytes read (unaligned loads are allowed).
        #[allow(unsafe_code)]
        unsafe {
            _mm512_loadu_ps(x.as_ptr())
        }
    }

    #[target_feature(enable = "avx512f")]
    fn store(v: __m512) -> [f32; LANES] {
        let mut out = [0f32; LANES];
        // SAFETY: `out` holds 16 f32, the 64 bytes written.
        #[allow(unsafe_code)]
        unsafe {
            _mm512_storeu_ps(out.as_mut_ptr(), v)
        };
        out
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn two_by_four(
        x0: &[f32],
        x1: &[f32],
        ys: [&[f32]; 4],
        k: usize,
    ) -> [[[f32; LANES]; 4]; 2] {
        let mut acc = [[_mm512_setzero_ps(); 4]; 2];
        for c in 0..k / LANES {
            let (u0, u1) = (load(chunk(x0, c)), load(chunk(x1, c)));
            for (s, y) in ys.iter().enumerate() {
                let v = load(chunk(y, c));
                acc[0][s] = _mm512_add_ps(acc[0][s], _mm512_mul_ps(u0, v));
                acc[1][s] = _mm512_add_ps(acc[1][s], _mm512_mul_ps(u1, v));
            }
        }
        acc.map(|row| row.map(|v| store(v)))
    }
}

crate::multiversion! {
    /// The lane sums of [`two_by_four`]: `acc[q][s][l]` sums `x_q[p] y_s[p]` over the whole
    /// chunks' `p = l (mod LANES)`, in order.
    fn two_by_four_lanes<T: Element>(
        x0: &[T],
        x1: &[T],
        ys: [&[T]; 4],
        k: usize,
    ) -> [[[T; LANES]; 4]; 2] {
        let mut acc0 = [[T::zero(); LANES]; 4];
        let mut acc1 = [[T::zero(); LANES]; 4];
        for c in 0..k / LANES {
            let (c0, c1) = (chunk(x0, c), chunk(x1, c));
            for (s, y) in ys.iter().enumerate() {
                let cy = chunk(y, c);
                add_products(&mut acc0[s], c0, cy);
                add_products(&mut acc1[s], c1, cy);
            }
        }
        [acc0, acc1]
    }
}

/// [`gemm_nt`] on this thread into `out` `[m, n]` (every element written): for work already
/// split across threads at a coarser level.
pub fn gemm_nt_into<T: Element>(
    out: &mut [T],
    a: &[T],
    b: &[T],
    (m, n, k): (usize, usize, usize),
) -> candle_core::Result<()> {
    let fits = |rows: usize, len: usize| rows.checked_mul(k) == Some(len);
    if !fits(m, a.len()) || !fits(n, b.len()) || m.checked_mul(n) != Some(out.len()) {
        candle_core::bail!(
            "gemm_nt_into: {m} x {k} and {n} x {k} into {} values do not fit slices of {} and {}",
            out.len(),
            a.len(),
            b.len()
        );
    }
    rows_of(a, b, (m, n, k), out);
    Ok(())
}

crate::multiversion! {
    /// One row of `a` against four of `b`.
    fn one_by_four<T: Element>(x: &[T], ys: [&[T]; 4], k: usize) -> [T; 4] {
        let mut acc = [[T::zero(); LANES]; 4];
        for c in 0..k / LANES {
            let cx = chunk(x, c);
            for (s, y) in ys.iter().enumerate() {
                for ((a, &u), &v) in acc[s].iter_mut().zip(cx).zip(chunk(y, c)) {
                    *a += u * v;
                }
            }
        }
        std::array::from_fn(|s| finish(&acc[s], x, ys[s], k))
    }
}

crate::multiversion! {
    /// One row of `a` against one of `b`.
    fn one_by_one<T: Element>(x: &[T], y: &[T], k: usize) -> T {
        let mut acc = [T::zero(); LANES];
        for c in 0..k / LANES {
            for ((a, &u), &v) in acc.iter_mut().zip(chunk(x, c)).zip(chunk(y, c)) {
                *a += u * v;
            }
        }
        finish(&acc, x, y, k)
    }
}

/// `acc += x * y`, lane by lane.
#[inline(always)]
fn add_products<T: Element>(acc: &mut [T; LANES], x: &[T; LANES], y: &[T; LANES]) {
    for ((a, &u), &v) in acc.iter_mut().zip(x).zip(y) {
        *a += u * v;
    }
}

/// The lanes summed pairwise, in a fixed order.
#[inline(always)]
fn lanes_sum<T: Element>(v: &[T; LANES]) -> T {
    let mut w = *v;
    let mut half = LANES / 2;
    while half > 0 {
        for l in 0..half {
            w[l] += w[l + half];
        }
        half /= 2;
    }
    w[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threads::serial;

    #[test]
    fn matches_the_definition_for_every_block_shape() {
        // Whole and partial 4 x 4 blocks, k below, at and past the lanes, and long enough to split.
        for (m, n, k) in [
            (1, 1, 1),
            (3, 5, 7),
            (4, 4, 16),
            (9, 6, 33),
            (20, 20, 2160),
            (21, 19, 9000),
            (0, 3, 4),
            (2, 3, 0),
        ] {
            // Small integers: every partial sum is exact in f64, so any order gives the same.
            let a: Vec<f64> = (0..m * k).map(|i| ((i * 7) % 13) as f64 - 6.0).collect();
            let b: Vec<f64> = (0..n * k).map(|i| ((i * 5) % 11) as f64 - 5.0).collect();
            let want: Vec<f64> = (0..m * n)
                .map(|e| (0..k).map(|p| a[e / n * k + p] * b[e % n * k + p]).sum())
                .collect();
            assert_eq!(gemm_nt(&a, &b, (m, n, k)).unwrap(), want, "{m} x {n} x {k}");
        }
    }

    #[test]
    fn the_same_bits_however_the_rows_are_split() {
        // Non-integer f32: the summation order shows. Row 5 of the output computed alone (in a
        // 1-row product), inside a 4-row block, and on whichever thread, is the same number.
        let (m, n, k) = (9, 7, 1003);
        let a: Vec<f32> = (0..m * k).map(|i| ((i as f32) * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n * k).map(|i| ((i as f32) * 0.11).cos()).collect();
        let whole = gemm_nt(&a, &b, (m, n, k)).unwrap();
        assert_eq!(serial(|| gemm_nt(&a, &b, (m, n, k))).unwrap(), whole);
        for i in 0..m {
            let row = gemm_nt(&a[i * k..(i + 1) * k], &b, (1, n, k)).unwrap();
            assert_eq!(row, whole[i * n..(i + 1) * n], "row {i}");
        }
        // And close to the f64 sum.
        for (e, &v) in whole.iter().enumerate() {
            let want: f64 = (0..k)
                .map(|p| a[e / n * k + p] as f64 * b[e % n * k + p] as f64)
                .sum();
            assert!(
                (v as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                "{e}: {v} vs {want}"
            );
        }
    }

    #[test]
    fn sizes_that_do_not_fit_are_errors() {
        assert!(gemm_nt(&[0f32; 6], &[0f32; 6], (2, 2, 3)).is_ok());
        assert!(gemm_nt(&[0f32; 6], &[0f32; 5], (2, 2, 3)).is_err());
        assert!(gemm_nt(&[0f32; 6], &[0f32; 6], (usize::MAX, 2, 3)).is_err());
    }
}
