"""Benchmark: train a model on digits and report test NLL, epochs and time.

    python benchmarks/bench_digits.py                         # arm, default config, seed 0
    python benchmarks/bench_digits.py --preset reference      # Tomczak's notebook architecture
    python benchmarks/bench_digits.py --preset all --seeds 0 1 2
    python benchmarks/bench_digits.py --model gated-pixelcnn --max-time 600

Each run is a separate `dgm train` process (clean threads, honest wall time). Prints one
markdown table row per run and the median per preset. The reference: the causal-conv ARM of
Tomczak's "Deep Generative Modeling" examples reached 86.65 nats test NLL on digits after
about 440 CPU-seconds on our 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# per model: preset name -> --set options; "default" is the model's own defaults
PRESETS: dict[str, dict[str, list[str]]] = {
    "arm": {
        "default": [],
        # the notebook's network and optimiser: 4 causal convs of 256 channels, kernel 7,
        # LeakyReLU, the pixel value as one input channel, Adamax(1e-3), batch 64, patience 20
        "reference": [
            "layers=4",
            "hidden=256",
            "kernel_size=7",
            "dilation_growth=1",
            "activation=leaky_relu",
            "dropout=0",
            "residual=false",
            "input=scalar",
            "optimizer=adamax",
            "lr=1e-3",
            "batch_size=64",
            "patience=20",
            "grad_clip=0",
            "ema=0",
        ],
    },
    "made": {
        "default": [],
        # order-agnostic training over 8 random orderings, their ensemble at test time
        "order-agnostic": [
            "likelihood=logistic-mixture",
            "order=random",
            "num_masks=8",
            "ensemble=8",
            "lr=0.002",
        ],
    },
}


def presets(model: str) -> dict[str, list[str]]:
    return PRESETS.get(model, {"default": []})


def run_one(
    model: str, preset: str, seed: int, extra: list[str], out: Path, max_time: float
) -> dict:
    run = out / f"{model}-{preset}-seed{seed}"
    args = [sys.executable, "-m", "dgm", "train", model, "--data", "digits", "--out", str(run)]
    args += ["--overwrite", "--seed", str(seed), "--set", "sample_every=0"]
    for item in presets(model)[preset] + extra:
        args += ["--set", item]
    if max_time > 0:
        args += ["--max-time", str(max_time)]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    t0 = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"run {run} failed:\n{proc.stderr[-2000:]}")
    res = json.loads((run / "results.json").read_text())
    res.update(preset=preset, seed=seed, wall_s=round(wall, 1), run=str(run))
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="arm", help="a model name from 'dgm list'")
    p.add_argument("--preset", default="default", help="default, all, or a named preset")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--set", action="append", default=[], help="extra option, e.g. ema=0.999")
    p.add_argument("--max-time", type=float, default=0, help="training seconds per run")
    p.add_argument("--out", default="runs/bench", type=Path)
    p.add_argument("--json", type=Path, help="also write all results to this file")
    args = p.parse_args()

    known = presets(args.model)
    chosen = list(known) if args.preset == "all" else [args.preset]
    if any(name not in known for name in chosen):
        sys.exit(f"{args.model} has presets {', '.join(known)}; got {args.preset!r}")
    header = (
        "| model | preset | seed | test NLL (nats) | bits/dim | epochs | best epoch | train s "
        "| wall s |"
    )
    print(header)
    print("|" + "---|" * 9)
    results = []
    for preset in chosen:
        rows = []
        for seed in args.seeds:
            r = run_one(args.model, preset, seed, args.set, args.out, args.max_time)
            rows.append(r)
            print(
                f"| {args.model} | {preset} | {seed} | {r['test_nll_nats']:.2f} "
                f"| {r['test_bpd']:.4f} "
                f"| {r['epochs']} | {r['best_epoch']} | {r['train_time_s']:.0f} "
                f"| {r['wall_s']:.0f} |",
                flush=True,
            )
        if len(rows) > 1:
            med = {
                k: statistics.median(r[k] for r in rows)
                for k in ("test_nll_nats", "test_bpd", "epochs", "train_time_s", "wall_s")
            }
            print(
                f"| {args.model} | {preset} | median | {med['test_nll_nats']:.2f} "
                f"| {med['test_bpd']:.4f} "
                f"| {med['epochs']:.0f} | | {med['train_time_s']:.0f} | {med['wall_s']:.0f} |"
            )
        results += rows
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
