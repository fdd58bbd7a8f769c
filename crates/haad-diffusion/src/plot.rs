//! Stick-figure pictures of observed versus generated frames.

use std::path::Path;

use haad_motion::augment::Axis3;
use haad_motion::Motion;
use plotters::prelude::*;

use crate::error::{DiffusionError, Result};

fn idx(a: Axis3) -> usize {
    match a {
        Axis3::X => 0,
        Axis3::Y => 1,
        Axis3::Z => 2,
    }
}

/// Draws a PNG (or SVG when `path` ends in `.svg`) with one row per clip (at most `rows`) and
/// six columns of frames: three observed (0, t_his / 2, t_his - 1) and three generated (spread
/// over t_his..N). Each panel shows the ground truth in black (observed frames) or grey (future
/// frames) and up to three completions in red, blue and green, projected on the (lateral, up)
/// plane. No text is drawn (the build has no font backend); the layout is described here.
#[allow(clippy::too_many_arguments)]
pub fn draw_completions(
    path: &Path,
    bones: &[(usize, usize)],
    truth: &[Motion],
    samples: &[Motion],
    per_clip: usize,
    t_his: usize,
    lateral: Axis3,
    up: Axis3,
    rows: usize,
) -> Result<()> {
    let err = |e: String| DiffusionError::Plot {
        path: path.to_path_buf(),
        message: e,
    };
    let rows = rows.min(truth.len()).max(1);
    if truth.is_empty() || samples.len() < truth.len() * per_clip || per_clip == 0 {
        return Err(err("need clips and their completions".into()));
    }
    let n = truth[0].frames();
    if t_his == 0 || t_his >= n {
        return Err(err(format!("t_his {t_his} out of range for {n} frames")));
    }
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
    let job = Job {
        bones,
        truth,
        samples,
        per_clip,
        t_his,
        cols,
        rows,
        a: idx(lateral),
        b: idx(up),
    };
    let is_svg = path.extension().is_some_and(|e| e == "svg");
    if is_svg {
        render(&job, SVGBackend::new(path, size).into_drawing_area()).map_err(err)
    } else {
        render(&job, BitMapBackend::new(path, size).into_drawing_area()).map_err(err)
    }
}

struct Job<'a> {
    bones: &'a [(usize, usize)],
    truth: &'a [Motion],
    samples: &'a [Motion],
    per_clip: usize,
    t_his: usize,
    cols: [usize; 6],
    rows: usize,
    a: usize,
    b: usize,
}

fn render<DB: DrawingBackend>(
    job: &Job,
    root: DrawingArea<DB, plotters::coord::Shift>,
) -> std::result::Result<(), String> {
    let Job {
        bones,
        truth,
        samples,
        per_clip,
        t_his,
        cols,
        rows,
        a,
        b,
    } = *job;
    let colours = [RED, BLUE, GREEN];
    {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let cells = root.split_evenly((rows, cols.len()));
        for r in 0..rows {
            let t = &truth[r];
            let gens = &samples[r * per_clip..r * per_clip + per_clip.min(3)];
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
                    .build_cartesian_2d(lo_a - pad..hi_a + pad, lo_b - pad..hi_b + pad)
                    .map_err(|e| e.to_string())?;
                let mut figure = |m: &Motion,
                                  style: ShapeStyle|
                 -> std::result::Result<(), String> {
                    let d = m.data();
                    chart
                        .draw_series(bones.iter().map(|&(x, y)| {
                            PathElement::new(
                                vec![(d[[f, x, a]], d[[f, x, b]]), (d[[f, y, a]], d[[f, y, b]])],
                                style,
                            )
                        }))
                        .map_err(|e| e.to_string())?;
                    Ok(())
                };
                let truth_colour = if f < t_his {
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
        root.present().map_err(|e| e.to_string())
    }
}
