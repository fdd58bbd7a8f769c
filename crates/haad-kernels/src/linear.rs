//! `linear`: `x W^T + b` as one differentiable CPU operation (one node in the autograd graph
//! instead of a product and a bias addition: each node costs candle a zero fill and an addition
//! of its input's size in the backward pass).

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

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
    let (out, inp) = weight.dims2()?;
    let dims = x.dims();
    if dims.last() != Some(&inp) || bias.dims() != [out] {
        candle_core::bail!(
            "linear: input {dims:?}, weight {:?}, bias {:?}",
            weight.dims(),
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
        x2.apply_op3(&weight.contiguous()?, &bias.contiguous()?, Linear)?
    } else {
        x2.matmul(&weight.t()?)?.broadcast_add(bias)?
    };
    y.reshape(shape)
}

struct Linear;

fn forward<T: Element>(x: &[T], w: &[T], b: &[T], rows: usize, inp: usize) -> Result<Vec<T>> {
    let out = b.len();
    let mut y = gemm(MatRef::new(x, rows, inp)?, MatRef::new(w, out, inp)?.t())?;
    for row in y.chunks_exact_mut(out.max(1)) {
        row.iter_mut().zip(b).for_each(|(v, &c)| *v += c);
    }
    Ok(y)
}

type Grads<T> = (Vec<T>, Vec<T>, Vec<T>);

fn backward<T: Element>(
    x: &[T],
    w: &[T],
    g: &[T],
    rows: usize,
    inp: usize,
    out: usize,
) -> Result<Grads<T>> {
    let gm = MatRef::new(g, rows, out)?;
    let (wm, xm) = (MatRef::new(w, out, inp)?, MatRef::new(x, rows, inp)?);
    let (dx, dw) = join(4 * rows * inp * out, || gemm(gm, wm), || gemm(gm.t(), xm));
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
        let out = l2.shape().dims2()?.0;
        let y = with_float!(dtype_of(s1), OP, |T| into_storage(forward::<T>(
            contiguous(s1, l1, OP)?,
            contiguous(s2, l2, OP)?,
            contiguous(s3, l3, OP)?,
            rows,
            inp,
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
        let out = w.dim(0)?;
        let g = grad.contiguous()?;
        let inputs = Inputs::new(&[x, w, &g], OP)?;
        let dev = b.device();
        let (dx, dw, db) = with_float!(inputs.dtype(), OP, |T| {
            let v = inputs.values::<T>()?;
            let (dx, dw, db) = backward(v[0], v[1], v[2], rows, inp, out)?;
            (
                Tensor::from_vec(dx, (rows, inp), dev)?,
                Tensor::from_vec(dw, (out, inp), dev)?,
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
}
