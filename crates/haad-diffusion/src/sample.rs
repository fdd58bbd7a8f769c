//! DDIM sampling (eta = 0) with DCT completion after every step (HumanMAC's inference).

use candle_core::{Device, Tensor};
use haad_motion::Motion;
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::error::{DiffusionError, Result};
use crate::model::DiffusionModel;

/// At most this many completions go through the network at once.
pub const SAMPLE_BATCH: usize = 256;

/// The fewest completions sampled together on one thread when the rows are shared out among
/// several (below this, a part's products are too small to be worth a thread of their own).
pub const SAMPLE_PART: usize = 32;

/// The rows of one part when `rows` completions are shared out among `threads` threads: as
/// many parts as threads, none smaller than [`SAMPLE_PART`] unless all the rows are.
///
/// Each weight is read from memory once per part and network evaluation, so fewer, larger
/// parts save time: one part of 64 rows instead of two of 32 took 7 % less time at one thread
/// (paper size, 5 DDIM steps; docs/performance.md). The part size does not change the numbers:
/// every operation treats each row on its own, the products included (`gemm` blocks the inner
/// dimension by its length and the cache sizes, not by the rows). Completions of 70 clips came
/// out bit for bit the same in parts of 7, 16, 32, 64 and 256 rows at both presets (a
/// measurement build); `completions_are_the_same_at_any_thread_count` checks parts of 32 and 8
/// rows against one of 40.
pub fn part_rows(rows: usize, threads: usize) -> usize {
    rows.div_ceil(threads.max(1))
        .max(SAMPLE_PART)
        .min(rows)
        .max(1)
}

/// A standard normal tensor drawn from `rng` (candle's own CPU RNG cannot be seeded).
pub fn randn(dims: &[usize], rng: &mut StdRng, device: &Device) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    Ok(Tensor::from_vec(v, dims, device)?)
}

impl DiffusionModel {
    /// The frame mask `[1, N, 1]`: 1 for the first t_his (observed) frames, 0 after.
    fn observed_mask(&self) -> Result<Tensor> {
        let (n, h) = (self.config().frames, self.config().t_his);
        let v: Vec<f32> = (0..n).map(|i| if i < h { 1.0 } else { 0.0 }).collect();
        Ok(Tensor::from_vec(v, (1, n, 1), self.device())?)
    }

    /// Runs DDIM (eta = 0) from x_T ~ N(0, I) down the config's grid of S timesteps with the
    /// estimates `(x0_hat, eps_hat) = denoise(x_t, t)`, and returns x_0 `[B, K, F]`.
    ///
    /// With `complete`, after every step from t to t' the observed frames are imposed: the known
    /// spectrum `c_obs` `[B, K, F]` is noised to `sqrt(ab(t')) c_obs + sqrt(1 - ab(t')) z`, both it
    /// and the sample are mapped to frames with the inverse DCT, the first t_his frames are taken
    /// from the known one and the rest from the sample, and the result goes back to the DCT.
    /// The last step reaches t' = 0 (ab = 1), where the known spectrum is `c_obs` itself.
    pub fn ddim_with<E>(
        &self,
        c_obs: &Tensor,
        complete: bool,
        rng: &mut StdRng,
        denoise: E,
    ) -> Result<Tensor>
    where
        E: FnMut(&Tensor, usize) -> Result<(Tensor, Tensor)>,
    {
        let noise = self.ddim_noise(c_obs.dims(), complete, rng)?;
        self.ddim_from(c_obs, complete, &noise, denoise)
    }

    /// Every normal draw of [`DiffusionModel::ddim_with`], in its order: x_T, then (with
    /// `complete`) one `z` per step. Drawn up front so that the rows can then be sampled in
    /// parallel parts with the same numbers as in one pass.
    fn ddim_noise(&self, dims: &[usize], complete: bool, rng: &mut StdRng) -> Result<Vec<Tensor>> {
        let draws = 1 + if complete {
            self.config().ddim_grid().len()
        } else {
            0
        };
        (0..draws)
            .map(|_| randn(dims, rng, self.device()))
            .collect()
    }

    /// [`DiffusionModel::ddim_with`] on pre-drawn `noise` (see [`DiffusionModel::ddim_noise`]).
    fn ddim_from<E>(
        &self,
        c_obs: &Tensor,
        complete: bool,
        noise: &[Tensor],
        mut denoise: E,
    ) -> Result<Tensor>
    where
        E: FnMut(&Tensor, usize) -> Result<(Tensor, Tensor)>,
    {
        let grid = self.config().ddim_grid();
        let mask = self.observed_mask()?;
        let keep = (1.0 - &mask)?;
        let mut zs = noise.iter();
        let mut next = || {
            zs.next().ok_or_else(|| {
                DiffusionError::InvalidArgument("DDIM: fewer noise draws than steps".into())
            })
        };
        let mut x = next()?.clone();
        for i in (0..grid.len()).rev() {
            let t = grid[i];
            let t_prev = if i == 0 { 0 } else { grid[i - 1] };
            let abp = self.schedule().alpha_bar(t_prev);
            // Detached: the weights are trainable variables, and without this every step would
            // keep the previous steps' computation graphs (and activations) alive.
            let (x0, e) = denoise(&x, t)?;
            x = ((x0.detach() * abp.sqrt())? + (e.detach() * (1.0 - abp).sqrt())?)?;
            if complete {
                let z = next()?;
                let known = ((c_obs * abp.sqrt())? + (z * (1.0 - abp).sqrt())?)?;
                let frames = (self.from_dct(&known)?.broadcast_mul(&mask)?
                    + self.from_dct(&x)?.broadcast_mul(&keep)?)?;
                x = self.to_dct(&frames)?;
            }
            x = x.detach();
        }
        Ok(x)
    }

    /// `per_clip` completions of each observed clip, clip-major, as N-frame clips in data units.
    ///
    /// `observed`: clips of exactly N frames and J joints, root-relative (see
    /// `haad_motion::preprocess::prepare`); only their first t_his frames are used. Each
    /// completion is the inverse DCT of the sampled K coefficients, so its observed part is the
    /// low-pass (K-coefficient) version of the observed frames. All noise comes from `seed`.
    pub fn complete(&self, observed: &[Motion], per_clip: usize, seed: u64) -> Result<Vec<Motion>> {
        if per_clip == 0 {
            return Err(DiffusionError::InvalidArgument(
                "need at least one completion per clip".into(),
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let clips_per_chunk = (SAMPLE_BATCH / per_clip).max(1);
        // The weights do not change while sampling: transposed once (and kept for the next
        // call while they stay the same), not repacked by every product of every step.
        let net = self.frozen_denoiser()?;
        let mut out = Vec::with_capacity(observed.len() * per_clip);
        for chunk in observed.chunks(clips_per_chunk) {
            let frames = self.frames_tensor(chunk)?;
            let (b, n, f) = frames.dims3()?;
            // Repeat each clip per_clip times, clip-major.
            let frames = frames
                .unsqueeze(1)?
                .broadcast_as((b, per_clip, n, f))?
                .reshape((b * per_clip, n, f))?;
            let c_obs = self.condition(&frames)?;
            let rows = b * per_clip;
            // The rows are independent: one part per thread ([`part_rows`]), each sampled whole
            // on its thread, with the noise drawn up front (the same numbers at any thread
            // count).
            let noise = self.ddim_noise(c_obs.dims(), true, &mut rng)?;
            let threads = if haad_kernels::parallel_ok() {
                haad_kernels::threads()
            } else {
                1
            };
            let part = part_rows(rows, threads);
            let parts = haad_kernels::split_batch(rows, part, |start, len| {
                let part = |t: &Tensor| t.narrow(0, start, len);
                let noise = noise
                    .iter()
                    .map(part)
                    .collect::<candle_core::Result<Vec<_>>>()?;
                let c = part(&c_obs)?;
                self.ddim_from(&c, true, &noise, |x, t| {
                    self.denoise_by(&net, x, &vec![t; len], &c)
                })
            });
            let parts = parts.into_iter().collect::<Result<Vec<_>>>()?;
            let x0 = Tensor::cat(&parts, 0)?;
            let fps = chunk.first().and_then(|m| m.fps());
            out.extend(self.tensor_to_clips(&self.from_dct(&x0)?, fps)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_part_per_thread_none_below_the_minimum() {
        assert_eq!(part_rows(64, 1), 64);
        assert_eq!(part_rows(64, 2), 32);
        assert_eq!(part_rows(65, 2), 33);
        assert_eq!(part_rows(256, 4), 64);
        // Never below SAMPLE_PART (32) rows when there are that many...
        assert_eq!(part_rows(40, 2), 32);
        assert_eq!(part_rows(100, 16), 32);
        // ...nor above the rows themselves, nor zero.
        assert_eq!(part_rows(6, 2), 6);
        assert_eq!(part_rows(0, 2), 1);
        assert_eq!(part_rows(5, 0), 5);
    }
}
