//! The paper's few-shot evaluation: the raw-DCT baseline and (optionally) a trained encoder,
//! same supports and seeds. Prints a table, writes JSON and an SVG plot.
//!
//! ```text
//! cargo run --release --example evaluate -- --format msr \
//!     --data ../shared/data/msr_action3d/MSRAction3DSkeletonReal3D \
//!     --unseen forward_punch,high_throw,forward_kick,tennis_serve,pick_up_throw \
//!     --encoder none --k 3 --seeds 10 --out msr_eval.json --plot msr_eval.svg
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use haad::progress::Bar;
use haad_detect::{report, Embedder, EvalConfig, Scoring};
use haad_motion::split::{Split, DEFAULT_TRAIN_FRACTION};
use haad_motion::{load, Canonicalizer, DataFormat, Layout};

#[derive(Parser, Debug)]
#[command(about = "Few-shot anomaly-detection evaluation (raw-DCT baseline vs encoder)")]
struct Args {
    /// Dataset format: msr, bvh, bandai, humanact12, folder, native.
    #[arg(long)]
    format: DataFormat,
    /// Dataset path (folder or file, as the format needs).
    #[arg(long)]
    data: PathBuf,
    /// Comma-separated categories kept out of training (reported as unseen).
    #[arg(long, value_delimiter = ',', default_value = "")]
    unseen: Vec<String>,
    /// A trained encoder: its folder (EncoderModel::save) or a training output folder (its
    /// best/, else last/); "none" evaluates the baseline only.
    #[arg(long, default_value = "none")]
    encoder: String,
    /// Map the clips onto the canonical body from this joint layout (msr, kinect-v1,
    /// kinect-v2, smpl, h36m, bvh) with the encoder's normalisation (its normalize.json; the
    /// default normalisation without one), for encoders of the canonical body.
    #[arg(long)]
    layout: Option<Layout>,
    /// K: real support clips per category.
    #[arg(long, default_value_t = 3)]
    k: usize,
    /// Number of seeds (0..seeds) drawing the supports.
    #[arg(long, default_value_t = 10)]
    seeds: usize,
    /// Scoring rule: mean_distance (the paper's), min_distance, k_nearest:K, mean_cosine_distance.
    #[arg(long, default_value_t = Scoring::MeanDistance)]
    scoring: Scoring,
    /// Share of each category's clips (first in file order) that is train.
    #[arg(long, default_value_t = DEFAULT_TRAIN_FRACTION)]
    train_fraction: f64,
    /// Many-shot reference: support = all train clips of the category.
    #[arg(long)]
    many_shot: bool,
    /// JSON output file.
    #[arg(long)]
    out: PathBuf,
    /// Plot of the per-category AUCs (.svg; PNG is refused: no font renderer in this build).
    #[arg(long)]
    plot: Option<PathBuf>,
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

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(plot) = &args.plot {
        haad_report::check_figure_path(plot)?;
    }
    let start = Instant::now();
    let dataset = load(args.format, &args.data)?;
    let dataset = match args.layout {
        Some(layout) => {
            let cfg = match args.encoder.as_str() {
                "none" => None,
                dir => haad::transfer::encoder_normalization(std::path::Path::new(dir))?,
            };
            Canonicalizer::new(layout, dataset.skeleton(), None, cfg.unwrap_or_default())?
                .apply_dataset(&dataset)?
        }
        None => dataset,
    };
    for s in dataset.skipped() {
        eprintln!("skipped {}: {}", s.path.display(), s.reason);
    }
    let unseen: Vec<String> = args.unseen.into_iter().filter(|s| !s.is_empty()).collect();
    let split = Split::new(&dataset, args.train_fraction, &unseen)?;
    let encoder = match args.encoder.as_str() {
        "none" => None,
        dir => Some(Embedder::load_encoder(
            Path::new(dir),
            &candle_core::Device::Cpu,
        )?),
    };
    let config = EvalConfig {
        k: args.k,
        seeds: args.seeds,
        scoring: args.scoring,
        many_shot: args.many_shot,
        ..Default::default()
    }
    .check()?;
    let bar = Bar::new("(category, seed) runs");
    let comparison = report::compare(
        &dataset,
        &split,
        encoder.as_ref(),
        &config,
        None,
        Some(&bar),
    )?;
    haad::outln!(
        "{} clips, {} categories, {} skipped; K = {}, {} seeds, {:.1} s",
        dataset.clips().len(),
        dataset.categories().len(),
        dataset.skipped().len(),
        args.k,
        args.seeds,
        start.elapsed().as_secs_f64()
    );
    haad::out!("{}", report::format_table(&comparison));
    comparison.write_json(&args.out)?;
    haad::outln!("wrote {}", args.out.display());
    if let Some(plot) = args.plot {
        haad_report::plot_auc_bars(&comparison, &plot)?;
        haad::outln!("wrote {}", plot.display());
    }
    Ok(())
}
