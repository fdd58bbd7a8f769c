//! Completes the test clips of a dataset with a trained model and scores the completions
//! (best-of-G ADE/FDE over the last N - t_his frames, APD) against the zero-velocity baseline.
//!
//! cargo run --release --example complete_motion -- --format msr \
//!     --data ../shared/data/msr_action3d/MSRAction3DSkeletonReal3D \
//!     --model runs/diffusion-msr-small --samples 10 --out runs/complete-msr.json --write runs/complete-msr

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use clap::Parser;
use haad::progress::Bar;
use haad_diffusion::evaluate::{evaluate, write_npy};
use haad_diffusion::DiffusionModel;
use haad_motion::io::{load, DataFormat};
use haad_motion::split::{Split, DEFAULT_TRAIN_FRACTION};
use haad_report::{draw_completions, CompletionFigure};

#[derive(Parser)]
#[command(about = "Complete held-out motion clips with a trained diffusion model and score them")]
struct Args {
    /// Dataset format (msr, bvh, bandai, humanact12, folder, native).
    #[arg(long)]
    format: DataFormat,
    /// Dataset path.
    #[arg(long)]
    data: PathBuf,
    /// Directory of the trained model (config.json, model.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// G, completions per clip.
    #[arg(long, default_value_t = 10)]
    samples: usize,
    /// Seed of the sampling noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the metrics as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write observed.npy, completions.npy and completions.svg here.
    #[arg(long)]
    write: Option<PathBuf>,
    /// Clips (rows) drawn in completions.svg.
    #[arg(long, default_value_t = 4)]
    figure_rows: usize,
    /// Evaluate at most this many test clips (in split order).
    #[arg(long)]
    max_clips: Option<usize>,
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
    let ds = load(args.format, &args.data)?;
    for s in ds.skipped() {
        eprintln!("skipped {}: {}", s.path.display(), s.reason);
    }
    let split = Split::new(&ds, DEFAULT_TRAIN_FRACTION, &[])?;
    let mut test = split.all_test();
    if let Some(m) = args.max_clips {
        test.truncate(m);
    }
    let clips = ds.motions_at(&test);
    let model = DiffusionModel::load(&haad_diffusion::fit::model_dir(&args.model), &Device::Cpu)?;
    let start = Instant::now();
    let (report, completions) = evaluate(
        &model,
        &clips,
        ds.skeleton().root(),
        args.samples,
        args.seed,
        &Bar::new("clips"),
    )?;
    let secs = start.elapsed().as_secs_f64();
    haad::outln!("| method | ADE | FDE | APD |");
    haad::outln!("|---|---|---|---|");
    haad::outln!(
        "| diffusion best-of-{} | {:.4} | {:.4} | {:.4} |",
        report.samples,
        report.ade,
        report.fde,
        report.apd
    );
    haad::outln!(
        "| zero velocity | {:.4} | {:.4} | - |",
        report.zero_velocity.ade,
        report.zero_velocity.fde
    );
    haad::outln!(
        "{} clips, {} completions each, {secs:.1} s",
        report.clips,
        report.samples
    );
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(out) = &args.out {
        std::fs::write(out, &json)?;
    }
    haad::outln!("{json}");
    if let Some(dir) = &args.write {
        write_npy(&completions, dir)?;
        let cfg = model.config();
        let bones = ds.skeleton().bones();
        let figure = CompletionFigure {
            bones: &bones,
            truth: &completions.truth,
            samples: &completions.samples,
            per_clip: completions.per_clip,
            t_his: cfg.t_his,
            lateral: cfg.lateral,
            up: cfg.up,
        };
        draw_completions(&dir.join("completions.svg"), &figure, args.figure_rows)?;
    }
    Ok(())
}
