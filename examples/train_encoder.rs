//! Trains the Res-GCN encoder with the multi-positive contrastive loss on the seen categories of
//! a dataset, and writes checkpoints, a JSON-lines log, a loss table and a loss plot.
//!
//! ```sh
//! cargo run --release --example train_encoder -- --format msr \
//!     --data ../shared/data/msr_action3d/MSRAction3DSkeletonReal3D \
//!     --unseen forward_punch,high_throw,forward_kick,tennis_serve,pick_up_throw --out runs/msr
//! ```
//!
//! Several datasets at once, mapped onto the canonical body (`haad::transfer`), categories
//! kept apart as `NAME/category`:
//!
//! ```sh
//! cargo run --release --example train_encoder -- \
//!     --dataset name=msr,format=msr,path=../shared/data/msr_action3d/MSRAction3DSkeletonReal3D \
//!     --dataset name=bandai,format=bandai,path=../shared/data/bandai_namco_ds2_subset \
//!     --out runs/canonical
//! ```
//!
//! `--preset paper` trains with the paper's settings (tau = 0.1); the default (tau = 1) is the
//! recipe that transferred best across datasets (docs/results.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use clap::Parser;
use haad::contrastive::report::format_log_table;
use haad::contrastive::{
    train, ContrastiveError, OptimizerKind, TrainConfig, TrainOptions, ValidationData, Validator,
};
use haad::detect::{few_shot_validation_auc, Scoring};
use haad::diffusion::DiffusionAugmenter;
use haad::gcn::{EmbeddingLayer, EncoderModel, Pooling};
use haad::motion::augment::{Augmenter, CropAugmenter, RotateJitterAugmenter};
use haad::motion::split::Split;
use haad::motion::{load, DataFormat};
use haad::motion::{Layout, NormalizeConfig};
use haad::pipeline::train_clips;
use haad::progress::Bar;
use haad::report::plot_log;
use haad::transfer::{load_sources, write_json, Source, NORMALIZE_FILE};
use serde::de::DeserializeOwned;

/// Starting points of the training configuration.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Preset {
    /// The recipe that measured best across datasets (tau = 1).
    Default,
    /// The paper's settings (tau = 0.1).
    Paper,
}

/// The augmenters this command offers.
#[derive(Clone, Debug)]
enum Augment {
    None,
    Crop,
    RotateJitter,
    /// A trained diffusion model (its folder), through a cached pool of its completions.
    Diffusion(PathBuf),
}

fn parse_augment(s: &str) -> Result<Augment, String> {
    match s {
        "none" => Ok(Augment::None),
        "crop" => Ok(Augment::Crop),
        "rotate-jitter" => Ok(Augment::RotateJitter),
        other => match other.strip_prefix("diffusion:") {
            Some(dir) if !dir.is_empty() => Ok(Augment::Diffusion(PathBuf::from(dir))),
            _ => Err(format!(
                "unknown augmenter {other:?}: expected none, crop, rotate-jitter or diffusion:DIR"
            )),
        },
    }
}

/// Parses a kebab- or snake-case name into one of the library's serde enums.
fn parse_enum<T: DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.replace('-', "_")))
        .map_err(|e| e.to_string())
}

#[derive(Parser)]
#[command(about = "Train the haad encoder with the multi-positive contrastive loss")]
struct Args {
    /// Dataset format: msr, bvh, bandai, humanact12, folder or native.
    #[arg(long, requires = "data")]
    format: Option<DataFormat>,
    /// The dataset folder (or file).
    #[arg(long, requires = "format")]
    data: Option<PathBuf>,
    /// Map --data onto the canonical body from this joint layout (msr, kinect-v1, kinect-v2,
    /// smpl, h36m, bvh).
    #[arg(long, requires = "data")]
    layout: Option<Layout>,
    /// Instead of --format/--data: a dataset name=N,format=F,path=P[,layout=L][,unseen=a+b]
    /// (repeat for several); all are mapped onto the canonical body and categories become
    /// N/category.
    #[arg(long = "dataset", conflicts_with = "data")]
    datasets: Vec<Source>,
    /// Starting configuration: default (tau = 1) or paper (tau = 0.1).
    #[arg(long, value_enum, default_value = "default")]
    preset: Preset,
    /// Categories kept out of training, comma separated.
    #[arg(long, value_delimiter = ',')]
    unseen: Vec<String>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Start from this training configuration (JSON); the flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Epochs (default 100).
    #[arg(long)]
    epochs: Option<usize>,
    /// Generated variants in every batch: none, crop, rotate-jitter or diffusion:DIR (a model
    /// trained by train_diffusion; its completions are generated once into a cached pool).
    #[arg(long, default_value = "none", value_parser = parse_augment)]
    augment: Augment,
    /// G, completions per training clip in the diffusion pool (at least --variants).
    #[arg(long, default_value_t = 10)]
    pool_size: usize,
    /// Seed of the diffusion pool.
    #[arg(long, default_value_t = 0)]
    pool_seed: u64,
    /// Cache folder of the diffusion pool (default: DIR/pool).
    #[arg(long)]
    pool_dir: Option<PathBuf>,
    /// Variants per real clip when augmenting (A, default 3).
    #[arg(long)]
    variants: Option<usize>,
    /// Temperature tau of the loss (default 1).
    #[arg(long)]
    tau: Option<f64>,
    /// Pooling: max-over-features (reference code, default) or max-over-joints (paper text).
    #[arg(long, value_parser = parse_enum::<Pooling>)]
    pooling: Option<Pooling>,
    /// Embedding layer: output (default) or hidden.
    #[arg(long, value_parser = parse_enum::<EmbeddingLayer>)]
    embedding: Option<EmbeddingLayer>,
    /// Optimiser: adamw (default) or adam.
    #[arg(long, value_parser = parse_enum::<OptimizerKind>)]
    optimizer: Option<OptimizerKind>,
    /// Initial learning rate (default 1e-3).
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of weights, batches and augmentation.
    #[arg(long)]
    seed: Option<u64>,
    /// Write a checkpoint every this many epochs (default 10).
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Hold out this share of each seen category's training clips and keep the epoch with the
    /// best few-shot validation AUC (--val-k, --val-seeds) in OUT/best (default 0: no
    /// validation).
    #[arg(long)]
    validation: Option<f64>,
    /// K, real support clips of the validation's few-shot runs.
    #[arg(long, default_value_t = 3)]
    val_k: usize,
    /// Support seeds (0..N) of the validation's few-shot runs.
    #[arg(long, default_value_t = 5)]
    val_seeds: usize,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
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
    let mut cfg = match &a.config {
        Some(p) => serde_json::from_str(&std::fs::read_to_string(p)?)?,
        None => match a.preset {
            Preset::Default => TrainConfig::default(),
            Preset::Paper => TrainConfig {
                temperature: 0.1,
                ..TrainConfig::default()
            },
        },
    };
    cfg.unseen = a.unseen.clone();
    if let Some(v) = a.epochs {
        cfg.epochs = v;
    }
    if let Some(v) = a.variants {
        cfg.variants_per_clip = v;
    }
    if let Some(v) = a.tau {
        cfg.temperature = v;
    }
    if let Some(v) = a.pooling.clone() {
        cfg.encoder.pooling = v;
    }
    if let Some(v) = a.embedding {
        cfg.encoder.embedding = v;
    }
    if let Some(v) = a.optimizer {
        cfg.optimizer = v;
    }
    if let Some(v) = a.lr {
        cfg.learning_rate = v;
    }
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    if let Some(v) = a.validation {
        cfg.validation_fraction = v;
    }
    if let Some(v) = a.checkpoint_every {
        cfg.checkpoint_every = v;
    }
    let normalize = NormalizeConfig::default();
    let (dataset, canonical) = match (&a.format, &a.data, a.layout) {
        (Some(format), Some(data), None) => (load(*format, data)?, false),
        (Some(format), Some(data), Some(layout)) => {
            let source = Source {
                name: format.name().to_string(),
                format: *format,
                path: data.clone(),
                layout,
                unseen: Vec::new(),
            };
            let (d, _) = load_sources(&[source], &normalize)?;
            (d, true)
        }
        _ if !a.datasets.is_empty() => {
            let (d, unseen) = load_sources(&a.datasets, &normalize)?;
            cfg.unseen.extend(unseen);
            (d, true)
        }
        _ => return Err("give --format and --data, or one or more --dataset".into()),
    };
    let cfg = cfg.check()?;
    for s in dataset.skipped() {
        eprintln!("skipped {}: {}", s.path.display(), s.reason);
    }
    let augmenter: Option<Box<dyn Augmenter>> = match a.augment {
        Augment::None => None,
        Augment::Crop => Some(Box::new(CropAugmenter {
            frames: cfg.encoder.frames,
        })),
        Augment::RotateJitter => Some(Box::new(RotateJitterAugmenter::for_dataset(
            &dataset,
            std::f32::consts::FRAC_PI_6,
            0.02,
        )?)),
        Augment::Diffusion(ref dir) => {
            let generator = DiffusionAugmenter::load(dir, dataset.skeleton().root(), &Device::Cpu)?;
            let split = Split::new(&dataset, cfg.train_fraction, &cfg.unseen)?;
            let clips = train_clips(&dataset, &split);
            let cache = a.pool_dir.clone().unwrap_or_else(|| dir.join("pool"));
            let pool = generator.pool(
                &clips,
                a.pool_size,
                a.pool_seed,
                &cache,
                &Bar::shown(!a.quiet, "chunks of generated variants"),
            )?;
            eprintln!(
                "diffusion pool: {} clips x {} completions in {}",
                pool.len(),
                pool.per_clip(),
                pool.dir().display()
            );
            Some(Box::new(pool))
        }
    };
    let options = TrainOptions {
        resume: a.resume,
        progress: Arc::new(Bar::shown(!a.quiet, "steps")),
        ..TrainOptions::new(&a.out)
    };
    let start = Instant::now();
    let mut validator = |model: &EncoderModel, data: &ValidationData<'_>| {
        few_shot_validation_auc(
            model,
            data.dataset,
            data.split,
            data.validation,
            a.val_k,
            a.val_seeds,
            Scoring::MeanDistance,
        )
        .map_err(|e| ContrastiveError::Validation(e.to_string()))
    };
    let validator: Option<&mut dyn Validator> = if cfg.validation_fraction > 0.0 {
        Some(&mut validator)
    } else {
        None
    };
    let outcome = train(
        &cfg,
        &dataset,
        augmenter.as_deref(),
        validator,
        &options,
        &Device::Cpu,
    )?;
    let seconds = start.elapsed().as_secs_f64();
    if canonical {
        // Detectors read the encoder's normalisation from beside its weights.
        for dir in [Some(a.out.clone()), Some(outcome.last_dir.clone())]
            .into_iter()
            .chain(std::iter::once(
                outcome.best.as_ref().map(|(_, d)| d.clone()),
            ))
            .flatten()
        {
            write_json(&dir.join(NORMALIZE_FILE), &normalize)?;
        }
    }
    haad::outln!("{}", format_log_table(&outcome.log, 10));
    plot_log(&outcome.log, &a.out.join("loss.svg"))?;
    if let Some((best, dir)) = &outcome.best {
        haad::outln!(
            "best validation AUC {:.4} at epoch {} (encoder in {})",
            best.score,
            best.epoch,
            dir.display()
        );
    }
    haad::outln!(
        "trained {} epochs in {seconds:.1} s; encoder in {}; log in {}; plot in {}",
        outcome.log.len(),
        outcome.last_dir.display(),
        a.out.join("log.jsonl").display(),
        a.out.join("loss.svg").display()
    );
    Ok(())
}
