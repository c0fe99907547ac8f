"""Benchmark: sample quality of several models on one dataset, in one table, on one feature net.

    python benchmarks/bench_sample_quality.py --data 25-gaussians           # the 4 GAN objectives
    python benchmarks/bench_sample_quality.py --data digits \\
        --models gan:objective=minimax gan:objective=non-saturating gan:objective=wgan-gp \\
                 gan:objective=hinge vae gated-pixelcnn
    python benchmarks/bench_sample_quality.py --data mnist --max-time 1800 --jobs 1 ...

Each MODEL[:key=value,...] trains in its own ``dgm train`` process (capped by --max-time and
--epochs), then ``dgm eval --json`` scores its samples against the test split: on the
Gaussian-mixture toys the modes covered and the share of high-quality samples (within 3 std
of a mode; Srivastava et al. 2017), elsewhere the Frechet distance and precision/recall
(Heusel et al. 2017; Kynkaanniemi et al. 2019) in the features of ONE classifier that dgm
trains on the training split (kept in OUT/features and shared by every row, so the numbers
compare), plus the classes covered. Models with a likelihood also report their test NLL.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

GANS = [f"gan:objective={o}" for o in ("minimax", "non-saturating", "wgan-gp", "hinge")]
TOYS = ("8-gaussians", "25-gaussians")


def parse(spec: str) -> tuple[str, list[str]]:
    """``gan:objective=hinge,spectral_norm=true`` -> ("gan", ["objective=hinge", ...])."""
    name, _, rest = spec.partition(":")
    return name, [kv for kv in rest.split(",") if kv]


def run_one(spec: str, args: argparse.Namespace) -> dict:
    name, sets = parse(spec)
    tag = spec.replace(":", "-").replace(",", "-").replace("=", "")
    run = args.out / f"{tag}-seed{args.seed}"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "PASSIVE"}
    train = [sys.executable, "-m", "dgm", "train", name, "--data", args.data, "--out", str(run)]
    train += ["--overwrite", "--seed", str(args.seed), "--max-time", str(args.max_time)]
    if args.epochs:
        train += ["--epochs", str(args.epochs)]
    for item in ["sample_every=0", "test=false", *sets, *args.set]:
        train += ["--set", item]
    t0 = time.perf_counter()
    proc = subprocess.run(train, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"model": spec, "error": proc.stderr.strip()[-300:]}
    wall = time.perf_counter() - t0
    metrics = "modes" if args.data in TOYS else "fd,precision,recall,classes"
    ev = [sys.executable, "-m", "dgm", "eval", str(run), "--json", "--metrics", metrics]
    ev += ["--features", str(args.out / "features"), "--seed", str(args.seed)]
    proc = subprocess.run(ev, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"model": spec, "error": proc.stderr.strip()[-300:]}
    row = {**json.loads(proc.stdout), "model": spec, "train_wall_s": round(wall, 1)}
    trained = json.loads((run / "results.json").read_text())
    row["epochs"] = trained["epochs"]
    if name != "gan":  # a likelihood too, for the same table
        ev = [sys.executable, "-m", "dgm", "eval", str(run), "--json", "--num-samples", "100"]
        proc = subprocess.run(ev, env=env, capture_output=True, text=True)
        if proc.returncode == 0:
            row["nll_nats"] = json.loads(proc.stdout)["nll_nats"]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="25-gaussians")
    p.add_argument("--models", nargs="+", default=GANS, help="MODEL[:key=value,...]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-time", type=float, default=300, help="training seconds per model")
    p.add_argument("--epochs", type=int, default=0, help="epochs per model (0: its default)")
    p.add_argument("--jobs", type=int, default=2, help="models trained at once")
    p.add_argument("--threads", type=int, default=1, help="threads per job")
    p.add_argument("--set", action="append", default=[], help="option for every model")
    p.add_argument("--out", type=Path, default=None, help="default runs/bench-quality-DATA")
    p.add_argument("--json", type=Path, help="also write the rows to this file")
    args = p.parse_args()
    args.out = args.out or Path(f"runs/bench-quality-{args.data}")
    args.out.mkdir(parents=True, exist_ok=True)
    from dgm.data import load_dataset

    data = load_dataset(args.data)
    toy = args.data in TOYS
    # the ceiling: the training split itself, scored like a model's samples
    real, n = data.test.x, min(len(data.test), 10_000)
    if toy:
        from dgm.data.toy import MODES
        from dgm.evaluation.quality import mode_coverage

        ref = mode_coverage(data.train.x[:n], *MODES[args.data])
        print("| model | modes covered | high-quality samples | epochs | train s |")
        print("|---|---|---|---|---|")
        print(f"| training data | {ref['modes_covered']} / {ref['modes_total']} | "
              f"{ref['high_quality']:.1%} | - | - |", flush=True)  # fmt: skip
    else:  # the shared feature net, trained once before the jobs race for it
        from dgm.evaluation.features import feature_net_for
        from dgm.evaluation.quality import sample_quality

        net = feature_net_for(data, args.out / "features")
        print(f"features: {net.describe()}", flush=True)
        ref = sample_quality(net, real, data.train.x[:n], ("fd", "precision", "recall", "classes"))
        print("| model | FD | precision | recall | classes covered | test NLL (VAE: K=100) "
              "| epochs | train s |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        print(f"| training data | {ref['fd']:.2f} | {ref['precision']:.3f} | {ref['recall']:.3f} | "
              f"{ref['classes']['classes_covered']} / {ref['classes']['classes_total']} | - | - "
              "| - |", flush=True)  # fmt: skip
    rows = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for r in pool.map(lambda s: run_one(s, args), args.models):
            rows.append(r)
            if "error" in r:
                print(f"| {r['model']} | failed: {r['error']} |", flush=True)
            elif toy:
                print(
                    f"| {r['model']} | {r['modes_covered']} / {r['modes_total']} | "
                    f"{r['high_quality']:.1%} | {r['epochs']} | {r['train_wall_s']:.0f} |",
                    flush=True,
                )
            else:
                nll = f"{r['nll_nats']:.2f}" if "nll_nats" in r else "-"
                c = r["classes"]
                print(
                    f"| {r['model']} | {r['fd']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} "
                    f"| {c['classes_covered']} / {c['classes_total']} | {nll} | {r['epochs']} "
                    f"| {r['train_wall_s']:.0f} |",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
