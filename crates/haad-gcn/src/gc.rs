//! The graph convolution `y = A (x W) + b` (or `(A x) W + b`) as one fused CPU operation on
//! the encoder's `[J, B, F]` maps: two matrix products without copies forward, four backward,
//! and one node in the autograd graph instead of six (each node costs candle a zero fill and an
//! addition of its input's size in the backward pass).

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use haad_kernels::{
    common_dtype, contiguous, gemm, gemm_nt, into_storage, join, with_float, Element, Inputs,
    MatRef, Stash, NT_COST,
};

const OP: &str = "graph_conv";

/// `[J, B, F_in] -> [J, B, F_out]` with `att` `A` `[J, J]` and `wb` `[F_in (+1), F_out]`: the
/// weight `W`, then the bias `b` as a last row when `bias`. CPU, f32/f64, one dtype (the
/// caller checks with [`crate::cpu::fused`]).
pub(crate) fn graph_conv(x: &Tensor, att: &Tensor, wb: &Tensor, bias: bool) -> Result<Tensor> {
    let (j, _, f_in) = x.dims3()?;
    let (rows, _) = wb.dims2()?;
    if att.dims() != [j, j] || rows != f_in + usize::from(bias) {
        candle_core::bail!(
            "graph_conv: A {:?} and W {:?} do not fit {:?}",
            att.dims(),
            wb.dims(),
            x.dims()
        );
    }
    x.contiguous()?.apply_op3(
        &att.contiguous()?,
        &wb.contiguous()?,
        GraphConvOp {
            bias,
            mid: Stash::default(),
        },
    )
}

struct GraphConvOp {
    bias: bool,
    /// The intermediate product: `x W` `[J*B, F_out]` when `F_in >= F_out`, else `A x`
    /// `[J, B*F_in]`.
    mid: Stash<CpuStorage>,
}

/// `(y, mid)`.
pub(crate) fn forward<T: Element>(
    x: &[T],
    a: &[T],
    wb: &[T],
    (j, b, fi, fo): (usize, usize, usize, usize),
    bias: bool,
) -> Result<(Vec<T>, Vec<T>)> {
    let att = MatRef::new(a, j, j)?;
    let w = MatRef::new(wb, fi, fo)?;
    let (mut y, mid) = if fi < fo {
        let q = gemm(att, MatRef::new(x, j, b * fi)?)?;
        (gemm(MatRef::new(&q, j * b, fi)?, w)?, q)
    } else {
        let p = gemm(MatRef::new(x, j * b, fi)?, w)?;
        (gemm(att, MatRef::new(&p, j, b * fo)?)?, p)
    };
    if bias {
        let bv = &wb[fi * fo..(fi + 1) * fo];
        for row in y.chunks_exact_mut(fo) {
            row.iter_mut().zip(bv).for_each(|(v, &c)| *v += c);
        }
    }
    Ok((y, mid))
}

/// `(dx, dA, dwb)` for the output gradient `g` `[J, B, F_out]`.
pub(crate) fn backward<T: Element>(
    x: &[T],
    a: &[T],
    wb: &[T],
    mid: &[T],
    g: &[T],
    (j, b, fi, fo): (usize, usize, usize, usize),
    bias: bool,
) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
    let att = MatRef::new(a, j, j)?;
    let w = MatRef::new(wb, fi, fo)?;
    let (dx, da, mut dwb) = if fi < fo {
        // y = Q W with Q = A x.
        let q = MatRef::new(mid, j * b, fi)?;
        let gy = MatRef::new(g, j * b, fo)?;
        let big = 4 * j * b * fi * fo; // two products of J*B x F_in x F_out
                                       // Two of J x J x B*F_in, dA's at its cost in gemm's FLOPs.
        let small = (NT_COST + 1) * 2 * j * j * b * fi;
        let (dq, dw) = join(big, || gemm(gy, w.t()), || gemm(q.t(), gy)); // dq: [J*B, F_in]
        let (dq, dw) = (dq?, dw?);
        let dqm = MatRef::new(&dq, j, b * fi)?;
        let (da, dx) = join(
            small,
            || gemm_nt(&dq, x, (j, j, b * fi)),
            || gemm(att.t(), dqm),
        );
        (dx?, da?, dw)
    } else {
        // y = A P with P = x W.
        let gm = MatRef::new(g, j, b * fo)?;
        let xm = MatRef::new(x, j * b, fi)?;
        let big = 4 * j * b * fi * fo; // two products of J*B x F_in x F_out
                                       // Two of J x J x B*F_out, dA's at its cost in gemm's FLOPs; dp: [J, B*F_out] =
                                       // [J*B, F_out].
        let small = (NT_COST + 1) * 2 * j * j * b * fo;
        let (da, dp) = join(
            small,
            || gemm_nt(g, mid, (j, j, b * fo)),
            || gemm(att.t(), gm),
        );
        let (da, dp) = (da?, dp?);
        let dpm = MatRef::new(&dp, j * b, fo)?;
        let (dw, dx) = join(big, || gemm(xm.t(), dpm), || gemm(dpm, w.t()));
        (dx?, da, dw?)
    };
    if bias {
        let mut db = vec![T::zero(); fo];
        for row in g.chunks_exact(fo) {
            db.iter_mut().zip(row).for_each(|(d, &v)| *d += v);
        }
        dwb.extend_from_slice(&db);
    }
    Ok((dx, da, dwb))
}

impl CustomOp3 for GraphConvOp {
    fn name(&self) -> &'static str {
        "haad-graph-conv"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (j, b, fi) = l1.shape().dims3()?;
        let fo = l3.shape().dims2()?.1;
        let dims = (j, b, fi, fo);
        let (y, mid) = with_float!(common_dtype(&[s1, s2, s3], OP)?, OP, |T| {
            let (y, m) = forward::<T>(
                contiguous(s1, l1, OP)?,
                contiguous(s2, l2, OP)?,
                contiguous(s3, l3, OP)?,
                dims,
                self.bias,
            )?;
            (into_storage(y), into_storage(m))
        });
        self.mid.put(mid);
        Ok((y, Shape::from((j, b, fo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        att: &Tensor,
        wb: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (j, b, fi) = x.dims3()?;
        let fo = wb.dim(1)?;
        let dims = (j, b, fi, fo);
        let grad = grad.contiguous()?;
        let mid = self.mid.get();
        let inputs = Inputs::new(&[x, att, wb, &grad], OP)?;
        let dev = x.device();
        let (dx, da, dwb) = with_float!(inputs.dtype(), OP, |T| {
            let v = inputs.values::<T>()?;
            let mid: &[T] = match mid.as_ref() {
                Some(m) => m.as_slice::<T>()?,
                None => candle_core::bail!("{OP}: backward before forward"),
            };
            let (dx, da, dwb) = backward(v[0], v[1], v[2], mid, v[3], dims, self.bias)?;
            (
                Tensor::from_vec(dx, x.shape(), dev)?,
                Tensor::from_vec(da, att.shape(), dev)?,
                Tensor::from_vec(dwb, wb.shape(), dev)?,
            )
        });
        Ok((Some(dx), Some(da), Some(dwb)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Var};
    use haad_kernels::testing::{grads_of_weighted_sum, random_var as var, rel_max_diff as diff};

    /// The fused op against candle's generic products, value and every gradient, both
    /// product orders, with and without bias, f64 and f32, small and large (split) sizes.
    #[test]
    fn matches_the_generic_products_with_gradients() {
        for (j, b, fi, fo) in [
            (4, 3, 5, 7),
            (5, 4, 6, 3),
            (20, 72, 30, 128),
            (20, 72, 128, 128),
        ] {
            for bias in [false, true] {
                let x = var(&[j, b, fi], 1);
                let a = var(&[j, j], 2);
                let w = var(&[fi, fo], 3);
                let bb = var(&[fo], 4);
                let r = var(&[j, b, fo], 5);
                for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-4)] {
                    let c = |v: &Var| Var::from_tensor(&v.to_dtype(dtype).unwrap()).unwrap();
                    let (x, a, w, bb, r) = (c(&x), c(&a), c(&w), c(&bb), c(&r));
                    let wb = if bias {
                        Tensor::cat(&[w.as_tensor(), &bb.reshape((1, fo)).unwrap()], 0).unwrap()
                    } else {
                        w.as_tensor().clone()
                    };
                    let y = graph_conv(&x, &a, &wb, bias).unwrap();
                    let p = x.reshape((j * b, fi)).unwrap().matmul(&w).unwrap();
                    let mut want = a
                        .matmul(&p.reshape((j, b * fo)).unwrap())
                        .unwrap()
                        .reshape((j, b, fo))
                        .unwrap();
                    if bias {
                        want = want.broadcast_add(&bb).unwrap();
                    }
                    assert!(
                        diff(&y, &want) < tol,
                        "value {j} {b} {fi} {fo} {bias} {dtype:?}"
                    );
                    let g1 = grads_of_weighted_sum(&y, &r);
                    let g2 = grads_of_weighted_sum(&want, &r);
                    let mut vars = vec![(&x, "x"), (&a, "A"), (&w, "W")];
                    if bias {
                        vars.push((&bb, "b"));
                    }
                    for (v, name) in vars {
                        let (u, t) = (g1.get(v).unwrap(), g2.get(v).unwrap());
                        assert!(
                            diff(u, t) < tol * 10.0,
                            "d{name} {j} {b} {fi} {fo} {bias} {dtype:?}"
                        );
                    }
                }
            }
        }
    }
}
