"""PyTorch twin of `model.complete(&clips, 1, 0)` in `benches/sampler.rs` (criterion ids
`diffusion/complete_small_ddim100` and `diffusion/complete_paper_ddim5`): 64 completions by DDIM
(eta = 0) with the DCT completion after every step, for the Small preset at 100 DDIM steps and
the Paper preset at 5.

    /work/torchenv/bin/python benches/reference/ddim.py --threads 1
    /work/torchenv/bin/python benches/reference/ddim.py --threads 2 --what paper --json
    /work/torchenv/bin/python benches/reference/ddim.py --ddim-steps 2 --reps 1 --warmup 0  # smoke

The network is `Denoiser` of benches/reference/denoiser_step.py sized per preset
(crates/haad-diffusion/src/config.rs, `DiffusionConfig::preset`), in eval mode under
`torch.no_grad()`. Random clips of the right shape stand in for the first 64 MSR Action3D
clips (the cost does not depend on the values). Not part of the build.
"""
import argparse
import math
import os
import sys

import torch

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from denoiser_step import Denoiser, emit, measure  # noqa: E402

BATCH = 64  # benches/sampler.rs: the first 64 clips, one completion each (< SAMPLE_BATCH = 256)

# DiffusionConfig::default() (config.rs), shared by both presets: J = 20 (MSR), F = 3 J.
JOINTS, FRAMES, T_HIS, N_PRE, DIFFUSION_STEPS, DROPOUT, SCALE = 20, 60, 30, 20, 1000, 0.2, 1.0
COSINE_S, MAX_BETA = 0.008, 0.999  # schedule.rs

# DiffusionConfig::preset (config.rs) and the DDIM step counts of benches/sampler.rs.
PRESETS = {
    "small": dict(d=128, heads=4, layers=4, cond_tokens=True, prediction="velocity", ddim=100),
    "paper": dict(d=512, heads=8, layers=8, cond_tokens=False, prediction="noise", ddim=5),
}


def alpha_bar_table(steps=DIFFUSION_STEPS, s=COSINE_S):
    """alpha-bar(t), t = 0..=T, of the cosine schedule exactly as schedule.rs tabulates it:
    betas 1 - f(t)/f(t-1) clipped to [0, 0.999], alpha-bar their running product of 1 - beta
    (in f64), alpha-bar(0) = 1."""
    f = lambda t: math.cos(((t / steps + s) / (1 + s)) * math.pi / 2) ** 2
    ab = [1.0]
    for t in range(1, steps + 1):
        beta = min(max(1.0 - f(t) / f(t - 1), 0.0), MAX_BETA)
        ab.append(ab[-1] * (1.0 - beta))
    return ab


def ddim_grid(steps, ddim):
    """`ValidConfig::ddim_grid` (config.rs): 1 + floor(i T / S), i = 0..S, ascending."""
    return [1 + i * steps // ddim for i in range(ddim)]


def dct_basis(n, k):
    """Analysis D_K [K, N] and synthesis D_K^T [N, K] of the orthonormal DCT-II
    (crates/haad-motion/src/dct.rs)."""
    i = torch.arange(n, dtype=torch.float64)
    rows = [(math.sqrt(1.0 / n) if kk == 0 else math.sqrt(2.0 / n))
            * torch.cos(math.pi * (i + 0.5) * kk / n) for kk in range(k)]
    d = torch.stack(rows).float()
    return d, d.t().contiguous()


class Completer:
    """`DiffusionModel::complete` + `ddim_with` (model.rs, sample.rs) for one preset."""

    def __init__(self, preset, ddim_steps=None, seed=0):
        p = PRESETS[preset]
        self.prediction = p["prediction"]
        self.net = Denoiser(k=N_PRE, f=3 * JOINTS, d=p["d"], heads=p["heads"],
                            layers=p["layers"], p=DROPOUT, cond_tokens=p["cond_tokens"]).eval()
        self.ab = alpha_bar_table()
        self.grid = ddim_grid(DIFFUSION_STEPS, ddim_steps or p["ddim"])
        self.analysis, self.synthesis = dct_basis(FRAMES, N_PRE)
        # `observed_mask` (sample.rs): [1, N, 1], 1 for the first t_his frames; keep = 1 - mask.
        self.mask = (torch.arange(FRAMES) < T_HIS).float().view(1, FRAMES, 1)
        self.keep = 1.0 - self.mask
        self.seed = seed

    def to_dct(self, frames):  # [B, N, F] -> [B, K, F]: D_K x (model.rs)
        return torch.matmul(self.analysis, frames)

    def from_dct(self, coeffs):  # [B, K, F] -> [B, N, F]: D_K^T c (model.rs)
        return torch.matmul(self.synthesis, coeffs)

    def condition(self, frames):
        """`DiffusionModel::condition`: the DCT of the frames with every frame after the first
        t_his replaced by the last observed one."""
        b, n, f = frames.shape
        last = frames[:, T_HIS - 1:T_HIS].expand(b, n - T_HIS, f)
        return self.to_dct(torch.cat([frames[:, :T_HIS], last.contiguous()], 1))

    def scales(self, t):
        """`signal_and_noise_scales`: sqrt(ab(t)), sqrt(1 - ab(t)) as [B, 1, 1] tensors."""
        a = torch.tensor([math.sqrt(self.ab[ti]) for ti in t], dtype=torch.float32)
        c = torch.tensor([math.sqrt(1.0 - self.ab[ti]) for ti in t], dtype=torch.float32)
        return a.view(-1, 1, 1), c.view(-1, 1, 1)

    def denoise(self, x, t, cond):
        """`DiffusionModel::denoise` + `estimates`: (x0_hat, eps_hat) from the network output."""
        out = self.net(x, torch.tensor(t), cond)
        a, c = self.scales(t)
        if self.prediction == "noise":
            return (x - out * c) / a, out
        return x * a - out * c, x * c + out * a  # velocity

    @torch.no_grad()
    def complete(self, clips):
        """clips [B, N, J, 3] -> B completions, each an [N, J, 3] array in data units."""
        gen = torch.Generator().manual_seed(self.seed)  # all noise from the seed (sample.rs)
        b = clips.shape[0]
        frames = clips.reshape(b, FRAMES, 3 * JOINTS) / SCALE  # `frames_tensor`
        c_obs = self.condition(frames)
        dims = c_obs.shape
        x = torch.randn(dims, generator=gen)
        for i in reversed(range(len(self.grid))):  # `ddim_with`, complete = true
            t = self.grid[i]
            t_prev = 0 if i == 0 else self.grid[i - 1]
            abp = self.ab[t_prev]
            x0, e = self.denoise(x, [t] * b, c_obs)
            x = x0 * math.sqrt(abp) + e * math.sqrt(1.0 - abp)
            z = torch.randn(dims, generator=gen)
            known = c_obs * math.sqrt(abp) + z * math.sqrt(1.0 - abp)
            frames_t = self.from_dct(known) * self.mask + self.from_dct(x) * self.keep
            x = self.to_dct(frames_t)
        # `tensor_to_clips`: back to data units, one [N, J, 3] array per clip.
        out = (self.from_dct(x) * SCALE).numpy()
        return [clip.reshape(FRAMES, JOINTS, 3) for clip in out]


def main():
    ap = argparse.ArgumentParser(
        description="PyTorch twin of the DDIM completion of benches/sampler.rs")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--what", default="all", choices=list(PRESETS) + ["all"])
    ap.add_argument("--reps", type=int, default=5, help="timed completions of the batch")
    ap.add_argument("--warmup", type=int, default=1, help="untimed completions first")
    ap.add_argument("--ddim-steps", type=int, default=None,
                    help="override the DDIM steps (smoke tests; the bench name then says so)")
    ap.add_argument("--json", action="store_true", help="one JSON line per measurement")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    names = list(PRESETS) if args.what == "all" else [args.what]
    for name in names:
        model = Completer(name, args.ddim_steps)
        steps = len(model.grid)
        clips = torch.rand(BATCH, FRAMES, JOINTS, 3) * 2 - 1
        median = measure(lambda: model.complete(clips), args.reps, args.warmup)
        emit(f"complete_{name}_ddim{steps}", args.threads, median, args.reps, args.json,
             batch=BATCH, ddim_steps=steps, criterion=f"diffusion/complete_{name}_ddim{steps}")


if __name__ == "__main__":
    main()
