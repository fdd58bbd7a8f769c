//! A readable table and a plot of a training log.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::error::{ContrastiveError, Result};
use crate::trainer::EpochLog;

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

/// Plots the loss per epoch (and the validation score, on its own axis, when present) as SVG
/// or PNG, chosen by the file's extension.
pub fn plot_log(log: &[EpochLog], path: &Path) -> Result<()> {
    let png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if png {
        let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
        draw(log, root).map_err(|e| plot_err(path, e))
    } else {
        let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
        draw(log, root).map_err(|e| plot_err(path, e))
    }
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> ContrastiveError {
    ContrastiveError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

fn draw<DB: DrawingBackend>(
    log: &[EpochLog],
    root: DrawingArea<DB, plotters::coord::Shift>,
) -> std::result::Result<(), Box<dyn std::error::Error + 'static>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let n = log.len().max(1) as f64;
    let (lo, hi) = log.iter().fold((f64::MAX, f64::MIN), |(a, b), e| {
        (a.min(e.loss), b.max(e.loss))
    });
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let mut chart = ChartBuilder::on(&root)
        .caption("Contrastive training", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .right_y_label_area_size(56)
        .build_cartesian_2d(1.0..n, (lo - pad)..(hi + pad))?
        .set_secondary_coord(1.0..n, 0.0..1.0);
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss")
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            log.iter().map(|e| (e.epoch as f64, e.loss)),
            &BLUE,
        ))?
        .label("loss")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE));
    if log.iter().any(|e| e.validation.is_some()) {
        chart
            .configure_secondary_axes()
            .y_desc("validation AUC")
            .draw()?;
        chart
            .draw_secondary_series(LineSeries::new(
                log.iter()
                    .filter_map(|e| e.validation.map(|v| (e.epoch as f64, v))),
                &RED,
            ))?
            .label("validation AUC")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
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

    #[test]
    fn plot_writes_an_svg() {
        let path = std::env::temp_dir().join(format!("haad-loss-{}.svg", std::process::id()));
        plot_log(&log(), &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("validation AUC"));
        std::fs::remove_file(&path).ok();
    }
}
