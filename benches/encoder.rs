//! Encoder throughput: eval-mode forward at batch 1, 64 and 512, one training step (forward +
//! backward + AdamW) at the paper's batch of 72 clips, and a 1024^3 f32 matmul as the
//! machine's practical peak. Figures and their reading: docs/performance.md.
//!
//! Run: `cargo bench --bench encoder`.

use std::time::Duration;

use candle_core::{Device, Tensor};
use candle_nn::{ModuleT, Optimizer};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use haad_gcn::{EncoderConfig, EncoderModel};
use haad_train::{Adam, AdamParams, OptimizerKind};
use rand::{rngs::StdRng, Rng, SeedableRng};

const FRAMES: usize = 60;
const JOINTS: usize = 20;

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
}

fn peak(c: &mut Criterion) {
    let n = 1024;
    let (a, b) = (random(&[n, n], 1), random(&[n, n], 2));
    let mut g = c.benchmark_group("peak");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    // Throughput in "elements" = FLOPs: criterion then reports FLOP/s.
    g.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
    g.bench_function("matmul_f32_1024", |bch| {
        bch.iter(|| a.matmul(&b).expect("matmul"))
    });
    g.finish();
}

fn forward(c: &mut Criterion) {
    let cfg = EncoderConfig {
        joints: JOINTS,
        ..Default::default()
    };
    let model = EncoderModel::new(&cfg, 0, &Device::Cpu).expect("model");
    let mut g = c.benchmark_group("encoder_forward_eval");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for batch in [1usize, 64, 512] {
        let xs = random(&[batch, FRAMES, JOINTS, 3], batch as u64);
        g.throughput(Throughput::Elements(batch as u64)); // clips/s
        g.bench_with_input(BenchmarkId::from_parameter(batch), &xs, |bch, xs| {
            bch.iter(|| model.encoder().forward_t(xs, false).expect("forward"))
        });
    }
    g.finish();
}

fn train_step(c: &mut Criterion) {
    let cfg = EncoderConfig {
        joints: JOINTS,
        ..Default::default()
    };
    let model = EncoderModel::new(&cfg, 0, &Device::Cpu).expect("model");
    // 2 clips x 9 categories x (1 real + 3 generated variants).
    let batch = 72;
    let xs = random(&[batch, FRAMES, JOINTS, 3], 7);
    let r = random(&[batch, cfg.embedding_dim()], 8);
    // The trainer's optimiser (haad-train's AdamW, as PyTorch's AdamW: decoupled decay 0.01).
    let params = AdamParams::new(OptimizerKind::AdamW, 1e-4, 0.01);
    let mut opt = <Adam as Optimizer>::new(model.trainable_vars(), params).expect("optimizer");
    let mut g = c.benchmark_group("encoder_train_step");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(batch as u64));
    g.bench_function(BenchmarkId::from_parameter(batch), |bch| {
        bch.iter(|| {
            haad_kernels::on_pool(|| {
                let emb = model.encoder().forward_t(&xs, true).expect("forward");
                let loss = (emb * &r).and_then(|l| l.sum_all()).expect("loss");
                opt.backward_step(&loss).expect("step");
            })
        })
    });
    g.finish();
}

criterion_group!(benches, peak, forward, train_step);
#[global_allocator]
static ALLOC: haad::runtime::Allocator = haad::runtime::Allocator;

fn main() {
    haad::runtime::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
