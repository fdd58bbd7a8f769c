//! Writes a compact copy of a dataset in the native format: every clip cut to its first
//! `--frames` frames, category names without a common prefix, source paths relative to the
//! dataset folder. This is how `data/bandai/bandai-ds2-60f.safetensors` was made:
//!
//! ```sh
//! cargo run --release --example make_subset -- --format bandai \
//!     --data ../shared/data/bandai_namco_ds2_subset --frames 60 --strip-prefix dataset-2_ \
//!     --out data/bandai/bandai-ds2-60f.safetensors
//! ```

use std::path::PathBuf;

use clap::Parser;
use haad::motion::{load, preprocess, DataFormat, DatasetStats};

#[derive(Parser, Debug)]
#[command(about = "Write a compact native-format copy of a dataset")]
struct Args {
    /// Dataset format: msr, bvh, bandai, humanact12, folder or native.
    #[arg(long)]
    format: DataFormat,
    /// The dataset folder (or file).
    #[arg(long)]
    data: PathBuf,
    /// Keep each clip's first this many frames (shorter clips are kept whole).
    #[arg(long)]
    frames: usize,
    /// Remove this prefix from every category name that starts with it.
    #[arg(long, default_value = "")]
    strip_prefix: String,
    /// The native dataset file to write (.safetensors).
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
    let cut = ds
        .map_motions(|m| preprocess::window(m, 0, a.frames.min(m.frames())))?
        .rename_categories(|c| {
            c.strip_prefix(a.strip_prefix.as_str())
                .unwrap_or(c)
                .to_string()
        })?
        .relative_to(&a.data);
    if let Some(dir) = a.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    cut.save(&a.out)?;
    let bytes = std::fs::metadata(&a.out)?.len();
    haad::outln!("{}", DatasetStats::of(&cut));
    haad::outln!("wrote {} ({bytes} bytes)", a.out.display());
    Ok(())
}
