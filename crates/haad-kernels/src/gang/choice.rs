//! Whether a gang takes helpers: each call site times both ways and takes the faster.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

/// Every this many calls a site runs the way it does not prefer, to keep that way's time
/// current (the machine's load changes).
const EXPLORE: u64 = 16;
/// The weight of a new time in a site's running mean.
const WEIGHT: f64 = 0.125;

/// A call site's mean time per unit of work with helpers (`crew`) and without (`alone`).
#[derive(Debug, Default, Clone, Copy)]
struct Times {
    crew: Option<f64>,
    alone: Option<f64>,
    calls: u64,
}

impl Times {
    /// Whether the next call takes helpers: the first call does, the second does not, then the
    /// faster way, but every [`EXPLORE`]th call the other.
    fn helpers(&self) -> bool {
        match (self.crew, self.alone) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(c), Some(a)) => (c <= a) != (self.calls % EXPLORE == EXPLORE - 1),
        }
    }

    fn record(&mut self, helpers: bool, per_work: f64) {
        let mean = if helpers {
            &mut self.crew
        } else {
            &mut self.alone
        };
        *mean = Some(mean.map_or(per_work, |m| m + WEIGHT * (per_work - m)));
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

/// Records a gang's time `took` for `work` (at least 1) at `site`.
pub(super) fn record(site: &'static Location<'static>, helpers: bool, took: Duration, work: usize) {
    let per_work = took.as_secs_f64() / work.max(1) as f64;
    sites().entry(site).or_default().record(helpers, per_work);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_are_timed_then_the_faster_is_kept_and_the_other_retried() {
        let mut t = Times::default();
        assert!(t.helpers(), "first call: helpers");
        t.record(true, 1.0);
        assert!(!t.helpers(), "second call: alone");
        t.record(false, 2.0);
        // Helpers twice as fast: kept, but every 16th call runs alone.
        let mut alone_calls = Vec::new();
        for _ in 0..46 {
            let h = t.helpers();
            if !h {
                alone_calls.push(t.calls);
            }
            t.record(h, if h { 1.0 } else { 2.0 });
        }
        assert_eq!(alone_calls, [15, 31, 47]);
        // The machine gets busy: helpers now cost 4 a unit. Their mean moves by 1/8 of each
        // new time: 1.375, 1.703, 1.990, then 2.241 > 2, so the fifth call runs alone, and
        // alone stays chosen but for one retry of helpers (call 63).
        let mut choices = Vec::new();
        for _ in 0..20 {
            let h = t.helpers();
            choices.push(h);
            t.record(h, if h { 4.0 } else { 2.0 });
        }
        let switched = choices.iter().position(|&h| !h).expect("switches to alone");
        assert_eq!(switched, 4, "{choices:?}");
        assert_eq!(
            choices[switched..].iter().filter(|&&h| h).count(),
            1,
            "one retry of helpers in 16 calls: {choices:?}"
        );
    }
}
