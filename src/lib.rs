//! # haad: few-shot human action anomaly detection
//!
//! The method of *Few-shot Human Action Anomaly Detection via a Unified Contrastive Learning
//! Framework* (Kamide et al., 2025), as a family of libraries. This crate only re-exports them:
//!
//! - [`motion`]: skeleton I/O, preprocessing, splits and the orthonormal DCT.
//! - [`gcn`]: the Res-GCN action encoder.
//! - [`diffusion`]: HumanMAC-style masked DCT completion (generative augmentation).
//! - [`contrastive`]: the multi-positive contrastive loss and the trainer.
//! - [`train`]: the training stack both trainers share (optimiser, schedule, checkpoints).
//! - [`detect`]: support sets, anomaly scoring and the evaluation protocol.
//! - [`report`]: figures (SVG) and 2-D maps of embeddings (PCA, t-SNE).
//!
//! [`progress`] shows the libraries' progress reports as a terminal bar; [`runtime`] holds the
//! allocator and thread settings of haad's own programs.
//! [`pipeline`] composes them into the method end to end (generated-variant pools, encoder
//! training with them, evaluation), and [`paper`] runs the paper's experiments with it.
//! [`deploy`] holds what the `haad` command-line tool is made of (clip files, the stream
//! format, evaluation recordings, score plots) and the frame-level and calibration
//! experiments; [`defaults`] the built-in default encoder.

pub mod defaults;
pub mod deploy;
pub mod error;
pub mod paper;
pub mod pipeline;
pub mod progress;
pub mod runtime;
pub mod stdout;
pub mod transfer;

pub use error::{HaadError, Result};
pub use haad_contrastive as contrastive;
pub use haad_detect as detect;
pub use haad_diffusion as diffusion;
pub use haad_gcn as gcn;
pub use haad_motion as motion;
pub use haad_report as report;
pub use haad_train as train;

/// The README's Rust snippet, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
