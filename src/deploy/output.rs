//! What `haad score` and `haad stream` print: a readable table, CSV with a header, or JSON.

use haad_detect::{Window, WindowOutcome};
use serde::Serialize;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// `haad score`: one JSON array; `haad stream`: one JSON object per line.
    Json,
    /// CSV with a header line.
    Csv,
}

/// One scored clip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipScore {
    /// The clip's file (or source inside a dataset file).
    pub clip: String,
    /// Its category, when the file says.
    pub category: Option<String>,
    /// Its length.
    pub frames: usize,
    /// The anomaly score, unless it could not be scored.
    pub score: Option<f32>,
    /// The decision, when the detector has a threshold.
    pub anomalous: Option<bool>,
    /// Why it could not be scored.
    pub error: Option<String>,
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn word(anomalous: Option<bool>) -> &'static str {
    match anomalous {
        Some(true) => "ANOMALY",
        Some(false) => "normal",
        None => "-",
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// The whole `haad score` output (ends with a line break).
pub fn format_clip_scores(rows: &[ClipScore], format: OutputFormat) -> String {
    let mut s = String::new();
    match format {
        OutputFormat::Json => {
            s = serde_json::to_string_pretty(rows).expect("clip scores serialise");
            s.push('\n');
        }
        OutputFormat::Csv => {
            s.push_str("clip,category,frames,score,anomalous,error\n");
            for r in rows {
                s.push_str(&format!(
                    "{},{},{},{},{},{}\n",
                    csv_field(&r.clip),
                    csv_field(&opt(&r.category)),
                    r.frames,
                    opt(&r.score),
                    opt(&r.anomalous),
                    csv_field(&opt(&r.error))
                ));
            }
        }
        OutputFormat::Table => {
            let w = rows.iter().map(|r| r.clip.len()).max().unwrap_or(4).max(4);
            s.push_str(&format!(
                "{:<w$}  {:>6}  {:>10}  decision\n",
                "clip", "frames", "score"
            ));
            for r in rows {
                let line = match (r.score, &r.error) {
                    (Some(v), _) => format!(
                        "{:<w$}  {:>6}  {v:>10.4}  {}",
                        r.clip,
                        r.frames,
                        word(r.anomalous)
                    ),
                    (None, e) => format!(
                        "{:<w$}  {:>6}  {:>10}  error: {}",
                        r.clip,
                        r.frames,
                        "-",
                        opt(e)
                    ),
                };
                s.push_str(&line);
                s.push('\n');
            }
        }
    }
    s
}

/// The header line `haad stream` prints first, if the format has one.
pub fn window_header(format: OutputFormat) -> Option<&'static str> {
    (format == OutputFormat::Csv).then_some("start,end,score,anomalous,reason")
}

/// One `haad stream` line (no line break) for window `w` with decision `anomalous`.
pub fn format_window(w: &Window, anomalous: Option<bool>, format: OutputFormat) -> String {
    let (score, reason) = match w.outcome {
        WindowOutcome::Score(s) => (Some(s), None),
        WindowOutcome::Unscored(u) => (None, Some(u.to_string())),
    };
    match format {
        OutputFormat::Json => serde_json::json!({
            "start": w.start, "end": w.end, "score": score, "anomalous": anomalous,
            "reason": reason,
        })
        .to_string(),
        OutputFormat::Csv => format!(
            "{},{},{},{},{}",
            w.start,
            w.end,
            opt(&score),
            opt(&anomalous),
            csv_field(&opt(&reason))
        ),
        OutputFormat::Table => match score {
            Some(s) => format!(
                "frames {:>6}-{:<6}  score {s:>9.4}  {}",
                w.start,
                w.end - 1,
                word(anomalous)
            ),
            None => format!(
                "frames {:>6}-{:<6}  unscored: {}",
                w.start,
                w.end.saturating_sub(1),
                opt(&reason)
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haad_detect::Unscored;

    #[test]
    fn clip_rows_in_every_format() {
        let rows = [
            ClipScore {
                clip: "a,b.npy".into(),
                category: None,
                frames: 60,
                score: Some(1.5),
                anomalous: Some(true),
                error: None,
            },
            ClipScore {
                clip: "c.npy".into(),
                category: Some("walk".into()),
                frames: 3,
                score: None,
                anomalous: None,
                error: Some("clip has 3 joints, the detector expects 22".into()),
            },
        ];
        let csv = format_clip_scores(&rows, OutputFormat::Csv);
        assert_eq!(
            csv,
            "clip,category,frames,score,anomalous,error\n\"a,b.npy\",,60,1.5,true,\n\
             c.npy,walk,3,,,\"clip has 3 joints, the detector expects 22\"\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&format_clip_scores(&rows, OutputFormat::Json)).unwrap();
        assert_eq!(json[0]["score"], 1.5);
        assert!(json[1]["score"].is_null());
        let table = format_clip_scores(&rows, OutputFormat::Table);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].ends_with("1.5000  ANOMALY"), "{table}");
        assert!(lines[2].contains("error: clip has 3 joints"), "{table}");
    }

    #[test]
    fn window_lines_in_every_format() {
        let scored = Window {
            start: 10,
            end: 70,
            outcome: WindowOutcome::Score(2.25),
        };
        let lost = Window {
            start: 20,
            end: 80,
            outcome: WindowOutcome::Unscored(Unscored::LostFrames { frame: 75, lost: 2 }),
        };
        assert_eq!(
            format_window(&scored, Some(false), OutputFormat::Csv),
            "10,70,2.25,false,"
        );
        assert!(format_window(&lost, None, OutputFormat::Csv).starts_with("20,80,,,"));
        let j: serde_json::Value =
            serde_json::from_str(&format_window(&lost, None, OutputFormat::Json)).unwrap();
        assert!(j["score"].is_null() && j["reason"].as_str().unwrap().contains("frame 75"));
        assert_eq!(
            format_window(&scored, None, OutputFormat::Table),
            "frames     10-69      score    2.2500  -"
        );
        assert_eq!(window_header(OutputFormat::Table), None);
    }
}
