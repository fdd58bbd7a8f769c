//! Whether a [`gang`](super::gang) takes helpers: each call site times both ways and takes the
//! faster. Helpers lose where another process holds the other cores: an item a descheduled
//! helper took holds up its region, and a third runnable thread slows the leader.
//!
//! Tried on [`crate::split_batch`] too (the diffusion step's and the sampler's parts) and left
//! out: with the other core busy `train_diffusion` (20 steps) was as fast with it as without
//! (1.016 / 0.994 against one thread), and idle the first calls' tries of both ways made it
//! 1.12x slower than without.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

/// While a site prefers running alone, every this many calls it tries helpers again: another
/// process may have left their cores (a try costs about the helpers' loss, a tenth or two).
const RETRY_HELPERS: u64 = 16;
/// While a site prefers helpers, every this many calls it runs alone to keep that time
/// current. Rarely: alone needs one core, so its time hardly moves with the machine's load
/// (helpers' own times show a busy machine at once), and each such call costs what helpers
/// gain, half the time at two threads.
const RETRY_ALONE: u64 = 128;
/// The times a way keeps: its last few, whose median it goes by (one slow call, another
/// guest's stolen time say, does not flip a choice).
const KEPT: usize = 5;

/// The kept times each way needs before the two are compared.
const FIRST: usize = 3;

/// One way's times per unit of work at a call site.
#[derive(Debug, Default, Clone, Copy)]
struct Way {
    /// Whether the way ran once: its first call fills buffers and caches and is not kept.
    warm: bool,
    last: [f64; KEPT],
    n: usize,
}

impl Way {
    fn record(&mut self, per_work: f64) {
        if !self.warm {
            self.warm = true;
            return;
        }
        self.last[self.n % KEPT] = per_work;
        self.n += 1;
    }

    /// Calls recorded, the cold one too.
    fn runs(&self) -> usize {
        self.n + usize::from(self.warm)
    }

    /// The median of the kept times (the mean of the middle two of an even count).
    fn median(&self) -> Option<f64> {
        let k = self.n.min(KEPT);
        if k == 0 {
            return None;
        }
        let mut v = self.last;
        let v = &mut v[..k];
        v.sort_by(f64::total_cmp);
        Some((v[(k - 1) / 2] + v[k / 2]) / 2.0)
    }
}

/// A call site's times with helpers (`crew`) and without (`alone`).
#[derive(Debug, Default, Clone, Copy)]
struct Times {
    crew: Way,
    alone: Way,
    calls: u64,
}

impl Times {
    /// Whether the next call takes helpers: the two ways in turn, helpers first, until each has
    /// [`FIRST`] kept times (the first calls also grow buffers and caches); then the faster
    /// way, but every [`RETRY_HELPERS`]th / [`RETRY_ALONE`]th call the other.
    fn helpers(&self) -> bool {
        if self.crew.n.min(self.alone.n) < FIRST {
            return self.crew.runs() <= self.alone.runs();
        }
        let every = |n: u64| self.calls % n == n - 1;
        match (self.crew.median(), self.alone.median()) {
            (Some(c), Some(a)) if c <= a => !every(RETRY_ALONE),
            _ => every(RETRY_HELPERS),
        }
    }

    fn record(&mut self, helpers: bool, per_work: f64) {
        if helpers {
            self.crew.record(per_work)
        } else {
            self.alone.record(per_work)
        }
        self.calls += 1;
    }
}

type Sites = HashMap<&'static Location<'static>, Times>;

static SITES: LazyLock<Mutex<Sites>> = LazyLock::new(Mutex::default);

fn sites() -> std::sync::MutexGuard<'static, Sites> {
    SITES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether the gang called at `site` takes helpers this time.
pub(super) fn helpers(site: &'static Location<'static>) -> bool {
    sites().get(site).is_none_or(Times::helpers)
}

/// Records a gang's time `took` for `work` (at least 1) at `site`, with helpers or not.
pub(super) fn record(site: &'static Location<'static>, helpers: bool, took: Duration, work: usize) {
    let per_work = took.as_secs_f64() / work.max(1) as f64;
    sites().entry(site).or_default().record(helpers, per_work);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `calls` calls of `t`, helpers taking `crew` a unit and alone `alone`; the call
    /// numbers that took the way other than `usual`.
    fn run(t: &mut Times, calls: usize, crew: f64, alone: f64, usual: bool) -> Vec<u64> {
        let mut other = Vec::new();
        for _ in 0..calls {
            let h = t.helpers();
            if h != usual {
                other.push(t.calls);
            }
            t.record(h, if h { crew } else { alone });
        }
        other
    }

    #[test]
    fn both_ways_are_timed_then_the_faster_is_kept_and_the_other_retried() {
        let mut t = Times::default();
        // The two ways in turn until each has three kept times; each way's first (cold) call
        // is not kept.
        let mut first = Vec::new();
        for time in [100.0, 100.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0] {
            let h = t.helpers();
            first.push(h);
            t.record(h, time);
        }
        assert_eq!(first, [true, false, true, false, true, false, true, false]);
        assert_eq!((t.crew.median(), t.alone.median()), (Some(1.0), Some(2.0)));
        // Helpers twice as fast: kept, but every 128th call runs alone.
        assert_eq!(run(&mut t, 292, 1.0, 2.0, true), [127, 255]);
        // One slow call with helpers (another guest's stolen time) changes nothing.
        t.record(true, 60.0);
        assert_eq!(t.crew.median(), Some(1.0));
        assert_eq!(run(&mut t, 3, 1.0, 2.0, true), Vec::<u64>::new());
        // The machine gets busy: helpers now cost 4 a unit. Once three of their last five
        // times are 4 (calls 304-306) the median is 4 > 2: from call 307 alone, but for one
        // retry of helpers in 16 calls (call 319).
        assert_eq!(t.calls, 304);
        let mut choices = Vec::new();
        for _ in 0..30 {
            let h = t.helpers();
            choices.push(h);
            t.record(h, if h { 4.0 } else { 2.0 });
        }
        let switched = 304 + choices.iter().position(|&h| !h).expect("switches to alone") as u64;
        assert_eq!(switched, 307);
        let retries: Vec<u64> = (0u64..)
            .zip(&choices)
            .filter(|&(c, &h)| 304 + c > switched && h)
            .map(|(c, _)| 304 + c)
            .collect();
        assert_eq!(retries, [319], "{choices:?}");
        // The other process leaves: helpers' retries (calls 335, 351, 367) find 1 a unit; after
        // the third their median is 1 < 2 and they are kept again from call 368.
        assert_eq!(t.calls, 334);
        let alone_calls = run(&mut t, 100, 1.0, 2.0, true);
        assert_eq!(alone_calls.iter().filter(|&&c| c < 368).count(), 34 - 3);
        assert_eq!(alone_calls.last(), Some(&383), "the retry of alone at 383");
    }

    #[test]
    fn medians_of_the_kept_times() {
        let mut w = Way::default();
        assert_eq!(w.median(), None);
        for (x, want) in [
            (9.0, None),
            (3.0, Some(3.0)),
            (1.0, Some(2.0)),
            (2.0, Some(2.0)),
        ] {
            w.record(x);
            assert_eq!(w.median(), want, "after {x}");
        }
        // Only the last five are kept: 1, 2, 7, 8, 9 after 3, 1, 2, 7, 8, 9.
        for x in [7.0, 8.0, 9.0] {
            w.record(x);
        }
        assert_eq!(w.median(), Some(7.0));
    }
}
