//! A gang: the kernels' threads kept together through a run of parallel regions (a network's
//! pass, one region per layer), so that the threads meet between regions without sleeping.
//!
//! A parallel iterator per region hands each region to the pool afresh. Between two regions
//! the pool's other threads find no work, park after a few dozen rounds, and the next region
//! waits for the operating system to wake them: measured, about one context switch per region
//! of the encoder's step, whose two-thread time moved 1.3x from process to process.
//!
//! In a gang the calling thread (the leader) runs the code between regions; the helpers wait
//! for the next region spinning, then yielding their core. Items of a region are claimed one at
//! a time from a counter, by the leader as well, so the leader never waits for a helper that
//! has not started (one still asleep, or whose core another process holds): it takes the
//! unclaimed items itself and waits only for items a helper is running. No region can wait on
//! a thread that never comes, so a gang cannot deadlock in a shared pool.
//!
//! Each item runs inside [`serial`] wherever it runs; the items are the caller's, so the numbers
//! do not depend on which thread ran which.

use std::any::Any;
use std::cell::Cell;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

mod choice;

use crate::threads::{parallel_ok, serial, threads};

/// Spins before a waiting thread starts yielding its core.
const SPINS: u32 = 1 << 10;

/// One region's work: `n` items, claimed from `next`, counted in `done` when finished.
struct Task<'a> {
    n: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    run: &'a (dyn Fn(usize) + Sync),
}

impl Task<'_> {
    /// Claims and runs items until none is left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                return;
            }
            // Counted as done even when the item panics, so that no thread waits for it.
            let _done = Done(&self.done);
            (self.run)(i);
        }
    }
}

struct Done<'a>(&'a AtomicUsize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// The published region, its lifetime erased: valid while it sits in [`Shared::task`] (the
/// leader takes it out, under the write lock, before the region's borrows end).
#[derive(Clone, Copy)]
struct TaskPtr(*const Task<'static>);

// SAFETY: the pointer is only dereferenced under `Shared::task`'s read lock, while the leader
// keeps the task alive (see `Crew::region`); `Task` itself is `Sync`.
#[allow(unsafe_code)]
unsafe impl Send for TaskPtr {}
#[allow(unsafe_code)]
unsafe impl Sync for TaskPtr {}

#[derive(Default)]
struct Shared {
    /// Bumped when a region is published.
    epoch: AtomicUsize,
    closed: AtomicBool,
    task: RwLock<Option<TaskPtr>>,
    /// The first panic of an item a helper ran, for the leader to raise. Stored while the helper
    /// still holds `task`'s read lock, so the leader, which retires the task under the write
    /// lock before it looks, never misses one (the item was already counted as done).
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

/// Waits a little longer each round: spins first, then yields the core.
fn back_off(round: &mut u32) {
    if *round < SPINS {
        std::hint::spin_loop();
        *round += 1;
    } else {
        std::thread::yield_now();
    }
}

/// A helper's life: the work of every region published until the gang closes.
fn help(sh: &Shared) {
    let mut seen = 0;
    let mut round = 0;
    while !sh.closed.load(Ordering::Acquire) {
        let e = sh.epoch.load(Ordering::Acquire);
        if e == seen {
            back_off(&mut round);
            continue;
        }
        (seen, round) = (e, 0);
        let task = sh.task.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = *task {
            // SAFETY: the task stays alive while it is published and we hold the read lock.
            #[allow(unsafe_code)]
            let t = unsafe { &*t.0 };
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| serial(|| t.work()))) {
                let mut first = sh.panic.lock().unwrap_or_else(PoisonError::into_inner);
                first.get_or_insert(p);
            }
        }
    }
}

/// The handle a gang's body gets: its regions run on the gang's threads. Not `Sync`: only the
/// leader starts regions (an item that started one on a helper would wait on itself).
pub struct Crew<'g> {
    shared: Option<&'g Shared>,
    threads: usize,
    _leader_only: PhantomData<Cell<()>>,
}

impl<'g> Crew<'g> {
    fn new(shared: Option<&'g Shared>, threads: usize) -> Self {
        Crew {
            shared,
            threads,
            _leader_only: PhantomData,
        }
    }

    /// The gang's threads, the leader's included: the number of parts to cut work in (1 when
    /// it runs alone, where cutting would only repeat the parts' fixed costs).
    pub fn threads(&self) -> usize {
        self.threads
    }
}

/// Runs `body` with a gang of up to `threads_wanted` threads (the calling thread and at most
/// `threads_wanted - 1` helpers from the kernels' pool, never more than [`threads()`]), for a
/// run of [`Crew::region`]s; `work` is the caller's estimate of the body's work (FLOPs, say).
/// Without helpers (one thread, inside [`serial`], `threads_wanted <= 1`) the regions' items
/// run in turn on this thread.
///
/// Helpers lose where another process holds their cores (an item a descheduled helper claimed
/// holds up its region, and a third runnable thread slows the leader). So each place in the
/// code that calls `gang` keeps its last times per unit of `work` with helpers and without,
/// takes the way whose median is lower by a twentieth (helpers' counted as if a ninth longer:
/// they must save a tenth of the leader's time), and tries the other now and then to keep
/// both current (the module `choice`: while helpers are faster, alone after 16 calls, then
/// twice as many after each call alone that loses, up to 128; while alone is, helpers after 16
/// calls, then twice as many after each losing try up to 256; either way at the next call after
/// one that wins; a try of helpers after a wait is two calls, the first not judged: idle
/// helpers start cold).
/// Which thread runs an item never changes the numbers; nor does the cut, where the caller
/// cuts by [`Crew::threads`] into parts whose results do not depend on the cut.
#[track_caller]
pub fn gang<R>(threads_wanted: usize, work: usize, body: impl FnOnce(&Crew) -> R) -> R {
    let helpers = threads_wanted.min(threads()).saturating_sub(1);
    if helpers == 0 || !parallel_ok() {
        return body(&Crew::new(None, 1));
    }
    let site = std::panic::Location::caller();
    let start = Instant::now();
    let with_helpers = choice::helpers(site);
    let out = if with_helpers {
        crewed(helpers, body)
    } else {
        body(&Crew::new(None, 1))
    };
    choice::record(site, with_helpers, start.elapsed(), work);
    out
}

/// [`gang`] with `helpers` helpers. They are spawned on the pool and not waited for: one that
/// starts after the gang closed returns at once. (In a scope, a leader outside the pool would
/// sleep at the end until a pool thread had taken each helper's job, on a busy machine for as
/// long as another process holds that thread's core.)
fn crewed<R>(helpers: usize, body: impl FnOnce(&Crew) -> R) -> R {
    let sh = Arc::new(Shared::default());
    for _ in 0..helpers {
        let sh = Arc::clone(&sh);
        rayon::spawn(move || help(&sh));
    }
    // Closes the gang however the body ends (a panic too), so the helpers return.
    struct Close<'a>(&'a Shared);
    impl Drop for Close<'_> {
        fn drop(&mut self) {
            self.0.closed.store(true, Ordering::Release);
        }
    }
    let _close = Close(&sh);
    body(&Crew::new(Some(&sh), helpers + 1))
}

impl Crew<'_> {
    /// Runs `f(p, item)` for each item (one part of a layer each, say), each inside
    /// [`serial`], on the gang's threads; returns when all have run. The error of the lowest
    /// item that failed, if any (items not yet started when one fails are skipped).
    pub fn region<I, E, F>(&self, items: Vec<I>, f: F) -> Result<(), E>
    where
        I: Send,
        E: Send,
        F: Fn(usize, I) -> Result<(), E> + Sync,
    {
        let Some(sh) = self.shared.filter(|_| items.len() > 1) else {
            for (p, it) in items.into_iter().enumerate() {
                serial(|| f(p, it))?;
            }
            return Ok(());
        };
        let n = items.len();
        let slots: Vec<Mutex<Option<I>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
        let failed = AtomicBool::new(false);
        let first_err: Mutex<Option<(usize, E)>> = Mutex::new(None);
        let run = |p: usize| {
            if failed.load(Ordering::Relaxed) {
                return;
            }
            let item = slots[p]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(it) = item {
                if let Err(e) = serial(|| f(p, it)) {
                    failed.store(true, Ordering::Relaxed);
                    let mut fe = first_err.lock().unwrap_or_else(PoisonError::into_inner);
                    if fe.as_ref().is_none_or(|(q, _)| p < *q) {
                        *fe = Some((p, e));
                    }
                }
            }
        };
        let task = Task {
            n,
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            run: &run,
        };
        // SAFETY: only the lifetime is erased. `Retire` takes the task out of `sh.task` under
        // the write lock before `task` (and what `run` borrows) goes out of scope, on unwind
        // too; helpers dereference it only under the read lock.
        #[allow(unsafe_code)]
        let ptr =
            TaskPtr(unsafe { std::mem::transmute::<*const Task<'_>, *const Task<'static>>(&task) });
        struct Retire<'a>(&'a Shared);
        impl Drop for Retire<'_> {
            fn drop(&mut self) {
                *self.0.task.write().unwrap_or_else(PoisonError::into_inner) = None;
            }
        }
        *sh.task.write().unwrap_or_else(PoisonError::into_inner) = Some(ptr);
        let retire = Retire(sh);
        sh.epoch.fetch_add(1, Ordering::Release);
        serial(|| task.work());
        // Every item is claimed; wait for those a helper is running.
        let mut round = 0;
        while task.done.load(Ordering::Acquire) < n {
            back_off(&mut round);
        }
        drop(retire);
        // A helper's item panicked: raise it here, as if the leader had run the item.
        if let Some(p) = sh
            .panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            resume_unwind(p);
        }
        match first_err
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threads::on_pool;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    /// `rounds` regions of `parts` items over a vector of `n` values; each item writes its
    /// part of the new vector from every value of the previous one (so each region needs the
    /// whole of the last): `v'[i] = (sum(v) + i * (r + 1)) mod 2^61`.
    fn chain(crew: &Crew, n: usize, parts: usize, rounds: usize) -> Vec<u64> {
        let mut v: Vec<u64> = (0..n as u64).collect();
        for r in 0..rounds as u64 {
            let sum = |v: &[u64]| v.iter().fold(0u64, |s, &x| (s + x) % (1 << 61));
            let prev = v.clone();
            let chunk = n.div_ceil(parts);
            let items: Vec<&mut [u64]> = v.chunks_mut(chunk).collect();
            crew.region(items, |p, out| {
                assert!(!parallel_ok(), "items run inside serial");
                let s = sum(&prev);
                for (k, o) in out.iter_mut().enumerate() {
                    let i = (p * chunk + k) as u64;
                    *o = (s + i * (r + 1)) % (1 << 61);
                }
                Ok::<(), ()>(())
            })
            .unwrap();
        }
        v
    }

    #[test]
    fn regions_follow_one_another_whoever_runs_the_items() {
        let want = chain(&Crew::new(None, 1), 37, 3, 50);
        for parts in [1, 2, 3, 8] {
            for wanted in [1, 2, 4] {
                // Twice per case: the call site's first calls take helpers, then not.
                for _ in 0..3 {
                    let got = gang(wanted, 1, |crew| chain(crew, 37, parts, 50));
                    assert_eq!(got, want, "{parts} parts, {wanted} threads");
                    let got = on_pool(|| gang(wanted, 1, |crew| chain(crew, 37, parts, 50)));
                    assert_eq!(got, want, "{parts} parts, {wanted} threads, on the pool");
                }
            }
        }
    }

    #[test]
    fn the_lowest_failing_item_is_reported_and_the_gang_goes_on() {
        for _ in 0..4 {
            let (first, then) = gang(2, 1, |crew| {
                let ran = AtomicU64::new(0);
                let first = crew.region(vec![0u32; 6], |p, _| {
                    ran.fetch_add(1, Ordering::Relaxed);
                    if p == 2 || p == 4 {
                        Err(p)
                    } else {
                        Ok(())
                    }
                });
                // Items after the failure may be skipped, never run twice.
                assert!(ran.load(Ordering::Relaxed) <= 6);
                let then = crew.region(vec![1u32; 3], |_, x| if x == 1 { Ok(()) } else { Err(9) });
                (first, then)
            });
            // Item 4 may fail first, but item 2 is reported whenever it ran; item 2 is skipped
            // only when item 4 failed before it started.
            assert!(first == Err(2) || first == Err(4), "{first:?}");
            assert_eq!(then, Ok(()));
        }
        // In turn, the first failure ends the region.
        let r = gang(1, 1, |crew| {
            crew.region(vec![(); 6], |p, _| if p >= 2 { Err(p) } else { Ok(()) })
        });
        assert_eq!(r, Err(2));
    }

    #[test]
    fn a_panicking_item_reaches_the_caller_and_leaves_the_pool_usable() {
        for _ in 0..3 {
            let r = std::panic::catch_unwind(|| {
                gang(2, 1, |crew| {
                    crew.region(vec![0u8; 4], |p, _| {
                        if p == 1 {
                            panic!("item {p} failed");
                        }
                        Ok::<(), ()>(())
                    })
                })
            });
            assert!(r.is_err());
            // Every pool thread is back to splitting kernels, none left inside `serial`.
            let flags: Vec<bool> = on_pool(|| {
                use rayon::prelude::*;
                (0..64).into_par_iter().map(|_| parallel_ok()).collect()
            });
            assert!(flags.iter().all(|&f| f == (threads() > 1)), "{flags:?}");
        }
    }

    #[test]
    fn a_panic_in_an_item_a_helper_ran_reaches_the_leader() {
        if threads() < 2 {
            return;
        }
        // Two items, each waiting (up to 2 s) for the other to start, so that a helper that
        // comes runs one; the item a helper runs panics. Tried until a helper came (a gang that
        // ran alone, or whose helper did not come in time, raises nothing).
        let leader = std::thread::current().id();
        let mut reached = false;
        for _ in 0..20 {
            let started = AtomicUsize::new(0);
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                gang(2, 1, |crew| {
                    if crew.threads() < 2 {
                        return;
                    }
                    crew.region(vec![(); 2], |_, _| {
                        started.fetch_add(1, Ordering::SeqCst);
                        let t0 = Instant::now();
                        while started.load(Ordering::SeqCst) < 2
                            && t0.elapsed() < Duration::from_secs(2)
                        {
                            std::thread::yield_now();
                        }
                        if std::thread::current().id() != leader {
                            panic!("an item on a helper");
                        }
                        Ok::<(), ()>(())
                    })
                    .unwrap();
                })
            }));
            if let Err(p) = r {
                assert_eq!(p.downcast_ref::<&str>(), Some(&"an item on a helper"));
                reached = true;
                break;
            }
        }
        assert!(reached, "no helper ran an item in 20 gangs");
    }

    #[test]
    fn a_gang_finishes_when_no_helper_ever_comes() {
        // A pool of its own (other tests use the global one at the same time): one thread runs
        // the gang, the other blocks until the gang is done (or 20 s pass), so the helper never
        // starts and the leader must take every item itself.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let (started, done, timed_out) = (
            AtomicBool::new(false),
            AtomicBool::new(false),
            AtomicBool::new(false),
        );
        let want = chain(&Crew::new(None, 1), 20, 2, 10);
        pool.scope(|s| {
            s.spawn(|_| {
                started.store(true, Ordering::SeqCst);
                let t0 = Instant::now();
                while !done.load(Ordering::SeqCst) {
                    if t0.elapsed() > Duration::from_secs(20) {
                        timed_out.store(true, Ordering::SeqCst);
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            while !started.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            for _ in 0..3 {
                assert_eq!(gang(2, 1, |crew| chain(crew, 20, 2, 10)), want);
            }
            done.store(true, Ordering::SeqCst);
        });
        assert!(
            !timed_out.load(Ordering::SeqCst),
            "the gang waited for a blocked thread"
        );
    }
}
