//! Reading `[frames, joints, 3]` position arrays from NumPy `.npy` files (f32 or f64).

use std::path::Path;

use ndarray::{Array3, ArrayD, Ix3};
use ndarray_npy::{ReadNpyError, ReadNpyExt};

use crate::error::{MotionError, Result};
use crate::io::{io_error, parse_error};

/// Reads an `.npy` file of f32 or f64 values (stored as f32) of shape `[frames, joints, 3]`.
///
/// Errors name the file: not a valid `.npy`, another element type, or another shape (the
/// error gives the shape found). An array with 0 frames is returned as is; the loaders skip it.
pub fn read_npy_positions(path: &Path) -> Result<Array3<f32>> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
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
