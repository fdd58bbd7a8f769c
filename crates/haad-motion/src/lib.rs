//! # haad-motion: skeleton motion data for haad
//!
//! Loading real skeleton datasets, cutting clips to the method's fixed length, making them
//! root-relative, splitting categories into train/test and seen/unseen, and the orthonormal
//! DCT-II that every model of haad works in.
//!
//! [`io::load`] reads MSR Action3D, BVH (forward kinematics), Bandai-Namco, HumanAct12, a
//! folder layout for your own `.npy`/`.bvh` clips and the native `.safetensors` dataset file
//! ([`Dataset::save`]); [`DatasetStats`] summarises what was loaded and skipped. See
//! `docs/data.md` for the formats.
//!
//! ```
//! use haad_motion::{dct::DctBasis, preprocess, Motion};
//! use ndarray::Array3;
//!
//! // A 75-frame clip of 20 joints: cut to 60 frames, root-relative to joint 6, 10 DCT coefficients.
//! let raw = Motion::new(Array3::from_elem((75, 20, 3), 0.5), Some(15.0))?;
//! let clip = preprocess::prepare(&raw, 60, 6)?;
//! let coeffs = DctBasis::new(60, 10)?.forward(&clip)?; // [10, 20, 3]
//! assert_eq!(coeffs.dim(), (10, 20, 3));
//! # Ok::<(), haad_motion::MotionError>(())
//! ```

pub mod atomic;
pub mod augment;
pub mod canonical;
pub mod dataset;
pub mod dct;
pub mod error;
mod fingerprint;
pub mod io;
pub mod layout;
pub mod limits;
pub mod motion;
pub mod normalize;
mod pool;
pub mod preprocess;
pub mod progress;
pub mod split;
pub mod stats;

pub use augment::Augmenter;
pub use dataset::{Clip, Dataset, Skipped};
pub use error::{MotionError, Result};
pub use fingerprint::Fingerprint;
pub use io::{load, DataFormat};
pub use layout::Layout;
pub use motion::{Motion, Skeleton};
pub use normalize::{Canonicalizer, NormalizeConfig};
pub use pool::{PoolSpec, VariantPool, POOL_CHUNK};
pub use progress::{NoProgress, Progress};
pub use stats::DatasetStats;
