//! Deployment experiments: frame-level ROC AUC on long recordings built from test clips, and
//! measured false alarms of calibrated thresholds. Prints a table and writes JSON.
//!
//! ```text
//! cargo run --release --example deploy -- frame-level --format msr \
//!     --data ../shared/data/msr_action3d/MSRAction3DSkeletonReal3D \
//!     --encoder runs/encoder-msr/last --out runs/deploy/msr-frame-level.json
//! cargo run --release --example deploy -- calibration --format native \
//!     --data data/bandai/bandai-ds2-60f.safetensors --encoder models/bandai/encoder \
//!     --out runs/deploy/bandai-calibration.json
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Device;
use clap::{Parser, ValueEnum};
use haad::deploy::{
    calibration_experiment, format_calibration, format_frame_level, frame_level,
    CalibrationExperimentConfig, FrameLevelConfig,
};
use haad::detect::{Embedder, FrameAggregation};
use haad::motion::split::{Split, DEFAULT_TRAIN_FRACTION};
use haad::motion::{load, DataFormat};

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Experiment {
    FrameLevel,
    Calibration,
}

#[derive(Clone, Copy, ValueEnum)]
enum Aggregation {
    Max,
    Mean,
}

#[derive(Parser)]
#[command(about = "Frame-level and calibration experiments")]
struct Args {
    /// Which experiment.
    #[arg(value_enum)]
    experiment: Experiment,
    /// Dataset format: msr, bvh, bandai, humanact12, folder, native.
    #[arg(long)]
    format: DataFormat,
    /// Dataset path.
    #[arg(long)]
    data: PathBuf,
    /// Encoder folder (frame-level: also runs the raw-DCT baseline; calibration: the encoder
    /// only), or "none" for the baseline only.
    #[arg(long)]
    encoder: String,
    /// Support seeds.
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    /// Frame-level: recordings per (category, seed).
    #[arg(long, default_value_t = 4)]
    recordings: usize,
    /// Frame-level: frames between window starts.
    #[arg(long, default_value_t = 1)]
    stride: usize,
    /// Frame-level: a frame's score from the windows covering it: mean (default) or max.
    #[arg(long, value_enum, default_value_t = Aggregation::Mean)]
    aggregation: Aggregation,
    /// JSON output file (the text table goes to standard output and beside it as .txt).
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
    let ds = load(a.format, &a.data)?;
    let split = Split::new(&ds, DEFAULT_TRAIN_FRACTION, &[])?;
    let mut embedders = Vec::new();
    if a.encoder != "none" {
        let m = haad::gcn::EncoderModel::load(Path::new(&a.encoder), &Device::Cpu)?;
        embedders.push(Embedder::encoder(m));
    }
    if a.experiment == Experiment::FrameLevel || embedders.is_empty() {
        embedders.push(Embedder::raw_dct());
    }
    let progress = |what: &str| {
        let what = what.to_string();
        move |done: usize, total: usize| {
            eprint!("\r{what}: {done}/{total}");
            let _ = std::io::stderr().flush();
            if done == total {
                eprintln!();
            }
        }
    };
    if let Some(dir) = a.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let (json, table) = match a.experiment {
        Experiment::FrameLevel => {
            let cfg = FrameLevelConfig {
                seeds: a.seeds,
                recordings: a.recordings,
                stride: a.stride,
                aggregation: match a.aggregation {
                    Aggregation::Max => FrameAggregation::Max,
                    Aggregation::Mean => FrameAggregation::Mean,
                },
                ..Default::default()
            };
            let results = embedders
                .iter()
                .map(|e| frame_level(&ds, &split, e, &cfg, &mut progress(e.name())))
                .collect::<Result<Vec<_>, _>>()?;
            (
                serde_json::to_string_pretty(&results)?,
                format_frame_level(&results),
            )
        }
        Experiment::Calibration => {
            let cfg = CalibrationExperimentConfig {
                seeds: a.seeds,
                ..Default::default()
            };
            let results = embedders
                .iter()
                .map(|e| calibration_experiment(&ds, &split, e, &cfg, &mut progress(e.name())))
                .collect::<Result<Vec<_>, _>>()?;
            let table: String = results
                .iter()
                .map(format_calibration)
                .collect::<Vec<_>>()
                .join("\n");
            (serde_json::to_string_pretty(&results)?, table)
        }
    };
    std::fs::write(&a.out, json + "\n")?;
    std::fs::write(a.out.with_extension("txt"), &table)?;
    haad::out!("{table}");
    Ok(())
}
