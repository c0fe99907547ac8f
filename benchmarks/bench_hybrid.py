"""Benchmark: the hybrid model p(y, x) = p(y|x) p(x) on digits, and its decisions.

    python benchmarks/bench_hybrid.py                       # hybrid-flow, seeds 0 1 2
    python benchmarks/bench_hybrid.py --model hybrid-vae --set latent=16 --seeds 0

For each seed, trains MODEL on digits and the same network as a plain classifier (weight=0),
and reports test accuracy, expected calibration error and NLL of both (from ``results.json``).
Then it writes three arrays of inputs, the test digits, uniform noise over the levels and the
inverted test digits (L-1 - x), and runs ``dgm detect RUN FILE.npy --json`` on each: the share
of inputs that get each decision, with the log p(x) threshold calibrated to keep --keep of the
validation digits. Targets (issue 7): accuracy >= 96%, NLL <= 100 nats, ``uncertain-object``
for >= 95% of noise and of inverted digits while >= 95% of test digits stay ``confident`` or
``uncertain-label``. For reference, Tomczak's hybrid example on this split: 8.7-11.9% error,
150.3 nats.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
from _cli import dgm_json, sets, train_once

from dgm.data import load_dataset

DEFAULT_SET: list[str] = []  # the model's defaults


def train(run: Path, model: str, items: list[str], seed: int, args: argparse.Namespace) -> dict:
    flags = ["--seed", seed, "--set", "sample_every=0", *sets(items)]
    if args.max_time:
        flags += ["--max-time", args.max_time]
    train_once(run, model, "digits", *flags, threads=args.threads)
    return json.loads((run / "results.json").read_text())


def inputs(root: Path, seed: int) -> dict[str, Path]:
    """Test digits, uniform noise and inverted digits as ``[N, 1, 8, 8]`` arrays of levels."""
    ds = load_dataset("digits")
    test = ds.test.x.numpy()
    top = ds.spec.levels - 1
    rng = np.random.default_rng(seed)
    arrays = {
        "digits": test,
        "noise": rng.integers(0, top + 1, size=test.shape).astype(test.dtype),
        "inverted": top - test,
    }
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, a in arrays.items():
        np.save(root / f"{name}.npy", a)
        paths[name] = root / f"{name}.npy"
    return paths


def decisions(run: Path, path: Path, args: argparse.Namespace) -> dict[str, float]:
    s = dgm_json("detect", run, path, "--json", "--keep", args.keep, threads=args.threads)
    s = s["summary"]
    n = s["inputs"] - s["invalid"]
    return {d: s[d] / n for d in ("confident", "uncertain-label", "uncertain-object")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="hybrid-flow", help="hybrid-flow | hybrid-vae")
    p.add_argument("--set", action="append", default=None, help="model/training option")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-time", type=float, default=0, help="training seconds per model")
    p.add_argument("--keep", type=float, default=0.95, help="validation share kept by dgm detect")
    p.add_argument(
        "--kinds",
        nargs="+",
        choices=["hybrid", "plain"],
        default=["hybrid", "plain"],
        help="train the hybrid and/or the plain classifier (weight=0)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dir", type=Path, default=None, help="default runs/bench-hybrid-MODEL")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    args = p.parse_args()
    items = DEFAULT_SET if args.set is None else args.set
    root = args.dir or Path(f"runs/bench-hybrid-{args.model}")
    rows = []
    for seed in args.seeds:
        kinds = {
            "hybrid": ("hybrid", items),
            "plain": ("classifier (weight=0)", [*items, "weight=0"]),
        }
        for tag in args.kinds:
            kind, its = kinds[tag]
            run = root / f"{tag}-s{seed}"
            res = train(run, args.model, its, seed, args)
            row = {
                "seed": seed,
                "kind": kind,
                "accuracy": res["test_accuracy"],
                "ece": res["test_ece"],
                "nll": res["test_nll_nats"],
                "epochs": res["epochs"],
                "train_s": res["train_time_s"],
            }
            if kind == "hybrid":
                for name, path in inputs(root / f"inputs-s{seed}", seed).items():
                    row[name] = decisions(run, path, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
    report(rows, args, items)
    if args.json:
        args.json.write_text(json.dumps({"sets": items, "rows": rows}, indent=1))


def report(rows: list[dict], args: argparse.Namespace, items: list[str]) -> None:
    print(f"\n{args.model} on digits, --set {' '.join(items) or '(defaults)'}, seeds {args.seeds}")
    print("\n| model | seed | test accuracy | ECE | test NLL (nats) | epochs | train s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['kind']} | {r['seed']} | {r['accuracy']:.4f} | {r['ece']:.4f} | "
            f"{r['nll']:.2f} | {r['epochs']} | {r['train_s']:.0f} |"
        )
    for kind in dict.fromkeys(r["kind"] for r in rows):
        sub = [r for r in rows if r["kind"] == kind]
        acc = statistics.median(r["accuracy"] for r in sub)
        nll = statistics.median(r["nll"] for r in sub)
        print(f"| {kind}, median | | {acc:.4f} | | {nll:.2f} | | |")
    hyb = [r for r in rows if "digits" in r]
    if not hyb:
        return
    print(f"\ndecisions of dgm detect (log p(x) threshold keeps {args.keep:.0%} of validation)")
    print("\n| inputs | seed | confident | uncertain-label | uncertain-object |")
    print("|---|---|---|---|---|")
    for name in ("digits", "noise", "inverted"):
        for r in hyb:
            d = r[name]
            print(
                f"| {name} | {r['seed']} | {d['confident']:.1%} | {d['uncertain-label']:.1%} | "
                f"{d['uncertain-object']:.1%} |"
            )


if __name__ == "__main__":
    main()
