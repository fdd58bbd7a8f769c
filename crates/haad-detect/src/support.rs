//! [`SupportSet`]: the embeddings of the few normal clips a detector compares against, plus
//! optionally generated variants of each.

use haad_motion::{Augmenter, Motion};
use ndarray::{concatenate, Array2, ArrayView2, Axis};
use rand::{rngs::StdRng, SeedableRng};

use crate::embed::Embedding;
use crate::error::{DetectError, Result};
use crate::input::InputSpec;

/// Generated variants of every real support clip.
#[derive(Clone, Copy)]
pub struct Augmentation<'a> {
    /// What makes the variants (called on the raw clips; its output is then preprocessed).
    pub augmenter: &'a dyn Augmenter,
    /// Variants per real clip.
    pub per_clip: usize,
    /// Seed of the augmenter's random stream.
    pub seed: u64,
}

impl std::fmt::Debug for Augmentation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Augmentation")
            .field("per_clip", &self.per_clip)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// Support embeddings `[M, E]`: first the K real clips, then the generated variants clip-major
/// (the variants of real clip `i` follow each other).
#[derive(Debug, Clone, PartialEq)]
pub struct SupportSet {
    embeddings: Array2<f32>,
    origin: Vec<usize>,
    real: usize,
}

impl SupportSet {
    /// A support set of real-clip embeddings only, `[K, E]`.
    pub fn from_embeddings(embeddings: Array2<f32>) -> Result<Self> {
        let k = embeddings.nrows();
        Self::from_parts(embeddings, (0..k).collect(), k)
    }

    /// Reassembles a support set: `origin[m]` is the real clip row `m` is or derives from, and
    /// the first `real` rows are the real clips themselves.
    pub fn from_parts(embeddings: Array2<f32>, origin: Vec<usize>, real: usize) -> Result<Self> {
        let (m, e) = embeddings.dim();
        if m == 0 || e == 0 || real == 0 || real > m || origin.len() != m {
            return Err(DetectError::Shape {
                what: "support set".into(),
                expected: "[M >= 1, E >= 1] embeddings, 1 <= real <= M, one origin per row".into(),
                got: format!(
                    "[{m}, {e}] embeddings, real = {real}, {} origins",
                    origin.len()
                ),
            });
        }
        for (row, &o) in origin.iter().enumerate() {
            let ok = if row < real { o == row } else { o < real };
            if !ok {
                return Err(DetectError::InvalidArgument(format!(
                    "support row {row} has origin {o}: real rows are their own origin and \
                     generated rows name one of the {real} real clips"
                )));
            }
        }
        if let Some(((row, col), v)) = embeddings.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(DetectError::InvalidArgument(format!(
                "support embedding [{row}, {col}] is not finite ({v})"
            )));
        }
        Ok(Self {
            embeddings,
            origin,
            real,
        })
    }

    /// Embeds the raw normal `clips` (checked and prepared as `input` says) and, with
    /// `augmentation`, `per_clip` generated variants of each.
    pub fn build<E: Embedding + ?Sized>(
        embedder: &E,
        input: &InputSpec,
        clips: &[Motion],
        augmentation: Option<Augmentation<'_>>,
    ) -> Result<Self> {
        if clips.is_empty() {
            return Err(DetectError::InvalidArgument(
                "a support set needs at least one normal clip".into(),
            ));
        }
        let real = embedder.embed_raw(clips, input)?;
        let mut origin: Vec<usize> = (0..clips.len()).collect();
        let embeddings = match augmentation {
            Some(a) if a.per_clip > 0 => {
                let generated = generate(clips, input, &a)?;
                let g = embedder.embed_raw(&generated, input)?;
                origin.extend((0..clips.len()).flat_map(|i| std::iter::repeat_n(i, a.per_clip)));
                concatenate(Axis(0), &[real.view(), g.view()])
                    .expect("real and generated embeddings share their width")
            }
            _ => real,
        };
        Self::from_parts(embeddings, origin, clips.len())
    }

    /// All embeddings, `[M, E]`.
    pub fn embeddings(&self) -> ArrayView2<'_, f32> {
        self.embeddings.view()
    }

    /// For each row, the real clip it is or derives from.
    pub fn origin(&self) -> &[usize] {
        &self.origin
    }

    /// K: the number of real clips.
    pub fn real(&self) -> usize {
        self.real
    }

    /// M: the number of embeddings (real and generated).
    pub fn len(&self) -> usize {
        self.embeddings.nrows()
    }

    /// Always false: a support set has at least one embedding.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// E: the embedding width.
    pub fn dim(&self) -> usize {
        self.embeddings.ncols()
    }
}

/// Runs the augmenter on the raw clips and checks that it gave `per_clip` variants of each.
pub(crate) fn generate(
    clips: &[Motion],
    input: &InputSpec,
    a: &Augmentation<'_>,
) -> Result<Vec<Motion>> {
    for (i, c) in clips.iter().enumerate() {
        input.check_clip(c).map_err(|e| e.at_clip(i, None))?;
    }
    let mut rng = StdRng::seed_from_u64(a.seed);
    let generated = a.augmenter.augment(clips, a.per_clip, &mut rng)?;
    if generated.len() != clips.len() * a.per_clip {
        return Err(DetectError::Shape {
            what: "augmenter output".into(),
            expected: format!("{} x {} variants", clips.len(), a.per_clip),
            got: format!("{} clips", generated.len()),
        });
    }
    Ok(generated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::Embedder;
    use haad_motion::augment::{Axis3, RotateJitterAugmenter};
    use ndarray::{array, Array3};

    fn clip(phase: f32) -> Motion {
        let a = Array3::from_shape_fn((50, 4, 3), |(t, j, c)| {
            (t as f32 * 0.1 + phase).sin() * (j + 1) as f32 + c as f32
        });
        Motion::new(a, None).unwrap()
    }

    #[test]
    fn from_parts_checks_shapes_and_origins() {
        let e = array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]];
        assert!(SupportSet::from_parts(e.clone(), vec![0, 1, 1], 2).is_ok());
        assert!(SupportSet::from_parts(e.clone(), vec![0, 1], 2).is_err());
        assert!(SupportSet::from_parts(e.clone(), vec![1, 0, 0], 2).is_err());
        assert!(SupportSet::from_parts(e.clone(), vec![0, 1, 2], 2).is_err());
        assert!(SupportSet::from_parts(e.clone(), vec![0, 1, 2], 0).is_err());
        assert!(SupportSet::from_embeddings(Array2::zeros((0, 2))).is_err());
        let mut bad = e;
        bad[[2, 1]] = f32::NAN;
        assert!(SupportSet::from_embeddings(bad).is_err());
    }

    #[test]
    fn build_adds_seeded_variants_clip_major() {
        let emb = Embedder::raw_dct();
        let input = InputSpec {
            joints: 4,
            root: 0,
            min_frames: 1,
        };
        let clips = [clip(0.0), clip(1.0)];
        let aug = RotateJitterAugmenter {
            up: Axis3::Y,
            max_angle: 0.3,
            jitter_std: 0.01,
            root: 0,
        };
        let a = Augmentation {
            augmenter: &aug,
            per_clip: 3,
            seed: 5,
        };
        let s = SupportSet::build(&emb, &input, &clips, Some(a)).unwrap();
        assert_eq!((s.len(), s.real(), s.dim()), (8, 2, 120));
        assert_eq!(s.origin(), &[0, 1, 0, 0, 0, 1, 1, 1]);
        let plain = SupportSet::build(&emb, &input, &clips, None).unwrap();
        assert_eq!(
            plain.embeddings(),
            s.embeddings().slice(ndarray::s![..2, ..])
        );
        // The generated rows are the embeddings of the augmenter's output for that seed.
        let want = emb
            .embed_raw(
                &aug.augment(&clips, 3, &mut StdRng::seed_from_u64(5))
                    .unwrap(),
                &input,
            )
            .unwrap();
        assert_eq!(s.embeddings().slice(ndarray::s![2.., ..]), want);
        let again = SupportSet::build(&emb, &input, &clips, Some(a)).unwrap();
        assert_eq!(again, s);
        assert!(SupportSet::build(&emb, &input, &[], None).is_err());
    }
}
