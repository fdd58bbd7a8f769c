//! The process's thread count, read once, and the rule for when work is split.

use std::cell::Cell;
use std::sync::OnceLock;

use rayon::prelude::*;

/// Below this many floating-point operations (33.5 M: about 0.2 ms of one core's matrix
/// products) a kernel runs on the calling thread: handing work to another thread and waiting
/// for it costs tens of microseconds, and far more when that thread's core is busy with another
/// process. Measured: at 4.2 M, `train_encoder` (batches of 30 clips) ran 13 % slower at two
/// threads than at one; at 33.5 M the two are equal, and training at batch 72 lost nothing.
pub const PARALLEL_MIN_FLOPS: usize = 1 << 25;

/// The threshold on a thread of the kernels' pool (inside [`on_pool`]): handing half a job to
/// the pool's other threads costs a few microseconds there, not the wake-up of two sleeping
/// threads, so jobs split from 8.4 M FLOPs (about 0.05 ms of one core's products). Measured:
/// the encoder's training step at batch 72 on the pool, two threads 19.8-20.5 -> 18.0-18.2 ms
/// (its J x J graph products, 14.7 M each, and the pairs of them in a backward pass now split);
/// the same threshold everywhere made `train_encoder` (its steps off the pool, batches of 30)
/// 1.13x slower at two threads than at one.
pub const POOL_MIN_FLOPS: usize = 1 << 23;

/// The number of threads kernels split work across: rayon's global pool size (which honours
/// `RAYON_NUM_THREADS`), read once per process.
pub fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| rayon::current_num_threads().max(1))
}

thread_local! {
    static SERIAL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every kernel it calls on this thread kept on this thread: for work already
/// split across threads at a coarser level (a batch cut into one part per thread).
pub fn serial<R>(f: impl FnOnce() -> R) -> R {
    /// Puts the flag back however `f` ends (a panic too: the thread lives on in the pool).
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERIAL.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SERIAL.with(|s| s.replace(true)));
    f()
}

/// Whether kernels called here may split work across threads (not inside [`serial`]).
pub fn parallel_ok() -> bool {
    threads() > 1 && !SERIAL.with(|s| s.get())
}

/// Whether a job of `flops` is worth splitting across threads here: [`parallel_ok`] and at
/// least [`POOL_MIN_FLOPS`] on a thread of the kernels' pool, [`PARALLEL_MIN_FLOPS`] elsewhere.
pub fn worth_splitting(flops: usize) -> bool {
    let min = if rayon::current_thread_index().is_some() {
        POOL_MIN_FLOPS
    } else {
        PARALLEL_MIN_FLOPS
    };
    parallel_ok() && flops >= min
}

/// Runs `f` on a thread of the kernels' pool (rayon's global pool) while the calling thread
/// waits, when there is more than one thread: the kernels `f` calls then split their work
/// between that thread and the pool's others directly. Called from outside the pool, every
/// split would instead be handed from the calling thread to two pool threads and back, a
/// wake-up of two sleeping threads per operation. Wrap a whole training step (forward,
/// backward and update) in it.
pub fn on_pool<R, F>(f: F) -> R
where
    R: Send,
    F: FnOnce() -> R + Send,
{
    if threads() == 1 || rayon::current_thread_index().is_some() {
        return f();
    }
    rayon::scope(|_| f())
}

/// `(a(), b())`: two independent jobs (two matrix products of a backward pass, say) of
/// `flops` together, one on each of two threads with their kernels kept there ([`serial`]),
/// when more than one thread is free here and each job would have been split on its own
/// (`flops >= 2 * PARALLEL_MIN_FLOPS`); else in turn on this one, where each may still split.
/// Two products side by side cost one hand-off where splitting each costs two, and neither
/// product is cut smaller. Measured: joining pairs of 20 MFLOP products (the encoder's step at
/// batch 30) made `train_encoder` 1.24x slower at two threads than at one.
pub fn join<RA, RB, A, B>(flops: usize, a: A, b: B) -> (RA, RB)
where
    RA: Send,
    RB: Send,
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
{
    if worth_splitting(flops / 2) {
        rayon::join(|| serial(a), || serial(b))
    } else {
        (a(), b())
    }
}

/// `f(start, len)` over `0..n` cut into parts of `part` items (the last may be shorter), the
/// parts spread over the kernels' threads, each part with its kernels kept on its thread
/// ([`serial`]); the results in order. The parts do not depend on the thread count, so
/// neither do the numbers: on one thread (or inside [`serial`]) the same parts run in turn.
pub fn split_batch<R, F>(n: usize, part: usize, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(usize, usize) -> R + Send + Sync,
{
    let part = part.max(1);
    let parts = n.div_ceil(part).max(1);
    let run = |p: usize| {
        let start = p * part;
        f(start, part.min(n - start.min(n)))
    };
    if parallel_ok() && parts > 1 {
        (0..parts)
            .into_par_iter()
            .map(|p| serial(|| run(p)))
            .collect()
    } else {
        (0..parts).map(run).collect()
    }
}

/// Runs `f(i, chunk)` on each of the chunks of `data` of `chunk_len` elements (the last may be
/// shorter), on several threads when `flops` (the caller's estimate of the whole job) reaches
/// [`PARALLEL_MIN_FLOPS`] and more than one thread is available, else in order on this one.
pub fn for_each_chunk<T, F>(data: &mut [T], chunk_len: usize, flops: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Send + Sync,
{
    let chunk_len = chunk_len.max(1);
    if worth_splitting(flops) && data.len() > chunk_len {
        data.par_chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        data.chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
}

/// A new vector of `n` items built by `f(start, len, out)`, which appends items
/// `start..start + len` to `out`: in parts of `part` items spread over the kernels' threads when
/// `flops` (the caller's estimate of the whole job) is [`worth_splitting`] (each part built in a
/// vector of its own, then joined in order), else
/// in one call on this thread. Where [`for_each_chunk`] needs an output filled beforehand (a
/// zero fill is a pass over memory as long as a simple kernel's), this writes each item once.
///
/// Panics when `f` appends other than `len` items (a kernel bug, not an input error).
pub fn collect_chunks<T, F>(n: usize, part: usize, flops: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize, usize, &mut Vec<T>) + Send + Sync,
{
    let part = part.max(1);
    let build = |start: usize, len: usize, out: &mut Vec<T>| {
        let before = out.len();
        f(start, len, out);
        assert_eq!(
            out.len() - before,
            len,
            "collect_chunks: items {start}..{} appended {} values",
            start + len,
            out.len() - before
        );
    };
    let mut out = Vec::with_capacity(n);
    if worth_splitting(flops) && n > part {
        let parts: Vec<Vec<T>> = (0..n.div_ceil(part))
            .into_par_iter()
            .map(|p| {
                let start = p * part;
                let len = part.min(n - start);
                let mut v = Vec::with_capacity(len);
                build(start, len, &mut v);
                v
            })
            .collect();
        parts.into_iter().for_each(|p| out.extend(p));
    } else {
        build(0, n, &mut out);
    }
    out
}

/// [`for_each_chunk`] over two buffers at once: `f(i, a_chunk, b_chunk)` with chunk `i` of `a`
/// (`a_len` elements) and of `b` (`b_len` elements); both must hold the same number of chunks.
pub fn for_each_chunk_pair<T, U, F>(
    a: &mut [T],
    a_len: usize,
    b: &mut [U],
    b_len: usize,
    flops: usize,
    f: F,
) where
    T: Send,
    U: Send,
    F: Fn(usize, &mut [T], &mut [U]) + Send + Sync,
{
    let (a_len, b_len) = (a_len.max(1), b_len.max(1));
    assert_eq!(
        a.len().div_ceil(a_len),
        b.len().div_ceil(b_len),
        "for_each_chunk_pair: the buffers hold different numbers of chunks"
    );
    if worth_splitting(flops) && a.len() > a_len {
        a.par_chunks_mut(a_len)
            .zip(b.par_chunks_mut(b_len))
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
    } else {
        a.chunks_mut(a_len)
            .zip(b.chunks_mut(b_len))
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_is_visited_once_in_place() {
        for flops in [0, PARALLEL_MIN_FLOPS] {
            let mut v = vec![0usize; 103];
            for_each_chunk(&mut v, 10, flops, |i, c| {
                for x in c.iter_mut() {
                    *x += i + 1;
                }
            });
            let want: Vec<usize> = (0..103).map(|k| k / 10 + 1).collect();
            assert_eq!(v, want, "flops {flops}");
        }
        assert!(threads() >= 1);
    }

    #[test]
    fn batch_parts_cover_the_range_in_order() {
        for (n, part) in [(0, 8), (1, 8), (15, 8), (16, 8), (101, 8), (1000, 1)] {
            let parts = split_batch(n, part, |s, l| (s, l, parallel_ok()));
            assert_eq!(parts.len(), n.div_ceil(part).max(1), "n {n}");
            let mut next = 0;
            for &(s, l, par) in &parts {
                assert_eq!(s, next);
                assert!(l <= part && (l > 0 || n == 0));
                assert!(!par || parts.len() == 1, "parts run serially inside");
                next = s + l;
            }
            assert_eq!(next, n, "n {n}");
        }
    }

    #[test]
    fn join_runs_both_and_keeps_their_kernels_home() {
        for flops in [PARALLEL_MIN_FLOPS, 2 * PARALLEL_MIN_FLOPS] {
            let (a, b) = join(flops, || (1 + 1, parallel_ok()), || ("two", parallel_ok()));
            assert_eq!((a.0, b.0), (2, "two"));
            // Small jobs run here in turn (kernels free to split, as ever); large ones on
            // two threads with their kernels kept there.
            let split = threads() > 1 && flops < 2 * PARALLEL_MIN_FLOPS;
            assert_eq!((a.1, b.1), (split, split), "flops {flops}");
        }
        // Inside `serial`, join runs in turn on this thread.
        let (x, y) = serial(|| join(2 * PARALLEL_MIN_FLOPS, parallel_ok, parallel_ok));
        assert!(!x && !y);
    }

    #[test]
    fn collected_chunks_come_in_order() {
        for (n, part, flops) in [
            (0, 4, 0),
            (10, 4, 0),
            (103, 10, PARALLEL_MIN_FLOPS),
            (5, 8, PARALLEL_MIN_FLOPS),
        ] {
            let v = collect_chunks(n, part, flops, |start, len, out| {
                out.extend((start..start + len).map(|i| i * i))
            });
            let want: Vec<usize> = (0..n).map(|i| i * i).collect();
            assert_eq!(v, want, "n {n}, part {part}, flops {flops}");
        }
        // Each part is built whole: its first item knows where the part starts.
        let v = collect_chunks(25, 10, PARALLEL_MIN_FLOPS, |start, len, out| {
            out.extend(std::iter::repeat_n(start, len))
        });
        let split = parallel_ok();
        for (i, &s) in v.iter().enumerate() {
            assert_eq!(s, if split { i / 10 * 10 } else { 0 }, "item {i}");
        }
    }

    #[test]
    #[should_panic(expected = "appended")]
    fn a_short_chunk_is_a_bug() {
        collect_chunks(8, 4, 0, |_, len, out: &mut Vec<u8>| {
            out.extend(vec![0; len - 1])
        });
    }

    #[test]
    fn jobs_split_from_a_lower_size_on_the_pool() {
        let t = threads() > 1;
        for (flops, here, pool) in [
            (POOL_MIN_FLOPS - 1, false, false),
            (POOL_MIN_FLOPS, false, t),
            (PARALLEL_MIN_FLOPS, t, t),
        ] {
            assert_eq!(worth_splitting(flops), here, "{flops} here");
            assert_eq!(
                on_pool(|| worth_splitting(flops)),
                pool,
                "{flops} on the pool"
            );
            assert!(!serial(|| worth_splitting(flops)), "{flops} inside serial");
        }
    }

    #[test]
    fn chunk_pairs_line_up() {
        for flops in [0, PARALLEL_MIN_FLOPS] {
            let (mut a, mut b) = (vec![0usize; 12], vec![0usize; 8]);
            for_each_chunk_pair(&mut a, 3, &mut b, 2, flops, |i, x, y| {
                x.iter_mut().for_each(|v| *v = i);
                y.iter_mut().for_each(|v| *v = 10 * i);
            });
            assert_eq!(a, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
            assert_eq!(b, [0, 0, 10, 10, 20, 20, 30, 30]);
        }
    }
}
