"""Benchmark: does ``dgm train gan`` learn the Gaussian-mixture toys with its defaults?

    python benchmarks/bench_gan_toy.py                                   # 8-gaussians, 4 objectives
    python benchmarks/bench_gan_toy.py --data 25-gaussians --objectives non-saturating
    python benchmarks/bench_gan_toy.py --seeds 0 1 2 --set pack=2

Each row is one ``dgm train gan --data DATA --seed S --set objective=O`` process on one
OpenMP thread, as a user runs it (the defaults otherwise, plus any --set), timed from start
to exit. The numbers are the run's own results.json: modes covered and the share of
high-quality samples on the test split (within 3 std of a mode; Srivastava et al. 2017; a mode
counts when at least a fifth of its share of the samples lands on it, as in PacGAN), the kept
epoch and its validation MMD (multi-scale; dgm.models.gan.measures). The targets (issue 15):
8-gaussians 8/8 modes and >= 80% high-quality within 120 s; 25-gaussians >= 24/25 and >= 80%
within 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli import dgm, sets

OBJECTIVES = ("minimax", "non-saturating", "wgan-gp", "hinge")
TARGETS = {"8-gaussians": (8, 0.8, 120.0), "25-gaussians": (24, 0.8, 600.0)}


def one(data: str, objective: str, seed: int, extra: list[str], out: Path) -> dict:
    run = out / f"{data}-{objective}-seed{seed}"
    flags = ["--seed", seed, "--overwrite", *sets([f"objective={objective}", *extra])]
    t0 = time.perf_counter()
    code, _, err = dgm("train", "gan", "--data", data, "--out", run, *flags)
    wall = time.perf_counter() - t0
    if code != 0:
        return {"objective": objective, "seed": seed, "error": err.strip()[-300:]}
    res = json.loads((run / "results.json").read_text())
    modes, hq, limit = TARGETS.get(data, (0, 0.0, float("inf")))
    ok = (
        res.get("test_modes_covered", -1) >= modes
        and res.get("test_high_quality", 0.0) >= hq
        and wall <= limit
    )
    return {
        "objective": objective,
        "seed": seed,
        "modes": f"{res.get('test_modes_covered')}/{res.get('test_modes_total')}",
        "high_quality": round(res.get("test_high_quality", float("nan")), 3),
        "val_mmd": round(res.get("val_mmd", float("nan")), 4),
        "kept_epoch": res.get("best_epoch"),
        "epochs": res.get("epochs"),
        "train_s": res.get("train_time_s"),
        "wall_s": round(wall, 1),
        "target": "met" if ok else "missed",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="8-gaussians")
    p.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=OBJECTIVES)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--set", nargs="*", default=[], help="more key=value for every run")
    p.add_argument("--out", type=Path, default=None, help="run folders (default: a temp dir)")
    args = p.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_gan_toy-"))
    cols = ("objective", "seed", "modes", "high_quality", "val_mmd", "kept_epoch", "epochs")
    cols += ("train_s", "wall_s", "target")
    extra = ", " + " ".join(args.set) if args.set else ""
    print(f"dgm train gan --data {args.data} (defaults{extra}); 1 thread")
    print(" | ".join(cols), flush=True)
    for objective in args.objectives:
        for seed in args.seeds:
            row = one(args.data, objective, seed, args.set, out)
            if "error" in row:
                print(f"{objective} | {seed} | error: {row['error']}", flush=True)
            else:
                print(" | ".join(str(row[c]) for c in cols), flush=True)


if __name__ == "__main__":
    main()
