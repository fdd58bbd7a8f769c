//! Timings of the encoder's building blocks (minimum over repetitions, less sensitive to a
//! busy machine than criterion's means), behind the choices documented in
//! docs/performance.md. Not a correctness test; run on demand:
//!
//! `RAYON_NUM_THREADS=1 cargo test --release -p haad-gcn --test op_timings -- --ignored --nocapture`

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{ModuleT, Optimizer, VarBuilder, VarMap};
use haad_gcn::{ops, EncoderConfig, EncoderModel, GraphConv};

fn time(name: &str, reps: usize, mut f: impl FnMut()) {
    f();
    let mut best = f64::MAX;
    for _ in 0..reps {
        let start = Instant::now();
        f();
        best = best.min(start.elapsed().as_secs_f64());
    }
    eprintln!("{name:48} {:9.3} ms (min of {reps})", best * 1e3);
}

#[test]
#[ignore = "timings, run on demand"]
fn op_timings() {
    let dev = Device::Cpu;
    let (j, f, b) = (20, 128, 72);
    let model = EncoderModel::new(&EncoderConfig::default(), 0, &dev).unwrap();
    let xs = Tensor::randn(0f32, 1., (b, 60, j, 3), &dev).unwrap();
    let r = Tensor::randn(0f32, 1., (b, j), &dev).unwrap();
    time("encoder forward, eval, B = 72", 20, || {
        model.encoder().forward_t(&xs, false).unwrap();
    });
    time("encoder forward, train, B = 72", 20, || {
        model.encoder().forward_t(&xs, true).unwrap();
    });
    let loss = (model.encoder().forward_t(&xs, true).unwrap() * &r)
        .unwrap()
        .sum_all()
        .unwrap();
    time("encoder backward, B = 72", 20, || {
        loss.backward().unwrap();
    });
    let params = candle_nn::ParamsAdamW {
        lr: 1e-4,
        weight_decay: 0.01,
        ..Default::default()
    };
    let mut opt = candle_nn::AdamW::new(model.trainable_vars(), params).unwrap();
    time("training step (fwd + bwd + AdamW), B = 72", 20, || {
        let loss = (model.encoder().forward_t(&xs, true).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap();
        opt.backward_step(&loss).unwrap();
    });
    let jbf = Tensor::randn(0f32, 1., (j, b, f), &dev).unwrap();
    let jfb = Tensor::randn(0f32, 1., (j, f, b), &dev).unwrap();
    time("sum_keepdim(1) on [J, B, F]", 10, || {
        jbf.sum_keepdim(1).unwrap();
    });
    time("sum_keepdim(2) on [J, F, B]", 10, || {
        jfb.sum_keepdim(2).unwrap();
    });
    let big = (&jfb * 50.0).unwrap();
    time("candle tanh, N(0, 1)", 10, || {
        jfb.tanh().unwrap();
    });
    time("haad ops::tanh, N(0, 1)", 10, || {
        ops::tanh(&jfb).unwrap();
    });
    time("haad ops::tanh, N(0, 50^2)", 10, || {
        ops::tanh(&big).unwrap();
    });
    let x = Var::from_tensor(&jfb).unwrap();
    let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (f, f), &dev).unwrap()).unwrap();
    time("W^T broadcast over J: forward + backward", 10, || {
        let y = w
            .as_tensor()
            .t()
            .unwrap()
            .broadcast_matmul(x.as_tensor())
            .unwrap();
        y.sum_all().unwrap().backward().unwrap();
    });
    let vb = VarBuilder::from_varmap(&VarMap::new(), DType::F32, &dev);
    let gc = GraphConv::new(j, f, f, false, vb).unwrap();
    time("GraphConv 128 -> 128: forward", 10, || {
        gc.forward(x.as_tensor()).unwrap();
    });
    time("GraphConv 128 -> 128: forward + backward", 10, || {
        gc.forward(x.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
    });
}
