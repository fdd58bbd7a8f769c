//! Typed access to CPU storage for custom operations.
//!
//! Every fused kernel of haad runs on contiguous f32 or f64 values. [`contiguous`] turns a
//! storage and its layout into a typed slice, [`Inputs`] does so for several tensors at once
//! (in a backward pass), [`with_float!`](crate::with_float) picks the kernel's element type
//! from a dtype, [`into_storage`] hands a result back, and [`Stash`] keeps a forward output
//! for the backward pass. Errors name the operation.

use std::ops::Deref;
use std::sync::{Mutex, MutexGuard};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor};

use crate::gemm::Element;

/// The contiguous values of `s` seen through `l`, as `T`; `op` names the operation in errors
/// (a strided view, or a dtype other than `T`).
pub fn contiguous<'a, T: Element>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [T]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: needs a contiguous input")))?;
    if s.dtype() != T::DTYPE {
        candle_core::bail!("{op}: expected {:?} values, got {:?}", T::DTYPE, s.dtype());
    }
    s.as_slice::<T>()?
        .get(a..b)
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: layout outside its storage")))
}

/// A kernel's output as candle storage.
pub fn into_storage<T: Element>(v: Vec<T>) -> CpuStorage {
    T::to_cpu_storage_owned(v)
}

/// The dtype of a CPU storage.
pub fn dtype_of(s: &CpuStorage) -> DType {
    s.dtype()
}

/// The one dtype of a kernel's inputs; inputs of different dtypes are an error naming `op`.
pub fn common_dtype(ss: &[&CpuStorage], op: &str) -> Result<DType> {
    let d = match ss.first() {
        Some(s) => dtype_of(s),
        None => candle_core::bail!("{op}: no inputs"),
    };
    if let Some(s) = ss.iter().find(|s| dtype_of(s) != d) {
        candle_core::bail!(
            "{op}: inputs of one dtype, got {:?} beside {d:?}",
            dtype_of(s)
        );
    }
    Ok(d)
}

/// Whether `dtype` is one the kernels run in (f32 or f64).
pub fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64)
}

/// Runs `$body` with the type alias `$t` set to the Rust type of `$dtype` (f32 or f64); any
/// other dtype is an error naming `$op`. The body's value is the macro's.
///
/// ```
/// use candle_core::{DType, Result};
/// use haad_kernels::with_float;
///
/// fn bytes(dtype: DType) -> Result<usize> {
///     Ok(with_float!(dtype, "bytes", |T| std::mem::size_of::<T>()))
/// }
/// assert_eq!(bytes(DType::F64).unwrap(), 8);
/// assert!(bytes(DType::U8).is_err());
/// ```
#[macro_export]
macro_rules! with_float {
    ($dtype:expr, $op:expr, |$t:ident| $body:expr) => {
        match $dtype {
            candle_core::DType::F32 => {
                #[allow(dead_code)]
                type $t = f32;
                $body
            }
            candle_core::DType::F64 => {
                #[allow(dead_code)]
                type $t = f64;
                $body
            }
            d => candle_core::bail!("{}: f32 or f64, got {:?}", $op, d),
        }
    };
}

/// A read lock on a tensor's storage.
type Locked<'a> = Box<dyn Deref<Target = Storage> + 'a>;

/// Several CPU tensors of one float dtype, read-locked, for a kernel that wants their values.
pub struct Inputs<'a> {
    guards: Vec<(Locked<'a>, &'a Layout)>,
    dtype: DType,
    op: &'static str,
}

impl<'a> Inputs<'a> {
    /// Locks the storages of `ts` (at least one tensor; every one on the CPU, of one dtype).
    pub fn new(ts: &[&'a Tensor], op: &'static str) -> Result<Self> {
        let dtype = match ts.first() {
            Some(t) => t.dtype(),
            None => candle_core::bail!("{op}: no inputs"),
        };
        if let Some(t) = ts
            .iter()
            .find(|t| t.dtype() != dtype || !t.device().is_cpu())
        {
            candle_core::bail!(
                "{op}: CPU tensors of one dtype, got {:?} on {:?} beside {dtype:?}",
                t.dtype(),
                t.device().location()
            );
        }
        let guards = ts
            .iter()
            .map(|t| {
                let (s, l) = t.storage_and_layout();
                (Box::new(s) as Locked<'a>, l)
            })
            .collect();
        Ok(Self { guards, dtype, op })
    }

    /// The common dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Every tensor's contiguous values, in the order given to [`Inputs::new`].
    pub fn values<T: Element>(&self) -> Result<Vec<&[T]>> {
        self.guards
            .iter()
            .map(|(s, l)| match &***s {
                Storage::Cpu(c) => contiguous(c, l, self.op),
                _ => candle_core::bail!("{}: CPU storage expected", self.op),
            })
            .collect()
    }
}

/// A forward output kept by an operation for its backward pass.
#[derive(Debug)]
pub struct Stash<V>(Mutex<Option<V>>);

impl<V> Default for Stash<V> {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl<V> Stash<V> {
    /// Keeps `v`, replacing what an earlier forward kept.
    pub fn put(&self, v: V) {
        *self.lock() = Some(v);
    }

    /// What the last forward kept (`None` before any forward).
    pub fn get(&self) -> MutexGuard<'_, Option<V>> {
        self.lock()
    }

    fn lock(&self) -> MutexGuard<'_, Option<V>> {
        // A panic elsewhere cannot leave the value half-written: it is replaced whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn contiguous_reads_the_layouts_window() {
        let t = Tensor::arange(0f32, 12., &Device::Cpu)
            .unwrap()
            .reshape((3, 4))
            .unwrap();
        let row = t.narrow(0, 1, 2).unwrap();
        let (s, l) = row.storage_and_layout();
        let Storage::Cpu(c) = &*s else { unreachable!() };
        assert_eq!(
            contiguous::<f32>(c, l, "test").unwrap(),
            &[4., 5., 6., 7., 8., 9., 10., 11.]
        );
        // Another element type, or a strided view, is refused by name.
        let e = contiguous::<f64>(c, l, "test").unwrap_err().to_string();
        assert!(e.contains("test") && e.contains("F64"), "{e}");
        let col = t.narrow(1, 1, 2).unwrap();
        let (s, l) = col.storage_and_layout();
        let Storage::Cpu(c) = &*s else { unreachable!() };
        let e = contiguous::<f32>(c, l, "test").unwrap_err().to_string();
        assert!(e.contains("contiguous"), "{e}");
    }

    #[test]
    fn common_dtype_refuses_a_mix() {
        let a = CpuStorage::F32(vec![1.]);
        let b = CpuStorage::F64(vec![1.]);
        assert_eq!(common_dtype(&[&a, &a], "mix").unwrap(), DType::F32);
        let e = common_dtype(&[&a, &b], "mix").unwrap_err().to_string();
        assert!(e.contains("mix") && e.contains("F64"), "{e}");
    }

    #[test]
    fn inputs_need_one_dtype() {
        let a = Tensor::ones(3, DType::F64, &Device::Cpu).unwrap();
        let b = Tensor::zeros(2, DType::F64, &Device::Cpu).unwrap();
        let inputs = Inputs::new(&[&a, &b], "pair").unwrap();
        assert_eq!(inputs.dtype(), DType::F64);
        let v = inputs.values::<f64>().unwrap();
        assert_eq!((v[0], v[1]), (&[1., 1., 1.][..], &[0., 0.][..]));
        assert!(inputs.values::<f32>().is_err());
        let c = Tensor::ones(2, DType::F32, &Device::Cpu).unwrap();
        assert!(Inputs::new(&[&a, &c], "pair").is_err());
        assert!(Inputs::new(&[], "pair").is_err());
    }

    #[test]
    fn stash_keeps_the_last_value() {
        let s = Stash::default();
        assert!(s.get().is_none());
        s.put(vec![1u8]);
        s.put(vec![2u8, 3]);
        assert_eq!(s.get().as_deref(), Some(&[2u8, 3][..]));
    }
}
