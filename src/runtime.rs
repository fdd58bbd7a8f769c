//! Process-wide settings for haad's programs (the `haad` binary, the examples, the benches);
//! the libraries never change process state. A program opts in with
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: haad::runtime::Allocator = haad::runtime::Allocator;
//!
//! fn main() {
//!     haad::runtime::init();
//!     // ...
//! }
//! ```
//!
//! Why (measured, docs/performance.md): the models allocate a fresh buffer for every tensor
//! and free it soon after. glibc's malloc returns large blocks to the kernel, and the next
//! allocation of the same size pays a page fault per 4 KiB page (a quarter to 40 % of an
//! eval forward at batch 512); mimalloc, told to keep freed memory, reuses it. And candle runs
//! its element-wise operations on a second pool of threads that spin between operations next
//! to rayon's pool, which haad's kernels use: two spinning pools on the same cores slowed a
//! training step at two threads.

/// The allocator of haad's programs: mimalloc.
pub use mimalloc::MiMalloc as Allocator;

/// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3 headers).
const MI_OPTION_PURGE_DELAY: i32 = 15;

/// Call first in `main`: mimalloc keeps freed memory for reuse instead of returning it to the
/// kernel, and candle's element-wise thread pool is kept to the calling thread (unless
/// `CANDLE_NUM_THREADS` is set), so that rayon's pool (`RAYON_NUM_THREADS`) is the only one.
pub fn init() {
    #[allow(unsafe_code)]
    // SAFETY: sets an integer option of the allocator; no memory is touched.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1)
    };
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Before any other thread exists (the call is first in `main`) and before candle
        // reads it (its pool starts on the first large element-wise operation).
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}
