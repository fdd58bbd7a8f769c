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

/// While a site prefers running alone it tries helpers again after this many calls, and after
/// twice as many each time a try loses, up to [`RETRY_HELPERS_MAX`]: another process may have
/// left their cores. A try that wins is followed by another at the next call, so helpers are
/// back within a few calls of the machine going idle. A try after a wait is two calls, and only
/// the second is judged (see [`Times::warming`]).
///
/// Measured on two cores with another process on one (`train_encoder`, 360 passes a site): a
/// try costs about 2 ms against a pass of 3.5-6.5 ms alone, a quarter of the tries take 1.5-3x,
/// and with a try every 16th call (45 helper passes a site with the switches they caused) two
/// threads were 1.09x one thread's time, against 1.01x with helpers turned off.
const RETRY_HELPERS: u64 = 16;
/// The longest wait between two tries of helpers.
const RETRY_HELPERS_MAX: u64 = 256;
/// While a site prefers helpers it runs alone again after this many calls, and after twice as
/// many each time alone loses, up to [`RETRY_ALONE`]; a run alone that wins is followed by
/// another at the next call. Alone's kept times can be stale: a busy spell that slowed the
/// calls alone (another process on the leader's core for a moment) hands the site to helpers,
/// and alone, its median still the spell's, was not timed again for 128 calls, then needed
/// three such calls to move its median. Measured with the other core busy (`train_encoder`,
/// 360 passes a site, trace of each call): alone took 2.1-2.4 ms a forward pass, 2.7-3.8 ms
/// for eight calls, then the site took helpers, 3.1 ms a pass (median), for the last 126 calls
/// of the run.
const RETRY_ALONE_FIRST: u64 = 16;
/// The longest wait between two runs alone while helpers are preferred. Rarely: alone needs
/// one core, so its time seldom moves with the machine's load (helpers' own times show a busy
/// machine at once), and each such call costs what helpers gain, half the time at two threads.
const RETRY_ALONE: u64 = 128;
/// The times a way keeps: its last few, whose median it goes by (one slow call, another
/// guest's stolen time say, does not flip a choice).
const KEPT: usize = 5;

/// The kept times each way needs before the two are compared.
const FIRST: usize = 3;

/// How much faster the other way must be to be taken instead (its median against the current
/// way's), and a try of helpers to count as a win: a twentieth. With the other core busy the
/// two medians lie within a tenth of each other, and without the margin noise switched back and
/// forth.
const MARGIN: f64 = 0.05;

/// What helpers must save of the leader's time to count as faster: their times are compared
/// as if this much longer (divided by `1 - GAIN`). A gang with helpers costs more than its
/// leader's time shows: the helpers' cores, and, with another process on those cores, the
/// pool's threads spinning and yielding after each such pass, which slows the leader's next
/// ones. Measured with the other core busy (`train_encoder`, 100 epochs, 1,200 passes a
/// site): helpers' medians within 3 % of alone's, so they were taken half the time, and two
/// threads were 1.04x one thread's time, against 1.01x with helpers turned off. Idle, helpers
/// took 0.6x alone's time, and 0.75-0.85x in hours when the machine's host was busier.
const GAIN: f64 = 0.1;

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

/// Whether `x` is at least [`MARGIN`] below `than`.
fn beats(x: f64, than: f64) -> bool {
    x < than * (1.0 - MARGIN)
}

/// A time with helpers as it is compared with one alone (see [`GAIN`]).
fn weighed(crew: f64) -> f64 {
    crew / (1.0 - GAIN)
}

/// A call site's times with helpers (`crew`) and without (`alone`), and its current choice.
#[derive(Debug, Clone, Copy)]
struct Times {
    crew: Way,
    alone: Way,
    /// The way taken (`None` while both are being timed in turn).
    prefer_helpers: Option<bool>,
    /// Calls since the other way last ran (or since the choice last changed).
    since: u64,
    /// The calls to wait before the way not preferred runs again: a try of helpers while alone
    /// is preferred, a call alone while helpers are.
    wait: u64,
    /// While alone is preferred: the first call of a try of helpers ran and its time was not
    /// kept; the next call takes helpers too and is the one judged. Helpers that sat idle for
    /// a wait start cold: on a host that shares its cores with other guests, the idle thread's
    /// core may have gone to another guest. Measured on the 2-core machine in such an hour:
    /// such tries took 2-3x alone's time (32-45 ms a backward pass against 15-16 ms alone, and
    /// 9-10 ms with helpers that ran the call before), so alone, once chosen, was kept for
    /// good while helpers were 1.5x faster.
    warming: bool,
}

impl Default for Times {
    fn default() -> Self {
        Self {
            crew: Way::default(),
            alone: Way::default(),
            prefer_helpers: None,
            since: 0,
            wait: RETRY_HELPERS,
            warming: false,
        }
    }
}

impl Times {
    /// Whether the next call takes helpers: the two ways in turn, helpers first, until each has
    /// [`FIRST`] kept times (the first calls also grow buffers and caches); then the faster
    /// way, with a try of the other now and then ([`RETRY_HELPERS`], [`RETRY_ALONE`]).
    fn helpers(&self) -> bool {
        match self.prefer_helpers {
            None => self.crew.runs() <= self.alone.runs(),
            Some(true) => self.since + 1 < self.wait,
            Some(false) => self.warming || self.since + 1 >= self.wait,
        }
    }

    fn record(&mut self, helpers: bool, per_work: f64) {
        let Some(prefer) = self.prefer_helpers else {
            self.way(helpers).record(per_work);
            if let (Some(c), Some(a)) = self.medians() {
                if self.crew.n.min(self.alone.n) >= FIRST {
                    self.choose(c <= a);
                }
            }
            return;
        };
        if helpers && !prefer && !self.warming && self.wait > 1 {
            // The first call of a try after a wait: not kept (see `warming`).
            self.warming = true;
            self.since = 0;
            return;
        }
        self.warming = false;
        self.way(helpers).record(per_work);
        self.since += 1;
        let (c, a) = self.medians();
        if helpers != prefer {
            // A run of the way not preferred wins if it beats the preferred way's median, both
            // compared as the medians are (helpers' times weighed).
            let (this, preferred) = if helpers {
                (weighed(per_work), a)
            } else {
                (per_work, c)
            };
            let won = preferred.is_some_and(|m| beats(this, m));
            let (first, most) = retries(prefer);
            self.since = 0;
            self.wait = if won {
                1
            } else {
                (self.wait * 2).clamp(first, most)
            };
        }
        if let (Some(c), Some(a)) = (c, a) {
            let (current, other) = if prefer { (c, a) } else { (a, c) };
            if beats(other, current) {
                self.choose(!prefer);
            }
        }
    }

    /// The times of the way with helpers or of the one without.
    fn way(&mut self, helpers: bool) -> &mut Way {
        if helpers {
            &mut self.crew
        } else {
            &mut self.alone
        }
    }

    /// The two ways' medians, helpers' [`weighed`].
    fn medians(&self) -> (Option<f64>, Option<f64>) {
        (self.crew.median().map(weighed), self.alone.median())
    }

    fn choose(&mut self, helpers: bool) {
        self.prefer_helpers = Some(helpers);
        self.since = 0;
        self.wait = retries(helpers).0;
        self.warming = false;
    }
}

/// The first and the longest wait before the way not preferred runs again, when helpers are
/// preferred (`prefer_helpers`) or alone is.
fn retries(prefer_helpers: bool) -> (u64, u64) {
    if prefer_helpers {
        (RETRY_ALONE_FIRST, RETRY_ALONE)
    } else {
        (RETRY_HELPERS, RETRY_HELPERS_MAX)
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

    /// A call site and a count of its calls.
    struct Site {
        t: Times,
        calls: u64,
    }

    impl Site {
        /// Runs `calls` calls, helpers taking `crew` a unit and alone `alone`; the call numbers
        /// that took helpers (`which == true`) or ran alone.
        fn run(&mut self, calls: u64, crew: f64, alone: f64, which: bool) -> Vec<u64> {
            let mut took = Vec::new();
            for _ in 0..calls {
                let h = self.t.helpers();
                if h == which {
                    took.push(self.calls);
                }
                self.t.record(h, if h { crew } else { alone });
                self.calls += 1;
            }
            took
        }
    }

    #[test]
    fn both_ways_are_timed_then_the_faster_is_kept_and_the_other_retried() {
        let mut s = Site {
            t: Times::default(),
            calls: 0,
        };
        // The two ways in turn until each has three kept times; each way's first (cold) call
        // is not kept.
        let mut first = Vec::new();
        for time in [100.0, 100.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0] {
            let h = s.t.helpers();
            first.push(h);
            s.t.record(h, time);
            s.calls += 1;
        }
        assert_eq!(first, [true, false, true, false, true, false, true, false]);
        assert_eq!(
            (s.t.crew.median(), s.t.alone.median()),
            (Some(1.0), Some(2.0))
        );
        // Helpers twice as fast: kept (chosen at call 7). Alone runs 16 calls after the choice
        // (23), and, losing each time, 32 (55), 64 (119) and 128 (247) calls after the last.
        assert_eq!(s.run(292, 1.0, 2.0, false), [23, 55, 119, 247]);
        // One slow call with helpers (another guest's stolen time) changes nothing.
        s.t.record(true, 60.0);
        s.calls += 1;
        assert_eq!(s.t.crew.median(), Some(1.0));
        assert_eq!(s.run(3, 1.0, 2.0, false), Vec::<u64>::new());
        // The machine gets busy: helpers now cost 4 a unit. Their last five times are
        // 60, 1, 1, 1, 4 after call 304; 1, 1, 1, 4, 4 after 305; 1, 1, 4, 4, 4 after 306:
        // median 4, and 2 < 4 * 0.95, so alone from call 307.
        assert_eq!(s.calls, 304);
        let busy = s.run(296, 4.0, 2.0, true);
        // Tries of helpers after 16 calls (322), then 32 (355), 64 (420), 128 (549), each two
        // calls whose second is judged: each lost.
        assert_eq!(
            busy,
            [304, 305, 306, 322, 323, 355, 356, 420, 421, 549, 550]
        );
        // The other process leaves at call 600. The next try is 256 calls after the last
        // (806, not kept, then 807); it wins (1 < 2 * 0.95), so helpers are tried again at
        // 808 and 809; after 809 their last five are 4, 4, 1, 1, 1: median 1, helpers kept
        // from 810, alone again 16 calls after that choice (825), then 32 (857) and 64 (921)
        // calls after the last.
        let alone = s.run(350, 1.0, 2.0, false);
        assert_eq!(alone.len(), 206 + 3);
        assert_eq!((alone[0], alone[205]), (600, 805));
        assert_eq!(alone[206..], [825, 857, 921]);
    }

    #[test]
    fn helpers_are_taken_only_when_clearly_faster() {
        let mut s = Site {
            t: Times::default(),
            calls: 0,
        };
        // A twentieth faster with helpers (1.9 against 2): 1.9 / 0.9 = 2.11 > 2, so alone
        // after the first eight calls (helpers at 0, 2, 4, 6), with tries after 16 and 32
        // calls, two calls each.
        assert_eq!(s.run(60, 1.9, 2.0, true), [0, 2, 4, 6, 23, 24, 56, 57]);
        // A quarter faster (1.5): the next try (calls 57 + 64 = 121, then 122) wins, 1.5 / 0.9
        // = 1.67 < 2 * 0.95; so do 123 and 124, after which helpers' last five are 1.9, 1.9,
        // 1.5, 1.5, 1.5 (median 1.5): helpers from call 125 on, alone once 16 calls after the
        // choice at 124 (140: it loses, 2 > 1.67 * 0.95).
        let alone = s.run(100, 1.5, 2.0, false);
        assert_eq!(alone.len(), 121 - 60 + 1);
        assert_eq!(alone[alone.len() - 2..], [120, 140]);
        assert_eq!(s.t.prefer_helpers, Some(true));
    }

    /// A site that prefers alone, its kept times all `crew` with helpers and `alone` without,
    /// with `wait` calls to wait before the next try of helpers.
    fn alone_preferred(crew: f64, alone: f64, wait: u64) -> Times {
        let mut t = Times::default();
        for _ in 0..KEPT + 1 {
            t.crew.record(crew);
            t.alone.record(alone);
        }
        t.prefer_helpers = Some(false);
        t.wait = wait;
        t
    }

    #[test]
    fn a_winning_try_is_checked_at_the_next_call_and_a_loss_waits_again() {
        let mut t = alone_preferred(4.0, 2.0, 64);
        t.since = 63;
        assert!(t.helpers());
        // The try's first call is not kept, however slow: the next call takes helpers too.
        t.record(true, 100.0);
        assert_eq!(t.crew.median(), Some(4.0));
        assert!(t.helpers());
        // A lucky try (1 < 2 * 0.95): the next call tries again, and is judged at once.
        t.record(true, 1.0);
        assert!(t.helpers());
        // It loses: the wait is back to 16 (twice 1, at least 16), so 15 calls alone first.
        t.record(true, 4.0);
        let mut alone = 0;
        while !t.helpers() {
            t.record(false, 2.0);
            alone += 1;
        }
        assert_eq!(alone, 15);
        // Still alone: the last five with helpers are 4, 4, 4, 1, 4 (median 4).
        assert_eq!(t.prefer_helpers, Some(false));
        // The next try starts with a call that is not kept.
        t.record(true, 1.0);
        assert_eq!(t.crew.median(), Some(4.0));
        assert!(t.warming && t.helpers());
    }

    #[test]
    fn a_spell_that_slowed_alone_hands_back_to_alone_soon_after_it_ends() {
        let mut t = alone_preferred(3.0, 2.0, RETRY_HELPERS_MAX);
        // A spell: alone takes 4. After three such calls alone's last five are 2, 2, 4, 4, 4
        // (median 4), and helpers' 3 / 0.9 = 3.33 < 4 * 0.95: helpers from the next call.
        for _ in 0..3 {
            assert!(!t.helpers());
            t.record(false, 4.0);
        }
        assert_eq!(t.prefer_helpers, Some(true));
        // The spell ends: alone takes 2 again, helpers 3. Alone runs 16 calls after the choice
        // and wins (2 < 3.33 * 0.95), so it runs again at the next call, and again; after
        // those three alone's last five are 4, 4, 2, 2, 2 (median 2): alone is chosen back.
        // Before, alone ran only every 128th call, and its median needed three such calls
        // to move: 381 calls with helpers, at 1.5 times alone's time, before alone was back.
        let mut calls = Vec::new();
        for _ in 0..40 {
            let h = t.helpers();
            calls.push(h);
            t.record(h, if h { 3.0 } else { 2.0 });
            if t.prefer_helpers == Some(false) {
                break;
            }
        }
        let mut want = vec![true; 15];
        want.extend([false; 3]);
        assert_eq!(calls, want);
        assert_eq!(t.alone.median(), Some(2.0));
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
