"""Benchmark: the diffusion family against issue 17's targets.

    python benchmarks/bench_diffusion.py digits                # NLL and FD after 20 minutes
    python benchmarks/bench_diffusion.py toy                   # 25-gaussians modes, defaults
    python benchmarks/bench_diffusion.py mnist --minutes 30    # vdm bits/dim next to glow
    python benchmarks/bench_diffusion.py speed                 # sampling and likelihood time

- ``digits``: each model trains with its defaults for ``--minutes`` (20) of wall time on one
  OpenMP thread (``--jobs`` at once), then ``dgm eval --json`` gives the test NLL with the
  model's own K and the note that says what the number is, and the Frechet distance,
  precision and recall of 447 samples in the features of dgm's digits classifier (one net for
  every row, trained once in OUT/features). Target: the best NLL <= 85 nats and an FD below
  every other family's in the README's sample-quality table (best there: arm 9.37).
- ``toy``: ``flow-matching`` and ``ddpm`` with their defaults on 25-gaussians: modes covered
  and the share of high-quality samples (within 3 std of a mode; Srivastava et al. 2017).
  Target: 25 / 25 and >= 90%.
- ``mnist``: ``vdm`` and ``glow`` for the same ``--minutes`` each: test bits/dim on the first
  ``--limit`` (2000) test images.
- ``speed``: seconds to draw 64 digits for every sampler at several step counts, and the
  seconds per image of the ODE likelihood, from the digits runs (trained by ``digits``).
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli import dgm_json, sets, train_once

MODELS = ("ddpm", "vdm", "score-sde", "flow-matching")
SAMPLERS = {
    "ddpm": [("ancestral", 1000), ("ancestral", 100), ("ddim", 100), ("ddim", 50), ("ddim", 10)],
    "vdm": [("ancestral", 1000), ("ancestral", 100), ("ancestral", 50)],
    "score-sde": [("euler-maruyama", 1000), ("pc", 500), ("ode", 1), ("rk4", 25)],
    "flow-matching": [("ode", 1), ("euler", 100), ("midpoint", 50), ("rk4", 10)],
}


def digits(args: argparse.Namespace) -> None:
    from dgm.data import load_dataset
    from dgm.evaluation.features import feature_net_for

    out = args.out / "digits"
    data = load_dataset("digits")
    net = feature_net_for(data, out / "features")
    print(f"features: {net.describe()}", flush=True)

    def one(model: str) -> dict:
        run = out / model
        flags = ["--max-time", args.minutes * 60, "--epochs", 100_000, *sets(args.set)]
        wall = train_once(run, model, "digits", *flags)
        nll = dgm_json("eval", run, "--json")
        quality = dgm_json(
            "eval", run, "--json", "--metrics", "fd,precision,recall,classes",
            "--features", out / "features",
        )  # fmt: skip
        return {"model": model, "wall": wall, **nll, **quality}

    print("| model | test NLL (nats) | bpd | what the number is | FD | precision | recall | "
          "classes | train s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    with ThreadPoolExecutor(args.jobs) as pool:
        for r in pool.map(one, args.models):
            c = r["classes"]
            print(
                f"| {r['model']} | {r['nll_nats']:.2f} | {r['bpd']:.3f} | {r['estimate']} | "
                f"{r['fd']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} | "
                f"{c['classes_covered']} / {c['classes_total']} | {r['wall']:.0f} |",
                flush=True,
            )


def toy(args: argparse.Namespace) -> None:
    models = [m for m in args.models if m in ("flow-matching", "ddpm")] or ["flow-matching"]

    def one(model: str) -> dict:
        run = args.out / "25-gaussians" / model
        wall = train_once(run, model, "25-gaussians", *sets(args.set))
        return {
            "model": model,
            "wall": wall,
            **dgm_json("eval", run, "--json", "--metrics", "modes"),
        }

    print("| model | modes covered | high-quality samples | train s |")
    print("|---|---|---|---|")
    with ThreadPoolExecutor(args.jobs) as pool:
        for r in pool.map(one, models):
            print(f"| {r['model']} | {r['modes_covered']} / {r['modes_total']} | "
                  f"{r['high_quality']:.1%} | {r['wall']:.0f} |", flush=True)  # fmt: skip


def mnist(args: argparse.Namespace) -> None:
    def one(model: str) -> dict:
        run = args.out / "mnist" / model
        # epochs of 100 batches: a full MNIST epoch is ~800 steps, longer than the budget for
        # vdm on CPU, and Lightning's max_time stopping before the first validation keeps
        # no checkpoint
        flags = ["--max-time", args.minutes * 60, "--epochs", 100_000]
        flags += ["--set", "test=false", "--set", "epoch_batches=100"]
        wall = train_once(run, model, "mnist", *flags, *sets(args.set))
        # the first --limit test images: K = 100 draws of t on all 10,000 28x28 images is an
        # hour of CPU; the vdm's K is its min_eval_samples (10), glow's its one draw of u
        ev = ["eval", run, "--json", "--limit", args.limit]
        if model == "vdm":
            ev += ["--num-samples", 10]
        return {"model": model, "wall": wall, **dgm_json(*ev)}

    print("| model | test bits/dim | what the number is | train s |")
    print("|---|---|---|---|")
    with ThreadPoolExecutor(args.jobs) as pool:
        for r in pool.map(one, ["vdm", "glow"]):
            print(f"| {r['model']} | {r['bpd']:.3f} | {r['estimate']} | {r['wall']:.0f} |",
                  flush=True)  # fmt: skip


def speed(args: argparse.Namespace) -> None:
    import torch

    import dgm
    from dgm.data import load_dataset

    torch.set_num_threads(1)
    x = load_dataset("digits").test.x[:64]
    print("| model | sampler | steps | s per 64 digits |")
    print("|---|---|---|---|")
    for model in args.models:
        run = args.out / "digits" / model
        if not (run / "model.safetensors").is_file():
            print(f"| {model} | (no run: `bench_diffusion.py digits` first) | | |")
            continue
        m = dgm.load(run)
        for sampler, steps in SAMPLERS[model]:
            torch.manual_seed(0)
            t0 = time.perf_counter()
            m.sample(64, steps=steps, sampler=sampler)
            print(f"| {model} | {sampler} | {steps} | {time.perf_counter() - t0:.2f} |",
                  flush=True)  # fmt: skip
    print("\n| model | log_prob of 64 digits: s per image | what |")
    print("|---|---|---|")
    for model in args.models:
        run = args.out / "digits" / model
        if not (run / "model.safetensors").is_file():
            continue
        m = dgm.load(run)
        k = m.default_eval_samples
        t0 = time.perf_counter()
        m.log_prob(x, num_samples=k) if not m.exact_likelihood else m.log_prob(x)
        per = (time.perf_counter() - t0) / len(x)
        print(f"| {model} | {per:.3f} | {m.likelihood_note(k)} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("what", choices=("digits", "toy", "mnist", "speed"))
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--minutes", type=float, default=20.0, help="training wall minutes per model")
    p.add_argument("--jobs", type=int, default=2, help="models trained at once (one thread each)")
    p.add_argument("--set", action="append", default=[], help="option for every model")
    p.add_argument("--limit", type=int, default=2000, help="mnist: test images scored")
    p.add_argument("--out", type=Path, default=Path("runs/bench-diffusion"))
    args = p.parse_args()
    {"digits": digits, "toy": toy, "mnist": mnist, "speed": speed}[args.what](args)


if __name__ == "__main__":
    main()
