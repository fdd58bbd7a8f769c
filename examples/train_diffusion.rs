//! Trains the masked DCT-completion diffusion model on the seen categories' training clips.
//!
//! cargo run --release --example train_diffusion -- --format msr \
//!     --data ../shared/data/msr_action3d/MSRAction3DSkeletonReal3D \
//!     --unseen forward_punch,high_throw,forward_kick,tennis_serve,pick_up_throw \
//!     --preset small --seed 0 --out runs/diffusion-msr

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use clap::Parser;
use haad::progress::Bar;
use haad_diffusion::fit::{fit, seen_training_clips, FitOptions};
use haad_diffusion::{DiffusionConfig, Prediction, Preset};
use haad_motion::io::{load, DataFormat};
use haad_motion::split::{Split, DEFAULT_TRAIN_FRACTION};

#[derive(Parser)]
#[command(about = "Train the HumanMAC-style motion-completion diffusion model")]
struct Args {
    /// Dataset format (msr, bvh, bandai, humanact12, folder, native).
    #[arg(long)]
    format: DataFormat,
    /// Dataset path.
    #[arg(long)]
    data: PathBuf,
    /// Comma-separated categories kept out of training.
    #[arg(long, value_delimiter = ',')]
    unseen: Vec<String>,
    /// Model size: small or paper.
    #[arg(long, default_value = "small")]
    preset: Preset,
    /// Seed of all randomness.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory (model, checkpoints, log).
    #[arg(long)]
    out: PathBuf,
    /// Epochs.
    #[arg(long, default_value_t = 60)]
    epochs: usize,
    /// Optimiser steps per epoch.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Clips per batch (default: the config's 64).
    #[arg(long)]
    batch: Option<usize>,
    /// Adam learning rate (default: the preset's; small 1e-3, paper 3e-4).
    #[arg(long)]
    lr: Option<f64>,
    /// Learning rate of the last epoch, reached by linear decay from the config's (give the
    /// same value as --lr for none).
    #[arg(long, default_value_t = 1e-5)]
    final_lr: f64,
    /// Largest training rotation about the vertical axis, radians (default: the preset's; small
    /// 0.5, paper pi).
    #[arg(long)]
    max_rotation: Option<f32>,
    /// What the network predicts: noise (the paper) or velocity (default: the preset's).
    #[arg(long)]
    prediction: Option<Prediction>,
    /// Give every token its own coefficient of the conditioning (default: the preset's).
    #[arg(long)]
    condition_tokens: Option<bool>,
    /// Checkpoint every this many epochs.
    #[arg(long, default_value_t = 5)]
    checkpoint_every: usize,
    /// Continue from the checkpoint in --out/last (an error when there is none).
    #[arg(long)]
    resume: bool,
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
    let split = Split::new(&ds, DEFAULT_TRAIN_FRACTION, &args.unseen)?;
    let clips = seen_training_clips(&ds, &split);
    let mut cfg = DiffusionConfig::preset(args.preset, ds.joints());
    if let Some(b) = args.batch {
        cfg.batch_size = b;
    }
    if let Some(r) = args.max_rotation {
        cfg.max_rotation = r;
    }
    if let Some(c) = args.condition_tokens {
        cfg.condition_tokens = c;
    }
    if let Some(p) = args.prediction {
        cfg.prediction = p;
    }
    if let Some(lr) = args.lr {
        cfg.learning_rate = lr;
    }
    let cfg = cfg.check()?;
    eprintln!(
        "{} training clips of {} seen categories, {} joints, root {}",
        clips.len(),
        split.seen_categories().len(),
        ds.joints(),
        ds.skeleton().root()
    );
    let opts = FitOptions {
        epochs: args.epochs,
        steps_per_epoch: args.steps,
        checkpoint_every: args.checkpoint_every,
        final_learning_rate: Some(args.final_lr),
        seed: args.seed,
        out: args.out.clone(),
        resume: args.resume,
        progress: Arc::new(Bar::new("steps")),
        ..FitOptions::new(&args.out, args.epochs, args.steps)
    };
    let start = Instant::now();
    let (trainer, records) = fit(&cfg, &clips, ds.skeleton().root(), &opts, &Device::Cpu)?;
    let secs = start.elapsed().as_secs_f64();
    haad::outln!("| epoch | steps | learning rate | loss | seconds |");
    haad::outln!("|---|---|---|---|---|");
    for r in &records {
        haad::outln!(
            "| {} | {} | {:.2e} | {:.4} | {:.1} |",
            r.epoch,
            r.steps,
            r.learning_rate,
            r.loss,
            r.wall_seconds
        );
    }
    let summary = serde_json::json!({
        "clips": clips.len(),
        "steps": trainer.steps(),
        "final_loss": records.last().map(|r| r.loss),
        "seconds": secs,
        "scale": trainer.ema().config().scale,
        "model": args.out.join(haad_diffusion::fit::LAST_DIR),
    });
    std::fs::write(
        args.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    haad::outln!("{summary}");
    Ok(())
}
