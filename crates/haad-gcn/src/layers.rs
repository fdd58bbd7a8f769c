//! The building blocks: the graph convolution with a trainable adjacency, and the residual block.

use candle_core::{Result, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Init, ModuleT, VarBuilder};

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

    /// `[B, J, F_in] -> [B, J, F_out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, j, f_in) = x.dims3()?;
        let f_out = self.weight.dim(1)?;
        let support = x
            .reshape((b * j, f_in))?
            .matmul(&self.weight)?
            .reshape((b, j, f_out))?;
        let y = self.att.broadcast_matmul(&support)?;
        match &self.bias {
            Some(bias) => y.broadcast_add(bias),
            None => Ok(y),
        }
    }
}

/// A BatchNorm over the flattened `J * F` features of `[B, J, F]`, as the reference code's
/// `BatchNorm1d(J * F)`.
pub(crate) fn batch_norm_flat(bn: &BatchNorm, x: &Tensor, train: bool) -> Result<Tensor> {
    let (b, j, f) = x.dims3()?;
    bn.forward_t(&x.reshape((b, j * f))?, train)?
        .reshape((b, j, f))
}

/// A residual block: `[GC(F -> F, no bias) -> BatchNorm(J*F) -> tanh -> dropout] x 2`, plus the
/// block's input. Weight names `gc1.*`, `bn1.*`, `gc2.*`, `bn2.*`.
#[derive(Debug, Clone)]
pub struct GcBlock {
    pub(crate) gc1: GraphConv,
    pub(crate) bn1: BatchNorm,
    pub(crate) gc2: GraphConv,
    pub(crate) bn2: BatchNorm,
}

impl GcBlock {
    /// Builds the block for `joints` nodes of width `hidden`.
    pub fn new(joints: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            gc1: GraphConv::new(joints, hidden, hidden, false, vb.pp("gc1"))?,
            bn1: candle_nn::batch_norm(joints * hidden, BN_CONFIG, vb.pp("bn1"))?,
            gc2: GraphConv::new(joints, hidden, hidden, false, vb.pp("gc2"))?,
            bn2: candle_nn::batch_norm(joints * hidden, BN_CONFIG, vb.pp("bn2"))?,
        })
    }
}
