//! Figures of experiments: grouped bars with whiskers, lines with error bars, strips of
//! anomaly scores per category, and 2-D scatter maps (of [`crate::pca_2d`] or [`crate::tsne_2d`]
//! projections). All are SVG ([`crate::check_figure_path`]).

use std::path::Path;

use ndarray::ArrayView2;
use plotters::prelude::*;

use crate::error::{ReportError, Result};
use crate::svg::{write_svg, Canvas, DrawResult};

/// One series of a bar or line figure: a label and, per x position, a mean and a spread
/// (drawn as +- whiskers; 0 draws none).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// `(mean, std)` per group (bars) or per x value (lines).
    pub values: Vec<(f64, f64)>,
}

/// A qualitative palette (matplotlib's tab10), cycled.
pub fn color(i: usize) -> RGBColor {
    const TAB10: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = TAB10[i % TAB10.len()];
    RGBColor(r, g, b)
}

fn check_series(series: &[Series], n: usize, what: &str) -> Result<()> {
    if series.is_empty() || n == 0 {
        return Err(ReportError::input(what, "nothing to plot"));
    }
    for s in series {
        if s.values.len() != n {
            return Err(ReportError::input(
                format!("{what} series {:?}", s.label),
                format!("needs {n} values, has {}", s.values.len()),
            ));
        }
        if s.values
            .iter()
            .any(|(m, d)| !m.is_finite() || !d.is_finite())
        {
            return Err(ReportError::input(
                format!("{what} series {:?}", s.label),
                "values must be finite",
            ));
        }
    }
    Ok(())
}

/// Grouped bars: one group per entry of `groups` (labels written rotated below), one bar per
/// series in each group, on a y axis from 0 to `y_max`.
pub fn plot_bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[Series],
    y_max: f64,
) -> Result<()> {
    crate::check_figure_path(path)?;
    check_series(series, groups.len(), "bar")?;
    if !(y_max.is_finite() && y_max > 0.0) {
        return Err(ReportError::input(
            "bar y_max",
            format!("must be finite and > 0, is {y_max}"),
        ));
    }
    let width = (160 + (12 + 14 * series.len() as u32) * groups.len() as u32).max(640);
    write_svg(path, (width, 480), |root| {
        draw_bars(root, title, y_desc, groups, series, y_max)
    })
}

fn draw_bars(
    root: Canvas<'_>,
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[Series],
    y_max: f64,
) -> DrawResult {
    root.fill(&WHITE)?;
    let n = groups.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(110)
        .y_label_area_size(50)
        // Head room (a legend row per series) keeps the legend clear of the bars.
        .build_cartesian_2d(
            0.0..n as f64,
            0.0..y_max * (1.1 + 0.08 * series.len() as f64),
        )?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(y_desc)
        .draw()?;
    let at: Vec<(i32, i32)> = (0..n)
        .map(|i| chart.backend_coord(&(i as f64 + 0.5, 0.0)))
        .collect();
    column_labels(&root, groups, &at)?;
    let bar_w = 0.8 / series.len() as f64;
    for (g, s) in series.iter().enumerate() {
        let c = color(g);
        let left = |i: usize| i as f64 + 0.1 + g as f64 * bar_w;
        chart
            .draw_series(s.values.iter().enumerate().map(|(i, &(m, _))| {
                Rectangle::new([(left(i), 0.0), (left(i) + bar_w, m)], c.filled())
            }))?
            .label(s.label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
        chart.draw_series(
            s.values
                .iter()
                .enumerate()
                .filter(|(_, &(_, d))| d > 0.0)
                .map(|(i, &(m, d))| {
                    let mid = left(i) + bar_w / 2.0;
                    PathElement::new(
                        vec![(mid, (m - d).max(0.0)), (mid, (m + d).min(y_max))],
                        BLACK.stroke_width(1),
                    )
                }),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Writes `names[i]` rotated, just below the x axis at backend point `at[i]`.
fn column_labels(root: &Canvas<'_>, names: &[String], at: &[(i32, i32)]) -> DrawResult {
    let style = ("sans-serif", 12)
        .into_font()
        .transform(FontTransform::Rotate90)
        .color(&BLACK);
    for (name, &(x, y)) in names.iter().zip(at) {
        root.draw(&Text::new(name.clone(), (x + 4, y + 6), style.clone()))?;
    }
    Ok(())
}

/// Lines with markers and +- whiskers: series `s` has `s.values[i]` at `xs[i]`.
pub fn plot_lines(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    xs: &[f64],
    series: &[Series],
) -> Result<()> {
    crate::check_figure_path(path)?;
    check_series(series, xs.len(), "line")?;
    if xs.iter().any(|x| !x.is_finite()) {
        return Err(ReportError::input("line x values", "must be finite"));
    }
    write_svg(path, (720, 480), |root| {
        draw_lines(root, title, x_desc, y_desc, xs, series)
    })
}

fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let pad = ((hi - lo) * 0.08).max(1e-3);
    (lo - pad, hi + pad)
}

fn draw_lines(
    root: Canvas<'_>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    xs: &[f64],
    series: &[Series],
) -> DrawResult {
    root.fill(&WHITE)?;
    let (x0, x1) = span(xs.iter().copied());
    let (y0, y1) = span(
        series
            .iter()
            .flat_map(|s| s.values.iter().flat_map(|&(m, d)| [m - d, m + d])),
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    for (g, s) in series.iter().enumerate() {
        let c = color(g);
        let pts: Vec<(f64, f64)> = xs
            .iter()
            .zip(&s.values)
            .map(|(&x, &(m, _))| (x, m))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
        chart.draw_series(xs.iter().zip(&s.values).filter(|(_, &(_, d))| d > 0.0).map(
            |(&x, &(m, d))| PathElement::new(vec![(x, m - d), (x, m + d)], c.stroke_width(1)),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// A strip plot: the values of each category as dots in a column (spread sideways by a fixed
/// pattern so that equal values stay visible), the `highlight` category in colour, the others
/// grey, each column's median as a bar.
pub fn plot_strips(
    path: &Path,
    title: &str,
    y_desc: &str,
    categories: &[String],
    values: &[Vec<f32>],
    highlight: Option<usize>,
) -> Result<()> {
    crate::check_figure_path(path)?;
    if categories.is_empty() || categories.len() != values.len() {
        return Err(ReportError::input(
            "strip plot",
            format!(
                "needs one value list per category and at least one category, has {} categories and {} lists",
                categories.len(),
                values.len()
            ),
        ));
    }
    if values.iter().flatten().any(|v| !v.is_finite()) || values.iter().all(|v| v.is_empty()) {
        return Err(ReportError::input(
            "strip plot values",
            "must be finite and not all empty",
        ));
    }
    let width = (160 + 40 * categories.len() as u32).max(640);
    write_svg(path, (width, 480), |root| {
        draw_strips(root, title, y_desc, categories, values, highlight)
    })
}

fn draw_strips(
    root: Canvas<'_>,
    title: &str,
    y_desc: &str,
    categories: &[String],
    values: &[Vec<f32>],
    highlight: Option<usize>,
) -> DrawResult {
    root.fill(&WHITE)?;
    let n = categories.len();
    let (y0, y1) = span(values.iter().flatten().map(|&v| v as f64));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(110)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..n as f64, y0..y1)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(y_desc)
        .draw()?;
    let at: Vec<(i32, i32)> = (0..n)
        .map(|i| chart.backend_coord(&(i as f64 + 0.5, y0)))
        .collect();
    column_labels(&root, categories, &at)?;
    for (i, vals) in values.iter().enumerate() {
        let c = if Some(i) == highlight {
            color(3)
        } else {
            RGBColor(120, 120, 120)
        };
        chart.draw_series(vals.iter().enumerate().map(|(k, &v)| {
            // A deterministic spread over [-0.3, 0.3] (golden-ratio sequence).
            let dx = ((k as f64 * 0.618_034) % 1.0 - 0.5) * 0.6;
            Circle::new((i as f64 + 0.5 + dx, v as f64), 3, c.mix(0.7).filled())
        }))?;
        if !vals.is_empty() {
            let mut sorted = vals.clone();
            sorted.sort_by(f32::total_cmp);
            let med = sorted[sorted.len() / 2] as f64;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(i as f64 + 0.15, med), (i as f64 + 0.85, med)],
                BLACK.stroke_width(2),
            )))?;
        }
    }
    root.present()?;
    Ok(())
}

/// A scatter map of 2-D points `[N, 2]`, point `i` coloured by `labels[i]` (an index into
/// `names`, which the legend lists; labels past the palette's 10 colours are drawn hollow).
pub fn plot_scatter(
    path: &Path,
    title: &str,
    points: ArrayView2<'_, f32>,
    labels: &[usize],
    names: &[String],
) -> Result<()> {
    crate::check_figure_path(path)?;
    if points.ncols() != 2 || points.nrows() != labels.len() || points.nrows() == 0 {
        return Err(ReportError::input(
            "scatter points",
            format!(
                "must be [{}, 2] (one row per label, at least one), are {:?}",
                labels.len(),
                points.dim()
            ),
        ));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= names.len()) {
        return Err(ReportError::input(
            "scatter labels",
            format!("label {bad} has no name ({} names)", names.len()),
        ));
    }
    if points.iter().any(|v| !v.is_finite()) {
        return Err(ReportError::input("scatter points", "must be finite"));
    }
    write_svg(path, (820, 640), |root| {
        draw_scatter(root, title, points, labels, names)
    })
}

fn draw_scatter(
    root: Canvas<'_>,
    title: &str,
    points: ArrayView2<'_, f32>,
    labels: &[usize],
    names: &[String],
) -> DrawResult {
    root.fill(&WHITE)?;
    let (x0, x1) = span(points.column(0).iter().map(|&v| v as f64));
    let (y0, y1) = span(points.column(1).iter().map(|&v| v as f64));
    // The legend gets its own column on the right.
    let (plot_area, legend_area) = root.split_horizontally(620);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart.configure_mesh().draw()?;
    // The palette has 10 colours: labels 10.. are drawn hollow, 20.. as small dots.
    let marker = |l: usize| -> ShapeStyle {
        match l / 10 {
            0 => color(l).filled(),
            _ => color(l).stroke_width(2),
        }
    };
    let radius = |l: usize| if l >= 20 { 2 } else { 3 };
    for (l, _) in names.iter().enumerate() {
        chart.draw_series(
            points
                .rows()
                .into_iter()
                .zip(labels)
                .filter(|(_, &lab)| lab == l)
                .map(|(p, _)| Circle::new((p[0] as f64, p[1] as f64), radius(l), marker(l))),
        )?;
    }
    for (l, name) in names.iter().enumerate() {
        let y = 40 + 18 * l as i32;
        legend_area.draw(&Circle::new((12, y), radius(l) + 1, marker(l)))?;
        legend_area.draw(&Text::new(
            name.clone(),
            (22, y - 7),
            ("sans-serif", 12).into_font().color(&BLACK),
        ))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn temp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("haad-figures-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join(name)
    }

    #[test]
    fn figures_are_written_and_bad_input_refused() {
        let groups = vec!["alpha".to_string(), "beta".to_string()];
        let s = vec![
            Series {
                label: "one".into(),
                values: vec![(0.5, 0.1), (0.7, 0.0)],
            },
            Series {
                label: "two".into(),
                values: vec![(0.8, 0.05), (0.9, 0.02)],
            },
        ];
        let bars = temp("bars.svg");
        plot_bars(&bars, "t", "AUC", &groups, &s, 1.0).unwrap();
        let text = std::fs::read_to_string(&bars).unwrap();
        assert!(text.contains("<svg") && text.contains("two"));
        let lines = temp("lines.svg");
        plot_lines(&lines, "t", "K", "AUC", &[1.0, 3.0], &s).unwrap();
        assert!(std::fs::read_to_string(&lines).unwrap().contains("one"));
        let strips = temp("strips.svg");
        plot_strips(
            &strips,
            "t",
            "score",
            &groups,
            &[vec![1.0, 2.0], vec![3.0]],
            Some(0),
        )
        .unwrap();
        let scatter = temp("scatter.svg");
        let pts = array![[0.0f32, 1.0], [1.0, 0.0], [2.0, 2.0]];
        plot_scatter(&scatter, "t", pts.view(), &[0, 1, 1], &groups).unwrap();
        assert!(std::fs::read_to_string(&scatter).unwrap().contains("beta"));
        // Refusals: PNG, mismatched lengths, unknown labels, non-finite values.
        assert!(matches!(
            plot_bars(&temp("x.png"), "t", "AUC", &groups, &s, 1.0),
            Err(ReportError::Format { .. })
        ));
        assert!(!temp("x.png").exists());
        assert!(plot_lines(&temp("y.svg"), "t", "K", "AUC", &[1.0], &s).is_err());
        assert!(plot_scatter(&temp("z.svg"), "t", pts.view(), &[0, 1, 5], &groups).is_err());
        assert!(plot_strips(
            &temp("w.svg"),
            "t",
            "s",
            &groups,
            &[vec![f32::NAN], vec![]],
            None
        )
        .is_err());
        let nan = vec![Series {
            label: "nan".into(),
            values: vec![(f64::NAN, 0.0), (1.0, 0.0)],
        }];
        assert!(plot_bars(&temp("v.svg"), "t", "AUC", &groups, &nan, 1.0).is_err());
        std::fs::remove_dir_all(bars.parent().unwrap()).unwrap();
    }
}
