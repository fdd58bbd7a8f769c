//! The main job on the embedded default: a few-shot anomaly detector for one content of the
//! embedded Bandai-Namco subset, built from 3 of its clips (plus generated variants of them),
//! scoring every held-out clip of every content.
//!
//! ```sh
//! cargo run --release --example quickstart                 # normal = walk
//! cargo run --release --example quickstart -- --normal run # a content the encoder never saw
//! ```
//!
//! Data: `data/bandai/` (CC BY-NC 4.0, Bandai Namco Research Inc.); encoder: the canonical
//! default `models/canonical/encoder` (trained on MSR Action3D and Bandai-Namco mapped onto the
//! canonical body: `models/canonical/README.md`), the clips mapped onto that body from the
//! Bandai rig; `--encoder models/bandai/encoder` uses the Bandai-only encoder on the raw
//! 22-joint clips. Generator: `models/bandai/generator`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use clap::Parser;
use haad::contrastive::TrainedEncoder;
use haad::detect::{roc_auc, Augmentation, Detector, Embedder, InputSpec, Scoring};
use haad::diffusion::DiffusionAugmenter;
use haad::motion::split::{sample_support, Split};
use haad::motion::{Dataset, Layout};
use haad::pipeline::clips_at;
use haad::report::plot_strips;
use haad::transfer::input_for_encoder;

#[derive(Parser, Debug)]
#[command(about = "Few-shot action anomaly detection on the embedded Bandai-Namco subset")]
struct Args {
    /// The normal content: the detector sees 3 of its training clips.
    #[arg(long, default_value = "walk")]
    normal: String,
    /// K, normal clips given to the detector.
    #[arg(long, default_value_t = 3)]
    k: usize,
    /// Generated variants of each normal clip added to the support (0: none).
    #[arg(long, default_value_t = 10)]
    variants: usize,
    /// Seed drawing the normal clips and the variants.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The encoder folder (default: the canonical encoder in models/canonical/encoder).
    #[arg(long)]
    encoder: Option<PathBuf>,
    /// Where the score picture and table go.
    #[arg(long, default_value = "runs/quickstart")]
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
    let start = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = Dataset::load(root.join("data/bandai/bandai-ds2-60f.safetensors"))?;
    let models = root.join("models/bandai");
    let encoder_dir = a
        .encoder
        .clone()
        .unwrap_or_else(|| root.join("models/canonical/encoder"));
    let trained = TrainedEncoder::load(&encoder_dir, &Device::Cpu)?;
    // Categories of a multi-dataset encoder are NAME/category: this data's are bare names.
    let unseen: Vec<String> = trained
        .config
        .unseen
        .iter()
        .map(|u| u.rsplit('/').next().unwrap_or(u).to_string())
        .filter(|u| data.category_index(u).is_ok())
        .collect();
    let split = Split::new(&data, trained.config.train_fraction, &unseen)?;
    let normal = data.category_index(&a.normal)?;
    let chosen = sample_support(split.train(normal), a.k, a.seed)?;
    let support = clips_at(&data, &chosen);

    let generator = DiffusionAugmenter::load(
        &models.join("generator"),
        data.skeleton().root(),
        &Device::Cpu,
    )?;
    // The encoder's input: the Bandai rig mapped onto the canonical body (when the encoder was
    // trained on it); the baseline takes the raw clips as the paper does.
    let input = input_for_encoder(&encoder_dir, Layout::Bvh, data.skeleton(), None)?;
    let augmentation = (a.variants > 0).then_some(Augmentation {
        augmenter: &generator,
        per_clip: a.variants,
        seed: a.seed,
    });
    let detector = Detector::fit(
        Embedder::encoder(trained.model),
        input,
        Scoring::MeanDistance,
        &support,
        augmentation,
    )?;
    let baseline = Detector::fit(
        Embedder::raw_dct(),
        InputSpec::for_skeleton(data.skeleton()),
        Scoring::MeanDistance,
        &support,
        None,
    )?;

    let test = split.all_test();
    let clips = clips_at(&data, &test);
    let scores = detector.score_batch(&clips)?;
    let anomaly: Vec<bool> = test
        .iter()
        .map(|&i| data.clips()[i].category != normal)
        .collect();
    let auc = roc_auc(&scores, &anomaly)?;
    let auc_baseline = roc_auc(&baseline.score_batch(&clips)?, &anomaly)?;

    let seen = |c: usize| if split.is_seen(c) { "seen" } else { "unseen" };
    haad::outln!(
        "normal: {} ({} content, {} real clips + {} generated each; support {:?})",
        a.normal,
        seen(normal),
        a.k,
        a.variants,
        chosen
            .iter()
            .map(|&i| data.clips()[i].source.display().to_string())
            .collect::<Vec<_>>()
    );
    let mut order: Vec<usize> = (0..test.len()).collect();
    order.sort_by(|&x, &y| scores[x].total_cmp(&scores[y]));
    haad::outln!(
        "\n{:>4}  {:>7}  {:<22} {:<7} clip",
        "rank",
        "score",
        "content",
        ""
    );
    for (rank, &i) in order.iter().enumerate() {
        let clip = &data.clips()[test[i]];
        haad::outln!(
            "{:>4}  {:>7.3}  {:<22} {:<7} {}",
            rank + 1,
            scores[i],
            data.categories()[clip.category],
            if anomaly[i] { "anomaly" } else { "NORMAL" },
            clip.source.display()
        );
    }
    haad::outln!(
        "\nROC AUC {auc:.3} over {} held-out clips ({} normal); the raw-DCT baseline on the same \
         support: {auc_baseline:.3}",
        test.len(),
        anomaly.iter().filter(|&&x| !x).count()
    );

    std::fs::create_dir_all(&a.out)?;
    let names: Vec<String> = (0..data.categories().len())
        .map(|c| {
            format!(
                "{}{}",
                data.categories()[c],
                if split.is_seen(c) { "" } else { " *" }
            )
        })
        .collect();
    let by_content: Vec<Vec<f32>> = (0..names.len())
        .map(|c| {
            test.iter()
                .zip(&scores)
                .filter(|(&i, _)| data.clips()[i].category == c)
                .map(|(_, &s)| s)
                .collect()
        })
        .collect();
    let picture = a.out.join("scores.svg");
    plot_strips(
        &picture,
        &format!(
            "Anomaly scores, normal = {} (red), AUC {auc:.3} (* = unseen)",
            a.normal
        ),
        "mean distance to the support",
        &names,
        &by_content,
        Some(normal),
    )?;
    haad::outln!(
        "wrote {} ({:.1} s in all)",
        picture.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
