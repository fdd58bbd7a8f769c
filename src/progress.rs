//! [`Bar`]: an `indicatif` progress bar on stderr implementing `haad_motion::Progress`, for the
//! examples and the experiments (the libraries only know the trait).

use haad_motion::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on stderr, or nothing when hidden.
#[derive(Debug, Clone)]
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar counting `what` (e.g. "steps"), drawn on stderr.
    pub fn new(what: &str) -> Self {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {what}, eta {{eta}} {{msg}}"
        )) {
            bar.set_style(style);
        }
        Self(bar)
    }

    /// A bar that draws nothing.
    pub fn hidden() -> Self {
        Self(ProgressBar::hidden())
    }

    /// [`Bar::new`] when `show`, else [`Bar::hidden`].
    pub fn shown(show: bool, what: &str) -> Self {
        if show {
            Self::new(what)
        } else {
            Self::hidden()
        }
    }

    /// Units done so far.
    pub fn position(&self) -> u64 {
        self.0.position()
    }
}

impl Progress for Bar {
    fn start(&self, total: u64, done: u64) {
        self.0.set_length(total);
        self.0.set_position(done);
        self.0.reset_eta();
    }

    fn advance(&self, n: u64) {
        self.0.inc(n);
    }

    fn message(&self, message: &str) {
        self.0.set_message(message.to_string());
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_bar_still_counts() {
        let b = Bar::hidden();
        let p: &dyn Progress = &b;
        p.start(10, 3);
        p.advance(2);
        assert_eq!(b.position(), 5);
    }
}
