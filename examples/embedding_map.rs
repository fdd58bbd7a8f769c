//! 2-D maps of the test clips' embeddings (the paper's Fig. 4): PCA and t-SNE side by side,
//! one colour per category, for a trained encoder or the raw-DCT baseline.
//!
//! ```sh
//! cargo run --release --example embedding_map -- --format native \
//!     --data data/bandai/bandai-ds2-60f.safetensors --encoder models/bandai/encoder --out runs/map
//! ```

use std::path::{Path, PathBuf};

use candle_core::Device;
use clap::Parser;
use haad::detect::{Embedder, Embedding, InputSpec};
use haad::motion::split::{Split, DEFAULT_TRAIN_FRACTION};
use haad::motion::{load, DataFormat};
use haad::pipeline::clips_at;
use haad::report::{pca_2d, plot_scatter, tsne_2d, TsneConfig};

#[derive(Parser, Debug)]
#[command(about = "PCA and t-SNE maps of the test clips' embeddings, coloured by category")]
struct Args {
    /// Dataset format: msr, bvh, bandai, humanact12, folder, native.
    #[arg(long)]
    format: DataFormat,
    /// Dataset path.
    #[arg(long)]
    data: PathBuf,
    /// A trained encoder (its folder or a training output folder: best/, else last/), or
    /// "none" for the raw-DCT embedding.
    #[arg(long, default_value = "none")]
    encoder: String,
    /// Share of each category's clips (first in file order) that is train; the rest is mapped.
    #[arg(long, default_value_t = DEFAULT_TRAIN_FRACTION)]
    train_fraction: f64,
    /// t-SNE perplexity (default: 30, or (N - 1) / 3 for fewer than 91 clips).
    #[arg(long)]
    perplexity: Option<f64>,
    /// t-SNE iterations.
    #[arg(long, default_value_t = 1000)]
    iterations: usize,
    /// t-SNE seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder: pca.svg and tsne.svg.
    #[arg(long)]
    out: PathBuf,
}

#[global_allocator]
static ALLOC: haad::runtime::Allocator = haad::runtime::Allocator;

fn main() {
    haad::runtime::init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    let data = load(a.format, &a.data)?;
    let split = Split::new(&data, a.train_fraction, &[])?;
    let embedder = match a.encoder.as_str() {
        "none" => Embedder::raw_dct(),
        dir => Embedder::load_encoder(Path::new(dir), &Device::Cpu)?,
    };
    let test = split.all_test();
    let labels: Vec<usize> = test.iter().map(|&i| data.clips()[i].category).collect();
    let input = InputSpec::for_skeleton(data.skeleton());
    let emb = embedder.embed_raw(&clips_at(&data, &test), &input)?;
    let tsne = TsneConfig {
        perplexity: a
            .perplexity
            .unwrap_or_else(|| haad::paper::tsne_settings(test.len()).perplexity),
        iterations: a.iterations,
        seed: a.seed,
        ..TsneConfig::default()
    }
    .check()?;
    std::fs::create_dir_all(&a.out)?;
    let what = format!(
        "{} embeddings of {} test clips",
        embedder.name(),
        test.len()
    );
    let names = data.categories();
    let pca = a.out.join("pca.svg");
    plot_scatter(
        &pca,
        &format!("PCA of {what}"),
        pca_2d(emb.view())?.view(),
        &labels,
        names,
    )?;
    let tsne_path = a.out.join("tsne.svg");
    let map = tsne_2d(emb.view(), &tsne)?;
    let title = format!("t-SNE of {what} (perplexity {:.1})", tsne.get().perplexity);
    plot_scatter(&tsne_path, &title, map.view(), &labels, names)?;
    println!("wrote {} and {}", pca.display(), tsne_path.display());
    Ok(())
}
