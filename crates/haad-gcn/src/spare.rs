//! Buffers of finished trunk passes ([`crate::passes`]), reused without a zero fill.
//!
//! A training step's two passes write about 45 MB of `[J, B, F]` maps at batch 72 (nine layers,
//! about four maps each way). Each map was a fresh zero-filled buffer that a kernel then
//! overwrote: the fills were about a tenth of the step, on the calling thread while the others
//! waited. A buffer taken here is overwritten whole before it is read (a [`gemm_into`]
//! product, a BatchNorm output, a copy), so no stale value reaches a result; the trunk's tests
//! compare the bits of runs that reuse buffers of earlier runs.
//!
//! [`gemm_into`]: haad_kernels::gemm_into

use std::sync::Mutex;

use crate::ops::Float;

/// At most this many bytes of spare buffers are kept per float type (the maps of a step at
/// batch 72 are about 45 MB).
const MAX_BYTES: usize = 128 << 20;

/// Buffers below this many values are not kept: a fill costs less than the lookup.
const MIN_LEN: usize = 1 << 14;

/// The spare buffers of one float type.
pub(crate) type Spares<T> = Mutex<Vec<Vec<T>>>;

/// A buffer of `n` values whose contents are unspecified (stale values of an earlier pass, or
/// zeros): the caller overwrites every value before it reads any.
pub(crate) fn take<T: Float>(n: usize) -> Vec<T> {
    if n >= MIN_LEN {
        let found = T::spares().lock().ok().and_then(|mut s| {
            let i = s
                .iter()
                .position(|v| v.capacity() >= n && v.capacity() <= 2 * n)?;
            Some(s.swap_remove(i))
        });
        if let Some(mut v) = found {
            v.truncate(n);
            v.resize(n, T::zero());
            return v;
        }
    }
    vec![T::zero(); n]
}

/// Keeps `v` for a later [`take`], within [`MAX_BYTES`].
pub(crate) fn give<T: Float>(v: Vec<T>) {
    if v.capacity() < MIN_LEN {
        return;
    }
    if let Ok(mut s) = T::spares().lock() {
        let held: usize = s.iter().map(Vec::capacity).sum();
        if (held + v.capacity()) * std::mem::size_of::<T>() <= MAX_BYTES {
            s.push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_with_the_asked_length_and_the_store_is_bounded() {
        let n = MIN_LEN * 3;
        let mut v = take::<f64>(n);
        assert_eq!(v.len(), n);
        v.iter_mut().for_each(|x| *x = 7.0);
        let cap = v.capacity();
        give(v);
        // Reused (same allocation size), its length as asked, whatever it holds.
        let w = take::<f64>(n - 5);
        assert_eq!(w.len(), n - 5);
        assert!(w.capacity() >= cap.min(n - 5));
        give(w);
        // Small buffers are not kept; the store never holds more than MAX_BYTES.
        give(vec![0f64; 10]);
        for _ in 0..(MAX_BYTES / (n * 8) + 4) {
            give(vec![0f64; n]);
        }
        let held: usize = f64::spares()
            .lock()
            .unwrap()
            .iter()
            .map(Vec::capacity)
            .sum();
        assert!(held * 8 <= MAX_BYTES, "{held} values held");
        assert!(f64::spares()
            .lock()
            .unwrap()
            .iter()
            .all(|v| v.capacity() >= MIN_LEN));
    }
}
