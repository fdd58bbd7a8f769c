//! [`Progress`]: how long work (training, evaluation, generating variants) reports how far it
//! got, without the libraries depending on a terminal crate. [`NoProgress`] ignores everything;
//! the examples use an `indicatif` bar (`haad::progress`).

/// A receiver of progress reports. Every method has a do-nothing default.
///
/// A run calls [`start`](Progress::start) with the total amount of work (steps, clips,
/// chunks), then [`advance`](Progress::advance) as units finish, and
/// [`finish`](Progress::finish) at the end.
pub trait Progress: Send + Sync {
    /// Work of `total` units begins; `done` of them are already done (a resumed run).
    fn start(&self, total: u64, done: u64) {
        let _ = (total, done);
    }
    /// `n` more units are done.
    fn advance(&self, n: u64) {
        let _ = n;
    }
    /// A short status line (epoch, loss).
    fn message(&self, message: &str) {
        let _ = message;
    }
    /// The work is over.
    fn finish(&self) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Record(Mutex<Vec<String>>);

    impl Progress for Record {
        fn start(&self, total: u64, done: u64) {
            self.0.lock().unwrap().push(format!("start {total} {done}"));
        }
        fn advance(&self, n: u64) {
            self.0.lock().unwrap().push(format!("advance {n}"));
        }
    }

    #[test]
    fn defaults_do_nothing_and_overrides_are_called() {
        let p: &dyn Progress = &NoProgress;
        p.start(3, 0);
        p.advance(1);
        p.message("x");
        p.finish();
        let r = Record::default();
        let d: &dyn Progress = &r;
        d.start(4, 1);
        d.advance(2);
        d.message("ignored by default");
        d.finish();
        assert_eq!(*r.0.lock().unwrap(), vec!["start 4 1", "advance 2"]);
    }
}
