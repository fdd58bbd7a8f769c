//! Streaming throughput: frames per second through a `StreamScorer` at stride 1 and 10 on one
//! thread, for the built-in encoder (real Bandai clips mapped onto its 15 canonical joints, as
//! `haad fit` does) and the raw-DCT baseline (the raw 22 joints), and the latency from a frame
//! arriving to its window's score (one push that completes a window). Figures and their
//! reading: docs/performance.md.
//!
//! Run: `cargo bench --bench stream` (`RAYON_NUM_THREADS=n`: n threads).

use std::time::Duration;

use candle_core::Device;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use haad::detect::{Detector, Embedder, InputSpec, Scoring, StreamScorer};
use haad::motion::{Dataset, Layout, Motion};
use ndarray::{concatenate, Axis};

/// Frames pushed per measured iteration.
const FRAMES: usize = 300;

/// The embedded Bandai subset (22-joint BVH rig, 30 fps).
fn data() -> Dataset {
    Dataset::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/bandai/bandai-ds2-60f.safetensors"
    ))
    .expect("embedded data")
}

/// A recording of at least `frames` frames: real clips one after another.
fn recording(data: &Dataset, frames: usize) -> Motion {
    let mut parts = Vec::new();
    let mut n = 0;
    for c in data.clips().iter().cycle() {
        if n >= frames {
            break;
        }
        n += c.motion.frames();
        parts.push(c.motion.data().view());
    }
    Motion::new(
        concatenate(Axis(0), &parts).expect("same joints"),
        Some(30.0),
    )
    .expect("finite")
}

/// The built-in (canonical) encoder on the Bandai rig, as `haad fit` builds it, and the
/// raw-DCT baseline on the raw 22 joints; both fitted on three walk clips.
fn detectors() -> Vec<(&'static str, Detector)> {
    let data = data();
    let walk = data.category_index("walk").expect("walk");
    let normal: Vec<Motion> = data
        .clips()
        .iter()
        .filter(|c| c.category == walk)
        .take(3)
        .map(|c| c.motion.clone())
        .collect();
    let encoder = haad::defaults::default_encoder(&Device::Cpu).expect("built-in encoder");
    let canonical =
        haad::defaults::default_input(Layout::Bvh, data.skeleton(), Some(30.0)).expect("input");
    [
        ("encoder", Embedder::encoder(encoder), canonical),
        (
            "raw_dct",
            Embedder::raw_dct(),
            InputSpec::for_skeleton(data.skeleton()),
        ),
    ]
    .into_iter()
    .map(|(name, e, input)| {
        let d = Detector::fit(e, input, Scoring::MeanDistance, &normal, None).expect("detector");
        (name, d)
    })
    .collect()
}

fn throughput(c: &mut Criterion) {
    let rec = recording(&data(), FRAMES + 60);
    let mut g = c.benchmark_group("stream_frames");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(FRAMES as u64));
    for (name, d) in detectors() {
        for stride in [1usize, 10] {
            g.bench_with_input(
                BenchmarkId::new(name, format!("stride{stride}")),
                &stride,
                |b, &stride| {
                    // A full window first, so every measured frame is past the start.
                    let mut s = StreamScorer::new(&d, stride, Some(30.0)).expect("scorer");
                    for f in 0..60 {
                        s.push(rec.frame(f)).expect("push");
                    }
                    b.iter(|| {
                        for f in 60..60 + FRAMES {
                            std::hint::black_box(s.push(rec.frame(f)).expect("push"));
                        }
                    })
                },
            );
        }
    }
    g.finish();
}

fn latency(c: &mut Criterion) {
    let rec = recording(&data(), 120);
    let mut g = c.benchmark_group("frame_to_score");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (name, d) in detectors() {
        let mut s = StreamScorer::new(&d, 1, Some(30.0)).expect("scorer");
        for f in 0..60 {
            s.push(rec.frame(f)).expect("push");
        }
        let mut f = 60;
        g.bench_function(name, |b| {
            b.iter(|| {
                // At stride 1 every push completes a window: the time from a frame's arrival
                // to its window's score.
                let w = s.push(rec.frame(f % 120)).expect("push");
                f += 1;
                std::hint::black_box(w.expect("a window per frame"))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, throughput, latency);
#[global_allocator]
static ALLOC: haad::runtime::Allocator = haad::runtime::Allocator;

fn main() {
    haad::runtime::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
