"""PyTorch twin of haad-diffusion's small denoiser, to time one training step beside
`cargo bench --bench sampler -- train_step` (the same shapes: batch 64, K = 20 tokens,
F = 60 features, d = 128, 4 heads, 4 layers, dropout 0.2, velocity target, Adam).

    python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch
    /tmp/torch/bin/python benches/reference/denoiser_step.py --threads 1

Prints the median time of one step over --steps steps after a warm-up; with --json one JSON
line instead, `{"bench": "train_step_small_batch64", "threads": n, "median_s": ..., "reps": ...}`
(the format benches/reference/ratios.py reads). Not part of the build.

Also the shared module of the other twins (benches/reference/ddim.py, encoder.py): the denoiser
classes below and the timing / JSON helpers `measure` and `emit`.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def measure(fn, reps, warmup):
    """Runs fn() `warmup` times untimed, then `reps` times; returns the median wall time (s)
    of one call (time.perf_counter around each call)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def emit(bench, threads, median_s, reps, as_json, **extra):
    """One result: a JSON line (--json) or a readable line."""
    if as_json:
        row = {"bench": bench, "threads": threads, "median_s": median_s, "reps": reps}
        row.update(extra)
        row["torch"] = torch.__version__
        print(json.dumps(row), flush=True)
    else:
        more = "".join(f", {k} {v}" for k, v in extra.items())
        print(f"{bench}: torch {torch.__version__}, {threads} thread(s): median "
              f"{1000 * median_s:.3f} ms over {reps} reps{more}", flush=True)


class Style(nn.Module):
    def __init__(self, d, p):
        super().__init__()
        self.emb = nn.Linear(d, 2 * d)
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(p)
        self.out = nn.Linear(d, d)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, y, silu_emb):
        scale, shift = self.emb(silu_emb).unsqueeze(1).chunk(2, dim=-1)
        return self.out(self.drop(F.silu(self.norm(y) * (1 + scale) + shift)))


class Layer(nn.Module):
    def __init__(self, d, heads, p):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(d)
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.att_drop = nn.Dropout(p)
        self.att_style = Style(d, p)
        self.lin1 = nn.Linear(d, 2 * d)
        self.ffn_drop = nn.Dropout(p)
        self.lin2 = nn.Linear(2 * d, d)
        nn.init.zeros_(self.lin2.weight)
        nn.init.zeros_(self.lin2.bias)
        self.ffn_style = Style(d, p)

    def forward(self, x, e):
        b, k, d = x.shape
        h = self.heads
        xn = self.norm(x)
        split = lambda t: t.view(b, k, h, d // h).transpose(1, 2)
        q, kk, v = split(self.q(xn)), split(self.k(xn)), split(self.v(xn))
        att = self.att_drop(torch.softmax(q @ kk.transpose(-1, -2) / math.sqrt(d // h), -1))
        y = (att @ v).transpose(1, 2).reshape(b, k, d)
        x = x + self.att_style(y, e)
        y = self.lin2(self.ffn_drop(F.gelu(self.lin1(x))))
        return x + self.ffn_style(y, e)


class Denoiser(nn.Module):
    def __init__(self, k=20, f=60, d=128, heads=4, layers=4, p=0.2, cond_tokens=True):
        super().__init__()
        self.d = d
        self.joint_embed = nn.Linear(f, d)
        self.pos = nn.Parameter(torch.randn(k, d))
        # Linear(F -> d) of each token's own conditioning coefficient: only with
        # `condition_tokens` (on in Preset::Small, off in Preset::Paper; denoiser.rs).
        self.cond_tokens = nn.Linear(f, d) if cond_tokens else None
        self.time1 = nn.Linear(d, d)
        self.time2 = nn.Linear(d, d)
        self.cond_embed = nn.Linear(k * f, d)
        self.layers = nn.ModuleList(Layer(d, heads, p) for _ in range(layers))
        self.out = nn.Linear(d, f)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, t, cond):
        b = x.shape[0]
        half = self.d // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half) / half)
        a = t[:, None].float() * freqs[None]
        temb = torch.cat([torch.cos(a), torch.sin(a)], -1)
        e = self.time2(F.silu(self.time1(temb))) + self.cond_embed(cond.reshape(b, -1))
        e = F.silu(e)
        h = self.joint_embed(x) + self.pos
        if self.cond_tokens is not None:
            h = h + self.cond_tokens(cond)
        skips = []
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            if i < n // 2:
                skips.append(h)
            h = layer(h, e)
            if i >= n // 2:
                h = h + skips.pop()
        return self.out(h)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--json", action="store_true",
                    help="print one JSON line (bench train_step_small_batch64)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    b, k, f = 64, 20, 60
    net = Denoiser(k=k, f=f)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    # haad's Trainer::step also updates an EMA copy of the weights (decay 0.995) every step.
    ema = [p.detach().clone() for p in net.parameters()]
    decay = 0.995
    s = 0.008
    steps = torch.arange(1001, dtype=torch.float64) / 1000
    ab = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    ab = (ab / ab[0]).float()
    x0 = torch.randn(b, k, f)
    cond = torch.randn(b, k, f)
    times = []
    for i in range(args.steps + 5):
        start = time.perf_counter()
        t = torch.randint(1, 1000, (b,))
        eps = torch.randn(b, k, f)
        a, c = ab[t].sqrt()[:, None, None], (1 - ab[t]).sqrt()[:, None, None]
        xt = a * x0 + c * eps
        target = a * eps - c * x0
        loss = F.mse_loss(net(xt, t, cond), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_mul_(ema, decay)
            torch._foreach_add_(ema, [p.detach() for p in net.parameters()], alpha=1 - decay)
        if i >= 5:
            times.append(time.perf_counter() - start)
    times.sort()
    if args.json:
        # The same median as the line below (the upper middle for an even count).
        emit("train_step_small_batch64", args.threads, times[len(times) // 2], len(times), True)
        return
    print(f"torch {torch.__version__}, {args.threads} thread(s): median step "
          f"{1000 * times[len(times) // 2]:.1f} ms over {len(times)} steps")


if __name__ == "__main__":
    main()
