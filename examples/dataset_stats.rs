//! Loads a skeleton dataset and prints its statistics (clips per category, frames, joints,
//! frame rate, root joint, skipped files), as a table or, with `--json`, as one JSON object.
//!
//! ```sh
//! cargo run --release --example dataset_stats -- --format msr \
//!     --data ../shared/data/msr_action3d/MSRAction3DSkeletonReal3D
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use haad::motion::io::{self, bandai::BandaiLabel, DataFormat};
use haad::motion::DatasetStats;

#[derive(Parser)]
#[command(about = "Print the statistics of a skeleton dataset")]
struct Args {
    /// Dataset format: msr, bvh, bandai, humanact12, folder or native.
    #[arg(long)]
    format: DataFormat,
    /// The dataset folder (or file, for bvh and native).
    #[arg(long)]
    data: PathBuf,
    /// For --format bandai: the label used as category, content or style.
    #[arg(long, default_value = "content")]
    bandai_label: BandaiLabel,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Also save the loaded dataset as a native .safetensors file.
    #[arg(long)]
    save: Option<PathBuf>,
}

#[global_allocator]
static ALLOC: haad::runtime::Allocator = haad::runtime::Allocator;

fn main() -> ExitCode {
    haad::runtime::init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), haad::motion::MotionError> {
    let start = Instant::now();
    let dataset = match args.format {
        DataFormat::Bandai => io::bandai::load_bandai(&args.data, args.bandai_label)?,
        format => io::load(format, &args.data)?,
    };
    let seconds = start.elapsed().as_secs_f64();
    if let Some(path) = &args.save {
        dataset.save(path)?;
    }
    let stats = DatasetStats::of(&dataset);
    if args.json {
        let mut json = stats.to_json();
        json["format"] = args.format.name().into();
        json["load_seconds"] = seconds.into();
        haad::outln!("{json}");
    } else {
        haad::outln!(
            "{} ({}), loaded in {seconds:.3} s",
            args.data.display(),
            args.format
        );
        haad::outln!("{stats}");
    }
    Ok(())
}
