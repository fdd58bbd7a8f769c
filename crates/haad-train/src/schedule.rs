//! The one learning-rate schedule: linear decay by epoch.

use serde::{Deserialize, Serialize};

/// Learning rate `start` at the first epoch, falling linearly to `end` at the last of
/// `epochs`: epoch `e` (0-based) trains at `start + (end - start) min(e, E - 1) / (E - 1)`;
/// a one-epoch run trains at `start`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearDecay {
    /// The first epoch's rate.
    pub start: f64,
    /// The last epoch's rate (equal to `start` for a constant rate).
    pub end: f64,
    /// Epochs in the run (E).
    pub epochs: usize,
}

impl LinearDecay {
    /// A constant rate.
    pub fn constant(lr: f64) -> Self {
        Self {
            start: lr,
            end: lr,
            epochs: 1,
        }
    }

    /// The rate of epoch `epoch` (0-based); past the end, the last rate.
    pub fn at(&self, epoch: usize) -> f64 {
        if self.epochs <= 1 {
            return self.start;
        }
        let f = epoch.min(self.epochs - 1) as f64 / (self.epochs - 1) as f64;
        self.start + (self.end - self.start) * f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decays_linearly_by_epoch() {
        // 1e-3 -> 1e-5 over 5 epochs: steps of 2.475e-4.
        let s = LinearDecay {
            start: 1e-3,
            end: 1e-5,
            epochs: 5,
        };
        assert_eq!(s.at(0), 1e-3);
        assert!((s.at(1) - 7.525e-4).abs() < 1e-15);
        assert!((s.at(4) - 1e-5).abs() < 1e-15);
        assert!((s.at(9) - 1e-5).abs() < 1e-15);
        assert_eq!(LinearDecay { epochs: 1, ..s }.at(0), 1e-3);
        assert_eq!(LinearDecay::constant(2e-4).at(7), 2e-4);
    }
}
