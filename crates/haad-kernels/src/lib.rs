//! CPU kernels the models share.
//!
//! candle's CPU matrix product asks the operating system for the core count on every call
//! (`/proc` and `/sys` reads: about 500 `openat` + `read` a second in a training run) and hands
//! every product, however small, to its thread pool. [`matmul`] decides its threads once per
//! process ([`threads`]) and splits work across them only where a product is large enough to
//! gain ([`PARALLEL_MIN_FLOPS`]); batched products are split at the batch level. Element-wise
//! kernels use [`for_each_chunk`] for the same rule.
//!
//! Element-wise loops written with [`multiversion!`] are compiled for AVX-512, AVX2 + FMA and
//! the baseline, and run the best the CPU has ([`simd_level`]); [`linear_in_out`] with
//! [`transpose_detached`] serves weights that many products read unchanged (a sampler's).
//!
//! On other devices every function falls back to candle's own operations.

mod dot;
mod gang;
mod gemm;
mod linear;
mod math;
mod matmul;
mod simd;
mod storage;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod threads;
mod transpose;

pub use dot::{gemm_nt, gemm_nt_into, NT_COST};
pub use gang::{gang, Crew};
pub use gemm::{gemm, gemm_into, Element, MatRef};
pub use linear::{linear, linear_in_out, linear_in_out_add};
pub use math::exp_f32;
pub use matmul::matmul;
pub use simd::{level as simd_level, SimdLevel};
pub use storage::{common_dtype, contiguous, dtype_of, into_storage, is_float, Inputs, Stash};
pub use threads::{
    collect_chunks, for_each_chunk, for_each_chunk_pair, join, on_pool, parallel_ok, serial,
    split_batch, threads, worth_splitting, PARALLEL_MIN_FLOPS, POOL_MIN_FLOPS,
};
pub use transpose::{transpose_detached, transposed};
