//! # haad-report: figures of haad's experiments
//!
//! Everything that draws lives here, so that the libraries (haad-motion, -gcn, -diffusion,
//! -contrastive, -detect) carry no plotting dependency: grouped bars, lines, strips and scatter
//! maps ([`plot_bars`], [`plot_lines`], [`plot_strips`], [`plot_scatter`]), the per-category
//! AUC bars of an evaluation ([`plot_auc_bars`]), a training log ([`plot_log`]), stick figures
//! of generated completions ([`draw_completions`]), and the 2-D maps of embeddings they show
//! ([`pca_2d`], and exact t-SNE: [`tsne_2d`]).
//!
//! One rule for files: figures are SVG only ([`check_figure_path`]; a `.png` is refused
//! everywhere alike, since PNG text needs a font renderer this build leaves out), drawn in
//! memory and written whole. One error type: [`ReportError`].

mod completions;
mod error;
mod evaluation;
mod figures;
mod pca;
mod svg;
mod training;
mod tsne;

pub use completions::{draw_completions, CompletionFigure};
pub use error::{ReportError, Result};
pub use evaluation::{auc_series, plot_auc_bars};
pub use figures::{color, plot_bars, plot_lines, plot_scatter, plot_strips, Series};
pub use pca::pca_2d;
pub use svg::check_figure_path;
pub use training::plot_log;
pub use tsne::{tsne_2d, TsneConfig, ValidTsneConfig};
