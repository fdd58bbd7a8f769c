//! Figures of experiments, as SVG: grouped bars with whiskers, lines with error bars, strips of
//! anomaly scores per category, and 2-D scatter maps of embeddings (with [`pca_2d`]).
//!
//! Only `.svg` is written: this build of plotters has no font renderer, which bitmap text
//! needs ([`crate::report::check_plot_path`]).

use std::path::Path;

use ndarray::{Array1, Array2, ArrayView2, Axis};
use plotters::prelude::*;

use crate::error::{DetectError, Result};
use crate::report::check_plot_path;

type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

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

fn plot_error(path: &Path) -> impl FnOnce(Box<dyn std::error::Error>) -> DetectError + '_ {
    move |e| DetectError::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn check_series(series: &[Series], n: usize, what: &str) -> Result<()> {
    if series.is_empty() || n == 0 {
        return Err(DetectError::Config(format!("{what}: nothing to plot")));
    }
    for s in series {
        if s.values.len() != n {
            return Err(DetectError::Shape {
                what: format!("{what} series {:?}", s.label),
                expected: format!("{n} values"),
                got: format!("{} values", s.values.len()),
            });
        }
        if s.values
            .iter()
            .any(|(m, d)| !m.is_finite() || !d.is_finite())
        {
            return Err(DetectError::Config(format!(
                "{what} series {:?} has a non-finite value",
                s.label
            )));
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
    check_plot_path(path)?;
    check_series(series, groups.len(), "bar")?;
    let width = (160 + (12 + 14 * series.len() as u32) * groups.len() as u32).max(640);
    let root = SVGBackend::new(path, (width, 480)).into_drawing_area();
    draw_bars(root, title, y_desc, groups, series, y_max).map_err(plot_error(path))
}

fn draw_bars<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    groups: &[String],
    series: &[Series],
    y_max: f64,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
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
fn column_labels<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    names: &[String],
    at: &[(i32, i32)],
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
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
    check_plot_path(path)?;
    check_series(series, xs.len(), "line")?;
    if xs.iter().any(|x| !x.is_finite()) {
        return Err(DetectError::Config("line x values must be finite".into()));
    }
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    draw_lines(root, title, x_desc, y_desc, xs, series).map_err(plot_error(path))
}

fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let pad = ((hi - lo) * 0.08).max(1e-3);
    (lo - pad, hi + pad)
}

fn draw_lines<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    xs: &[f64],
    series: &[Series],
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
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
    check_plot_path(path)?;
    if categories.is_empty() || categories.len() != values.len() {
        return Err(DetectError::Shape {
            what: "strip plot".into(),
            expected: "one value list per category, at least one category".into(),
            got: format!("{} categories, {} lists", categories.len(), values.len()),
        });
    }
    if values.iter().flatten().any(|v| !v.is_finite()) || values.iter().all(|v| v.is_empty()) {
        return Err(DetectError::Config(
            "strip plot values must be finite and not all empty".into(),
        ));
    }
    let width = (160 + 40 * categories.len() as u32).max(640);
    let root = SVGBackend::new(path, (width, 480)).into_drawing_area();
    draw_strips(root, title, y_desc, categories, values, highlight).map_err(plot_error(path))
}

fn draw_strips<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    categories: &[String],
    values: &[Vec<f32>],
    highlight: Option<usize>,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
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
    check_plot_path(path)?;
    if points.ncols() != 2 || points.nrows() != labels.len() || points.nrows() == 0 {
        return Err(DetectError::Shape {
            what: "scatter points".into(),
            expected: format!("[{}, 2] (one row per label, at least one)", labels.len()),
            got: format!("{:?}", points.dim()),
        });
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= names.len()) {
        return Err(DetectError::Config(format!(
            "scatter label {bad} has no name ({} names)",
            names.len()
        )));
    }
    if points.iter().any(|v| !v.is_finite()) {
        return Err(DetectError::Config("scatter points must be finite".into()));
    }
    let root = SVGBackend::new(path, (820, 640)).into_drawing_area();
    draw_scatter(root, title, points, labels, names).map_err(plot_error(path))
}

fn draw_scatter<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    points: ArrayView2<'_, f32>,
    labels: &[usize],
    names: &[String],
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
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

/// The projection of the rows of `x` `[N, E]` onto their first two principal components,
/// `[N, 2]` (centred; components from the covariance's eigenvectors, computed in f64 by the
/// cyclic Jacobi method; each component's sign fixed so that its largest entry is positive).
pub fn pca_2d(x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
    let (n, e) = x.dim();
    if n < 2 || e < 2 {
        return Err(DetectError::Shape {
            what: "PCA input".into(),
            expected: "[N >= 2, E >= 2]".into(),
            got: format!("[{n}, {e}]"),
        });
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(DetectError::Config("PCA input must be finite".into()));
    }
    let xf = x.mapv(f64::from);
    let mean: Array1<f64> = xf.mean_axis(Axis(0)).expect("n >= 2");
    let centred = &xf - &mean;
    let cov = centred.t().dot(&centred) / (n - 1) as f64;
    let (values, vectors) = symmetric_eigen(cov);
    let mut order: Vec<usize> = (0..e).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut basis = Array2::<f64>::zeros((e, 2));
    for (k, &col) in order.iter().take(2).enumerate() {
        let mut v = vectors.column(col).to_owned();
        let big = v
            .iter()
            .copied()
            .fold(0.0f64, |a, b| if b.abs() > a.abs() { b } else { a });
        if big < 0.0 {
            v.mapv_inplace(|x| -x);
        }
        basis.column_mut(k).assign(&v);
    }
    Ok(centred.dot(&basis).mapv(|v| v as f32))
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix, by cyclic Jacobi rotations.
fn symmetric_eigen(mut a: Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut v = Array2::<f64>::eye(n);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]] * a[[i, j]])
            .sum();
        let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
        if off <= 1e-24 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[[p, q]].abs() < f64::MIN_POSITIVE {
                    continue;
                }
                let theta = (a[[q, q]] - a[[p, p]]) / (2.0 * a[[p, q]]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[[k, p]], a[[k, q]]);
                    a[[k, p]] = c * akp - s * akq;
                    a[[k, q]] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[[p, k]], a[[q, k]]);
                    a[[p, k]] = c * apk - s * aqk;
                    a[[q, k]] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[[k, p]], v[[k, q]]);
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[[i, i]]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn temp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("haad-figures-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join(name)
    }

    #[test]
    fn jacobi_diagonalises_a_known_matrix() {
        // Eigenvalues of [[2, 1], [1, 2]] are 3 and 1, vectors (1, 1) and (1, -1) / sqrt 2.
        let (vals, vecs) = symmetric_eigen(array![[2.0, 1.0], [1.0, 2.0]]);
        let mut sorted = vals.clone();
        sorted.sort_by(f64::total_cmp);
        assert!((sorted[0] - 1.0).abs() < 1e-12 && (sorted[1] - 3.0).abs() < 1e-12);
        let a = array![[2.0, 1.0], [1.0, 2.0]];
        for (k, &lambda) in vals.iter().enumerate() {
            let v = vecs.column(k);
            let av = a.dot(&v);
            for (x, y) in av.iter().zip(v.iter()) {
                assert!((x - lambda * y).abs() < 1e-12);
            }
        }
        // A random symmetric 6 x 6: A V = V diag(values), V orthonormal.
        let mut rng = StdRng::seed_from_u64(0);
        let b = Array2::from_shape_fn((6, 6), |_| rng.random_range(-1.0..1.0));
        let a = &b + &b.t();
        let (vals, v) = symmetric_eigen(a.clone());
        let av = a.dot(&v);
        let vd = &v * &Array1::from(vals.clone());
        assert!((&av - &vd).iter().all(|x| x.abs() < 1e-10));
        let vtv = v.t().dot(&v);
        assert!((&vtv - &Array2::<f64>::eye(6))
            .iter()
            .all(|x| x.abs() < 1e-12));
    }

    #[test]
    fn pca_finds_the_spread_directions() {
        // Points along (3, 4, 0) / 5 with spread 10 and along z with spread 1.
        let mut rng = StdRng::seed_from_u64(1);
        let mut x = Array2::<f32>::zeros((200, 3));
        for mut row in x.rows_mut() {
            let a: f32 = rng.random_range(-10.0..10.0);
            let b: f32 = rng.random_range(-1.0..1.0);
            row.assign(&array![0.6 * a + 5.0, 0.8 * a - 2.0, b]);
        }
        let p = pca_2d(x.view()).unwrap();
        assert_eq!(p.dim(), (200, 2));
        let var = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64
        };
        let col = |k: usize| p.column(k).iter().map(|&v| v as f64).collect::<Vec<_>>();
        let (p0, p1) = (col(0), col(1));
        // The first component has the largest variance of any direction: compare with a dense
        // brute-force search over unit directions (theta, phi on a 1-degree grid).
        let xm = x.mean_axis(Axis(0)).unwrap();
        let mut best = 0f64;
        for it in 0..=180 {
            for ip in 0..360 {
                let (t, f) = ((it as f64).to_radians(), (ip as f64).to_radians());
                let d = [t.sin() * f.cos(), t.sin() * f.sin(), t.cos()];
                let proj: Vec<f64> = x
                    .rows()
                    .into_iter()
                    .map(|r| (0..3).map(|k| d[k] * (r[k] - xm[k]) as f64).sum())
                    .collect();
                best = best.max(var(&proj));
            }
        }
        assert!(var(&p0) >= best * (1.0 - 1e-6), "{} < {best}", var(&p0));
        assert!(var(&p0) < best * 1.001);
        // The two components are uncorrelated; the second carries the z spread (var ~ 1/3).
        let cov: f64 = p0.iter().zip(&p1).map(|(a, b)| a * b).sum::<f64>() / 199.0;
        assert!(cov.abs() < 1e-4, "covariance {cov}");
        assert!((var(&p1) - 1.0 / 3.0).abs() < 0.1, "{}", var(&p1));
        assert!(pca_2d(Array2::<f32>::zeros((1, 3)).view()).is_err());
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
        assert!(plot_bars(&temp("x.png"), "t", "AUC", &groups, &s, 1.0).is_err());
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
