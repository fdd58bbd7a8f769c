//! The building blocks: the graph convolution with a trainable adjacency, and the residual block.

use candle_core::{Result, Tensor, Var};
use candle_nn::{BatchNormConfig, Init, VarBuilder};

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
    /// With the nodes outermost, both products are single matrix multiplications: `x W` is
    /// `[J*B, F_in] x [F_in, F_out]` and `A (.)` is `[J, J] x [J, B*F]`. The cheaper order is
    /// taken: `(A x) W` when `F_in < F_out`, else `A (x W)` (equal up to rounding).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (j, b, f_in) = x.dims3()?;
        let f_out = self.weight.dim(1)?;
        let y = if f_in < f_out {
            let ax = self.att.matmul(&x.reshape((j, b * f_in))?)?;
            ax.reshape((j * b, f_in))?.matmul(&self.weight)?
        } else {
            let support = x.reshape((j * b, f_in))?.matmul(&self.weight)?;
            self.att.matmul(&support.reshape((j, b * f_out))?)?
        };
        let y = y.reshape((j, b, f_out))?;
        match &self.bias {
            Some(bias) => y.broadcast_add(bias),
            None => Ok(y),
        }
    }
}

/// BatchNorm over the `J * F` features of the reference code's `BatchNorm1d(J * F)` on the
/// flattened `[B, J*F]` map (feature index `j * F + f`), applied directly to the node-major
/// `[J, B, F]` layout.
///
/// The variables are created by [`candle_nn::batch_norm`] (names `weight`, `bias`,
/// `running_mean`, `running_var`, shape `[J*F]`; the running statistics are `Var`s of the
/// var map, updated in place). The forward is our own because candle's expects the features on
/// dimension 1; it folds the statistics into one scale and shift,
/// `y = x * (gamma / sqrt(var + eps)) + (beta - mean * gamma / sqrt(var + eps))`.
/// Training uses the batch mean and biased variance and updates the running statistics with
/// momentum 0.1 and the unbiased variance (as PyTorch); eval uses the running statistics.
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

    /// `[J, B, F] -> [J, B, F]`; `train` uses batch statistics and updates the running ones.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (j, b, f) = x.dims3()?;
        let stat_shape = (j, 1, f);
        let (mean, var) = if train {
            if b < 2 {
                candle_core::bail!("training-mode BatchNorm needs at least 2 samples, got {b}");
            }
            let mean = x.mean_keepdim(1)?;
            let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(1)?;
            let m = self.momentum;
            let new_mean = ((self.running_mean.as_detached_tensor() * (1.0 - m))?
                + (mean.detach().flatten_all()? * m)?)?;
            let unbiased = b as f64 / (b as f64 - 1.0);
            let new_var = ((self.running_var.as_detached_tensor() * (1.0 - m))?
                + (var.detach().flatten_all()? * (m * unbiased))?)?;
            self.running_mean.set(&new_mean)?;
            self.running_var.set(&new_var)?;
            (mean, var)
        } else {
            (
                self.running_mean.as_detached_tensor().reshape(stat_shape)?,
                self.running_var.as_detached_tensor().reshape(stat_shape)?,
            )
        };
        let scale = self
            .weight
            .reshape(stat_shape)?
            .div(&(var + self.eps)?.sqrt()?)?;
        let shift = self.bias.reshape(stat_shape)?.sub(&mean.mul(&scale)?)?;
        x.broadcast_mul(&scale)?.broadcast_add(&shift)
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
