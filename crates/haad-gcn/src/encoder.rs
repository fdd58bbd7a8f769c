//! The Res-GCN encoder: DCT features -> graph convolutions -> pooled embedding.

use std::sync::Mutex;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use haad_motion::{dct::DctBasis, Motion};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::config::{EmbeddingLayer, Pooling, ValidEncoderConfig};
use crate::cpu::fused;
use crate::error::{GcnError, Result};
use crate::layers::{FlatBatchNorm, GcBlock, GraphConv};
use crate::trunk::{trunk, Plan};
use haad_kernels::{matmul, split_batch};

/// The Res-GCN encoder of the method (its reference implementation's layer names).
///
/// Input: prepared clips `[B, T, J, 3]`. Each joint's trajectory is projected on the first `K`
/// rows of the orthonormal DCT-II (`D_K`, `[K, T]`); the joint's feature vector is
/// coordinate-major, `[x_0 .. x_{K-1}, y_0 .. y_{K-1}, z_0 .. z_{K-1}]` (`3K` values; this is the
/// reference code's "coefficients per coordinate" order), giving `X` of shape `[B, J, 3K]`.
///
/// Then `gc1: GC(3K -> F, bias)` -> `bn1: BatchNorm(J*F)` -> tanh -> dropout;
/// `gcbs.i` for `i < blocks`: residual blocks (see [`GcBlock`]); `gc7: GC(F -> 3K, bias)` plus
/// `X` (the global residual) is the output `[B, J, 3K]`. The embedding pools the output (or the
/// last block's `[B, J, F]`, see [`EmbeddingLayer`]) as the config's [`Pooling`] says.
///
/// Internally the maps are held node-major, `[J, B, F]`: every graph convolution is then two
/// plain matrix products without copies (`[J, J] x [J, B*F]` and `[J*B, F] x [F, F']`), and
/// BatchNorm + tanh are fused kernels (see docs/performance.md). The result is the same as the
/// reference's `[B, J, F]` computation.
#[derive(Debug)]
pub struct Encoder {
    config: ValidEncoderConfig,
    dct: Tensor,
    gc1: GraphConv,
    bn1: FlatBatchNorm,
    blocks: Vec<GcBlock>,
    gc7: Option<GraphConv>,
    /// Where each layer's parameters lie for [`crate::trunk`].
    plan: Plan,
    dropout_rng: Mutex<StdRng>,
}

impl Encoder {
    /// Builds the encoder, reading (or creating, unseeded) its weights under `vb`.
    ///
    /// Use [`crate::EncoderModel::new`] for weights drawn from a seeded generator. The encoder
    /// computes in `vb`'s dtype (f32 normally; f64 works too). Dropout masks come from a
    /// generator seeded with 0; see [`Encoder::set_dropout_seed`].
    pub fn new(config: &ValidEncoderConfig, vb: VarBuilder) -> Result<Self> {
        let (j, f, fi) = (config.joints, config.hidden, config.input_features());
        let dct = DctBasis::new(config.frames, config.dct_coefficients)?
            .analysis_tensor(vb.device())?
            .to_dtype(vb.dtype())?;
        let gc1 = GraphConv::new(j, fi, f, true, vb.pp("gc1"))?;
        let bn1 = FlatBatchNorm::new(j, f, vb.pp("bn1"))?;
        let blocks = (0..config.blocks)
            .map(|i| GcBlock::new(j, f, vb.pp("gcbs").pp(i)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let gc7 = match config.embedding {
            EmbeddingLayer::Output => Some(GraphConv::new(j, f, fi, true, vb.pp("gc7"))?),
            EmbeddingLayer::Hidden => None,
        };
        let mut eps = vec![bn1.eps()];
        for block in &blocks {
            eps.extend([block.bn1.eps(), block.bn2.eps()]);
        }
        let plan = Plan::new(j, fi, f, &eps, gc7.is_some());
        Ok(Self {
            config: config.clone(),
            dct,
            gc1,
            bn1,
            blocks,
            gc7,
            plan,
            dropout_rng: Mutex::new(StdRng::seed_from_u64(0)),
        })
    }

    /// The encoder's config.
    pub fn config(&self) -> &ValidEncoderConfig {
        &self.config
    }

    /// The device the encoder computes on.
    pub fn device(&self) -> &Device {
        self.dct.device()
    }

    /// `D_K`, the `[K, T]` DCT analysis matrix the encoder holds (in its dtype).
    pub fn dct(&self) -> &Tensor {
        &self.dct
    }

    /// Reseeds the generator of the dropout masks (only used when `dropout > 0` in training).
    pub fn set_dropout_seed(&self, seed: u64) {
        let mut rng = self.dropout_rng.lock().unwrap_or_else(|e| e.into_inner());
        *rng = StdRng::seed_from_u64(seed);
    }

    fn check_input(&self, xs: &Tensor) -> candle_core::Result<usize> {
        let c = &self.config;
        let want = [c.frames, c.joints, 3];
        match xs.dims() {
            [b, rest @ ..] if rest == want && *b > 0 => Ok(*b),
            got => candle_core::bail!(
                "encoder input: expected [B >= 1, {}, {}, 3], got {got:?}",
                c.frames,
                c.joints
            ),
        }
    }

    /// The DCT input features `X`, `[B, J, 3K]` (coordinate-major per joint), of clips
    /// `[B, T, J, 3]`.
    pub fn features(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.node_features(xs)?.transpose(0, 1)?.contiguous()
    }

    /// The DCT input features in the encoder's layout `[J, B, 3K]`.
    fn node_features(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let b = self.check_input(xs)?;
        let (t, j, k) = (
            self.config.frames,
            self.config.joints,
            self.config.dct_coefficients,
        );
        // One product [K, T] x [T, B*3J] -> [K, B, J, 3] -> [J, B, 3, K].
        let frames_first = xs
            .reshape((b, t, j * 3))?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((t, b * j * 3))?;
        matmul(&self.dct, &frames_first)?
            .reshape((k, b, j, 3))?
            .permute((2, 1, 3, 0))?
            .contiguous()?
            .reshape((j, b, 3 * k))
    }

    fn dropout(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let p = self.config.dropout;
        if !train || p == 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 / (1.0 - p);
        let mask: Vec<f32> = {
            let mut rng = self.dropout_rng.lock().unwrap_or_else(|e| e.into_inner());
            (0..x.elem_count())
                .map(|_| if rng.random::<f32>() < p { 0.0 } else { keep })
                .collect()
        };
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x.mul(&mask)
    }

    /// The map the embedding pools, in the encoder's layout: the output `[J, B, 3K]` with
    /// [`EmbeddingLayer::Output`], the last residual block's output `[J, B, F]` with
    /// [`EmbeddingLayer::Hidden`].
    fn pooled_map(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let b = self.check_input(xs)?;
        if train && b < 2 {
            candle_core::bail!("training-mode BatchNorm needs at least 2 clips per batch, got {b}");
        }
        let x = self.node_features(xs)?;
        if train && self.config.dropout == 0.0 {
            if let Some(map) = self.trunk(&x)? {
                return Ok(map);
            }
        }
        self.layered(&x, train)
    }

    /// [`Encoder::pooled_map`] of the DCT features `x` `[J, B, 3K]`, one layer at a time.
    fn layered(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut y = self.gc1.forward(x)?;
        y = self.bn1.forward_tanh(&y, None, train)?;
        y = self.dropout(&y, train)?;
        let drop = train && self.config.dropout > 0.0;
        for block in &self.blocks {
            let mut z = block.gc1.forward(&y)?;
            z = block.bn1.forward_tanh(&z, None, train)?;
            z = self.dropout(&z, train)?;
            z = block.gc2.forward(&z)?;
            y = if drop {
                z = block.bn2.forward_tanh(&z, None, train)?;
                (self.dropout(&z, train)? + y)?
            } else {
                // The block's residual fused into its last BatchNorm + tanh.
                block.bn2.forward_tanh(&z, Some(&y), train)?
            };
        }
        match &self.gc7 {
            Some(gc7) => gc7.forward(&y)? + x,
            None => Ok(y),
        }
    }

    /// Training mode without dropout on the CPU: every layer as one operation
    /// ([`crate::trunk`]), the map the embedding pools; `None` where the fused kernels do not
    /// apply (another device or dtype).
    fn trunk(&self, x: &Tensor) -> candle_core::Result<Option<Tensor>> {
        self.trunk_in(x, None)
    }

    /// [`Encoder::trunk`] with its passes cut in `parts` by joints (`None`: as the threads
    /// allow, [`crate::trunk`]).
    fn trunk_in(&self, x: &Tensor, parts: Option<usize>) -> candle_core::Result<Option<Tensor>> {
        let mut layers = vec![(&self.gc1, &self.bn1)];
        for block in &self.blocks {
            layers.push((&block.gc1, &block.bn1));
            layers.push((&block.gc2, &block.bn2));
        }
        // Packed in the plan's order: each graph convolution's A, W (and b), its BatchNorm's
        // gamma and beta; the output layer last.
        let mut params: Vec<Tensor> = Vec::new();
        let add = |gc: &GraphConv, params: &mut Vec<Tensor>| -> candle_core::Result<()> {
            params.push(gc.att().flatten_all()?);
            params.push(gc.weight().flatten_all()?);
            params.extend(gc.bias().cloned());
            Ok(())
        };
        for (gc, bn) in &layers {
            add(gc, &mut params)?;
            params.extend(bn.gamma_beta().into_iter().cloned());
        }
        if let Some(gc7) = &self.gc7 {
            add(gc7, &mut params)?;
        }
        let all: Vec<&Tensor> = params.iter().chain([x]).collect();
        if !fused(&all) {
            return Ok(None);
        }
        let (map, stats) = trunk(x, &Tensor::cat(&params, 0)?, &self.plan, parts)?;
        let b = x.dim(1)?;
        for ((_, bn), s) in layers.iter().zip(stats) {
            bn.update_from(s, b)?;
        }
        Ok(Some(map))
    }

    /// The un-pooled feature map the embedding is taken from: `[B, J, 3K]` for
    /// [`EmbeddingLayer::Output`], `[B, J, F]` for [`EmbeddingLayer::Hidden`].
    pub fn feature_map(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.pooled_map(xs, train)?.transpose(0, 1)?.contiguous()
    }
}

impl candle_nn::ModuleT for Encoder {
    /// `xs`: prepared clips `[B, T, J, 3]`; returns embeddings `[B, E]`. `train = true` uses
    /// batch statistics in BatchNorm (and updates the running ones) and applies dropout.
    ///
    /// In eval mode on the CPU (clips are independent then) the batch goes through the network
    /// [`EVAL_CHUNK`] clips at a time, the chunks spread over the kernels' threads, each whole
    /// on its thread: its feature maps stay in the core's cache (measured: 64 clips in one pass
    /// took 1.8x as long as two passes of 32) and threads meet once per batch, not once per
    /// operation. The chunks do not depend on the thread count, so neither do the embeddings.
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if train || !xs.device().is_cpu() {
            return self.embed_batch(xs, train);
        }
        let b = self.check_input(xs)?;
        let mut parts = split_batch(b, EVAL_CHUNK, |start, len| {
            self.embed_batch(&xs.narrow(0, start, len)?, false)
        })
        .into_iter()
        .collect::<candle_core::Result<Vec<_>>>()?;
        if parts.len() == 1 {
            return Ok(parts.remove(0));
        }
        Tensor::cat(&parts, 0)
    }
}

/// Clips per pass through the network in eval mode (see [`Encoder`]'s `forward_t`).
pub const EVAL_CHUNK: usize = 32;

impl Encoder {
    /// Embeddings `[B, E]` of clips `[B, T, J, 3]`, on this thread's kernels.
    fn embed_batch(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let map = self.pooled_map(xs, train)?; // [J, B, F]
        match self.config.pooling {
            Pooling::MaxOverFeatures => map.max(2)?.t()?.contiguous(), // [J, B] -> [B, J]
            Pooling::MaxOverJoints => map.max(0),                      // [B, F]
        }
    }
}

/// Stacks prepared clips (each exactly `T` frames, `J` joints) into a `[B, T, J, 3]` f32
/// tensor; errors name the clip index and shape.
pub fn batch_tensor(clips: &[Motion], device: &Device) -> Result<Tensor> {
    let first = clips.first().ok_or_else(|| GcnError::Shape {
        what: "clip batch".into(),
        expected: "at least one clip".into(),
        got: "no clips".into(),
    })?;
    let (t, j) = (first.frames(), first.joints());
    let mut values = Vec::with_capacity(clips.len() * t * j * 3);
    for (i, clip) in clips.iter().enumerate() {
        if clip.frames() != t || clip.joints() != j {
            return Err(GcnError::Shape {
                what: format!("clip {i}"),
                expected: format!("[{t}, {j}, 3] like clip 0"),
                got: format!("{:?}", clip.data().shape()),
            });
        }
        values.extend(clip.data().iter().copied());
    }
    Ok(Tensor::from_vec(values, (clips.len(), t, j, 3), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EncoderConfig;
    use candle_core::{DType, Var};
    use candle_nn::VarMap;
    use haad_kernels::testing::{assert_close, grads_of_weighted_sum, uniform, values};

    /// An encoder in `dtype` with every variable drawn (gamma and beta too), and its variables
    /// by name.
    fn encoder(cfg: &EncoderConfig, dtype: DType) -> (Encoder, Vec<(String, Var)>) {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu);
        let enc = Encoder::new(&cfg.check().unwrap(), vb).unwrap();
        let mut vars: Vec<(String, Var)> =
            varmap.data().lock().unwrap().clone().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, (name, v)) in vars.iter().enumerate() {
            let mut x = uniform(v.elem_count(), 100 + i as u64, 0.5);
            if name.ends_with("running_var") {
                x.iter_mut().for_each(|x| *x += 1.0);
            }
            let t = Tensor::from_vec(x, v.shape(), &Device::Cpu).unwrap();
            v.set(&t.to_dtype(dtype).unwrap()).unwrap();
        }
        (enc, vars)
    }

    /// The trunk's input `[J, B, 3K]` as a variable (so its gradient is computed) in `dtype`.
    fn input(v: Vec<f64>, shape: (usize, usize, usize), dtype: DType) -> Var {
        let t = Tensor::from_vec(v, shape, &Device::Cpu).unwrap();
        Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap()
    }

    /// Copies of the variables' values, to set them back.
    fn copies(vars: &[(String, Var)]) -> Vec<Tensor> {
        vars.iter()
            .map(|(_, v)| v.as_tensor().copy().unwrap())
            .collect()
    }

    /// The training pass as one operation ([`crate::trunk`]) against the same layers one at a
    /// time: the map, every variable's gradient and the input's, and the running statistics
    /// after the update, in f64 (1e-12) and f32; with and without the output layer, with 0 to
    /// 2 residual blocks.
    #[test]
    fn trunk_matches_the_layers() {
        for (blocks, embedding) in [
            (0, EmbeddingLayer::Output),
            (2, EmbeddingLayer::Output),
            (1, EmbeddingLayer::Hidden),
            (2, EmbeddingLayer::Hidden),
        ] {
            let cfg = EncoderConfig {
                joints: 5,
                frames: 12,
                dct_coefficients: 4,
                hidden: 7,
                blocks,
                embedding,
                ..Default::default()
            };
            for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-4)] {
                let (enc, vars) = encoder(&cfg, dtype);
                let x = input(uniform(5 * 6 * 12, 7, 2.0), (5, 6, 12), dtype);
                let before = copies(&vars);
                let what = format!("{blocks} blocks, {embedding:?}, {dtype:?}");
                let fused = enc.trunk(&x).unwrap().expect("the fused path applies");
                let after_fused: Vec<Vec<f64>> = vars.iter().map(|(_, v)| values(v)).collect();
                for ((_, v), t) in vars.iter().zip(&before) {
                    v.set(t).unwrap();
                }
                let layered = enc.layered(&x, true).unwrap();
                assert_close(
                    &values(&fused),
                    &values(&layered),
                    tol,
                    &format!("map {what}"),
                );
                let w = Tensor::from_vec(
                    uniform(fused.elem_count(), 8, 1.0),
                    fused.shape(),
                    &Device::Cpu,
                )
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
                let (g1, g2) = (
                    grads_of_weighted_sum(&fused, &w),
                    grads_of_weighted_sum(&layered, &w),
                );
                let mut seen = 0;
                for ((name, v), a) in vars.iter().zip(&after_fused) {
                    assert_close(
                        a,
                        &values(v),
                        tol,
                        &format!("{name} after the update, {what}"),
                    );
                    if name.contains("running") {
                        continue;
                    }
                    let (a, b) = (g1.get(v).expect(name), g2.get(v).expect(name));
                    assert_close(
                        &values(a),
                        &values(b),
                        tol * 10.0,
                        &format!("d{name} {what}"),
                    );
                    seen += 1;
                }
                let (a, b) = (g1.get(&x).unwrap(), g2.get(&x).unwrap());
                assert_close(&values(a), &values(b), tol * 10.0, &format!("dX {what}"));
                let output = usize::from(embedding == EmbeddingLayer::Output);
                assert_eq!(seen, 5 + 8 * blocks + 3 * output, "{what}");
            }
        }
    }

    /// The trunk cut in 1, 2, 3 and 5 parts by joints ([`crate::passes`]): the same bits for
    /// the map, every gradient (the input's too) and the running statistics. Layer 0 and the
    /// output layer each multiply by `A` first in one config and by `W` first in another.
    #[test]
    fn trunk_parts_give_the_same_bits() {
        for (joints, hidden, k, blocks, embedding) in [
            (5, 7, 4, 2, EmbeddingLayer::Output), // 12 -> 7 by W first, 7 -> 12 by A first
            (5, 17, 4, 1, EmbeddingLayer::Output), // 12 -> 17 by A first, 17 -> 12 by W first
            (5, 9, 4, 2, EmbeddingLayer::Hidden),
            (20, 128, 10, 4, EmbeddingLayer::Output), // the paper's sizes
        ] {
            let cfg = EncoderConfig {
                joints,
                frames: 12,
                dct_coefficients: k,
                hidden,
                blocks,
                embedding,
                ..Default::default()
            };
            let n = joints * 6 * 3 * k;
            for dtype in [DType::F32, DType::F64] {
                let (enc, vars) = encoder(&cfg, dtype);
                let x = input(uniform(n, 3, 2.0), (joints, 6, 3 * k), dtype);
                let before = copies(&vars);
                let run = |parts: usize| {
                    for ((_, v), t) in vars.iter().zip(&before) {
                        v.set(t).unwrap();
                    }
                    let map = enc.trunk_in(&x, Some(parts)).unwrap().expect("fused");
                    let w = Tensor::from_vec(
                        uniform(map.elem_count(), 8, 1.0),
                        map.shape(),
                        &Device::Cpu,
                    )
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                    let g = grads_of_weighted_sum(&map, &w);
                    let mut all = vec![values(&map), values(g.get(&x).expect("dX"))];
                    for (name, v) in &vars {
                        all.push(match g.get(v) {
                            Some(d) => values(d),
                            None => values(v), // running statistics, after the update
                        });
                        assert!(name.contains("running") || g.get(v).is_some(), "{name}");
                    }
                    all
                };
                let one = run(1);
                for parts in [2, 3, 5, joints] {
                    assert!(
                        run(parts) == one,
                        "{parts} parts, hidden {hidden}, {blocks} blocks, {embedding:?}, {dtype:?}"
                    );
                }
            }
        }
    }
}
