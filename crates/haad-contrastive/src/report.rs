//! A readable table of a training log (its figure is drawn by `haad-report`).

use crate::trainer::EpochLog;
use std::fmt::Write as _;

/// A table of the log: every `every`-th epoch and the last, with loss, learning rate, wall time
/// and validation score.
pub fn format_log_table(log: &[EpochLog], every: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>6} {:>10} {:>10} {:>9} {:>10}",
        "epoch", "loss", "lr", "time s", "val AUC"
    );
    let every = every.max(1);
    for (i, e) in log.iter().enumerate() {
        if (e.epoch % every == 0) || e.epoch == 1 || i + 1 == log.len() {
            let val = e.validation.map_or("-".to_string(), |v| format!("{v:.4}"));
            let _ = writeln!(
                s,
                "{:>6} {:>10.4} {:>10.2e} {:>9.2} {:>10}",
                e.epoch, e.loss, e.learning_rate, e.wall_seconds, val
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> Vec<EpochLog> {
        (1..=12)
            .map(|e| EpochLog {
                epoch: e,
                loss: 3.0 / e as f64,
                learning_rate: 1e-3,
                steps: 4,
                wall_seconds: 0.5,
                validation: Some(0.5 + e as f64 / 30.0),
            })
            .collect()
    }

    #[test]
    fn table_keeps_first_every_nth_and_last() {
        let t = format_log_table(&log(), 5);
        let epochs: Vec<&str> = t
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(epochs, vec!["1", "5", "10", "12"]);
        assert!(t.contains("0.2500"), "{t}"); // epoch 12: loss 3/12
    }
}
