//! A small self-contained SVG plot of window scores over time: the score line, the decision
//! threshold, and (for built evaluation recordings) the clips as shaded, labelled segments.

use std::fmt::Write as _;
use std::path::Path;

use super::recording::Segment;
use crate::error::{HaadError, Result};

const W: f64 = 900.0;
const H: f64 = 360.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 50.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The SVG text: `points` are (frame, score) pairs, a window's score at its last frame, `None`
/// for an unscored window (a gap in the line); `frames` is the recording length.
pub fn score_plot(
    title: &str,
    points: &[(usize, Option<f32>)],
    frames: usize,
    threshold: Option<f32>,
    segments: &[Segment],
) -> String {
    let scored = || points.iter().filter_map(|p| p.1);
    let mut lo = scored().fold(f32::INFINITY, f32::min);
    let mut hi = scored().fold(f32::NEG_INFINITY, f32::max);
    if let Some(t) = threshold {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-6 {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) as f64 * 0.05;
    let (lo, hi) = (lo as f64 - pad, hi as f64 + pad);
    let xmax = frames.max(1) as f64;
    let x = |f: f64| LEFT + f / xmax * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    for seg in segments {
        let fill = if seg.anomalous { "#f4c7c3" } else { "#d9ead3" };
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="{fill}"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
            x(seg.start as f64),
            x(seg.end as f64) - x(seg.start as f64),
            H - TOP - BOTTOM,
            x(seg.start as f64) + 2.0,
            TOP + 12.0,
            escape(&seg.category)
        );
    }
    let _ = writeln!(
        s,
        r#"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="black"/>"#,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    for i in 0..=4 {
        let v = lo + (hi - lo) * i as f64 / 4.0;
        let f = xmax * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{v:.3}</text><text x="{:.1}" y="{:.1}" text-anchor="middle">{f:.0}</text>"#,
            LEFT - 4.0,
            y(v) + 4.0,
            x(f),
            H - BOTTOM + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">frame</text><text x="{:.1}" y="18" text-anchor="middle">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 10.0,
        (LEFT + W - RIGHT) / 2.0,
        escape(title)
    );
    if let Some(t) = threshold {
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#cc0000" stroke-dasharray="6 4"/><text x="{2:.1}" y="{3:.1}" fill="#cc0000" text-anchor="end">threshold {t:.3}</text>"##,
            y(t as f64),
            W - RIGHT,
            W - RIGHT - 2.0,
            y(t as f64) - 4.0
        );
    }
    // Gaps (unscored windows) break the line.
    let mut path = String::new();
    let mut joined = false;
    for &(f, v) in points {
        match v {
            Some(v) => {
                let cmd = if joined { 'L' } else { 'M' };
                let _ = write!(path, "{cmd}{:.1} {:.1} ", x(f as f64), y(v as f64));
                joined = true;
            }
            None => joined = false,
        }
    }
    let _ = writeln!(
        s,
        r##"<path d="{}" fill="none" stroke="#1f4e9c" stroke-width="1.5"/>"##,
        path.trim_end()
    );
    s.push_str("</svg>\n");
    s
}

/// Writes the plot to `path` (whole or not at all: a temporary file renamed into place).
pub fn write_score_plot(path: &Path, svg: &str) -> Result<()> {
    let tmp = path.with_extension("svg.part");
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| HaadError::Io { path: p, source }
    };
    std::fs::write(&tmp, svg).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_holds_line_threshold_and_segments() {
        let seg = [Segment {
            start: 0,
            end: 50,
            category: "a<b".into(),
            anomalous: true,
            clip: 0,
        }];
        let svg = score_plot(
            "t",
            &[
                (10, Some(1.0)),
                (11, Some(2.0)),
                (12, None),
                (30, Some(1.5)),
            ],
            50,
            Some(1.7),
            &seg,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("threshold 1.700"));
        assert!(svg.contains("a&lt;b"));
        // Frames 10 and 11 are joined; after the unscored window, 30 starts a new piece.
        let d = svg.split("<path d=\"").nth(1).unwrap();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches('L').count(), 1, "{d}");
    }
}
