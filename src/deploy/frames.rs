//! The line format of `haad stream`: one frame a line, either CSV (`x,y,z` of joint 0, then
//! joint 1, ...: `3 J` numbers) or a JSON array of `[x, y, z]` triples. `nan` (CSV) or `null`
//! (JSON) marks a coordinate a tracker lost. Empty lines and lines starting with `#` are
//! skipped. Documented in docs/data.md.

use std::io::{BufRead, Read};

use haad_motion::Motion;
use ndarray::Array3;

use crate::error::{HaadError, Result};

/// The longest line read (1 MiB): a frame of 10,000 joints fits many times over.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Parses one frame line into `3 J` values; `Ok(None)` for a blank or comment line.
/// `joints`, when known, is checked.
pub fn parse_frame(
    line: &str,
    joints: Option<usize>,
) -> std::result::Result<Option<Vec<f32>>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let values = if line.starts_with('[') {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("not a JSON array of [x, y, z]: {e}"))?;
        let rows = v
            .as_array()
            .ok_or_else(|| "not a JSON array of [x, y, z]".to_string())?;
        let mut out = Vec::with_capacity(rows.len() * 3);
        for (j, row) in rows.iter().enumerate() {
            let xyz = row
                .as_array()
                .filter(|a| a.len() == 3)
                .ok_or_else(|| format!("joint {j} is not an [x, y, z] triple"))?;
            for c in xyz {
                match c {
                    serde_json::Value::Null => out.push(f32::NAN),
                    serde_json::Value::Number(n) => out.push(n.as_f64().unwrap_or(f64::NAN) as f32),
                    other => return Err(format!("joint {j}: {other} is not a number")),
                }
            }
        }
        out
    } else {
        line.split(',')
            .enumerate()
            .map(|(i, s)| {
                s.trim()
                    .parse::<f32>()
                    .map_err(|_| format!("value {} ({:?}) is not a number", i + 1, s.trim()))
            })
            .collect::<std::result::Result<Vec<f32>, String>>()?
    };
    if values.is_empty() || values.len() % 3 != 0 {
        return Err(format!(
            "{} values: a frame has 3 per joint (x, y, z)",
            values.len()
        ));
    }
    if let Some(j) = joints {
        if values.len() != 3 * j {
            return Err(format!("{} joints, expected {j}", values.len() / 3));
        }
    }
    Ok(Some(values))
}

/// Reads frame lines one at a time from `reader`, calling `each(line_number, values)` for
/// every frame (line numbers from 1). `source` names the input in errors. A line longer than
/// [`MAX_LINE_BYTES`] or a malformed line is an error naming the line.
pub fn read_frames<R: BufRead>(
    mut reader: R,
    source: &str,
    joints: Option<usize>,
    mut each: impl FnMut(usize, &[f32]) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| HaadError::InvalidArgument(format!("{source}: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        if buf.len() > MAX_LINE_BYTES {
            return Err(HaadError::InvalidArgument(format!(
                "{source}, line {line_no}: longer than {MAX_LINE_BYTES} bytes"
            )));
        }
        let text = std::str::from_utf8(&buf).map_err(|_| {
            HaadError::InvalidArgument(format!("{source}, line {line_no}: not UTF-8 text"))
        })?;
        let values = parse_frame(text, joints)
            .map_err(|m| HaadError::InvalidArgument(format!("{source}, line {line_no}: {m}")))?;
        if let Some(v) = values {
            each(line_no, &v)?;
        }
    }
}

/// Reads a whole frame-line file as one recording (`fps` unknown).
pub fn read_recording<R: BufRead>(reader: R, source: &str) -> Result<Motion> {
    let mut values = Vec::new();
    let mut joints = None;
    read_frames(reader, source, None, |line, v| {
        let j = v.len() / 3;
        match joints {
            None => joints = Some(j),
            Some(want) if want != j => {
                return Err(HaadError::InvalidArgument(format!(
                    "{source}, line {line}: {j} joints, the first frame has {want}"
                )))
            }
            _ => {}
        }
        values.extend_from_slice(v);
        Ok(())
    })?;
    let j = joints.ok_or_else(|| HaadError::InvalidArgument(format!("{source}: no frames")))?;
    let data = Array3::from_shape_vec((values.len() / (3 * j), j, 3), values)
        .expect("every frame has 3 J values");
    Ok(Motion::new(data, None)?)
}

/// Writes `motion` in the CSV frame format, one line per frame.
pub fn write_csv<W: std::io::Write>(motion: &Motion, mut out: W) -> std::io::Result<()> {
    for frame in motion.data().outer_iter() {
        let line: Vec<String> = frame.iter().map(|v| v.to_string()).collect();
        writeln!(out, "{}", line.join(","))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_lines_give_the_same_frame() {
        let csv = parse_frame("1, 2, 3,4,5,6\n", Some(2)).unwrap().unwrap();
        let json = parse_frame("[[1,2,3],[4,5,6]]", Some(2)).unwrap().unwrap();
        assert_eq!(csv, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(csv, json);
        assert_eq!(parse_frame("  # comment", None).unwrap(), None);
        assert_eq!(parse_frame("", None).unwrap(), None);
        let lost = parse_frame("[[1,null,3]]", None).unwrap().unwrap();
        assert!(lost[1].is_nan());
        assert!(parse_frame("nan,1,2", None).unwrap().unwrap()[0].is_nan());
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        for (line, want) in [
            ("1,2", "3 per joint"),
            ("1,x,3", "value 2"),
            ("[[1,2]]", "joint 0"),
            ("[[1,2,\"a\"]]", "not a number"),
            ("1,2,3", "expected 2"),
        ] {
            let err = parse_frame(line, Some(2)).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
    }

    #[test]
    fn recordings_round_trip_and_errors_name_the_line() {
        let m = Motion::new(
            Array3::from_shape_fn((5, 2, 3), |(t, j, c)| (t * 6 + j * 3 + c) as f32 * 0.5),
            None,
        )
        .unwrap();
        let mut buf = Vec::new();
        write_csv(&m, &mut buf).unwrap();
        let back = read_recording(&buf[..], "rec.csv").unwrap();
        assert_eq!(back.data(), m.data());
        let err = read_recording(&b"1,2,3\n# note\n1,2,3,4,5,6\n"[..], "rec.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rec.csv, line 3"), "{err}");
        let long = vec![b'1'; MAX_LINE_BYTES + 10];
        let err = read_recording(&long[..], "big.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1: longer than"), "{err}");
        assert!(read_recording(&b""[..], "empty.csv").is_err());
    }
}
