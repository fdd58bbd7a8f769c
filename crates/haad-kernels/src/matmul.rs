//! `matmul`: a differentiable matrix product on CPU through `gemm`, with the thread rule of
//! [`crate::threads`].

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::gemm::{gemm, Element, MatRef};
use crate::storage::{common_dtype, into_storage, is_float};
use crate::threads::{join, serial, worth_splitting};
use crate::with_float;

/// The product `a b` of `a` `[.., m, k]` and `b` `[.., k, n]` (the same leading batch
/// dimensions, or none), `[.., m, n]`; differentiable in both.
///
/// On CPU in f32 or f64 this calls `gemm` directly on the operands' strides (transposed views
/// are not copied), on one thread below the threading threshold ([`crate::worth_splitting`])
/// and else on
/// [`crate::threads()`] threads: one product as [`crate::gemm()`] splits it, a batch of products
/// by batch. Elsewhere
/// it is candle's `matmul`.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let cpu = a.device().is_cpu() && b.device().is_cpu();
    let float = is_float(a.dtype());
    if !(cpu && float && a.dtype() == b.dtype() && a.rank() >= 2 && a.rank() == b.rank()) {
        return a.matmul(b);
    }
    let (ad, bd) = (a.dims(), b.dims());
    let r = a.rank();
    if ad[..r - 2] != bd[..r - 2] || ad[r - 1] != bd[r - 2] {
        candle_core::bail!("matmul: shapes {ad:?} and {bd:?} do not multiply");
    }
    let a = collapsible(a)?;
    let b = collapsible(b)?;
    a.apply_op2(&b, MatMul)
}

/// `x` itself when its leading (batch) dimensions have one stride between matrices, else a
/// contiguous copy.
fn collapsible(x: &Tensor) -> Result<Tensor> {
    match batch_stride(x.dims(), x.stride()) {
        Some(_) => Ok(x.clone()),
        None => x.contiguous(),
    }
}

/// The distance between consecutive matrices of a `[.., rows, cols]` layout, when one number
/// describes it (0 for a single matrix).
fn batch_stride(dims: &[usize], stride: &[usize]) -> Option<usize> {
    let r = dims.len();
    if r <= 2 {
        return Some(0);
    }
    for i in 0..r - 3 {
        if dims[i] > 1 && stride[i] != stride[i + 1] * dims[i + 1] {
            return None;
        }
    }
    Some(stride[r - 3])
}

struct MatMul;

/// The operand's matrices: offset, batch stride, row stride, column stride.
fn operand(l: &Layout) -> Result<(usize, usize, usize, usize)> {
    let (dims, stride) = (l.dims(), l.stride());
    let r = dims.len();
    let batch = batch_stride(dims, stride).ok_or_else(|| {
        candle_core::Error::Msg("matmul: batch dimensions not collapsible".into())
    })?;
    Ok((l.start_offset(), batch, stride[r - 2], stride[r - 1]))
}

fn product<T: Element>(lhs: &[T], ll: &Layout, rhs: &[T], rl: &Layout) -> Result<(Vec<T>, Shape)> {
    let dims = ll.dims();
    let r = dims.len();
    let (m, k, n) = (dims[r - 2], dims[r - 1], rl.dims()[r - 1]);
    let batches: usize = dims[..r - 2].iter().product();
    let mut shape = dims.to_vec();
    shape[r - 1] = n;
    let (a0, ab, ars, acs) = operand(ll)?;
    let (b0, bb, brs, bcs) = operand(rl)?;
    let view = |i: usize| -> Result<(MatRef<'_, T>, MatRef<'_, T>)> {
        let a = MatRef::strided(lhs.get(a0 + i * ab..).unwrap_or(&[]), m, k, ars, acs)?;
        let b = MatRef::strided(rhs.get(b0 + i * bb..).unwrap_or(&[]), k, n, brs, bcs)?;
        Ok((a, b))
    };
    if batches == 1 {
        let (a, b) = view(0)?;
        return Ok((gemm(a, b)?, Shape::from(shape)));
    }
    let one = |i: usize| -> Result<Vec<T>> {
        let (a, b) = view(i)?;
        serial(|| gemm(a, b))
    };
    let parts: Vec<Vec<T>> = if worth_splitting(2 * batches * m * n * k) {
        (0..batches)
            .into_par_iter()
            .map(one)
            .collect::<Result<_>>()?
    } else {
        (0..batches).map(one).collect::<Result<_>>()?
    };
    Ok((parts.concat(), Shape::from(shape)))
}

impl CustomOp2 for MatMul {
    fn name(&self) -> &'static str {
        "haad-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        // Strided operands: the whole storages, read through their layouts.
        with_float!(common_dtype(&[s1, s2], "matmul")?, "matmul", |T| {
            let (v, shape) = product(s1.as_slice::<T>()?, l1, s2.as_slice::<T>()?, l2)?;
            Ok((into_storage(v), shape))
        })
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Two products of the forward's size (g: [.., m, n], a: [.., m, k]), side by side
        // when large enough.
        let flops = 4 * g.elem_count() * a.dim(D::Minus1)?;
        let (ga, gb) = join(
            flops,
            || matmul(g, &b.transpose(D::Minus2, D::Minus1)?),
            || matmul(&a.transpose(D::Minus2, D::Minus1)?, g),
        );
        Ok((Some(ga?), Some(gb?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close, grads_of_weighted_sum, random_var, values};
    use candle_core::{DType, Device, Var};

    fn random(dims: &[usize], seed: u64) -> Tensor {
        random_var(dims, seed).as_tensor().clone()
    }

    fn close(got: &[f64], want: &[f64], tol: f64) {
        assert_close(got, want, tol, "element")
    }

    /// The product by the definition, in f64, on contiguous copies.
    fn brute(a: &Tensor, b: &Tensor) -> Vec<f64> {
        let r = a.rank();
        let (m, k, n) = (a.dims()[r - 2], a.dims()[r - 1], b.dims()[r - 1]);
        let (av, bv) = (values(a), values(b));
        let batches = av.len() / (m * k).max(1);
        let mut out = vec![0.0; batches * m * n];
        for s in 0..batches {
            for i in 0..m {
                for j in 0..n {
                    out[s * m * n + i * n + j] = (0..k)
                        .map(|p| av[s * m * k + i * k + p] * bv[s * k * n + p * n + j])
                        .sum();
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_for_shapes_strides_and_dtypes() {
        // Small (one thread) and large (split) products, single and batched, with transposed
        // (strided) operands, in f64 and f32.
        for (dims_a, dims_b) in [
            (vec![3, 4], vec![4, 5]),
            (vec![1, 7], vec![7, 1]),
            (vec![300, 128], vec![128, 140]),
            (vec![6, 5, 3], vec![6, 3, 2]),
            (vec![2, 3, 40, 64], vec![2, 3, 64, 50]),
            (vec![64, 40, 32], vec![64, 32, 40]),
        ] {
            let a = random(&dims_a, 1);
            let b = random(&dims_b, 2);
            let want = brute(&a, &b);
            close(&values(&matmul(&a, &b).unwrap()), &want, 1e-12);
            let (a32, b32) = (
                a.to_dtype(DType::F32).unwrap(),
                b.to_dtype(DType::F32).unwrap(),
            );
            close(&values(&matmul(&a32, &b32).unwrap()), &want, 1e-4);
            // The same product from transposed storage: b^T^T, a^T^T.
            let at = a
                .transpose(D::Minus2, D::Minus1)
                .unwrap()
                .contiguous()
                .unwrap();
            let bt = b
                .transpose(D::Minus2, D::Minus1)
                .unwrap()
                .contiguous()
                .unwrap();
            let y = matmul(
                &at.transpose(D::Minus2, D::Minus1).unwrap(),
                &bt.transpose(D::Minus2, D::Minus1).unwrap(),
            )
            .unwrap();
            close(&values(&y), &want, 1e-12);
        }
    }

    #[test]
    fn a_non_collapsible_batch_and_empty_products() {
        // [3, 2, m, k] permuted so the two batch dimensions are out of order.
        let a = random(&[2, 3, 4, 5], 3).permute((1, 0, 2, 3)).unwrap();
        let b = random(&[3, 2, 5, 6], 4);
        let want = brute(&a.contiguous().unwrap(), &b);
        close(&values(&matmul(&a, &b).unwrap()), &want, 1e-12);
        let y = matmul(&random(&[4, 0], 5), &random(&[0, 3], 6)).unwrap();
        assert_eq!(y.dims(), &[4, 3]);
        assert!(values(&y).iter().all(|&v| v == 0.0));
        assert!(matmul(&random(&[2, 3], 7), &random(&[4, 2], 8)).is_err());
    }

    #[test]
    fn gradients_match_finite_differences() {
        let a = Var::from_tensor(&random(&[2, 3, 4], 9)).unwrap();
        let b = Var::from_tensor(&random(&[2, 4, 5], 10)).unwrap();
        let w = random(&[2, 3, 5], 11);
        let loss = |a: &Tensor, b: &Tensor| -> f64 {
            (matmul(a, b).unwrap() * &w)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        let grads = grads_of_weighted_sum(&matmul(a.as_tensor(), b.as_tensor()).unwrap(), &w);
        for (var, other, first) in [(&a, &b, true), (&b, &a, false)] {
            let g = values(grads.get(var.as_tensor()).unwrap());
            let base = values(var.as_tensor());
            let h = 1e-6;
            for i in 0..base.len() {
                let mut up = base.clone();
                let mut down = base.clone();
                up[i] += h;
                down[i] -= h;
                let t = |v: Vec<f64>| Tensor::from_vec(v, var.dims(), &Device::Cpu).unwrap();
                let fd = if first {
                    (loss(&t(up), other.as_tensor()) - loss(&t(down), other.as_tensor()))
                        / (2.0 * h)
                } else {
                    (loss(other.as_tensor(), &t(up)) - loss(other.as_tensor(), &t(down)))
                        / (2.0 * h)
                };
                assert!((g[i] - fd).abs() < 1e-6, "element {i}: {} vs {fd}", g[i]);
            }
        }
    }
}
