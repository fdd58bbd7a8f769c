//! Leave-one-dataset-out experiments on the canonical body (`haad::transfer`): encoders trained
//! on some datasets, evaluated on a dataset they never saw, against the raw-DCT baseline on the
//! same canonical clips. Writes `WORK/results.json` and `WORK/tables.md`.
//!
//! ```sh
//! M=../shared/data/msr_action3d/MSRAction3DSkeletonReal3D
//! B=../shared/data/bandai_namco_ds2_subset
//! cargo run --release --example transfer -- \
//!     --dataset name=msr,format=msr,path=$M,unseen=forward_punch+high_throw+forward_kick+tennis_serve+pick_up_throw \
//!     --dataset name=bandai,format=bandai,path=$B,unseen=dataset-2_run+dataset-2_wave-left-hand+dataset-2_raise-up-right-hand \
//!     --taus 1,0.1 --seeds 0,1,2 --work runs/transfer
//! ```

use std::path::PathBuf;

use clap::Parser;
use haad::detect::EvalConfig;
use haad::transfer::{format_table, write_json, Direction, Experiment, Recipe, Source, Variant};

#[derive(Parser)]
#[command(about = "Leave-one-dataset-out experiments on the canonical body")]
struct Args {
    /// A dataset: name=N,format=F,path=P[,layout=L][,unseen=a+b] (repeat; two or more).
    #[arg(long = "dataset", required = true)]
    datasets: Vec<Source>,
    /// Work folder (encoders, cached evaluations, results).
    #[arg(long)]
    work: PathBuf,
    /// Normalisation variants: full, no-fps, no-vertical, no-scale, no-heading, none.
    #[arg(long, value_delimiter = ',', default_value = "full")]
    variants: Vec<Variant>,
    /// Training seeds of the first variant's encoders.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    seeds: Vec<u64>,
    /// Training seeds of the other variants' encoders (ablation rows).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    ablation_seeds: Vec<u64>,
    /// Temperatures tau of the first variant's encoders.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    taus: Vec<f64>,
    /// Temperature of the ablation rows.
    #[arg(long, default_value_t = 1.0)]
    ablation_tau: f64,
    /// Training epochs.
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// K, real support clips.
    #[arg(long, default_value_t = 3)]
    k: usize,
    /// Support seeds.
    #[arg(long, default_value_t = 10)]
    support_seeds: usize,
    /// Directions: leave-out (every source once) and/or all.
    #[arg(long, value_delimiter = ',', default_value = "leave-out,all")]
    directions: Vec<String>,
    /// Show training progress bars.
    #[arg(long)]
    progress: bool,
}

#[global_allocator]
static ALLOC: haad::runtime::Allocator = haad::runtime::Allocator;

fn main() {
    haad::runtime::init();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let eval = EvalConfig {
        k: a.k,
        seeds: a.support_seeds,
        ..EvalConfig::default()
    };
    let exp = Experiment::new(a.datasets.clone(), &a.work, eval, a.progress);
    let mut directions = Vec::new();
    for d in &a.directions {
        match d.as_str() {
            "leave-out" => directions.extend((0..a.datasets.len()).map(Direction::LeaveOut)),
            "all" => directions.push(Direction::All),
            other => return Err(format!("unknown direction {other:?}: leave-out or all").into()),
        }
    }
    let mut cells = Vec::new();
    for (vi, variant) in a.variants.iter().enumerate() {
        let data = exp.load(&variant.config())?;
        let (taus, seeds) = if vi == 0 {
            (a.taus.clone(), a.seeds.clone())
        } else {
            (vec![a.ablation_tau], a.ablation_seeds.clone())
        };
        for &direction in &directions {
            cells.extend(exp.baseline(variant.name(), &data, direction)?);
            for &tau in &taus {
                for &seed in &seeds {
                    let recipe = Recipe {
                        temperature: tau,
                        epochs: a.epochs,
                    };
                    let t0 = std::time::Instant::now();
                    let new = exp.encoder(variant.name(), &data, direction, &recipe, seed)?;
                    for c in &new {
                        eprintln!(
                            "{} {direction} tau={tau} seed={seed} -> {}: AUC {:.3} ({:.0} s)",
                            variant.name(),
                            c.target,
                            c.auc,
                            t0.elapsed().as_secs_f64()
                        );
                    }
                    cells.extend(new);
                }
            }
        }
        write_json(&a.work.join("results.json"), &cells)?;
    }
    let table = format_table(exp.sources(), &cells);
    std::fs::write(a.work.join("tables.md"), &table)?;
    println!("{table}");
    Ok(())
}
