"""PyTorch twin of `benches/encoder.rs` (criterion groups `encoder_forward_eval` and
`encoder_train_step`): the Res-GCN encoder written the way the method's reference code (the
GCN of LTD / HisRepItself) writes it, in the `[B, J, F]` layout.

    /work/torchenv/bin/python benches/reference/encoder.py --threads 1
    /work/torchenv/bin/python benches/reference/encoder.py --threads 2 --what train72 --json

Shapes (crates/haad-gcn/src/config.rs, `EncoderConfig::default()` with J = 20, as the bench):
clips [B, T = 60, J = 20, 3] -> DCT onto the first K = 10 orthonormal DCT-II rows -> X
[B, J, 3K = 30] -> gc1 (30 -> 128, bias) -> bn1 -> tanh -> 4 residual blocks -> gc7 (128 -> 30,
bias) + X -> max over the feature dimension -> embedding [B, J = 20]. Dropout 0.

Measures (median of per-call wall times after a warm-up):
  eval1, eval64, eval512  `model.eval()` + `torch.no_grad()` forward at batch 1, 64, 512
                          (criterion: encoder_forward_eval/{1,64,512})
  train72                 `model.train()`, forward, loss = (emb * r).sum(), zero_grad, backward,
                          AdamW(lr 1e-4, weight decay 0.01) step (criterion:
                          encoder_train_step/72)
  matmul1024              (not in `all`) a 1024^3 f32 torch.matmul, the twin of criterion's
                          peak/matmul_f32_1024 (PyTorch's BLAS against candle's gemm)
Not part of the build.
"""
import argparse
import math
import os
import sys

import torch
import torch.nn as nn

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from denoiser_step import emit, measure  # noqa: E402  (shared timing / JSON helpers)

FRAMES, JOINTS, K, HIDDEN, BLOCKS = 60, 20, 10, 128, 4

# name -> (batch, train?, default reps). Reps chosen for ~2-4 s per measurement on one core of
# the 2-core development machine (torch 2.15, one thread, the other core busy: eval1 ~0.9 ms,
# eval64 ~16-24 ms, eval512 ~0.12-0.19 s, train72 ~37-47 ms per call).
BENCHES = {
    "eval1": (1, False, 3000),
    "eval64": (64, False, 200),
    "eval512": (512, False, 25),
    "train72": (72, True, 80),
}
ALL = list(BENCHES)  # what `--what all` runs
BENCHES["matmul1024"] = (1024, None, 100)  # ~20-40 ms per call on one core
# The criterion ids these stand beside (benches/encoder.rs).
CRITERION_ID = {
    "eval1": "encoder_forward_eval/1",
    "eval64": "encoder_forward_eval/64",
    "eval512": "encoder_forward_eval/512",
    "train72": "encoder_train_step/72",
    "matmul1024": "peak/matmul_f32_1024",
}


def dct_matrix(n, k):
    """The first k rows of the orthonormal DCT-II, [k, n]: D[k, i] = w_k cos(pi (i + 1/2) k / n),
    w_0 = sqrt(1/n), w_k = sqrt(2/n) (crates/haad-motion/src/dct.rs)."""
    i = torch.arange(n, dtype=torch.float64)
    rows = []
    for kk in range(k):
        w = math.sqrt(1.0 / n) if kk == 0 else math.sqrt(2.0 / n)
        rows.append(w * torch.cos(math.pi * (i + 0.5) * kk / n))
    return torch.stack(rows).float()


class GraphConvolution(nn.Module):
    """LTD's GraphConvolution: y = att (x W) + b, weight [F_in, F_out], att [J, J], all
    U(-s, s) with s = 1 / sqrt(F_out) (crates/haad-gcn/src/layers.rs, `GraphConv`)."""

    def __init__(self, f_in, f_out, bias=True, node_n=JOINTS):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(f_in, f_out))
        self.att = nn.Parameter(torch.empty(node_n, node_n))
        self.bias = nn.Parameter(torch.empty(f_out)) if bias else None
        stdv = 1.0 / math.sqrt(f_out)
        for p in self.parameters():
            p.data.uniform_(-stdv, stdv)
        self.cheap_first = f_in < f_out

    def forward(self, x):  # [B, J, F_in] -> [B, J, F_out]
        # The cheaper order, as `GraphConv::forward` takes it: (att x) W when F_in < F_out
        # (gc1, 30 -> 128), else att (x W) (LTD's order).
        if self.cheap_first:
            y = torch.matmul(torch.matmul(self.att, x), self.weight)
        else:
            y = torch.matmul(self.att, torch.matmul(x, self.weight))
        return y + self.bias if self.bias is not None else y


class GC_Block(nn.Module):
    """LTD's GC_Block: [GC(F -> F, no bias) -> BatchNorm1d(J*F) on the flattened [B, J*F] view
    -> tanh -> dropout] x 2, plus the block input (layers.rs, `GcBlock`)."""

    def __init__(self, f, p_dropout=0.0, node_n=JOINTS):
        super().__init__()
        self.gc1 = GraphConvolution(f, f, bias=False, node_n=node_n)
        self.bn1 = nn.BatchNorm1d(node_n * f)
        self.gc2 = GraphConvolution(f, f, bias=False, node_n=node_n)
        self.bn2 = nn.BatchNorm1d(node_n * f)
        self.do = nn.Dropout(p_dropout)
        self.act_f = nn.Tanh()

    def forward(self, x):
        y = self.gc1(x)
        b, n, f = y.shape
        y = self.bn1(y.view(b, -1)).view(b, n, f)
        y = self.do(self.act_f(y))
        y = self.gc2(y)
        b, n, f = y.shape
        y = self.bn2(y.view(b, -1)).view(b, n, f)
        y = self.do(self.act_f(y))
        return y + x


class Encoder(nn.Module):
    """The Res-GCN encoder (crates/haad-gcn/src/encoder.rs): DCT features -> gc1 -> bn1 -> tanh
    -> blocks -> gc7 + features -> max over features -> [B, J]."""

    def __init__(self, frames=FRAMES, joints=JOINTS, k=K, hidden=HIDDEN, blocks=BLOCKS,
                 p_dropout=0.0):
        super().__init__()
        self.k = k
        self.register_buffer("dct", dct_matrix(frames, k))  # [K, T]
        c = 3 * k
        self.gc1 = GraphConvolution(c, hidden, bias=True, node_n=joints)
        self.bn1 = nn.BatchNorm1d(joints * hidden)
        self.gcbs = nn.ModuleList(GC_Block(hidden, p_dropout, joints) for _ in range(blocks))
        self.gc7 = GraphConvolution(hidden, c, bias=True, node_n=joints)
        self.do = nn.Dropout(p_dropout)
        self.act_f = nn.Tanh()

    def features(self, clips):
        """[B, T, J, 3] -> [B, J, 3K], coordinate-major per joint (x_0..x_9, y_0..y_9, z_0..z_9),
        as `Encoder::features`: each joint coordinate's trajectory times D_K^T."""
        b, t, j, _ = clips.shape
        traj = clips.reshape(b, t, j * 3).transpose(1, 2)  # [B, 3J, T], index j*3 + c
        coef = torch.matmul(traj, self.dct.t())  # [B, 3J, K]
        return coef.reshape(b, j, 3 * self.k)  # [B, J, 3K]: [j, c, k] -> feature c*K + k

    def forward(self, clips):
        x = self.features(clips)
        y = self.gc1(x)
        b, n, f = y.shape
        y = self.bn1(y.view(b, -1)).view(b, n, f)
        y = self.do(self.act_f(y))
        for block in self.gcbs:
            y = block(y)
        y = self.gc7(y) + x  # [B, J, 3K], the global residual
        return torch.max(y, dim=2).values  # pooling MaxOverFeatures: [B, J]


def bench_eval(model, batch, reps, warmup):
    clips = torch.rand(batch, FRAMES, JOINTS, 3) * 2 - 1  # U(-1, 1) like benches/encoder.rs
    model.eval()

    def step():
        with torch.no_grad():
            model(clips)

    return measure(step, reps, warmup)


def bench_train(model, batch, reps, warmup):
    clips = torch.rand(batch, FRAMES, JOINTS, 3) * 2 - 1
    r = torch.rand(batch, JOINTS) * 2 - 1  # fixed random [72, E = J]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    model.train()

    def step():
        emb = model(clips)
        loss = (emb * r).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return measure(step, reps, warmup)


def bench_matmul(n, reps, warmup):
    """[n, n] x [n, n] f32, U(-1, 1) entries, as `peak` in benches/encoder.rs."""
    a, b = torch.rand(n, n) * 2 - 1, torch.rand(n, n) * 2 - 1
    return measure(lambda: torch.matmul(a, b), reps, warmup)


def main():
    ap = argparse.ArgumentParser(
        description="PyTorch twin of benches/encoder.rs (Res-GCN encoder, LTD-style layers)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--what", default="all", choices=list(BENCHES) + ["all"],
                    help="one bench, or all = " + "|".join(ALL))
    ap.add_argument("--reps", type=int, default=None,
                    help="timed calls per measurement (default per bench: "
                    + ", ".join(f"{k} {v[2]}" for k, v in BENCHES.items()) + ")")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed calls first (default: reps / 10, at least 3)")
    ap.add_argument("--json", action="store_true", help="one JSON line per measurement")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    names = ALL if args.what == "all" else [args.what]
    for name in names:
        batch, train, default_reps = BENCHES[name]
        reps = args.reps or default_reps
        warmup = args.warmup if args.warmup is not None else max(3, reps // 10)
        if train is None:
            median = bench_matmul(batch, reps, warmup)
            emit(name, args.threads, median, reps, args.json, n=batch,
                 criterion=CRITERION_ID[name])
            continue
        model = Encoder()  # fresh per bench, as each criterion function builds its own
        run = bench_train if train else bench_eval
        median = run(model, batch, reps, warmup)
        emit(name, args.threads, median, reps, args.json, batch=batch,
             criterion=CRITERION_ID[name])


if __name__ == "__main__":
    main()
