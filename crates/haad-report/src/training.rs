//! The figure of a training log: loss per epoch, and the validation score when present.

use std::path::Path;

use haad_contrastive::EpochLog;
use plotters::prelude::*;

use crate::error::{ReportError, Result};
use crate::svg::{write_svg, Canvas, DrawResult};

/// Plots a training log's loss per epoch (and the validation score, on its own axis, when
/// present) as SVG.
pub fn plot_log(log: &[EpochLog], path: &Path) -> Result<()> {
    crate::check_figure_path(path)?;
    if log.is_empty() {
        return Err(ReportError::input("training log", "has no epoch to plot"));
    }
    if log
        .iter()
        .any(|e| !e.loss.is_finite() || e.validation.is_some_and(|v| !v.is_finite()))
    {
        return Err(ReportError::input(
            "training log",
            "losses and validation scores must be finite",
        ));
    }
    write_svg(path, (900, 500), |root| draw(log, root))
}

fn draw(log: &[EpochLog], root: Canvas<'_>) -> DrawResult {
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
    fn plot_writes_an_svg_and_refuses_png_and_nan() {
        let dir = std::env::temp_dir().join(format!("haad-report-loss-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("loss.svg");
        plot_log(&log(), &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("validation AUC"));
        assert!(matches!(
            plot_log(&log(), &dir.join("loss.png")),
            Err(ReportError::Format { .. })
        ));
        let mut bad = log();
        bad[3].loss = f64::NAN;
        assert!(matches!(
            plot_log(&bad, &dir.join("nan.svg")),
            Err(ReportError::Input { .. })
        ));
        assert!(matches!(
            plot_log(&[], &dir.join("empty.svg")),
            Err(ReportError::Input { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
