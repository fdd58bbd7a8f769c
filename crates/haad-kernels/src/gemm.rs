//! A safe, strided matrix product over slices with the crate's thread rule.
//!
//! A product runs on the calling thread below the threading threshold
//! ([`crate::worth_splitting`]); above it, it is split
//! into one block per thread by hand (rows when the output is tall, columns when it is wide,
//! and the inner dimension, with a final sum, when both output sides are small), each block a
//! single-threaded `gemm` call. `gemm`'s own splitting works on its cache blocks and leaves
//! products with few rows (the encoder's `[J, J] x [J, B*F]`) on one thread.

use std::mem::MaybeUninit;

use gemm::Parallelism;
use rayon::prelude::*;

use crate::threads::{threads, worth_splitting};

/// The element types: f32 and f64.
pub trait Element: candle_core::WithDType + Copy + Send + Sync + 'static {
    /// The slice as f32 when `Self` is f32 (for kernels written for f32 registers).
    fn as_f32(_: &[Self]) -> Option<&[f32]> {
        None
    }
}
impl Element for f32 {
    fn as_f32(s: &[f32]) -> Option<&[f32]> {
        Some(s)
    }
}
impl Element for f64 {}

/// A read-only view of a `rows x cols` matrix in a slice: element `(i, j)` is
/// `data[i * rs + j * cs]`. Construction checks that every element lies inside the slice.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// The row-major matrix in `data[..rows * cols]`.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> candle_core::Result<Self> {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// Row stride `rs`, column stride `cs`.
    pub fn strided(
        data: &'a [T],
        rows: usize,
        cols: usize,
        rs: usize,
        cs: usize,
    ) -> candle_core::Result<Self> {
        if rows > 0 && cols > 0 {
            let last = (rows - 1)
                .checked_mul(rs)
                .and_then(|a| (cols - 1).checked_mul(cs).and_then(|b| a.checked_add(b)));
            if last.is_none_or(|l| l >= data.len()) {
                candle_core::bail!(
                    "matrix view {rows} x {cols} (strides {rs}, {cs}) past a slice of {}",
                    data.len()
                );
            }
        }
        Ok(Self {
            data,
            rows,
            cols,
            rs,
            cs,
        })
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Rows `r0..r0 + n`.
    fn rows_range(self, r0: usize, n: usize) -> Self {
        Self {
            data: &self.data[(r0 * self.rs).min(self.data.len())..],
            rows: n,
            ..self
        }
    }

    /// Columns `c0..c0 + n`.
    fn cols_range(self, c0: usize, n: usize) -> Self {
        Self {
            data: &self.data[(c0 * self.cs).min(self.data.len())..],
            cols: n,
            ..self
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// A `Send` pointer to the output, for column blocks written from several threads.
#[derive(Clone, Copy)]
struct OutPtr<T>(*mut T);
// SAFETY: each thread writes a disjoint set of elements (its own column block).
#[allow(unsafe_code)]
unsafe impl<T: Send> Send for OutPtr<T> {}
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for OutPtr<T> {}

/// `out = a b` for an output with row stride `out_rs` starting at `out`; one thread.
///
/// SAFETY (caller): `out` must be valid for writes of the `a.rows x b.cols` block with row
/// stride `out_rs`, and no one else may access that block meanwhile.
#[allow(unsafe_code)]
unsafe fn kernel<T: Element>(out: *mut T, out_rs: usize, a: MatRef<T>, b: MatRef<T>) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                out.add(i * out_rs + j).write(T::zero());
            }
        }
        return;
    }
    // SAFETY: the views were bounds-checked on construction; the output is the caller's.
    gemm::gemm(
        m,
        n,
        k,
        out,
        1,
        out_rs as isize,
        false,
        a.data.as_ptr(),
        a.cs as isize,
        a.rs as isize,
        b.data.as_ptr(),
        b.cs as isize,
        b.rs as isize,
        T::zero(),
        T::one(),
        false,
        false,
        false,
        Parallelism::None,
    )
}

/// `out = a b` on this thread, `out` row-major `a.rows() x b.cols()`: every element written.
/// For work already split across threads at a coarser level (a block of rows each).
#[allow(unsafe_code)]
pub fn gemm_into<T: Element>(out: &mut [T], a: MatRef<T>, b: MatRef<T>) -> candle_core::Result<()> {
    if a.cols != b.rows || a.rows.checked_mul(b.cols) != Some(out.len()) {
        candle_core::bail!(
            "gemm_into: {} x {} times {} x {} into {} values",
            a.rows,
            a.cols,
            b.rows,
            b.cols,
            out.len()
        );
    }
    // SAFETY: `out` is borrowed exclusively and holds the a.rows x b.cols block, row stride
    // b.cols.
    unsafe { kernel(out.as_mut_ptr(), b.cols, a, b) };
    Ok(())
}

/// `n` split into `parts` near-equal blocks, each a multiple of `align` but the last.
fn blocks(n: usize, parts: usize, align: usize) -> Vec<(usize, usize)> {
    let per = n.div_ceil(parts).div_ceil(align) * align;
    (0..parts)
        .map(|p| (p * per, ((p + 1) * per).min(n)))
        .filter(|(s, e)| s < e)
        .collect()
}

/// The product `a b` as a new row-major `a.rows() x b.cols()` matrix.
#[allow(unsafe_code)]
pub fn gemm<T: Element>(a: MatRef<T>, b: MatRef<T>) -> candle_core::Result<Vec<T>> {
    if a.cols != b.rows {
        candle_core::bail!(
            "gemm: {} x {} times {} x {}",
            a.rows,
            a.cols,
            b.rows,
            b.cols
        );
    }
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let mut out: Vec<MaybeUninit<T>> = Vec::with_capacity(m * n);
    // SAFETY: MaybeUninit needs no initialisation; every element is written below before the
    // buffer is read as T (the kernel writes each element of its block, k == 0 included).
    unsafe { out.set_len(m * n) };
    let ptr = OutPtr(out.as_mut_ptr() as *mut T);
    let t = threads();
    let flops = 2 * m * n * k;
    if t == 1 || !worth_splitting(flops) {
        // SAFETY: `out` holds m x n elements, row stride n.
        unsafe { kernel(ptr.0, n, a, b) };
    } else if m >= n && m >= 16 {
        let rb = blocks(m, t, 8);
        rb.par_iter().for_each(|&(r0, r1)| {
            let p = ptr;
            // SAFETY: rows r0..r1 of the output, disjoint between threads.
            unsafe { kernel(p.0.add(r0 * n), n, a.rows_range(r0, r1 - r0), b) };
        });
    } else if n >= 16 {
        let cb = blocks(n, t, 16);
        cb.par_iter().for_each(|&(c0, c1)| {
            let p = ptr;
            // SAFETY: columns c0..c1 of every row, disjoint between threads.
            unsafe { kernel(p.0.add(c0), n, a, b.cols_range(c0, c1 - c0)) };
        });
    } else {
        // Small output, long inner dimension: partial products over k, summed.
        let kb = blocks(k, t, 8);
        let parts: Vec<Vec<T>> = kb
            .par_iter()
            .map(|&(k0, k1)| {
                let mut part = vec![T::zero(); m * n];
                // SAFETY: `part` holds m x n elements, row stride n.
                unsafe {
                    kernel(
                        part.as_mut_ptr(),
                        n,
                        a.cols_range(k0, k1 - k0),
                        b.rows_range(k0, k1 - k0),
                    )
                };
                part
            })
            .collect();
        // SAFETY: the output holds m x n elements; each is written once here.
        unsafe {
            for i in 0..m * n {
                let s = parts.iter().fold(T::zero(), |acc, p| acc + p[i]);
                ptr.0.add(i).write(s);
            }
        }
    }
    let mut out = std::mem::ManuallyDrop::new(out);
    // SAFETY: every element was initialised above; MaybeUninit<T> has T's layout.
    Ok(unsafe { Vec::from_raw_parts(out.as_mut_ptr() as *mut T, out.len(), out.capacity()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threads::serial;

    fn brute(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut o = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                o[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        o
    }

    #[test]
    fn every_split_matches_the_definition() {
        // Tall (row split), wide (column split), small output with long k (k split), tiny
        // (one thread), and k = 0; each also inside `serial`.
        for (m, k, n) in [
            (700, 64, 90),
            (20, 20, 9000),
            (20, 9000, 20),
            (3, 4, 5),
            (4, 0, 3),
        ] {
            let a: Vec<f64> = (0..m * k).map(|i| ((i * 7) % 13) as f64 - 6.0).collect();
            let b: Vec<f64> = (0..k * n).map(|i| ((i * 5) % 11) as f64 - 5.0).collect();
            let want = brute(&a, &b, m, k, n);
            let av = MatRef::new(&a, m, k).unwrap();
            let bv = MatRef::new(&b, k, n).unwrap();
            assert_eq!(gemm(av, bv).unwrap(), want, "{m} x {k} x {n}");
            assert_eq!(
                serial(|| gemm(av, bv)).unwrap(),
                want,
                "serial {m} x {k} x {n}"
            );
            // Transposed storage read through transposed views.
            let at: Vec<f64> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            let atv = MatRef::new(&at, k, m).unwrap().t();
            assert_eq!(gemm(atv, bv).unwrap(), want, "transposed {m} x {k} x {n}");
        }
    }

    #[test]
    fn views_past_the_slice_are_errors() {
        let v = [0f32; 6];
        assert!(MatRef::new(&v, 2, 3).is_ok());
        assert!(MatRef::new(&v, 3, 3).is_err());
        assert!(MatRef::strided(&v, 2, 2, 5, 1).is_err());
        assert!(MatRef::strided(&v, usize::MAX, 2, usize::MAX, 1).is_err());
        let a = MatRef::new(&v, 2, 3).unwrap();
        assert!(gemm(a, a).is_err());
    }
}
