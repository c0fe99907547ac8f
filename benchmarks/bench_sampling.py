"""Benchmark: cached (incremental) vs uncached sampling of 64 MNIST-shaped images.

    OMP_NUM_THREADS=1 python benchmarks/bench_sampling.py                    # wavenet, 256 levels
    python benchmarks/bench_sampling.py --levels 2                           # binary MNIST
    python benchmarks/bench_sampling.py --model transformer-arm              # if it is installed
    python benchmarks/bench_sampling.py --run runs/my-wavenet                # a trained model

Times ``model.sample(n, cache=True)`` and ``model.sample(n, cache=False)`` for the model's
default config on shape (1, 28, 28) (untrained weights unless ``--run`` is given: the cost of
sampling does not depend on the weights), checks that both give the same samples for the same
seed, and prints one markdown table row with the medians and the speed-up. The issue's target:
cached >= 5x faster for 64 MNIST samples. Uncached sampling re-runs the network over the whole
prefix for each of the 784 pixels, which takes minutes on a CPU: hence its separate, smaller
repeat count.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads must not spin and skew timings

import argparse
import importlib
import importlib.util
import statistics
import time
from collections.abc import Callable

import torch

import dgm

MODULES = {
    "wavenet": "dgm.models.autoregressive.wavenet",
    "transformer-arm": "dgm.models.autoregressive.transformer_arm",
}


def build(name: str, levels: int, run: str | None, device: str) -> dgm.models.GenerativeModel:
    """The model to time: loaded from a run folder, or untrained with the default config."""
    module = MODULES[name]
    if importlib.util.find_spec(module) is None:
        raise SystemExit(f"{name}: module {module} is not installed (yet)")
    importlib.import_module(module)  # registers the model
    if run:
        model = dgm.load(run)
    else:
        torch.manual_seed(0)
        model = dgm.create(name, shape=(1, 28, 28), levels=levels)
    return model.to(device).eval()


def timed(fn: Callable[[], torch.Tensor], repeats: int, device: str) -> tuple[float, torch.Tensor]:
    """Median seconds over ``repeats`` calls (each seeded alike) and the last result."""
    times, out = [], torch.empty(0)
    for _ in range(repeats):
        torch.manual_seed(0)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="wavenet", choices=sorted(MODULES))
    p.add_argument("--levels", type=int, default=256, help="256 (categorical) or 2 (bernoulli)")
    p.add_argument("--run", default=None, help="time a trained model from this run folder")
    p.add_argument("-n", type=int, default=64, help="samples per call (default 64)")
    p.add_argument("--repeats", type=int, default=3, help="cached calls; the median is reported")
    p.add_argument("--uncached-repeats", type=int, default=1, help="uncached calls (slow)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--header", action="store_true", help="print the table header first")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    model = build(args.model, args.levels, args.run, args.device)
    fast, a = timed(lambda: model.sample(args.n, cache=True), args.repeats, args.device)
    slow, b = timed(lambda: model.sample(args.n, cache=False), args.uncached_repeats, args.device)
    same = "yes" if torch.equal(a, b) else "NO"
    rf = getattr(model, "receptive_field", "-")
    if args.header:
        print(
            "| model | levels | n | params | receptive field | device | threads "
            "| cached s | uncached s | speed-up | identical |"
        )
        print("|" + "---|" * 11)
    print(
        f"| {model.name} | {model.config.levels} | {args.n} | {model.num_parameters():,} | {rf} "
        f"| {args.device} | {torch.get_num_threads()} | {fast:.2f} | {slow:.2f} "
        f"| {slow / fast:.1f}x | {same} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
