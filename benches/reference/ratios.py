#!/usr/bin/env python3
"""Runs haad's criterion benches (`benches/encoder.rs`, `benches/sampler.rs`) and their PyTorch
twins (`benches/reference/{encoder,ddim,denoiser_step}.py`) at 1 and 2 threads and prints the
speed ratios (PyTorch time / haad time: above 1 means haad is faster).

    python3 benches/reference/ratios.py                      # cargo benches + twins, 1 and 2 threads
    python3 benches/reference/ratios.py --only encoder       # the encoder bench and its twin only
    python3 benches/reference/ratios.py --skip-cargo         # re-read saved criterion results
    python3 benches/reference/ratios.py --skip-cargo --skip-twins --criterion-dir /tmp/crit

Standard library only (any python3); the twins run under `--python` (default
/work/torchenv/bin/python). For each thread count n:

1. `RAYON_NUM_THREADS=n cargo bench --bench encoder -- --save-baseline haad-tn` (and `sampler`),
   the output going to a log file under --out;
2. criterion's median per iteration is read from
   `<criterion-dir>/<group>/<id>/haad-tn/estimates.json` (`median.point_estimate`, ns): criterion
   0.8 writes each run to `<group>/<id>/new/` and, with `--save-baseline NAME`, copies it to
   `<group>/<id>/NAME/` (criterion-0.8.2 src/analysis/mod.rs, `copy_new_dir_to_base`);
3. the twins run with `--threads n --json` and print one JSON line per measurement.

Then a markdown table per thread count and a combined one, and the rows as JSON and CSV
(`<out>/ratios-<timestamp>.{json,csv}`) so that two runs can be compared. A criterion result
that is missing, or a twin that fails, is a missing cell ("n/a"), never a crash; a criterion
result older than this run's cargo call (its bench did not rewrite it) is marked "*".
"""
import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# FLOPs, from docs/performance.md ("FLOPs of one forward pass per clip"): the forward pass is
# 6,489,280 FLOPs of matrix products + ~83,000 element-wise per clip; a training step ~3x the
# forward per clip, plus AdamW over the 188,990 parameters (~3 MFLOP per step).
FORWARD_FLOPS = 6_489_280 + 83_000
TRAIN_FLOPS_PER_CLIP = 3 * FORWARD_FLOPS
ADAMW_FLOPS = 3_000_000


def denoiser_forward_flops(d, layers, cond_tokens, k=20, f=60):
    """FLOPs of one denoiser forward pass per clip (crates/haad-diffusion/src/denoiser.rs; see
    docs/performance.md, "FLOPs of the denoiser"): per token and layer q, k, v (6 d^2), the
    attention scores and their average of v (4 K d), the two style blocks' output Linears
    (2 x 2 d^2) and the feed-forward d -> 2d -> d (8 d^2); per clip and layer the two style
    blocks' embedding Linears d -> 2d (2 x 4 d^2); per token the input embedding, the optional
    conditioning tokens and the output Linear (2 F d each); per clip the time MLP (4 d^2) and
    the conditioning embedding (2 K F d)."""
    per_layer = k * (18 * d * d + 4 * k * d) + 8 * d * d
    per_token = (3 if cond_tokens else 2) * 2 * f * d
    return layers * per_layer + k * per_token + 4 * d * d + 2 * k * f * d


# The DCT completion after each DDIM step: D_K^T (twice) and D_K products, [K, N] x [N, F].
DCT_STEP_FLOPS = 3 * 2 * 20 * 60 * 60
SMALL_FORWARD = denoiser_forward_flops(128, 4, cond_tokens=True)
PAPER_FORWARD = denoiser_forward_flops(512, 8, cond_tokens=False)

PEAK_N = 1024
PEAK_FLOPS = 2 * PEAK_N ** 3  # benches/encoder.rs, `peak`: one [1024, 1024] x [1024, 1024]

MISSING = "n/a"

# key, what it is, suite (cargo bench name), criterion "<group>/<id>", twin bench name (the
# "bench" field of a twin's JSON line), FLOPs per iteration (None: no FLOP rate).
ROWS = [
    ("peak", "peak: 1024^3 f32 matmul", "encoder", "peak/matmul_f32_1024",
     "matmul1024", PEAK_FLOPS),
    ("eval1", "encoder forward eval, batch 1", "encoder", "encoder_forward_eval/1",
     "eval1", 1 * FORWARD_FLOPS),
    ("eval64", "encoder forward eval, batch 64", "encoder", "encoder_forward_eval/64",
     "eval64", 64 * FORWARD_FLOPS),
    ("eval512", "encoder forward eval, batch 512", "encoder", "encoder_forward_eval/512",
     "eval512", 512 * FORWARD_FLOPS),
    ("train72", "encoder train step, batch 72", "encoder", "encoder_train_step/72",
     "train72", 72 * TRAIN_FLOPS_PER_CLIP + ADAMW_FLOPS),
    ("small_ddim100", "64 completions, small, 100 DDIM steps", "sampler",
     "diffusion/complete_small_ddim100", "complete_small_ddim100",
     64 * 100 * (SMALL_FORWARD + DCT_STEP_FLOPS)),
    ("paper_ddim5", "64 completions, paper, 5 DDIM steps", "sampler",
     "diffusion/complete_paper_ddim5", "complete_paper_ddim5",
     64 * 5 * (PAPER_FORWARD + DCT_STEP_FLOPS)),
    ("diff_train", "diffusion train step, small, batch 64", "sampler",
     "diffusion/train_step_small_batch64", "train_step_small_batch64", 64 * 3 * SMALL_FORWARD),
]

# The twin processes of each suite: (script in benches/reference, its arguments besides
# --threads n --json). `--twin-reps` adds the reps arguments given in the third element.
TWINS = {
    "encoder": [
        ("encoder.py", ["--what", "all"], "reps"),
        ("encoder.py", ["--what", "matmul1024"], "reps"),
    ],
    "sampler": [
        ("ddim.py", ["--what", "all"], "reps"),
        ("denoiser_step.py", [], "steps"),
    ],
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def load_avg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def default_criterion_dir():
    """Where criterion writes (criterion-0.8.2 src/lib.rs): $CRITERION_HOME, else
    $CARGO_TARGET_DIR/criterion, else the workspace's target/criterion."""
    if os.environ.get("CRITERION_HOME"):
        return os.environ["CRITERION_HOME"]
    if os.environ.get("CARGO_TARGET_DIR"):
        return os.path.join(os.environ["CARGO_TARGET_DIR"], "criterion")
    return os.path.join(REPO, "target", "criterion")


def run_cargo(bench, n, args, stamp, errors):
    """`RAYON_NUM_THREADS=n cargo bench --bench <bench> -- --save-baseline haad-t<n>`, output to
    a log file. Returns True when cargo exited 0."""
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, f"{stamp}-cargo-{bench}-t{n}.log")
    cmd = [args.cargo, "bench", "--bench", bench, "--", "--save-baseline", f"haad-t{n}"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(n))
    log(f"[t{n}] RAYON_NUM_THREADS={n} {' '.join(cmd)}  (log: {log_path}, load {load_avg()})")
    try:
        with open(log_path, "w") as f:
            rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT,
                                timeout=args.cargo_timeout).returncode
    except (OSError, subprocess.TimeoutExpired) as e:
        errors.append(f"cargo bench --bench {bench} (t{n}): {e}")
        log(f"    failed: {e}")
        return False
    if rc != 0:
        errors.append(f"cargo bench --bench {bench} (t{n}) exited {rc}; see {log_path}")
        log(f"    exited {rc}; last lines of {log_path}:")
        try:
            with open(log_path) as f:
                for line in f.readlines()[-15:]:
                    log("    | " + line.rstrip())
        except OSError:
            pass
        return False
    return True


def read_criterion(crit_dir, bench_id, n):
    """(median seconds, file mtime) of one criterion result, or (None, None, why)."""
    path = os.path.join(crit_dir, *bench_id.split("/"), f"haad-t{n}", "estimates.json")
    try:
        with open(path) as f:
            est = json.load(f)
        ns = float(est["median"]["point_estimate"])
        return ns * 1e-9, os.path.getmtime(path), None
    except FileNotFoundError:
        return None, None, f"missing {path}"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, None, f"unreadable {path}: {e!r}"


def run_twin(script, extra, reps_kind, n, args, errors):
    """Runs one twin at n threads; returns {bench: (median_s, torch version)}."""
    cmd = [args.python, os.path.join(HERE, script), "--threads", str(n), "--json", *extra]
    if args.twin_reps:
        if reps_kind == "reps":
            cmd += ["--reps", str(args.twin_reps), "--warmup", "1"]
        else:
            cmd += ["--steps", str(args.twin_reps)]
    env = dict(os.environ, OMP_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n))
    log(f"[t{n}] {' '.join(cmd)}  (load {load_avg()})")
    try:
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=args.twin_timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        errors.append(f"twin {script} {' '.join(extra)} (t{n}): {e}")
        log(f"    failed: {e}")
        return {}
    out = {}
    for line in p.stdout.splitlines():
        try:
            row = json.loads(line)
            out[row["bench"]] = (float(row["median_s"]), row.get("torch"))
            log(f"    {row['bench']}: {fmt_time(float(row['median_s']))}")
        except (ValueError, KeyError, TypeError):
            continue  # not a result line
    if p.returncode != 0:
        tail = " | ".join(p.stderr.strip().splitlines()[-5:]) or "(no stderr)"
        errors.append(f"twin {script} {' '.join(extra)} (t{n}) exited {p.returncode}: {tail}")
        log(f"    exited {p.returncode}: {tail}")
    return out


def fmt_time(s):
    if s is None:
        return MISSING
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.3f} s"


def fmt(v, spec, suffix=""):
    return MISSING if v is None else f"{v:{spec}}{suffix}"


def div(a, b):
    return a / b if a is not None and b else None


def derive(rows, threads):
    """Adds ratio, FLOP rates, % of peak and speed-ups to every row's cells."""
    # The same thread count's matmul rate (absent with --only sampler, whose rows have no FLOPs).
    peak = {n: div(PEAK_FLOPS, rows["peak"]["cells"][n]["haad_s"]) if "peak" in rows else None
            for n in threads}
    for r in rows.values():
        for n in threads:
            c = r["cells"][n]
            c["ratio"] = div(c["torch_s"], c["haad_s"])
            c["haad_gflops"] = div(r["flops"], c["haad_s"] and c["haad_s"] * 1e9)
            c["torch_gflops"] = div(r["flops"], c["torch_s"] and c["torch_s"] * 1e9)
            rate = div(r["flops"], c["haad_s"])
            c["haad_pct_peak"] = None if rate is None or not peak[n] else 100 * rate / peak[n]
        t0 = threads[0]
        r["haad_speedup"] = {n: div(r["cells"][t0]["haad_s"], r["cells"][n]["haad_s"])
                             for n in threads[1:]}
        r["torch_speedup"] = {n: div(r["cells"][t0]["torch_s"], r["cells"][n]["torch_s"])
                              for n in threads[1:]}


def haad_cell(c):
    return fmt_time(c["haad_s"]) + (" *" if c["haad_stale"] else "")


def md_table(header, body):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def per_thread_table(rows, n):
    header = ["work", "haad", "PyTorch", "ratio (PyTorch / haad)", "haad GFLOP/s",
              "haad % of peak"]
    body = []
    for r in rows.values():
        c = r["cells"][n]
        body.append([r["work"], haad_cell(c), fmt_time(c["torch_s"]), fmt(c["ratio"], ".2f", "x"),
                     fmt(c["haad_gflops"], ".1f"), fmt(c["haad_pct_peak"], ".0f", " %")])
    return md_table(header, body)


def combined_table(rows, threads):
    t0 = threads[0]
    header = ["work"]
    for n in threads:
        header += [f"haad {n}t", f"PyTorch {n}t", "ratio"]
    header += [f"haad % peak {n}t" for n in threads]
    header += [f"haad speed-up t{t0}/t{n}" for n in threads[1:]]
    header += [f"PyTorch speed-up t{t0}/t{n}" for n in threads[1:]]
    body = []
    for r in rows.values():
        row = [r["work"]]
        for n in threads:
            c = r["cells"][n]
            row += [haad_cell(c), fmt_time(c["torch_s"]), fmt(c["ratio"], ".2f", "x")]
        row += [fmt(r["cells"][n]["haad_pct_peak"], ".0f", " %") for n in threads]
        row += [fmt(r["haad_speedup"][n], ".2f", "x") for n in threads[1:]]
        row += [fmt(r["torch_speedup"][n], ".2f", "x") for n in threads[1:]]
        body.append(row)
    return md_table(header, body)


def write_outputs(rows, threads, meta, out_dir, stamp):
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, f"ratios-{stamp}")
    doc = dict(meta, rows=[
        {
            "key": r["key"], "work": r["work"], "criterion": r["criterion"],
            "twin": r["twin"], "flops_per_iter": r["flops"],
            "threads": {str(n): r["cells"][n] for n in threads},
            "haad_speedup": {str(n): v for n, v in r["haad_speedup"].items()},
            "torch_speedup": {str(n): v for n, v in r["torch_speedup"].items()},
        }
        for r in rows.values()
    ])
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    fields = ["key", "work", "criterion", "flops_per_iter"]
    for n in threads:
        fields += [f"haad_t{n}_s", f"torch_t{n}_s", f"ratio_t{n}", f"haad_gflops_t{n}",
                   f"haad_pct_peak_t{n}", f"haad_stale_t{n}"]
    fields += [f"haad_speedup_t{threads[0]}_t{n}" for n in threads[1:]]
    fields += [f"torch_speedup_t{threads[0]}_t{n}" for n in threads[1:]]
    with open(base + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for r in rows.values():
            line = [r["key"], r["work"], r["criterion"], r["flops"]]
            for n in threads:
                c = r["cells"][n]
                line += [c["haad_s"], c["torch_s"], c["ratio"], c["haad_gflops"],
                         c["haad_pct_peak"], int(c["haad_stale"])]
            line += [r["haad_speedup"][n] for n in threads[1:]]
            line += [r["torch_speedup"][n] for n in threads[1:]]
            w.writerow(["" if v is None else v for v in line])
    return base + ".json", base + ".csv"


def main():
    ap = argparse.ArgumentParser(description="haad benches vs their PyTorch twins: speed ratios")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="thread counts (RAYON_NUM_THREADS / torch.set_num_threads)")
    ap.add_argument("--only", choices=["encoder", "sampler"], default=None,
                    help="one bench and its twins only")
    ap.add_argument("--skip-cargo", action="store_true",
                    help="do not run cargo; read the saved criterion results")
    ap.add_argument("--skip-twins", action="store_true", help="do not run the PyTorch twins")
    ap.add_argument("--python", default="/work/torchenv/bin/python",
                    help="the python with torch that runs the twins")
    ap.add_argument("--cargo", default="cargo")
    ap.add_argument("--criterion-dir", default=None,
                    help="criterion's output (default: $CRITERION_HOME, "
                         "$CARGO_TARGET_DIR/criterion or target/criterion)")
    ap.add_argument("--out", default=os.path.join(REPO, "target", "ratios"),
                    help="where the JSON, CSV and cargo logs go")
    ap.add_argument("--twin-reps", type=int, default=None,
                    help="override the twins' repetitions (smoke tests)")
    ap.add_argument("--twin-timeout", type=float, default=1800)
    ap.add_argument("--cargo-timeout", type=float, default=3600)
    args = ap.parse_args()
    threads = list(dict.fromkeys(args.threads))  # unique, in order
    crit_dir = args.criterion_dir or default_criterion_dir()
    suites = [args.only] if args.only else ["encoder", "sampler"]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    errors, loads = [], []

    rows = {}
    for key, work, suite, crit, twin, flops in ROWS:
        if suite in suites:
            rows[key] = {"key": key, "work": work, "suite": suite, "criterion": crit,
                         "twin": twin, "flops": flops,
                         "cells": {n: {"haad_s": None, "torch_s": None, "haad_stale": False}
                                   for n in threads}}
    torch_versions = set()

    for n in threads:
        loads.append({"threads": n, "phase": "start", "load": load_avg()})
        for suite in suites:
            started = time.time()
            ran = False if args.skip_cargo else run_cargo(suite, n, args, stamp, errors)
            for r in rows.values():
                if r["suite"] != suite:
                    continue
                s, mtime, why = read_criterion(crit_dir, r["criterion"], n)
                if why:
                    errors.append(f"haad {r['criterion']} (t{n}): {why}")
                c = r["cells"][n]
                c["haad_s"] = s
                # Ran cargo, yet the result predates it: an old run's figure.
                c["haad_stale"] = bool(ran and mtime is not None and mtime < started)
                c["haad_result_time"] = (datetime.datetime.fromtimestamp(mtime).isoformat(
                    timespec="seconds") if mtime else None)
        loads.append({"threads": n, "phase": "after cargo", "load": load_avg()})
        if not args.skip_twins:
            for suite in suites:
                for script, extra, reps_kind in TWINS[suite]:
                    got = run_twin(script, extra, reps_kind, n, args, errors)
                    for r in rows.values():
                        if r["suite"] == suite and r["twin"] in got:
                            r["cells"][n]["torch_s"], version = got[r["twin"]]
                            if version:
                                torch_versions.add(version)
            loads.append({"threads": n, "phase": "after twins", "load": load_avg()})
        for r in rows.values():
            if not args.skip_twins and r["cells"][n]["torch_s"] is None:
                errors.append(f"twin {r['twin']} (t{n}): no result")

    derive(rows, threads)

    print(f"# haad vs PyTorch ({datetime.datetime.now().isoformat(timespec='seconds')}, "
          f"{platform.node()}, {os.cpu_count()} CPUs)\n")
    print("Times are medians per iteration (criterion's `median.point_estimate` for haad; the "
          "median of per-call wall times for the PyTorch twins). ratio = PyTorch time / haad "
          "time (> 1: haad is faster). % of peak: haad's FLOP rate over the same thread "
          f"count's `peak/matmul_f32_1024` rate; FLOPs per clip: forward {FORWARD_FLOPS:,}, "
          f"training step {TRAIN_FLOPS_PER_CLIP:,} (+ {ADAMW_FLOPS:,} per step for AdamW), "
          "from docs/performance.md.\n")
    for n in threads:
        print(f"## {n} thread{'s' if n > 1 else ''}\n")
        print(per_thread_table(rows, n) + "\n")
    if len(threads) > 1:
        print("## Combined\n")
        print(combined_table(rows, threads) + "\n")
    if any(c["haad_stale"] for r in rows.values() for c in r["cells"].values()):
        print("\\* criterion result older than this run's cargo call (the bench did not "
              "rewrite it): an earlier run's figure.\n")
    print("Load average (1, 5, 15 min): " + "; ".join(
        f"t{x['threads']} {x['phase']}: {x['load']}" for x in loads) + "\n")
    if errors:
        print("Missing or failed:\n")
        for e in errors:
            print(f"- {e}")
        print()

    meta = {
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(), "cpus": os.cpu_count(), "threads": threads,
        "suites": suites, "criterion_dir": crit_dir, "baselines": [f"haad-t{n}" for n in threads],
        "skip_cargo": args.skip_cargo, "skip_twins": args.skip_twins,
        "twin_python": args.python, "twin_reps_override": args.twin_reps,
        "torch": sorted(torch_versions), "load": loads, "errors": errors,
        "constants": {"forward_flops_per_clip": FORWARD_FLOPS,
                      "train_flops_per_clip": TRAIN_FLOPS_PER_CLIP,
                      "adamw_flops_per_step": ADAMW_FLOPS, "peak_flops": PEAK_FLOPS},
    }
    try:
        paths = write_outputs(rows, threads, meta, args.out, stamp)
        print("Written: " + ", ".join(paths))
    except OSError as e:
        print(f"Could not write the JSON/CSV under {args.out}: {e}")


if __name__ == "__main__":
    main()
