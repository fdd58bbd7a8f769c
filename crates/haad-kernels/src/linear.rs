//! `linear`: `x W^T + b` as one differentiable CPU operation (one node in the autograd graph
//! instead of a product and a bias addition: each node costs candle a zero fill and an addition
//! of its input's size in the backward pass). [`linear_in_out`] is the same layer with the weight
//! stored transposed, `[in, out]`; [`linear_in_out_add`] adds a residual to it in the bias's
//! pass.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use crate::gemm::{gemm, Element, MatRef};
use crate::storage::{contiguous, dtype_of, into_storage, is_float, Inputs};
use crate::threads::join;
use crate::with_float;

const OP: &str = "linear";

/// `x W^T + b` for `x` `[.., in]`, `weight` `[out, in]`, `bias` `[out]`: `[.., out]`.
///
/// On CPU in f32/f64 one fused operation (the product through [`crate::gemm()`], the bias added
/// in the same pass over the output; backward: `dx = g W`, `dW = g^T x`, `db` the column sums
/// of `g`); elsewhere candle's `matmul` and `broadcast_add`.
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    apply(x, weight, bias, Linear { in_out: false })
}

/// [`linear`] with the weight stored transposed: `x W^T + b` for `weight_t` = W^T `[in, out]`.
///
/// For a row-major output gemm reads this layout without repacking the weight in every call,
/// where `[out, in]` is packed again each time: 10-19 % less time for the sampler's products
/// (`[640, 512] x [512, 512..1536]`, one thread). Meant for weights used many times unchanged,
/// copied once with [`crate::transpose_detached`]; differentiable like [`linear`] (the weight's
/// gradient is `[in, out]` too).
pub fn linear_in_out(x: &Tensor, weight_t: &Tensor, bias: &Tensor) -> Result<Tensor> {
    apply(x, weight_t, bias, Linear { in_out: true })
}

/// `x W^T + b + r`: [`linear_in_out`] with a residual `r` (the output's shape) added in the
/// pass that adds the bias, the same bits as `linear_in_out(x, weight_t, bias)? + r`. That sum
/// is what it computes where a gradient is tracked (any of the four is a variable or depends on
/// one) or off the CPU; elsewhere (inference through frozen weights) one operation without a
/// backward, which saves a pass over the output and its buffer (the residual connections of the
/// diffusion sampler's blocks).
pub fn linear_in_out_add(
    x: &Tensor,
    weight_t: &Tensor,
    bias: &Tensor,
    residual: &Tensor,
) -> Result<Tensor> {
    let all = [x, weight_t, bias, residual];
    let plain = all.iter().all(|t| t.device().is_cpu() && !t.track_op())
        && is_float(x.dtype())
        && all.iter().all(|t| t.dtype() == x.dtype());
    let (inp, out) = weight_t.dims2()?;
    let dims = x.dims();
    let rows = x.elem_count() / inp.max(1);
    let mut shape = dims.to_vec();
    if let Some(last) = shape.last_mut() {
        *last = out;
    }
    let fits = dims.last() == Some(&inp) && bias.dims() == [out] && residual.dims() == shape;
    if !plain || !fits {
        return linear_in_out(x, weight_t, bias)? + residual;
    }
    let op = LinearAdd {
        weight_t: weight_t.contiguous()?,
        bias: bias.contiguous()?,
    };
    let r2 = residual.contiguous()?.reshape((rows, out))?;
    x.contiguous()?
        .reshape((rows, inp))?
        .apply_op2_no_bwd(&r2, &op)?
        .reshape(residual.shape())
}

/// [`linear_in_out_add`]'s operation on `(x [rows, in], r [rows, out])`, the weight and bias
/// held (inference only: no backward).
struct LinearAdd {
    weight_t: Tensor,
    bias: Tensor,
}

impl CustomOp2 for LinearAdd {
    fn name(&self) -> &'static str {
        "haad-linear-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, inp) = l1.shape().dims2()?;
        let out = self.bias.dim(0)?;
        let held = Inputs::new(&[&self.weight_t, &self.bias], OP)?;
        let y = with_float!(dtype_of(s1), OP, |T| {
            let wb = held.values::<T>()?;
            into_storage(forward::<T>(
                Linear { in_out: true },
                contiguous(s1, l1, OP)?,
                wb[0],
                wb[1],
                rows,
                inp,
                Some(contiguous(s2, l2, OP)?),
            )?)
        });
        Ok((y, Shape::from((rows, out))))
    }
}

fn apply(x: &Tensor, weight: &Tensor, bias: &Tensor, op: Linear) -> Result<Tensor> {
    let (r, c) = weight.dims2()?;
    let (inp, out) = if op.in_out { (r, c) } else { (c, r) };
    let dims = x.dims();
    if dims.last() != Some(&inp) || bias.dims() != [out] {
        candle_core::bail!(
            "linear: input {dims:?}, weight {:?} ({}), bias {:?}",
            weight.dims(),
            if op.in_out { "[in, out]" } else { "[out, in]" },
            bias.dims()
        );
    }
    let rows = x.elem_count() / inp.max(1);
    let mut shape = dims.to_vec();
    *shape.last_mut().expect("non-empty") = out;
    let cpu = [x, weight, bias].iter().all(|t| t.device().is_cpu());
    let float = is_float(x.dtype()) && weight.dtype() == x.dtype() && bias.dtype() == x.dtype();
    let x2 = x.contiguous()?.reshape((rows, inp))?;
    let y = if cpu && float {
        x2.apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)?
    } else {
        let wt = if op.in_out {
            weight.clone()
        } else {
            weight.t()?
        };
        x2.matmul(&wt)?.broadcast_add(bias)?
    };
    y.reshape(shape)
}

/// The fused layer; `in_out`: the weight is stored `[in, out]` (else `[out, in]`).
#[derive(Clone, Copy)]
struct Linear {
    in_out: bool,
}

impl Linear {
    /// W^T `[in, out]` as a view of the stored weight.
    fn weight_t<'a, T: Element>(self, w: &'a [T], inp: usize, out: usize) -> Result<MatRef<'a, T>> {
        if self.in_out {
            MatRef::new(w, inp, out)
        } else {
            Ok(MatRef::new(w, out, inp)?.t())
        }
    }
}

/// `x W^T + b`, plus the residual `r` `[rows, out]` when given: `(v + b) + r` per value, in
/// the pass that adds the bias.
fn forward<T: Element>(
    op: Linear,
    x: &[T],
    w: &[T],
    b: &[T],
    rows: usize,
    inp: usize,
    r: Option<&[T]>,
) -> Result<Vec<T>> {
    let out = b.len();
    let mut y = gemm(MatRef::new(x, rows, inp)?, op.weight_t(w, inp, out)?)?;
    match r {
        None => {
            for row in y.chunks_exact_mut(out.max(1)) {
                row.iter_mut().zip(b).for_each(|(v, &c)| *v += c);
            }
        }
        Some(r) => {
            for (row, rr) in y
                .chunks_exact_mut(out.max(1))
                .zip(r.chunks_exact(out.max(1)))
            {
                row.iter_mut()
                    .zip(b)
                    .zip(rr)
                    .for_each(|((v, &c), &rv)| *v = (*v + c) + rv);
            }
        }
    }
    Ok(y)
}

type Grads<T> = (Vec<T>, Vec<T>, Vec<T>);

fn backward<T: Element>(
    op: Linear,
    x: &[T],
    w: &[T],
    g: &[T],
    rows: usize,
    inp: usize,
    out: usize,
) -> Result<Grads<T>> {
    let gm = MatRef::new(g, rows, out)?;
    let (wt, xm) = (op.weight_t(w, inp, out)?, MatRef::new(x, rows, inp)?);
    // dW in the weight's own layout: g^T x `[out, in]`, or x^T g `[in, out]`.
    let dw = || {
        if op.in_out {
            gemm(xm.t(), gm)
        } else {
            gemm(gm.t(), xm)
        }
    };
    let (dx, dw) = join(4 * rows * inp * out, || gemm(gm, wt.t()), dw);
    let (dx, dw) = (dx?, dw?);
    let mut db = vec![T::zero(); out];
    for row in g.chunks_exact(out.max(1)) {
        db.iter_mut().zip(row).for_each(|(d, &v)| *d += v);
    }
    Ok((dx, dw, db))
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "haad-linear"
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
        let (rows, inp) = l1.shape().dims2()?;
        let out = l3.shape().dims1()?;
        let y = with_float!(dtype_of(s1), OP, |T| into_storage(forward::<T>(
            *self,
            contiguous(s1, l1, OP)?,
            contiguous(s2, l2, OP)?,
            contiguous(s3, l3, OP)?,
            rows,
            inp,
            None,
        )?));
        Ok((y, Shape::from((rows, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (rows, inp) = x.dims2()?;
        let out = b.dim(0)?;
        let g = grad.contiguous()?;
        let inputs = Inputs::new(&[x, w, &g], OP)?;
        let dev = b.device();
        let (dx, dw, db) = with_float!(inputs.dtype(), OP, |T| {
            let v = inputs.values::<T>()?;
            let (dx, dw, db) = backward(*self, v[0], v[1], v[2], rows, inp, out)?;
            (
                Tensor::from_vec(dx, (rows, inp), dev)?,
                Tensor::from_vec(dw, w.shape(), dev)?,
                Tensor::from_vec(db, b.shape(), dev)?,
            )
        });
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{grads_of_weighted_sum, random_var as var, rel_max_diff as max_rel};
    use candle_core::{DType, Var};

    /// Value and every gradient against candle's `matmul` + `broadcast_add`, on a 3-D input,
    /// small and large (split) sizes, f64 and f32.
    #[test]
    fn matches_matmul_plus_bias_with_gradients() {
        for (lead, inp, out) in [((2, 3), 4, 5), ((64, 20), 128, 256)] {
            let x = var(&[lead.0, lead.1, inp], 1);
            let w = var(&[out, inp], 2);
            let b = var(&[out], 3);
            let r = var(&[lead.0, lead.1, out], 4);
            for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
                let c = |v: &Var| Var::from_tensor(&v.to_dtype(dtype).unwrap()).unwrap();
                let (x, w, b, r) = (c(&x), c(&w), c(&b), c(&r));
                let y = linear(&x, &w, &b).unwrap();
                let want = x
                    .broadcast_matmul(&w.t().unwrap())
                    .unwrap()
                    .broadcast_add(&b)
                    .unwrap();
                assert!(max_rel(&y, &want) < tol, "value {dtype:?}");
                let g1 = grads_of_weighted_sum(&y, &r);
                let g2 = grads_of_weighted_sum(&want, &r);
                for (v, name) in [(&x, "dx"), (&w, "dW"), (&b, "db")] {
                    let e = max_rel(g1.get(v).unwrap(), g2.get(v).unwrap());
                    assert!(e < tol * 10.0, "{name} {dtype:?}: {e}");
                }
            }
        }
    }

    /// The `[in, out]` layout against the `[out, in]` one on the same weights: the value, dx, db,
    /// and dW^T equal to the transpose of dW (f64 and f32, small and split sizes).
    #[test]
    fn in_out_layout_matches_out_in() {
        for (lead, inp, out) in [((2, 3), 4, 5), ((64, 20), 128, 256)] {
            let x = var(&[lead.0, lead.1, inp], 5);
            let w = var(&[out, inp], 6);
            let b = var(&[out], 7);
            let r = var(&[lead.0, lead.1, out], 8);
            for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
                let c = |v: &Tensor| Var::from_tensor(&v.to_dtype(dtype).unwrap()).unwrap();
                let (x, w, b, r) = (c(&x), c(&w), c(&b), c(&r));
                let wt = c(&w.t().unwrap().contiguous().unwrap());
                let y = linear_in_out(&x, &wt, &b).unwrap();
                let want = linear(&x, &w, &b).unwrap();
                assert!(max_rel(&y, &want) < tol, "value {dtype:?}");
                let g1 = grads_of_weighted_sum(&y, &r);
                let g2 = grads_of_weighted_sum(&want, &r);
                for (v1, v2, name) in [(&x, &x, "dx"), (&b, &b, "db")] {
                    let e = max_rel(g1.get(v1).unwrap(), g2.get(v2).unwrap());
                    assert!(e < tol * 10.0, "{name} {dtype:?}: {e}");
                }
                let dwt = g1.get(&wt).unwrap();
                assert_eq!(dwt.dims(), [inp, out]);
                let e = max_rel(dwt, &g2.get(&w).unwrap().t().unwrap());
                assert!(e < tol * 10.0, "dW {dtype:?}: {e}");
            }
        }
    }

    /// Without tracked inputs: the fused residual gives the bits of `linear_in_out + r` (f64
    /// and f32, small and split sizes, a 3-D input); a residual of another shape is an error.
    #[test]
    fn residual_added_in_the_bias_pass_keeps_every_bit() {
        for (lead, inp, out) in [((2, 3), 4, 5), ((64, 20), 128, 256)] {
            for dtype in [DType::F64, DType::F32] {
                let t = |dims: &[usize], seed| {
                    var(dims, seed)
                        .as_tensor()
                        .to_dtype(dtype)
                        .unwrap()
                        .detach()
                };
                let (x, wt, b) = (
                    t(&[lead.0, lead.1, inp], 9),
                    t(&[inp, out], 10),
                    t(&[out], 11),
                );
                let r = t(&[lead.0, lead.1, out], 12);
                let got = linear_in_out_add(&x, &wt, &b, &r).unwrap();
                let want = (linear_in_out(&x, &wt, &b).unwrap() + &r).unwrap();
                assert_eq!(got.dims(), want.dims());
                let bits = |t: &Tensor| -> Vec<u64> {
                    crate::testing::values(t)
                        .iter()
                        .map(|v| v.to_bits())
                        .collect()
                };
                assert_eq!(bits(&got), bits(&want), "{dtype:?} {inp}x{out}");
                let wrong = t(&[lead.0, lead.1 + 1, out], 13);
                assert!(linear_in_out_add(&x, &wt, &b, &wrong).is_err());
            }
        }
    }

    /// With variables among the inputs the residual sum stays differentiable: every gradient,
    /// the residual's too, equals that of `linear_in_out + r`.
    #[test]
    fn residual_sum_of_variables_has_every_gradient() {
        let (x, wt, b, r) = (
            var(&[3, 4, 6], 14),
            var(&[6, 5], 15),
            var(&[5], 16),
            var(&[3, 4, 5], 17),
        );
        let w = var(&[3, 4, 5], 18);
        let got = linear_in_out_add(&x, &wt, &b, &r).unwrap();
        let want = (linear_in_out(&x, &wt, &b).unwrap() + r.as_tensor()).unwrap();
        let (g1, g2) = (
            grads_of_weighted_sum(&got, &w),
            grads_of_weighted_sum(&want, &w),
        );
        for (v, name) in [(&x, "dx"), (&wt, "dW^T"), (&b, "db"), (&r, "dr")] {
            let e = max_rel(g1.get(v).expect(name), g2.get(v).unwrap());
            assert!(e < 1e-12, "{name}: {e}");
        }
    }
}
