"""Benchmark: the default comparison on digits, and how long it takes.

    python benchmarks/bench_compare.py digits [--budget 120] [--seeds 1] [--out DIR]
    python benchmarks/bench_compare.py demo [--clone DIR]

``digits`` runs ``dgm compare --data digits`` (one model per family, ``--budget`` seconds of
training each) and prints its table in markdown next to the figures the README's hand-made
tables give for the same models on digits (each measured by its own benchmark script, with
its own time cap), and the wall time of the whole command. ``demo`` times the README's first
command on a fresh clone of this repository: ``make demo`` with set-up (a new .venv, torch
and dgm installed from pip's cache) and, the .venv being there, the comparison alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _cli import dgm

ROOT = Path(__file__).resolve().parents[1]

# the README's hand-made figures on digits, by model: (test NLL nats, FD, where from)
README = {
    "arm": (80.11, 9.37, "bench_digits.py, early stopping at 58 s; FD from bench_sample_quality"),
    "realnvp": (88.92, None, "bench_digits.py, early stopping at 352 s (median of 3 seeds)"),
    "vae": (86.70, 12.44, "bench_vae_digits.py channels=16, K=5000, 59 s; FD: channels=16"),
    "gan": (None, 20.88, "bench_sample_quality.py, non-saturating, 90 s"),
    "vdm": (82.92, 5.99, "bench_diffusion.py, 594 s (early stopping), K=100"),
    "hybrid-vae": (89.17, None, "bench_hybrid.py, 28 s, K=1000; accuracy 94.0%"),
}


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def digits(args: argparse.Namespace) -> None:
    out = Path(args.out or f"runs/bench-compare-{args.budget:g}")
    cmd = ["compare", "--data", "digits", "--budget", f"{args.budget:g}", "--seeds",
           str(args.seeds), "--out", str(out)]  # fmt: skip
    t0 = time.perf_counter()
    # the comparison's own threads: one per training process, one per measuring process
    code, _, err = dgm(*cmd, threads=1)
    wall = time.perf_counter() - t0
    if code != 0:
        sys.exit(f"dgm compare failed ({code}): {err[-2000:]}")
    report = json.loads((out / "report.json").read_text())
    print(f"`dgm {' '.join(cmd)}`: {wall:.0f} s in all\n")
    print("| model | kind | test NLL (nats) | README | FD | README FD | precision | recall | "
          "ms / sample | train s | epochs | AUROC noise / inverted |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in report["models"]:
        m = {k: v["mean"] for k, v in r["metrics"].items()}
        sd = {k: v["std"] for k, v in r["metrics"].items()}
        nll = _fmt(m.get("nll_nats")) + (f" ± {sd['nll_nats']:.2f}" if sd.get("nll_nats") else "")
        ref = README.get(r["model"], (None, None, ""))
        kind = r["kind"] + (f", K={r['num_samples']}" if r.get("num_samples") else "")
        print(
            f"| {r['label']} | {kind} | {nll} | {_fmt(ref[0])} | {_fmt(m.get('fd'))} | "
            f"{_fmt(ref[1])} | {_fmt(m.get('precision'), '.3f')} | {_fmt(m.get('recall'), '.3f')}"
            f" | {_fmt(m.get('sample_ms'), '.3g')} | {_fmt(m.get('train_time_s'), '.0f')} | "
            f"{_fmt(m.get('epochs'), '.0f')} | {_fmt(m.get('auroc_noise'), '.3f')} / "
            f"{_fmt(m.get('auroc_inverted'), '.3f')} |"
        )
    print()
    for line in report["reading"]:
        print(f"- {line}")
    print("\nREADME figures: " + "; ".join(f"{k}: {v[2]}" for k, v in README.items()))
    print(f"report: {out / 'report.html'}; settings: {report['settings']}")


def demo(args: argparse.Namespace) -> None:
    clone = Path(args.clone or "/tmp/dgm-bench-demo")
    if clone.exists():
        shutil.rmtree(clone)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    if (ROOT.parent / "shared").is_dir() and not (clone.parent / "shared").exists():
        print("note: no ../shared beside the clone; digits are embedded, so none is needed")
    t0 = time.perf_counter()
    subprocess.run(["make", "demo"], cwd=clone, check=True, capture_output=True)
    with_setup = time.perf_counter() - t0
    shutil.rmtree(clone / "runs")
    t0 = time.perf_counter()
    subprocess.run(["make", "demo"], cwd=clone, check=True, capture_output=True)
    alone = time.perf_counter() - t0
    print(f"make demo on a fresh clone: {with_setup:.0f} s with set-up, {alone:.0f} s without")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    d = sub.add_parser("digits")
    d.add_argument("--budget", type=float, default=120.0)
    d.add_argument("--seeds", type=int, default=1)
    d.add_argument("--out", default=None)
    m = sub.add_parser("demo")
    m.add_argument("--clone", default=None)
    args = p.parse_args()
    digits(args) if args.what == "digits" else demo(args)


if __name__ == "__main__":
    main()
