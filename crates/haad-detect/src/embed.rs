//! Embedding methods: the [`Embedding`] trait, the raw-DCT baseline [`RawDct`] and the closed
//! set of methods a detector can use, [`Embedder`].

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use haad_gcn::EncoderModel;
use haad_motion::{dct::DctBasis, preprocess::DEFAULT_FRAMES, Motion};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{DetectError, Result};
use crate::input::InputSpec;

/// Maps prepared clips (exactly [`Embedding::frames`] frames, root-relative) to vectors.
pub trait Embedding {
    /// T: the frames a prepared clip has.
    fn frames(&self) -> usize;

    /// The joint count the method is built for, or `None` if it takes any.
    fn joints(&self) -> Option<usize>;

    /// E: the embedding width for clips of `joints` joints.
    fn dim(&self, joints: usize) -> usize;

    /// Embeddings of prepared clips, `[B, E]` (row `i` is clip `i`).
    fn embed_prepared(&self, clips: &[Motion]) -> Result<Array2<f32>>;

    /// Checks and prepares raw clips as `input` says, then embeds them, `[B, E]`.
    fn embed_raw(&self, clips: &[Motion], input: &InputSpec) -> Result<Array2<f32>> {
        let prepared = input.prepare_all(clips, self.frames())?;
        self.embed_prepared(&prepared)
    }
}

/// Hyper-parameters of the raw-DCT baseline (no learning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDctConfig {
    /// T: frames of the prepared clip (the method's 60).
    pub frames: usize,
    /// K: DCT coefficients kept per joint and axis (the method's 10).
    pub coefficients: usize,
}

impl Default for RawDctConfig {
    fn default() -> Self {
        Self {
            frames: DEFAULT_FRAMES,
            coefficients: 10,
        }
    }
}

impl RawDctConfig {
    /// Checks `1 <= coefficients <= frames` and builds the embedder.
    pub fn check(&self) -> Result<RawDct> {
        if self.frames == 0 {
            return Err(DetectError::Config {
                field: "frames",
                rule: "must be at least 1, is 0".into(),
            });
        }
        if self.coefficients == 0 || self.coefficients > self.frames {
            return Err(DetectError::Config {
                field: "coefficients",
                rule: format!(
                    "must lie in 1..=frames = {}, is {}",
                    self.frames, self.coefficients
                ),
            });
        }
        Ok(RawDct {
            config: *self,
            basis: DctBasis::new(self.frames, self.coefficients)?,
        })
    }
}

/// The raw-DCT baseline: the prepared clip's first K orthonormal DCT-II coefficients over time,
/// `[K, J, 3]`, flattened row-major to `E = K * J * 3`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDct {
    config: RawDctConfig,
    basis: DctBasis,
}

impl RawDct {
    /// The configuration it was built from.
    pub fn config(&self) -> RawDctConfig {
        self.config
    }
}

impl Default for RawDct {
    fn default() -> Self {
        RawDctConfig::default()
            .check()
            .expect("the default raw DCT configuration is valid")
    }
}

impl Embedding for RawDct {
    fn frames(&self) -> usize {
        self.config().frames
    }

    fn joints(&self) -> Option<usize> {
        None
    }

    fn dim(&self, joints: usize) -> usize {
        self.config.coefficients * joints * 3
    }

    fn embed_prepared(&self, clips: &[Motion]) -> Result<Array2<f32>> {
        let joints = clips.first().map_or(0, Motion::joints);
        let dim = self.dim(joints);
        let mut out = Array2::zeros((clips.len(), dim));
        for (i, clip) in clips.iter().enumerate() {
            if clip.joints() != joints {
                return Err(DetectError::Shape {
                    what: format!("clip {i} of the batch"),
                    expected: format!("{joints} joints (as clip 0)"),
                    got: format!("{} joints", clip.joints()),
                });
            }
            let coeffs = self
                .basis
                .forward(clip)
                .map_err(|e| DetectError::from(e).at_clip(i, None))?;
            out.row_mut(i)
                .iter_mut()
                .zip(coeffs.iter())
                .for_each(|(o, &c)| *o = c);
        }
        Ok(out)
    }
}

impl Embedding for EncoderModel {
    fn frames(&self) -> usize {
        self.config().frames
    }

    fn joints(&self) -> Option<usize> {
        Some(self.config().joints)
    }

    fn dim(&self, _joints: usize) -> usize {
        self.config().embedding_dim()
    }

    fn embed_prepared(&self, clips: &[Motion]) -> Result<Array2<f32>> {
        Ok(self.embed(clips)?)
    }
}

/// The embedding methods a detector can use.
#[derive(Clone)]
pub enum Embedder {
    /// The raw-DCT baseline.
    RawDct(RawDct),
    /// A learned Res-GCN encoder (eval mode), shared: cloning the embedder (or a detector)
    /// does not copy the weights.
    Encoder(Arc<EncoderModel>),
}

impl Embedder {
    /// The raw-DCT baseline with the method's T = 60 frames and K = 10 coefficients.
    pub fn raw_dct() -> Self {
        Embedder::RawDct(RawDct::default())
    }

    /// A learned encoder.
    pub fn encoder(model: EncoderModel) -> Self {
        Embedder::Encoder(Arc::new(model))
    }

    /// The learned encoder saved in `dir`, loaded onto `device`: a folder written by
    /// `EncoderModel::save`, or a training output folder (its `best/`, else `last/`;
    /// [`haad_gcn::encoder_dir`]).
    pub fn load_encoder(dir: &Path, device: &Device) -> Result<Self> {
        Ok(Embedder::encoder(EncoderModel::load_from(dir, device)?))
    }

    /// A short human-readable name of the method ("raw_dct", "encoder").
    pub fn name(&self) -> &'static str {
        match self {
            Embedder::RawDct(_) => "raw_dct",
            Embedder::Encoder(_) => "encoder",
        }
    }

    fn inner(&self) -> &dyn Embedding {
        match self {
            Embedder::RawDct(e) => e,
            Embedder::Encoder(m) => m.as_ref(),
        }
    }
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Embedder::RawDct(e) => f.debug_tuple("RawDct").field(&e.config()).finish(),
            Embedder::Encoder(m) => f
                .debug_struct("Encoder")
                .field("config", &**m.config())
                .finish_non_exhaustive(),
        }
    }
}

impl PartialEq for Embedder {
    /// Raw-DCT embedders are equal when their settings are; encoders when their configs and
    /// every variable (weights and BatchNorm statistics) are equal.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Embedder::RawDct(a), Embedder::RawDct(b)) => a == b,
            (Embedder::Encoder(a), Embedder::Encoder(b)) => {
                Arc::ptr_eq(a, b) || (a.config() == b.config() && same_vars(a, b))
            }
            _ => false,
        }
    }
}

fn same_vars(a: &EncoderModel, b: &EncoderModel) -> bool {
    let (va, vb) = (a.named_vars(), b.named_vars());
    let values = |v: &candle_core::Var| -> Option<Vec<f32>> {
        v.as_tensor()
            .to_dtype(candle_core::DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .ok()
    };
    va.len() == vb.len()
        && va.iter().zip(&vb).all(|((na, xa), (nb, xb))| {
            na == nb && xa.dims() == xb.dims() && values(xa).is_some() && values(xa) == values(xb)
        })
}

impl Embedding for Embedder {
    fn frames(&self) -> usize {
        self.inner().frames()
    }

    fn joints(&self) -> Option<usize> {
        self.inner().joints()
    }

    fn dim(&self, joints: usize) -> usize {
        self.inner().dim(joints)
    }

    fn embed_prepared(&self, clips: &[Motion]) -> Result<Array2<f32>> {
        self.inner().embed_prepared(clips)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haad_motion::dct::dct_matrix;
    use ndarray::Array3;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    #[test]
    fn config_rejects_bad_sizes() {
        for (frames, coefficients) in [(0, 0), (60, 0), (10, 11)] {
            let c = RawDctConfig {
                frames,
                coefficients,
            };
            let field = if frames == 0 {
                "frames"
            } else {
                "coefficients"
            };
            assert!(
                matches!(c.check(), Err(DetectError::Config { field: f, .. }) if f == field),
                "{c:?}"
            );
        }
        assert_eq!(RawDct::default().dim(20), 600);
    }

    #[test]
    fn matches_float64_reference() {
        // E[(k * J + j) * 3 + c] = sum_t D[k, t] x[t, j, c], with D the orthonormal DCT-II.
        let (n, k, j) = (12, 4, 3);
        let mut rng = StdRng::seed_from_u64(1);
        let a = Array3::from_shape_fn((n, j, 3), |_| rng.random_range(-1.0f32..1.0));
        let m = Motion::new(a.clone(), None).unwrap();
        let e = RawDctConfig {
            frames: n,
            coefficients: k,
        }
        .check()
        .unwrap();
        let out = e.embed_prepared(&[m.clone(), m]).unwrap();
        assert_eq!(out.dim(), (2, k * j * 3));
        let d = dct_matrix(n);
        for kk in 0..k {
            for jj in 0..j {
                for c in 0..3 {
                    let want: f64 = (0..n).map(|t| d[[kk, t]] * a[[t, jj, c]] as f64).sum();
                    let got = out[[1, (kk * j + jj) * 3 + c]] as f64;
                    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn load_encoder_reads_a_saved_encoder_or_a_training_folder() {
        let dev = Device::Cpu;
        let cfg = haad_gcn::EncoderConfig {
            joints: 5,
            hidden: 8,
            blocks: 1,
            ..Default::default()
        };
        let model = EncoderModel::new(&cfg, 4, &dev).unwrap();
        let dir = std::env::temp_dir().join(format!("haad-detect-enc-{}", std::process::id()));
        model.save(&dir.join("last")).unwrap();
        let loaded = Embedder::load_encoder(&dir, &dev).unwrap();
        assert_eq!(
            loaded,
            Embedder::load_encoder(&dir.join("last"), &dev).unwrap()
        );
        assert_eq!(loaded, Embedder::encoder(model));
        assert_eq!(
            (loaded.frames(), loaded.joints(), loaded.dim(5)),
            (60, Some(5), 5)
        );
        assert_ne!(loaded, Embedder::raw_dct());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            Embedder::load_encoder(&dir, &dev),
            Err(DetectError::Gcn(haad_gcn::GcnError::NoEncoder { .. }))
        ));
    }

    #[test]
    fn constant_clip_has_only_dc() {
        // A still pose v: coefficient 0 = sqrt(N) v, the others 0.
        let m = Motion::new(Array3::from_elem((60, 2, 3), 0.5), None).unwrap();
        let out = Embedder::raw_dct().embed_prepared(&[m]).unwrap();
        for (i, &v) in out.row(0).iter().enumerate() {
            let want = if i < 6 { 0.5 * 60f32.sqrt() } else { 0.0 };
            assert!((v - want).abs() < 1e-4, "{i}: {v}");
        }
    }

    #[test]
    fn embed_raw_prepares_and_rejects_mixed_batches() {
        let e = Embedder::raw_dct();
        let input = InputSpec {
            joints: 2,
            root: 0,
            min_frames: 1,
        };
        // Translating a clip changes nothing after root subtraction.
        let a = Array3::from_shape_fn((70, 2, 3), |(t, j, c)| {
            (t as f32 * 0.1).sin() + (j + c) as f32
        });
        let moved = &a + 3.0;
        let out = e
            .embed_raw(
                &[
                    Motion::new(a, None).unwrap(),
                    Motion::new(moved, None).unwrap(),
                ],
                &input,
            )
            .unwrap();
        for (x, y) in out.row(0).iter().zip(out.row(1).iter()) {
            assert!((x - y).abs() < 1e-4);
        }
        let mixed = [
            Motion::new(Array3::zeros((60, 2, 3)), None).unwrap(),
            Motion::new(Array3::zeros((60, 3, 3)), None).unwrap(),
        ];
        assert!(e.embed_prepared(&mixed).is_err());
        let short = [Motion::new(Array3::zeros((59, 2, 3)), None).unwrap()];
        assert!(e.embed_prepared(&short).is_err());
    }
}
