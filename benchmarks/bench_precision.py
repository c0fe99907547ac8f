"""Benchmark: what ``--precision auto`` buys. Per family, one training step on MNIST batches
``[64, 1, 28, 28]`` (levels 0..255) in float32 and under bf16 autocast (what Lightning's
``bf16-mixed`` runs on the CPU: float32 weights and optimiser, bf16 matrix products), timed in
alternating order so machine load hits both alike; the median step time of each and their
ratio. Then the validation NLL (bits/dim, on 500 held-out images, scored in float32 as dgm
scores the kept weights) after the same seeded steps in each precision, side by side: the
speed-up is only worth having where the numbers agree.

Each family runs with the configuration ``dgm train MODEL`` gives it on 28x28 images
(``for_data``, so a flow's ``sized_defaults`` apply). Check ``lscpu`` before reading the ratios:
bf16 is fast only with AMX or AVX512-BF16 (the script prints which this CPU has)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_precision.py
    ... bench_precision.py --models realnvp vae --rounds 5 --nll-steps 100 --json out.json

MNIST comes from ``dgm.data`` (../shared/data or $DGM_DATA); ``--data random`` uses random
levels of the same shape for the timing alone (the NLL then means nothing and is skipped).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads must not spin and skew timings

import argparse
import json
import math
import statistics
import time

import torch

from dgm import registry
from dgm.data.base import DataSpec
from dgm.training.precision import fast_bf16

MODELS = ["realnvp", "glow", "pixelcnn", "vae", "arm"]


def _batches(data: str, n: int) -> tuple[DataSpec, torch.Tensor, torch.Tensor | None]:
    if data == "random":
        spec = DataSpec("random", (1, 28, 28), 256, 0.0, 255.0)
        return spec, torch.randint(0, 256, (n, 1, 28, 28)).float(), None
    from dgm.data import load_dataset

    d = load_dataset("mnist")
    return d.spec, d.train.x[:n], d.val.x[:500]


def _step(model, opt, x: torch.Tensor, bf16: bool) -> float:
    t = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model.loss(x)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return time.perf_counter() - t


def _fresh(name: str, spec: DataSpec):
    torch.manual_seed(0)
    model = registry.get(name).cls.for_data(spec).train()
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def bench(name: str, spec, x, val, rounds: int, steps: int, nll_steps: int) -> dict:
    models = {bf16: _fresh(name, spec) for bf16 in (False, True)}
    for bf16, (m, o) in models.items():  # warm-up: first-call allocations and kernel choice
        _step(m, o, x[:64], bf16)
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(rounds):
        for bf16 in (False, True) if r % 2 == 0 else (True, False):
            m, o = models[bf16]
            for s in range(steps):
                i = (r * steps + s) % (len(x) // 64)
                times[bf16].append(_step(m, o, x[64 * i : 64 * (i + 1)], bf16))
    f32, b16 = statistics.median(times[False]), statistics.median(times[True])
    row = {
        "model": name,
        "parameters": models[False][0].num_parameters(),
        "step_s_float32": round(f32, 4),
        "step_s_bf16": round(b16, 4),
        "speedup": round(f32 / b16, 2),
        "proven": registry.get(name).cls.bf16_proven,
    }
    if val is not None and nll_steps:
        for bf16 in (False, True):
            m, o = _fresh(name, spec)
            for s in range(nll_steps):
                i = s % (len(x) // 64)
                _step(m, o, x[64 * i : 64 * (i + 1)], bf16)
            m.eval()
            torch.manual_seed(1)
            with torch.no_grad():  # scored in float32, as dgm scores the kept weights
                nll = -m.log_prob(val).mean().item()
            row[f"val_bpd_{'bf16' if bf16 else 'float32'}"] = round(nll / (784 * math.log(2)), 4)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--data", choices=["mnist", "random"], default="mnist")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=3, help="timed steps per round and precision")
    p.add_argument("--nll-steps", type=int, default=50, help="seeded steps before the val NLL")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    args = p.parse_args()
    _, why = fast_bf16("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {why}", flush=True)
    spec, x, val = _batches(args.data, 64 * 16)
    rows = []
    for name in args.models:
        row = bench(name, spec, x, val, args.rounds, args.steps, args.nll_steps)
        rows.append(row)
        print(json.dumps(row), flush=True)
    head = (
        "| model | params | float32 s/step | bf16 s/step | speed-up | val bpd f32 | val bpd bf16 |"
    )
    print("\n" + head + "\n|" + "---|" * 7)
    for r in rows:
        print(
            f"| {r['model']} | {r['parameters']:,} | {r['step_s_float32']} | {r['step_s_bf16']} "
            f"| {r['speedup']}x | {r.get('val_bpd_float32', '-')} | {r.get('val_bpd_bf16', '-')} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu_bf16": why, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
