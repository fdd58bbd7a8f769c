//! The building blocks: the graph convolution with a trainable adjacency, and the residual block.

use candle_core::{Result, Tensor, Var};
use candle_nn::{BatchNormConfig, Init, VarBuilder};
use haad_kernels::matmul;

use crate::cpu::fused;
use crate::gc::graph_conv;
use crate::norm::{norm_tanh, BatchStats, Scale};

/// BatchNorm settings of the reference code (PyTorch `BatchNorm1d` defaults).
pub(crate) const BN_CONFIG: BatchNormConfig = BatchNormConfig {
    eps: 1e-5,
    remove_mean: true,
    affine: true,
    momentum: 0.1,
};

/// How one parameter is initialised (see [`crate::model::parameter_specs`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ParamInit {
    /// `U(-s, s)`.
    Uniform(f64),
    /// A constant.
    Const(f64),
}

impl ParamInit {
    pub(crate) fn to_candle(self) -> Init {
        match self {
            ParamInit::Uniform(s) => Init::Uniform { lo: -s, up: s },
            ParamInit::Const(c) => Init::Const(c),
        }
    }
}

/// The init bound `s = 1 / sqrt(F_out)` of a graph convolution's parameters.
pub(crate) fn gc_bound(f_out: usize) -> f64 {
    1.0 / (f_out as f64).sqrt()
}

/// A graph convolution `y = A (x W) + b` over the joints.
///
/// `A` (`att`, `[J, J]`) is a fully trainable adjacency, `W` (`weight`, `[F_in, F_out]`), `b`
/// (`bias`, `[F_out]`, optional); all initialised `U(-s, s)` with `s = 1 / sqrt(F_out)`.
#[derive(Debug, Clone)]
pub struct GraphConv {
    att: Tensor,
    weight: Tensor,
    bias: Option<Tensor>,
}

impl GraphConv {
    /// Builds the layer, reading (or creating) `att`, `weight` and `bias` under `vb`.
    pub fn new(
        joints: usize,
        f_in: usize,
        f_out: usize,
        bias: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let init = ParamInit::Uniform(gc_bound(f_out)).to_candle();
        let att = vb.get_with_hints((joints, joints), "att", init)?;
        let weight = vb.get_with_hints((f_in, f_out), "weight", init)?;
        let bias = if bias {
            Some(vb.get_with_hints(f_out, "bias", init)?)
        } else {
            None
        };
        Ok(Self { att, weight, bias })
    }

    /// The adjacency `A`, `[J, J]`.
    pub fn att(&self) -> &Tensor {
        &self.att
    }

    /// The weight `W`, `[F_in, F_out]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `b`, `[F_out]`, when the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// `[J, B, F_in] -> [J, B, F_out]`, in the encoder's node-major layout.
    ///
    /// Both products are single matrix multiplications without copies: `A (.)` is
    /// `[J, J] x [J, B*F]`, and `(.) W` is `[J*B, F_in] x [F_in, F_out]`. The cheaper order is
    /// taken: `(A x) W` when `F_in < F_out`, else `A (x W)` (equal up to rounding).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if fused(&[x, &self.att, &self.weight]) {
            return match &self.bias {
                Some(bias) => {
                    let row = bias.reshape((1, bias.dim(0)?))?;
                    graph_conv(x, &self.att, &Tensor::cat(&[&self.weight, &row], 0)?, true)
                }
                None => graph_conv(x, &self.att, &self.weight, false),
            };
        }
        let (j, b, f_in) = x.dims3()?;
        let f_out = self.weight.dim(1)?;
        let mix = |x: &Tensor, f: usize| -> Result<Tensor> {
            matmul(&self.att, &x.reshape((j, b * f))?)?.reshape((j, b, f))
        };
        let project = |x: &Tensor| -> Result<Tensor> {
            matmul(&x.reshape((j * b, f_in))?, &self.weight)?.reshape((j, b, f_out))
        };
        let y = if f_in < f_out {
            project(&mix(x, f_in)?)?
        } else {
            mix(&project(x)?, f_out)?
        };
        match &self.bias {
            Some(bias) => y.broadcast_add(bias),
            None => Ok(y),
        }
    }
}

/// BatchNorm over the `J * F` features of the reference code's `BatchNorm1d(J * F)` on the
/// flattened `[B, J*F]` map (feature index `j * F + f`), applied directly to the encoder's
/// `[J, B, F]` layout, fused with the tanh that follows it everywhere in the encoder.
///
/// The variables are created by [`candle_nn::batch_norm()`] (names `weight` (`gamma`), `bias`
/// (`beta`), `running_mean`, `running_var`, shape `[J*F]`; the running statistics are `Var`s of
/// the var map, updated in place). Training: `tanh(gamma x_hat + beta)` with `x_hat` normalised
/// by the batch mean and biased variance, and the running statistics updated with momentum 0.1
/// and the unbiased variance (as PyTorch). Eval: the running statistics folded into one scale
/// and shift, `tanh(x gamma / sqrt(var + eps) + beta - mean gamma / sqrt(var + eps))`.
#[derive(Debug, Clone)]
pub struct FlatBatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl FlatBatchNorm {
    /// Builds the layer for `joints * features` flattened features under `vb`.
    pub fn new(joints: usize, features: usize, vb: VarBuilder) -> Result<Self> {
        let bn = candle_nn::batch_norm(joints * features, BN_CONFIG, vb)?;
        let (weight, bias) = bn
            .weight_and_bias()
            .map(|(w, b)| (w.clone(), b.clone()))
            .ok_or_else(|| candle_core::Error::Msg("batch norm without affine".into()))?;
        Ok(Self {
            weight,
            bias,
            // `Var::from_tensor` of a var's tensor shares its storage: updates reach the var map.
            running_mean: Var::from_tensor(bn.running_mean())?,
            running_var: Var::from_tensor(bn.running_var())?,
            eps: bn.eps(),
            momentum: bn.momentum(),
        })
    }

    /// `tanh(BatchNorm(x)) (+ residual)` for `x` (and `residual`) `[J, B, F]`; `train` uses
    /// batch statistics and updates the running ones.
    pub fn forward_tanh(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let (j, b, f) = x.dims3()?;
        let stat_shape = (j, 1, f);
        let gamma = self.weight.reshape(stat_shape)?;
        let beta = self.bias.reshape(stat_shape)?;
        if train && b < 2 {
            candle_core::bail!("training-mode BatchNorm needs at least 2 samples, got {b}");
        }
        let fixed = || -> Result<(Tensor, Tensor)> {
            let mean = self.running_mean.as_detached_tensor().reshape(stat_shape)?;
            let var = self.running_var.as_detached_tensor().reshape(stat_shape)?;
            let scale = gamma.div(&(var + self.eps)?.sqrt()?)?;
            let shift = beta.sub(&mean.mul(&scale)?)?;
            Ok((scale, shift))
        };
        let mut parts = vec![x, &gamma, &beta];
        parts.extend(residual);
        if !fused(&parts) {
            let (scale, shift, stats) = if train {
                let mean = x.mean_keepdim(1)?;
                let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(1)?;
                let scale = gamma.broadcast_div(&(&var + self.eps)?.sqrt()?)?;
                let shift = beta.sub(&mean.mul(&scale)?)?;
                (scale, shift, Some((mean.detach(), var.detach())))
            } else {
                let (scale, shift) = fixed()?;
                (scale, shift, None)
            };
            if let Some((mean, var)) = stats {
                self.update_running(&mean.flatten_all()?, &var.flatten_all()?, b)?;
            }
            let y = crate::ops::tanh(&x.broadcast_mul(&scale)?.broadcast_add(&shift)?)?;
            return match residual {
                Some(r) => y + r,
                None => Ok(y),
            };
        }
        let (st, mode) = if train {
            (Tensor::cat(&[&gamma, &beta], 1)?, Scale::Batch(self.eps))
        } else {
            let (scale, shift) = fixed()?;
            (Tensor::cat(&[&scale, &shift], 1)?, Scale::Fixed)
        };
        let (y, stats) = norm_tanh(x, &st, residual, mode)?;
        if let Some(stats) = stats {
            self.update_from(stats, b)?;
        }
        Ok(y)
    }

    /// `gamma` and `beta`, `[J*F]` each.
    pub(crate) fn gamma_beta(&self) -> [&Tensor; 2] {
        [&self.weight, &self.bias]
    }

    /// BatchNorm's `eps`.
    pub(crate) fn eps(&self) -> f64 {
        self.eps
    }

    /// Running statistics update from a fused kernel's batch statistics of `b` clips.
    pub(crate) fn update_from(&self, (mean, var): BatchStats, b: usize) -> Result<()> {
        let like = self.running_mean.as_tensor();
        let t =
            |v: Vec<f64>| Tensor::from_vec(v, like.shape(), like.device())?.to_dtype(like.dtype());
        self.update_running(&t(mean)?, &t(var)?, b)
    }

    /// Running statistics update from the batch mean and biased variance `[J*F]` of `b` clips.
    fn update_running(&self, mean: &Tensor, var: &Tensor, b: usize) -> Result<()> {
        let m = self.momentum;
        let new_mean = ((self.running_mean.as_detached_tensor() * (1.0 - m))? + (mean * m)?)?;
        let unbiased = b as f64 / (b as f64 - 1.0);
        let new_var =
            ((self.running_var.as_detached_tensor() * (1.0 - m))? + (var * (m * unbiased))?)?;
        self.running_mean.set(&new_mean)?;
        self.running_var.set(&new_var)
    }
}

/// A residual block: `[GC(F -> F, no bias) -> BatchNorm(J*F) -> tanh -> dropout] x 2`, plus the
/// block's input. Weight names `gc1.*`, `bn1.*`, `gc2.*`, `bn2.*`.
#[derive(Debug, Clone)]
pub struct GcBlock {
    pub(crate) gc1: GraphConv,
    pub(crate) bn1: FlatBatchNorm,
    pub(crate) gc2: GraphConv,
    pub(crate) bn2: FlatBatchNorm,
}

impl GcBlock {
    /// Builds the block for `joints` nodes of width `hidden`.
    pub fn new(joints: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            gc1: GraphConv::new(joints, hidden, hidden, false, vb.pp("gc1"))?,
            bn1: FlatBatchNorm::new(joints, hidden, vb.pp("bn1"))?,
            gc2: GraphConv::new(joints, hidden, hidden, false, vb.pp("gc2"))?,
            bn2: FlatBatchNorm::new(joints, hidden, vb.pp("bn2"))?,
        })
    }
}
