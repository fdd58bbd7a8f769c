//! Streaming throughput: frames per second through a `StreamScorer` at stride 1 and 10 on one
//! thread, for the built-in encoder (22 joints) and the raw-DCT baseline, and the latency from
//! a frame arriving to its window's score (one push that completes a window). Figures and
//! their reading: docs/performance.md.
//!
//! Run: `RAYON_NUM_THREADS=1 cargo bench --bench stream`.

use std::time::Duration;

use candle_core::Device;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use haad::detect::{Detector, Embedder, InputSpec, Scoring, StreamScorer};
use haad::motion::Motion;
use ndarray::Array3;

const JOINTS: usize = 22;
/// Frames pushed per measured iteration.
const FRAMES: usize = 300;

fn clip(freq: f32, frames: usize) -> Motion {
    let a = Array3::from_shape_fn((frames, JOINTS, 3), |(t, j, c)| {
        (t as f32 * freq + j as f32).sin() * 10.0 + c as f32 * 50.0
    });
    Motion::new(a, Some(30.0)).expect("finite")
}

fn detectors() -> Vec<(&'static str, Detector)> {
    let input = InputSpec {
        joints: JOINTS,
        root: 0,
        min_frames: 1,
    };
    let normal = [clip(0.1, 60), clip(0.12, 60), clip(0.09, 60)];
    let encoder = haad::defaults::default_encoder(&Device::Cpu).expect("built-in encoder");
    [
        ("encoder", Embedder::encoder(encoder)),
        ("raw_dct", Embedder::raw_dct()),
    ]
    .into_iter()
    .map(|(name, e)| {
        let d = Detector::fit(e, input.clone(), Scoring::MeanDistance, &normal, None)
            .expect("detector");
        (name, d)
    })
    .collect()
}

fn throughput(c: &mut Criterion) {
    let rec = clip(0.3, FRAMES + 60);
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
    let rec = clip(0.3, 120);
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
criterion_main!(benches);
