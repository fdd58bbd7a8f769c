//! Reading `[frames, joints, 3]` position arrays from NumPy `.npy` files (f32 or f64).

use std::path::Path;

use ndarray::{Array3, ArrayD, Ix3};
use ndarray_npy::{ReadNpyError, ReadNpyExt};

use crate::error::{MotionError, Result};
use crate::io::{io_error, parse_error};
use crate::limits::{check, MAX_FRAMES, MAX_JOINTS};

/// Reads an `.npy` file of f32 or f64 values (stored as f32) of shape `[frames, joints, 3]`.
///
/// Errors name the file: not a valid `.npy`, another element type, or another shape (the
/// error gives the shape found). An array with 0 frames is returned as is; the loaders skip it.
pub fn read_npy_positions(path: &Path) -> Result<Array3<f32>> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    check_header(&bytes).map_err(|m| parse_error(path, 0, m))?;
    let bad = |e: ReadNpyError| parse_error(path, 0, format!("cannot read as .npy: {e}"));
    let array: ArrayD<f32> = match ArrayD::<f32>::read_npy(bytes.as_slice()) {
        Ok(a) => a,
        Err(ReadNpyError::WrongDescriptor(_)) => match ArrayD::<f64>::read_npy(bytes.as_slice()) {
            Ok(a) => a.mapv(|v| v as f32),
            Err(ReadNpyError::WrongDescriptor(d)) => {
                return Err(parse_error(
                    path,
                    0,
                    format!("element type {d} is neither f32 nor f64"),
                ))
            }
            Err(e) => return Err(bad(e)),
        },
        Err(e) => return Err(bad(e)),
    };
    let shape = array.shape().to_vec();
    if shape.len() != 3 || shape[2] != 3 {
        return Err(MotionError::Shape {
            what: path.display().to_string(),
            expected: "a rank-3 array [frames, joints, 3]".into(),
            got: format!("rank {} array of shape {shape:?}", shape.len()),
        });
    }
    Ok(array
        .into_dimensionality::<Ix3>()
        .expect("rank checked above")
        .as_standard_layout()
        .into_owned())
}

/// Checks an `.npy` header before anything is allocated from it: the header lies within the
/// file, the shape is `[frames, joints, 3]` within the limits, and the data it announces is
/// present (shape x element size = the bytes after the header).
fn check_header(bytes: &[u8]) -> std::result::Result<(), String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        2 | 3 => return Err("file ends inside the .npy header".into()),
        v => return Err(format!(".npy format version {v} is not 1, 2 or 3")),
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| format!("header of {len} bytes runs past the end of the file"))?;
    let header = String::from_utf8_lossy(&bytes[start..end]);
    let field = |key: &str| header.find(key).map(|i| &header[i + key.len()..]);
    let shape = field("'shape'")
        .and_then(|r| r.trim_start().strip_prefix(':'))
        .and_then(|r| r.trim_start().strip_prefix('('))
        .and_then(|r| r.split_once(')'))
        .map(|(inside, _)| inside)
        .ok_or("header has no 'shape': (...) entry")?;
    let dims = shape
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("shape entry {d:?} is not a size"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if dims.len() != 3 || dims[2] != 3 {
        return Err(format!(
            "rank {} array of shape {dims:?}: expected a rank-3 array [frames, joints, 3]",
            dims.len()
        ));
    }
    check("frame count", dims[0], MAX_FRAMES)?;
    check("joint count", dims[1], MAX_JOINTS)?;
    // Element size from the descriptor ('<f4' -> 4); 1 when it has none (then the reader
    // refuses the type).
    let item = field("'descr'")
        .and_then(|r| r.split('\'').nth(1))
        .and_then(|d| {
            d.trim_start_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .filter(|&n: &usize| n >= 1)
        .unwrap_or(1);
    let need = dims
        .iter()
        .try_fold(item, |a, &d| a.checked_mul(d))
        .ok_or("shape x element size overflows")?;
    let have = bytes.len() - end;
    if need > have {
        return Err(format!(
            "shape {dims:?} needs {need} bytes of data, the file holds {have} after its header"
        ));
    }
    Ok(())
}
