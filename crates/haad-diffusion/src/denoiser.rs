//! The noise-prediction transformer eps_theta(x_t, t, c): one token per DCT coefficient
//! (HumanMAC's `MotionTransformer`, after MotionDiffuse).

use candle_core::{Device, Module, Tensor, D};
use candle_nn::{Init, VarBuilder};
use rand::{rngs::SmallRng, Rng, SeedableRng};

use std::sync::Arc;

use crate::attention::attention;
use crate::config::ValidConfig;
use crate::error::{DiffusionError, Result};
use crate::init::WEIGHT_INIT;
use crate::ops::{self, Linear};
use crate::style::modulated_silu;

/// Dropout whose masks come from a seeded generator; inactive (identity) without one.
///
/// The masks are drawn from a small fast generator (`SmallRng`, seeded once): the denoiser
/// needs millions of mask entries per training step, and a cryptographic generator would cost
/// more than the layers it drops from.
pub struct Dropout {
    p: f32,
    rng: Option<SmallRng>,
}

impl Dropout {
    /// Dropout with probability `p` and masks drawn from `seed`; `None` turns it off.
    pub fn new(p: f32, seed: Option<u64>) -> Self {
        Self {
            p,
            rng: seed.map(SmallRng::seed_from_u64),
        }
    }

    /// No dropout (evaluation).
    pub fn off() -> Self {
        Self { p: 0.0, rng: None }
    }

    /// The next `n` mask entries: each 0 (dropped, probability p) or 1 / (1 - p); `None` when
    /// dropout is off. The generator fills a block of uniform u32s at once (two per draw of
    /// its 64-bit state) and the comparison runs over the block, which vectorises.
    fn mask(&mut self, n: usize) -> Option<Arc<[f32]>> {
        match self.rng.as_mut() {
            Some(rng) if self.p > 0.0 => {
                let keep = 1.0 / (1.0 - self.p);
                // An entry is dropped when a uniform u32 falls below p 2^32.
                let threshold = (self.p as f64 * 4_294_967_296.0).min(u32::MAX as f64) as u32;
                let mut bits = vec![0u32; n];
                rng.fill(&mut bits[..]);
                let mask: Vec<f32> = bits
                    .iter()
                    .map(|&r| if r < threshold { 0.0 } else { keep })
                    .collect();
                Some(mask.into())
            }
            _ => None,
        }
    }
}

/// LayerNorm with learned scale and shift, through [`ops::layer_norm`] (fused, with a backward;
/// candle's fast LayerNorm has none).
struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn new(d: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(d, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(d, "bias", Init::Const(0.0))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(ops::layer_norm(x, &self.weight, &self.bias, NORM_EPS)?)
    }

    fn frozen(&self) -> Result<Self> {
        Ok(Self {
            weight: ops::frozen_copy(&self.weight)?,
            bias: ops::frozen_copy(&self.bias)?,
        })
    }

    /// `SiLU(LN(x) (1 + scale) + shift)` times the dropout mask, for x `[B, K, d]` and per-clip
    /// `scale`, `shift` `[B, 1, d]`, in one pass over x ([`modulated_silu`]): the LayerNorm's own
    /// scale w and shift b folded into the per-clip ones, `x_hat (w (1 + scale)) + (b (1 + scale)
    /// + shift)`, on `[B, 1, d]` tensors.
    fn modulated_silu(
        &self,
        x: &Tensor,
        scale: &Tensor,
        shift: &Tensor,
        mask: Option<Arc<[f32]>>,
    ) -> Result<Tensor> {
        let one_plus = (scale + 1.0)?;
        let s = one_plus.broadcast_mul(&self.weight)?;
        let t = (one_plus.broadcast_mul(&self.bias)? + shift)?;
        Ok(modulated_silu(x, &s, &t, NORM_EPS, mask)?)
    }
}

/// The LayerNorms' epsilon (PyTorch's default).
const NORM_EPS: f64 = 1e-5;

/// A Linear(`d_in` -> `d_out`) initialised like `candle_nn::linear` (Kaiming-normal weight, bias
/// uniform in +-1/sqrt(d_in)), with a bias or without.
fn linear_init(d_in: usize, d_out: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    let weight = vb.get_with_hints((d_out, d_in), "weight", WEIGHT_INIT)?;
    let bias = if bias {
        let bound = 1.0 / (d_in as f64).sqrt();
        Some(vb.get_with_hints(
            d_out,
            "bias",
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

fn linear(d_in: usize, d_out: usize, vb: VarBuilder) -> Result<Linear> {
    linear_init(d_in, d_out, true, vb)
}

fn linear_no_bias(d_in: usize, d_out: usize, vb: VarBuilder) -> Result<Linear> {
    linear_init(d_in, d_out, false, vb)
}

/// A Linear(`d_in` -> `d_out`) with bias whose weights and bias start at zero (HumanMAC's
/// `zero_module`): a residual branch ending in one adds nothing until it has learned something.
fn zero_linear(d_in: usize, d_out: usize, vb: VarBuilder) -> Result<Linear> {
    Ok(Linear::new(
        vb.get_with_hints((d_out, d_in), "weight", Init::Const(0.0))?,
        Some(vb.get_with_hints(d_out, "bias", Init::Const(0.0))?),
    ))
}

/// Modulates a sub-layer's output y `[B, K, d]` by the embedding: `Linear(SiLU(LN(y) (1 + scale)
/// + shift))` with `(scale, shift)` from a Linear of SiLU(emb); the last Linear starts at zero.
struct Stylization {
    emb: Linear,
    norm: Norm,
    out: Linear,
    d: usize,
}

impl Stylization {
    fn new(d: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            emb: linear(d, 2 * d, vb.pp("emb"))?,
            norm: Norm::new(d, vb.pp("norm"))?,
            out: zero_linear(d, d, vb.pp("out"))?,
            d,
        })
    }

    fn frozen(&self) -> Result<Self> {
        Ok(Self {
            emb: self.emb.frozen()?,
            norm: self.norm.frozen()?,
            out: self.out.frozen()?,
            d: self.d,
        })
    }

    /// `x` plus the modulated `y` (both `[B, K, d]`); `silu_emb`: SiLU(emb), `[B, d]`.
    fn add_to(
        &self,
        x: &Tensor,
        y: &Tensor,
        silu_emb: &Tensor,
        drop: &mut Dropout,
    ) -> Result<Tensor> {
        let e = self.emb.forward(silu_emb)?.unsqueeze(1)?; // [B, 1, 2d]
        let scale = e.narrow(D::Minus1, 0, self.d)?;
        let shift = e.narrow(D::Minus1, self.d, self.d)?;
        let mask = drop.mask(y.elem_count());
        let h = self.norm.modulated_silu(y, &scale, &shift, mask)?;
        Ok(self.out.forward_add(&h, x)?)
    }
}

/// Pre-LayerNorm multi-head self-attention over the K tokens, no bias on q, k, v.
struct SelfAttention {
    norm: Norm,
    q: Linear,
    k: Linear,
    v: Linear,
    /// `[W_q; W_k; W_v]^T` `[d, 3d]` in a frozen copy (built once, not per call).
    qkv_t: Option<Tensor>,
    heads: usize,
    style: Stylization,
}

impl SelfAttention {
    fn new(d: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: Norm::new(d, vb.pp("norm"))?,
            q: linear_no_bias(d, d, vb.pp("q"))?,
            k: linear_no_bias(d, d, vb.pp("k"))?,
            v: linear_no_bias(d, d, vb.pp("v"))?,
            qkv_t: None,
            heads,
            style: Stylization::new(d, vb.pp("style"))?,
        })
    }

    /// `[W_q; W_k; W_v]` `[3d, d]`: the rows of q, k and v's weights, stacked.
    fn qkv(&self) -> Result<Tensor> {
        Ok(Tensor::cat(
            &[self.q.weight(), self.k.weight(), self.v.weight()],
            0,
        )?)
    }

    fn frozen(&self) -> Result<Self> {
        let qkv_t = haad_kernels::transpose_detached(&self.qkv()?)?;
        let d = self.q.weight().dim(0)?;
        let part = |i: usize| Linear::transposed(qkv_t.narrow(1, i * d, d)?, None);
        Ok(Self {
            norm: self.norm.frozen()?,
            q: part(0)?,
            k: part(1)?,
            v: part(2)?,
            qkv_t: Some(qkv_t),
            heads: self.heads,
            style: self.style.frozen()?,
        })
    }

    fn forward(&self, x: &Tensor, silu_emb: &Tensor, drop: &mut Dropout) -> Result<Tensor> {
        let (b, k, d) = x.dims3()?;
        let xn = self.norm.forward(x)?.reshape((b * k, d))?;
        // One product for q, k and v: [B K, 3d].
        let wt = match &self.qkv_t {
            Some(wt) => wt.clone(),
            None => self.qkv()?.t()?,
        };
        let qkv = haad_kernels::matmul(&xn, &wt)?;
        let mask = drop.mask(b * self.heads * k * k);
        let y = attention(&qkv, k, self.heads, mask)?;
        self.style.add_to(x, &y, silu_emb, drop)
    }
}

/// Feed-forward d -> 2d (GELU) -> d (this Linear starts at zero), modulated and added
/// residually.
struct FeedForward {
    lin1: Linear,
    lin2: Linear,
    style: Stylization,
}

impl FeedForward {
    fn new(d: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            lin1: linear(d, 2 * d, vb.pp("lin1"))?,
            lin2: zero_linear(2 * d, d, vb.pp("lin2"))?,
            style: Stylization::new(d, vb.pp("style"))?,
        })
    }

    fn frozen(&self) -> Result<Self> {
        Ok(Self {
            lin1: self.lin1.frozen()?,
            lin2: self.lin2.frozen()?,
            style: self.style.frozen()?,
        })
    }

    fn forward(&self, x: &Tensor, silu_emb: &Tensor, drop: &mut Dropout) -> Result<Tensor> {
        let h = self.lin1.forward(x)?;
        let mask = drop.mask(h.elem_count());
        let h = ops::gelu(&h, mask)?;
        let y = self.lin2.forward(&h)?;
        self.style.add_to(x, &y, silu_emb, drop)
    }
}

struct Layer {
    attn: SelfAttention,
    ffn: FeedForward,
}

/// The sinusoidal embedding of integer timesteps, `[B, dim]`: `[cos(t f_i), sin(t f_i)]` with
/// `f_i = 10000^(-i / (dim / 2))`, zero-padded when `dim` is odd.
pub fn timestep_embedding(t: &[usize], dim: usize, device: &Device) -> Result<Tensor> {
    let half = dim / 2;
    let mut v = vec![0f32; t.len() * dim];
    for (b, &tb) in t.iter().enumerate() {
        for i in 0..half {
            let f = (-(10000f64.ln()) * i as f64 / half as f64).exp();
            let a = tb as f64 * f;
            v[b * dim + i] = a.cos() as f32;
            v[b * dim + half + i] = a.sin() as f32;
        }
    }
    Ok(Tensor::from_vec(v, (t.len(), dim), device)?)
}

/// eps_theta: predicts the noise of x_t `[B, K, F]` at timesteps t given the conditioning DCT
/// c `[B, K, F]` (zeros = unconditional).
///
/// Weights (names under the builder's prefix): `joint_embed` Linear(F -> d), `pos_embed` `[K, d]`,
/// `time_embed.{lin1,lin2}` Linear(d -> d), `cond_embed` Linear(K F -> d), with
/// `condition_tokens` also `cond_tokens` Linear(F -> d), `layers.{i}.attn`
/// (`norm`, `q`, `k`, `v`, `style.{emb,norm,out}`), `layers.{i}.ffn` (`lin1`, `lin2`, `style`),
/// `out` Linear(d -> F). As in HumanMAC, `out`, every `ffn.lin2` and every `style.out` start at
/// zero, so the untrained network predicts eps_hat = 0 and each layer starts as the identity.
pub struct Denoiser {
    cfg: ValidConfig,
    joint_embed: Linear,
    pos_embed: Tensor,
    time1: Linear,
    time2: Linear,
    cond_embed: Linear,
    cond_tokens: Option<Linear>,
    layers: Vec<Layer>,
    out: Linear,
}

impl Denoiser {
    /// Builds (or loads, depending on `vb`'s backend) the network of `cfg`.
    pub fn new(cfg: &ValidConfig, vb: VarBuilder) -> Result<Self> {
        let (d, f, k) = (cfg.d_model, cfg.features(), cfg.n_pre);
        let mut layers = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let lv = vb.pp("layers").pp(i.to_string());
            layers.push(Layer {
                attn: SelfAttention::new(d, cfg.heads, lv.pp("attn"))?,
                ffn: FeedForward::new(d, lv.pp("ffn"))?,
            });
        }
        let out = zero_linear(d, f, vb.pp("out"))?;
        Ok(Self {
            cfg: cfg.clone(),
            joint_embed: linear(f, d, vb.pp("joint_embed"))?,
            pos_embed: vb.get_with_hints(
                (k, d),
                "pos_embed",
                Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            )?,
            time1: linear(d, d, vb.pp("time_embed").pp("lin1"))?,
            time2: linear(d, d, vb.pp("time_embed").pp("lin2"))?,
            cond_embed: linear(k * f, d, vb.pp("cond_embed"))?,
            cond_tokens: if cfg.condition_tokens {
                Some(linear(f, d, vb.pp("cond_tokens"))?)
            } else {
                None
            },
            layers,
            out,
        })
    }

    /// The configuration the network was built for.
    pub fn config(&self) -> &ValidConfig {
        &self.cfg
    }

    /// A copy for inference with the weights as they are now (a sampler's many evaluations):
    /// every parameter copied out of its variable (no gradient reaches the variables through
    /// it, and changing them afterwards does not change the copy), every Linear's weight
    /// stored transposed, `[in, out]`, with q, k and v's stacked, once (read by
    /// [`haad_kernels::linear_in_out`]). The same forward to gemm's rounding.
    pub fn frozen(&self) -> Result<Self> {
        let frozen = |l: &Linear| l.frozen();
        Ok(Self {
            cfg: self.cfg.clone(),
            joint_embed: frozen(&self.joint_embed)?,
            pos_embed: ops::frozen_copy(&self.pos_embed)?,
            time1: frozen(&self.time1)?,
            time2: frozen(&self.time2)?,
            cond_embed: frozen(&self.cond_embed)?,
            cond_tokens: self.cond_tokens.as_ref().map(frozen).transpose()?,
            layers: self
                .layers
                .iter()
                .map(|l| {
                    Ok(Layer {
                        attn: l.attn.frozen()?,
                        ffn: l.ffn.frozen()?,
                    })
                })
                .collect::<Result<_>>()?,
            out: frozen(&self.out)?,
        })
    }

    /// eps_hat `[B, K, F]` for x_t `[B, K, F]`, timesteps `t` (B of them, in `0..=T`) and the
    /// conditioning `cond` `[B, K, F]`. `drop` gives dropout (training) or none.
    pub fn forward(
        &self,
        x: &Tensor,
        t: &[usize],
        cond: &Tensor,
        drop: &mut Dropout,
    ) -> Result<Tensor> {
        let (k, f) = (self.cfg.n_pre, self.cfg.features());
        let dims = x.dims().to_vec();
        if dims.len() != 3 || dims[1] != k || dims[2] != f || dims[0] != t.len() {
            return Err(DiffusionError::Shape {
                what: "denoiser input x_t".into(),
                expected: format!("[{} (timesteps), {k}, {f}]", t.len()),
                got: format!("{dims:?}"),
            });
        }
        if cond.dims() != x.dims() {
            return Err(DiffusionError::Shape {
                what: "denoiser conditioning".into(),
                expected: format!("{dims:?}"),
                got: format!("{:?}", cond.dims()),
            });
        }
        let b = dims[0];
        let d = self.cfg.d_model;
        let mut h = ops::add_rows(
            &self.joint_embed.forward(x)?.reshape((b, k * d))?,
            &self.pos_embed.reshape(k * d)?,
        )?
        .reshape((b, k, d))?;
        if let Some(ct) = &self.cond_tokens {
            h = (h + ct.forward(cond)?)?;
        }
        let temb = timestep_embedding(t, self.cfg.d_model, x.device())?;
        let emb = (self
            .time2
            .forward(&ops::silu(&self.time1.forward(&temb)?, None)?)?
            + self.cond_embed.forward(&cond.reshape((b, k * f))?)?)?;
        let silu_emb = ops::silu(&emb, None)?;
        let half = self.layers.len() / 2;
        let mut skips = Vec::with_capacity(half);
        for (i, layer) in self.layers.iter().enumerate() {
            if i < half {
                skips.push(h.clone());
            }
            h = layer.attn.forward(&h, &silu_emb, drop)?;
            h = layer.ffn.forward(&h, &silu_emb, drop)?;
            if i >= half {
                let s = skips.pop().ok_or_else(|| {
                    DiffusionError::InvalidArgument("odd layer count reached the denoiser".into())
                })?;
                h = (h + s)?;
            }
        }
        Ok(self.out.forward(&h)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn dropout_masks_drop_p_and_rescale_the_rest() {
        let n = 100_000;
        let m = Dropout::new(0.2, Some(7)).mask(n).unwrap();
        assert_eq!(m.len(), n);
        assert!(m.iter().all(|&v| v == 0.0 || v == 1.25));
        // Binomial(n, 0.2): standard deviation of the fraction 0.0013.
        let dropped = m.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        assert!((dropped - 0.2).abs() < 0.006, "dropped {dropped}");
        let mut d = Dropout::new(0.2, Some(7));
        assert_eq!(d.mask(n).unwrap(), m, "same seed, same mask");
        assert_ne!(d.mask(64).unwrap()[..], m[..64], "the stream moves on");
        assert!(Dropout::off().mask(8).is_none());
        assert!(Dropout::new(0.0, Some(1)).mask(8).is_none());
    }

    /// The folded modulation equals LayerNorm, then `(1 + scale)` and `shift`, then SiLU and the
    /// dropout mask, in value and in the gradient of every input (f64).
    #[test]
    fn modulated_norm_is_layer_norm_then_modulation() {
        use crate::testing::{assert_same_values_and_grads, mask, var};
        let (b, k, d) = (3, 4, 5);
        let x = var(&[b, k, d], 1);
        let norm = Norm {
            weight: var(&[d], 2).as_tensor().clone(),
            bias: var(&[d], 3).as_tensor().clone(),
        };
        let (scale, shift) = (var(&[b, 1, d], 4), var(&[b, 1, d], 5));
        let m = mask(b * k * d, 7);
        let folded = norm
            .modulated_silu(
                x.as_tensor(),
                scale.as_tensor(),
                shift.as_tensor(),
                Some(m.clone()),
            )
            .unwrap();
        // LayerNorm as normalisation then its scale and shift, unfused.
        let row = |t: &Tensor| t.reshape((1, 1, d)).unwrap();
        let ln = ops::normalize(x.as_tensor(), NORM_EPS)
            .unwrap()
            .broadcast_mul(&row(&norm.weight))
            .unwrap()
            .broadcast_add(&row(&norm.bias))
            .unwrap();
        let plain = ln
            .broadcast_mul(&(scale.as_tensor() + 1.0).unwrap())
            .unwrap()
            .broadcast_add(shift.as_tensor())
            .unwrap()
            .silu()
            .unwrap();
        let plain = (plain * ops::mask_tensor(&m, x.as_tensor()).unwrap()).unwrap();
        let inputs = [
            x.as_tensor(),
            &norm.weight,
            &norm.bias,
            scale.as_tensor(),
            shift.as_tensor(),
        ];
        assert_same_values_and_grads(&folded, &plain, &inputs);
    }

    #[test]
    fn timestep_embedding_by_hand() {
        let e = timestep_embedding(&[0, 3], 4, &Device::Cpu).unwrap();
        let e: Vec<Vec<f32>> = e.to_vec2().unwrap();
        // half = 2: f = [1, 10000^-0.5 = 0.01].
        assert_eq!(e[0], vec![1.0, 1.0, 0.0, 0.0]);
        assert_abs_diff_eq!(e[1][0], 3f32.cos(), epsilon = 1e-6);
        assert_abs_diff_eq!(e[1][1], 0.03f32.cos(), epsilon = 1e-6);
        assert_abs_diff_eq!(e[1][2], 3f32.sin(), epsilon = 1e-6);
        assert_abs_diff_eq!(e[1][3], 0.03f32.sin(), epsilon = 1e-6);
    }
}
