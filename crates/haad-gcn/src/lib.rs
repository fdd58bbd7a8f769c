//! # haad-gcn: the Res-GCN action encoder
//!
//! A prepared clip `[T, J, 3]` (T = 60 frames, root-relative) becomes an embedding: the first
//! `K = 10` DCT coefficients of every joint coordinate (`3K = 30` features per joint, graph
//! node), a graph convolution with a trainable adjacency to width 128, four residual blocks of
//! two graph convolutions each (BatchNorm over the flattened `J * 128` features, tanh), a graph
//! convolution back to 30 features plus the input (global residual), and a max pooling.
//! See [`Encoder`] for the layers and [`Pooling`] for the two poolings.
//!
//! ```
//! use candle_core::Device;
//! use candle_nn::ModuleT;
//! use haad_gcn::{batch_tensor, EncoderConfig, EncoderModel};
//! use haad_motion::Motion;
//! use ndarray::Array3;
//!
//! // Two 60-frame clips of a 22-joint skeleton.
//! let clips: Vec<Motion> = (0..2)
//!     .map(|i| Motion::new(Array3::from_shape_fn((60, 22, 3), |(t, j, c)| {
//!         ((t * (i + 1) + j + c) as f32 * 0.05).sin()
//!     }), None))
//!     .collect::<Result<_, _>>()?;
//! let config = EncoderConfig { joints: 22, ..Default::default() };
//! let model = EncoderModel::new(&config, 42, &Device::Cpu)?;
//!
//! let emb = model.embed(&clips)?; // eval mode
//! assert_eq!(emb.dim(), (2, config.embedding_dim())); // 22 = J (max over features)
//!
//! // Training mode: batch statistics in BatchNorm, gradients to every trainable variable.
//! let xs = batch_tensor(&clips, model.device())?; // [2, 60, 22, 3]
//! let loss = model.encoder().forward_t(&xs, true)?.sqr()?.mean_all()?;
//! let grads = loss.backward()?;
//! assert!(model.trainable_vars().iter().all(|v| grads.get(v).is_some()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod config;
mod cpu;
pub mod encoder;
pub mod error;
mod folder;
mod gc;
mod layers;
pub mod model;
mod norm;
mod ops;
mod passes;
mod spare;
mod trunk;

pub use config::{EmbeddingLayer, EncoderConfig, Pooling, ValidEncoderConfig};
pub use encoder::{batch_tensor, Encoder};
pub use error::{GcnError, Result};
pub use folder::encoder_dir;
pub use layers::{FlatBatchNorm, GcBlock, GraphConv};
pub use model::EncoderModel;
