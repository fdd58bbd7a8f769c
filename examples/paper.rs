//! The paper's experiments, one command each (see `haad::paper` and docs/results.md).
//!
//! ```sh
//! cargo run --release --example paper -- table2 --format msr \
//!     --data ../shared/data/msr_action3d/MSRAction3DSkeletonReal3D \
//!     --unseen forward_punch,high_throw,forward_kick,tennis_serve,pick_up_throw \
//!     --generator runs/diffusion-msr --work runs/paper-msr
//! ```

use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use haad::diffusion::DiffusionAugmenter;
use haad::motion::split::{Split, DEFAULT_TRAIN_FRACTION};
use haad::motion::{load, DataFormat};
use haad::paper::{fig34, fig5, fig7, table2, table3, table4, Settings, Study};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Experiment {
    /// Per-category AUC: raw DCT, contrastive only, full method, many-shot.
    Table2,
    /// Generation at training x generation at inference.
    Table3,
    /// AUC by real support clips K and generated variants per clip.
    Fig5,
    /// AUC by generated variants per clip in training (A).
    Fig7,
    /// AUC by the generator's observed / predicted frames.
    Table4,
    /// Scores of test clips by category (Fig. 3) and PCA maps of embeddings (Fig. 4).
    Fig34,
}

#[derive(Parser, Debug)]
#[command(about = "Run one of the paper's experiments")]
struct Args {
    /// Which experiment.
    experiment: Experiment,
    /// Dataset format: msr, bvh, bandai, humanact12, folder or native.
    #[arg(long)]
    format: DataFormat,
    /// The dataset folder (or file).
    #[arg(long)]
    data: PathBuf,
    /// Categories kept out of training, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "")]
    unseen: Vec<String>,
    /// A generator trained by train_diffusion (its folder).
    #[arg(long)]
    generator: PathBuf,
    /// Work folder: encoders, pools, results (reused across experiments).
    #[arg(long)]
    work: PathBuf,
    /// K, real support clips.
    #[arg(long, default_value_t = 3)]
    k: usize,
    /// Support seeds 0..seeds.
    #[arg(long, default_value_t = 10)]
    seeds: usize,
    /// Encoder training epochs.
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// Temperature of the contrastive loss.
    #[arg(long, default_value_t = 0.1)]
    tau: f64,
    /// Seed of encoder training.
    #[arg(long, default_value_t = 0)]
    train_seed: u64,
    /// A, generated variants per real clip in training batches.
    #[arg(long, default_value_t = 3)]
    variants: usize,
    /// Generated variants per real support clip.
    #[arg(long, default_value_t = 10)]
    support_variants: usize,
    /// G, completions per clip in the pools.
    #[arg(long, default_value_t = 10)]
    pool_size: usize,
    /// Seed of the pools.
    #[arg(long, default_value_t = 0)]
    pool_seed: u64,
    /// Table 3: training seeds train_seed .. train_seed + N.
    #[arg(long, default_value_t = 1)]
    train_seeds: usize,
    /// Fig. 5: K values.
    #[arg(long, value_delimiter = ',', default_value = "1,3,5,10")]
    ks: Vec<usize>,
    /// Fig. 5: generated variants per support clip.
    #[arg(long, value_delimiter = ',', default_value = "0,1,5,10")]
    ms: Vec<usize>,
    /// Fig. 7: A values.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,5,10")]
    a_values: Vec<usize>,
    /// Table 4: observed frame counts (of 60).
    #[arg(long, value_delimiter = ',', default_value = "10,20,30,40,50")]
    observed: Vec<usize>,
    /// Fig. 3/4: the normal category (default: the first unseen one, else the first).
    #[arg(long)]
    normal: Option<String>,
    /// Fig. 3/4: support seed.
    #[arg(long, default_value_t = 0)]
    support_seed: u64,
    /// Hide progress bars.
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
    let start = Instant::now();
    let dataset = load(a.format, &a.data)?;
    for s in dataset.skipped() {
        eprintln!("skipped {}: {}", s.path.display(), s.reason);
    }
    let unseen: Vec<String> = a.unseen.iter().filter(|s| !s.is_empty()).cloned().collect();
    let split = Split::new(&dataset, DEFAULT_TRAIN_FRACTION, &unseen)?;
    let generator = DiffusionAugmenter::load(
        &a.generator,
        dataset.skeleton().root(),
        &candle_core::Device::Cpu,
    )?;
    let normal = a
        .normal
        .clone()
        .or_else(|| unseen.first().cloned())
        .unwrap_or_else(|| dataset.categories()[0].clone());
    let settings = Settings {
        k: a.k,
        seeds: a.seeds,
        epochs: a.epochs,
        temperature: a.tau,
        train_seed: a.train_seed,
        train_variants: a.variants,
        support_variants: a.support_variants,
        pool_size: a.pool_size,
        pool_seed: a.pool_seed,
        progress: !a.quiet,
    };
    let study = Study::new(dataset, split, generator, &a.work, settings)?;
    let text = match a.experiment {
        Experiment::Table2 => table2(&study)?.format(),
        Experiment::Table3 => table3(&study, a.train_seeds)?.format(),
        Experiment::Fig5 => fig5(&study, &a.ks, &a.ms)?.format(),
        Experiment::Fig7 => fig7(&study, &a.a_values)?.format(),
        Experiment::Table4 => table4(&study, &a.observed)?.format(),
        Experiment::Fig34 => {
            let f = fig34(&study, &normal, a.support_seed)?;
            format!(
                "{} test clips scored against {} (support seed {}); maps in fig4_*.svg\n",
                f.scores.len(),
                f.normal,
                f.seed
            )
        }
    };
    haad::out!("{text}");
    haad::outln!(
        "{:?} done in {:.1} s; results in {}",
        a.experiment,
        start.elapsed().as_secs_f64(),
        a.work.display()
    );
    Ok(())
}
