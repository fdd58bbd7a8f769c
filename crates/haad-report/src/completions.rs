//! Stick-figure pictures of observed versus generated frames.

use std::path::Path;

use haad_motion::augment::Axis3;
use haad_motion::Motion;
use plotters::prelude::*;

use crate::error::{ReportError, Result};
use crate::svg::{write_svg, Canvas, DrawResult};

fn idx(a: Axis3) -> usize {
    match a {
        Axis3::X => 0,
        Axis3::Y => 1,
        Axis3::Z => 2,
    }
}

/// Completions of clips by a generator, to draw with [`draw_completions`].
#[derive(Debug, Clone, Copy)]
pub struct CompletionFigure<'a> {
    /// Bones `(child, parent)` of the skeleton.
    pub bones: &'a [(usize, usize)],
    /// The real clips, all of N frames.
    pub truth: &'a [Motion],
    /// `per_clip` completions of each real clip, clip by clip.
    pub samples: &'a [Motion],
    /// Completions per clip.
    pub per_clip: usize,
    /// t_his, the observed frames (the rest is generated).
    pub t_his: usize,
    /// The axis drawn left to right.
    pub lateral: Axis3,
    /// The axis drawn upwards.
    pub up: Axis3,
}

/// Draws an SVG with one row per clip (at most `rows`) and six columns of frames: three observed
/// (0, t_his / 2, t_his - 1) and three generated (spread over t_his..N). Each panel shows the
/// ground truth in black (observed frames) or grey (future frames) and up to three completions
/// in red, blue and green, projected on the (lateral, up) plane. No text is drawn; the layout is
/// described here.
pub fn draw_completions(path: &Path, fig: &CompletionFigure<'_>, rows: usize) -> Result<()> {
    crate::check_figure_path(path)?;
    let CompletionFigure {
        truth,
        samples,
        per_clip,
        t_his,
        bones,
        ..
    } = *fig;
    if truth.is_empty() || per_clip == 0 || samples.len() < truth.len() * per_clip {
        return Err(ReportError::input(
            "completion figure",
            format!(
                "needs clips and {per_clip} (> 0) completions of each: {} clips, {} completions",
                truth.len(),
                samples.len()
            ),
        ));
    }
    let n = truth[0].frames();
    if let Some(m) = truth.iter().chain(samples).find(|m| m.frames() != n) {
        return Err(ReportError::input(
            "completion figure",
            format!("clips must all have {n} frames, one has {}", m.frames()),
        ));
    }
    if t_his == 0 || t_his >= n {
        return Err(ReportError::input(
            "completion figure",
            format!("t_his {t_his} out of range for {n} frames"),
        ));
    }
    let joints = truth[0].joints();
    if let Some(&(a, b)) = bones.iter().find(|&&(a, b)| a >= joints || b >= joints) {
        return Err(ReportError::input(
            "completion figure",
            format!("bone ({a}, {b}) out of range for {joints} joints"),
        ));
    }
    if let Some(m) = truth.iter().chain(samples).find(|m| m.joints() != joints) {
        return Err(ReportError::input(
            "completion figure",
            format!(
                "clips must all have {joints} joints, one has {}",
                m.joints()
            ),
        ));
    }
    let rows = rows.min(truth.len()).max(1);
    let fut = n - t_his;
    let cols = [
        0,
        t_his / 2,
        t_his - 1,
        t_his + fut / 3,
        t_his + 2 * fut / 3,
        n - 1,
    ];
    let (cw, ch) = (180u32, 240u32);
    let size = (cw * cols.len() as u32, ch * rows as u32);
    write_svg(path, size, |root| render(fig, &cols, rows, root))
}

fn render(
    fig: &CompletionFigure<'_>,
    cols: &[usize; 6],
    rows: usize,
    root: Canvas<'_>,
) -> DrawResult {
    let (a, b) = (idx(fig.lateral), idx(fig.up));
    let colours = [RED, BLUE, GREEN];
    root.fill(&WHITE)?;
    let cells = root.split_evenly((rows, cols.len()));
    for r in 0..rows {
        let t = &fig.truth[r];
        let gens = &fig.samples[r * fig.per_clip..r * fig.per_clip + fig.per_clip.min(3)];
        let (mut lo_a, mut hi_a, mut lo_b, mut hi_b) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for m in std::iter::once(t).chain(gens.iter()) {
            for p in m.data().outer_iter() {
                for jp in p.outer_iter() {
                    lo_a = lo_a.min(jp[a]);
                    hi_a = hi_a.max(jp[a]);
                    lo_b = lo_b.min(jp[b]);
                    hi_b = hi_b.max(jp[b]);
                }
            }
        }
        let pad = 0.05 * (hi_a - lo_a).max(hi_b - lo_b).max(1e-3);
        for (c, &f) in cols.iter().enumerate() {
            let cell = &cells[r * cols.len() + c];
            let mut chart = ChartBuilder::on(cell)
                .margin(4)
                .build_cartesian_2d(lo_a - pad..hi_a + pad, lo_b - pad..hi_b + pad)?;
            let mut figure = |m: &Motion, style: ShapeStyle| -> DrawResult {
                let d = m.data();
                chart.draw_series(fig.bones.iter().map(|&(x, y)| {
                    PathElement::new(
                        vec![(d[[f, x, a]], d[[f, x, b]]), (d[[f, y, a]], d[[f, y, b]])],
                        style,
                    )
                }))?;
                Ok(())
            };
            let truth_colour = if f < fig.t_his {
                BLACK
            } else {
                RGBColor(160, 160, 160)
            };
            figure(t, truth_colour.stroke_width(3))?;
            for (g, m) in gens.iter().enumerate() {
                figure(m, colours[g % 3].stroke_width(1))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn clip(shift: f32) -> Motion {
        let a = Array3::from_shape_fn((10, 3, 3), |(t, j, c)| {
            t as f32 * 0.1 + j as f32 + c as f32 + shift
        });
        Motion::new(a, None).unwrap()
    }

    #[test]
    fn draws_one_line_per_bone_and_frame_and_refuses_bad_input() {
        let dir = std::env::temp_dir().join(format!("haad-report-compl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let truth = [clip(0.0)];
        let samples = [clip(0.1), clip(0.2)];
        let bones = [(1, 0), (2, 1)];
        let fig = CompletionFigure {
            bones: &bones,
            truth: &truth,
            samples: &samples,
            per_clip: 2,
            t_his: 5,
            lateral: Axis3::X,
            up: Axis3::Y,
        };
        let path = dir.join("c.svg");
        draw_completions(&path, &fig, 4).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        // 6 panels x (truth + 2 completions) x 2 bones, one polyline each.
        assert_eq!(svg.matches("<polyline").count(), 6 * 3 * 2, "{svg}");
        assert!(matches!(
            draw_completions(&dir.join("c.png"), &fig, 4),
            Err(ReportError::Format { .. })
        ));
        let bad = CompletionFigure { t_his: 10, ..fig };
        assert!(matches!(
            draw_completions(&dir.join("d.svg"), &bad, 4),
            Err(ReportError::Input { .. })
        ));
        let bad_bones = [(3, 0)];
        let bad = CompletionFigure {
            bones: &bad_bones,
            ..fig
        };
        assert!(draw_completions(&dir.join("e.svg"), &bad, 4).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
