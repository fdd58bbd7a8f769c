//! The Bandai-Namco-Research-Motiondataset layout.
//!
//! ```text
//! ROOT/cfg/content_label.txt    one content name a line (0-based ids)
//! ROOT/cfg/style_label.txt      one style name a line
//! ROOT/data/<name>.bvh          a clip (22-joint hierarchy in dataset-2)
//! ROOT/data/<name>.json         {"content": id, "style": id} for the clip beside it
//! ```
//!
//! Category names are the label files' lines as written (e.g. `dataset-2_walk`). The root is
//! detected from the data ([`crate::io::root`]): `Hips`, not the static `joint_Root`.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;

use crate::dataset::Dataset;
use crate::error::{MotionError, Result};
use crate::io::{bvh_set::BvhSet, has_extension, io_error, parse_error, sorted_entries};

/// Which label of a Bandai-Namco clip becomes its category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BandaiLabel {
    /// What is done (walk, run, wave...): `cfg/content_label.txt`.
    #[default]
    Content,
    /// How it is done (elderly, feminine...): `cfg/style_label.txt`.
    Style,
}

impl fmt::Display for BandaiLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BandaiLabel::Content => "content",
            BandaiLabel::Style => "style",
        })
    }
}

impl FromStr for BandaiLabel {
    type Err = MotionError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "content" => Ok(BandaiLabel::Content),
            "style" => Ok(BandaiLabel::Style),
            _ => Err(MotionError::InvalidArgument(format!(
                "unknown Bandai label {s:?}; expected content or style"
            ))),
        }
    }
}

#[derive(Deserialize)]
struct Labels {
    content: usize,
    style: usize,
}

/// Non-empty trimmed lines of a label file; a name given twice is an error naming both lines.
fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    let mut names = Vec::new();
    let mut first_line = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() {
            continue;
        }
        if let Some(first) = first_line.insert(name, i + 1) {
            return Err(parse_error(
                path,
                i + 1,
                format!("label {name:?} is already on line {first}"),
            ));
        }
        names.push(name.to_string());
    }
    if names.is_empty() {
        return Err(parse_error(path, 0, "no label names"));
    }
    Ok(names)
}

/// Loads a Bandai-Namco dataset folder; `label` chooses content or style as the category.
pub fn load_bandai(dir: &Path, label: BandaiLabel) -> Result<Dataset> {
    let contents = read_labels(&dir.join("cfg").join("content_label.txt"))?;
    let styles = read_labels(&dir.join("cfg").join("style_label.txt"))?;
    let data = dir.join("data");
    let mut set = BvhSet::default();
    for path in sorted_entries(&data)? {
        if !path.is_file() || !has_extension(&path, "bvh") {
            continue;
        }
        let json = path.with_extension("json");
        let text = std::fs::read_to_string(&json).map_err(|e| io_error(&json, e))?;
        let labels: Labels = serde_json::from_str(&text).map_err(|e| {
            parse_error(
                &json,
                e.line(),
                format!("expected {{\"content\": id, \"style\": id}}: {e}"),
            )
        })?;
        let (id, names, what) = match label {
            BandaiLabel::Content => (labels.content, &contents, "content_label.txt"),
            BandaiLabel::Style => (labels.style, &styles, "style_label.txt"),
        };
        if id >= names.len() {
            return Err(parse_error(
                &json,
                1,
                format!(
                    "{label} id {id} out of range: {what} has {} names",
                    names.len()
                ),
            ));
        }
        set.add(&path, id)?;
    }
    let skeleton = set
        .skeleton()?
        .ok_or_else(|| parse_error(&data, 0, "no .bvh files in this folder"))?;
    let categories = match label {
        BandaiLabel::Content => contents,
        BandaiLabel::Style => styles,
    };
    Dataset::new(skeleton, categories, set.clips, set.skipped)
}
