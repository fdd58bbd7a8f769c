//! Completions per second of the diffusion sampler (batch 64, DDIM) for the small and the paper
//! configuration, and the time of one training step, on real MSR Action3D clips.
//!
//! cargo bench --bench sampler   (RAYON_NUM_THREADS=n: n threads)
//!
//! The paper configuration is measured with 5 DDIM steps instead of 100 (each step is one
//! network evaluation plus the DCT completion, so the cost is linear in the step count).

use std::path::Path;
use std::time::Duration;

use candle_core::Device;
use criterion::{criterion_group, Criterion, Throughput};
use haad_diffusion::{DiffusionConfig, DiffusionModel, Preset, Trainer};
use haad_motion::io::{load, DataFormat};
use haad_motion::{preprocess, Motion};
use rand::{rngs::StdRng, SeedableRng};

const BATCH: usize = 64;

fn clips() -> Option<(Vec<Motion>, usize)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/msr_action3d/MSRAction3DSkeletonReal3D");
    if !dir.is_dir() {
        eprintln!("skipping the sampler bench: {} is absent", dir.display());
        return None;
    }
    let ds = load(DataFormat::Msr, &dir).expect("MSR Action3D loads");
    let root = ds.skeleton().root();
    let clips = ds
        .clips()
        .iter()
        .take(BATCH)
        .map(|c| preprocess::prepare(&c.motion, 60, root).expect("prepare"))
        .collect();
    Some((clips, ds.joints()))
}

fn bench(c: &mut Criterion) {
    let Some((clips, joints)) = clips() else {
        return;
    };
    let mut group = c.benchmark_group("diffusion");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(100));
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, preset, steps) in [
        ("complete_small_ddim100", Preset::Small, 100),
        ("complete_paper_ddim5", Preset::Paper, 5),
    ] {
        let cfg = DiffusionConfig {
            ddim_steps: steps,
            ..DiffusionConfig::preset(preset, joints)
        }
        .check()
        .expect("valid config");
        let model = DiffusionModel::new(&cfg, 0, &Device::Cpu).expect("model");
        group.bench_function(name, |b| {
            b.iter(|| model.complete(&clips, 1, 0).expect("completion"))
        });
    }
    let cfg = DiffusionConfig::preset(Preset::Small, joints)
        .check()
        .expect("valid config");
    let mut trainer = Trainer::new(&cfg, 0, &Device::Cpu).expect("trainer");
    let mut rng = StdRng::seed_from_u64(0);
    group.bench_function("train_step_small_batch64", |b| {
        b.iter(|| trainer.step(&clips, &mut rng).expect("step"))
    });
    group.finish();
}

criterion_group!(benches, bench);
#[global_allocator]
static ALLOC: haad::runtime::Allocator = haad::runtime::Allocator;

fn main() {
    haad::runtime::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
