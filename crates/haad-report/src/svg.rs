//! The one rule for figure files: SVG only, drawn in memory and written whole (a temporary file
//! beside the target, then renamed), so a failed drawing leaves no partial file behind.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{ReportError, Result};

/// What the drawing code returns: any plotters error, boxed.
pub(crate) type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// A drawing area of an in-memory SVG.
pub(crate) type Canvas<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Checks, before any work, that a figure can be written to `path`: its extension must be
/// `.svg` (any case). Every figure function of this crate applies this rule.
pub fn check_figure_path(path: &Path) -> Result<()> {
    let svg = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if svg {
        Ok(())
    } else {
        Err(ReportError::Format {
            path: path.to_path_buf(),
        })
    }
}

/// Draws a `size` SVG with `draw` and writes it to `path` whole.
pub(crate) fn write_svg(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(Canvas<'_>) -> DrawResult,
) -> Result<()> {
    check_figure_path(path)?;
    let failed = |message: String| ReportError::Draw {
        path: path.to_path_buf(),
        message,
    };
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        draw(root).map_err(|e| failed(e.to_string()))?;
    }
    let mut tmp = PathBuf::from(path);
    tmp.set_extension(format!("svg.tmp{}", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            failed(e.to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_svg_is_accepted_in_any_case() {
        assert!(check_figure_path(Path::new("a/b.svg")).is_ok());
        assert!(check_figure_path(Path::new("B.SVG")).is_ok());
        for bad in ["x.png", "x", "x.svg.png", "x.jpg"] {
            assert!(matches!(
                check_figure_path(Path::new(bad)),
                Err(ReportError::Format { .. })
            ));
        }
    }

    #[test]
    fn a_failed_drawing_leaves_no_file() {
        let dir = std::env::temp_dir().join(format!("haad-report-svg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.svg");
        let r = write_svg(&path, (10, 10), |_| Err("boom".into()));
        assert!(matches!(r, Err(ReportError::Draw { .. })));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        write_svg(&path, (10, 10), |root| {
            root.fill(&WHITE)?;
            root.present()?;
            Ok(())
        })
        .unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("<svg"));
        assert!(write_svg(&dir.join("f.png"), (10, 10), |_| Ok(())).is_err());
        assert!(!dir.join("f.png").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
