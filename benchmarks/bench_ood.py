"""Benchmark: out-of-distribution detection with every score, from one ``dgm ood`` command.

    python benchmarks/bench_ood.py                                  # Fashion-MNIST (in) vs MNIST
    python benchmarks/bench_ood.py --in digits --out noise inverted --model arm --set ...

Trains MODEL on --in (unless OUT/model already holds a finished run), and a background model of
the same kind on inputs with a share --perturb of their values replaced by random levels (Ren et
al. 2019; with --bg-weight-decay as their L2), then runs ``dgm ood RUN --in IN --out OUT
--background BG --json`` for each OUT and prints AUROC / AUPR / FPR95 of every score as a
markdown table. Published for Fashion-MNIST vs MNIST (Ren et al. 2019, PixelCNN++): raw
likelihood AUROC 0.089, likelihood ratio 0.994.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _cli import dgm_json, sets, train_once

# an MLP RealNVP: minutes per model on a 2-core CPU (the conv one takes hours on 28x28)
DEFAULT_SET = ["arch=mlp", "hidden=256", "dequantization=uniform", "patience=10"]


def train(run: Path, model: str, data: str, items: list[str], args: argparse.Namespace) -> float:
    flags = ["--seed", args.seed, "--epochs", args.epochs, "--batch-size", args.batch_size]
    if args.max_time:
        flags += ["--max-time", args.max_time]
    return train_once(run, model, data, *flags, *sets(items), threads=args.threads)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--in", dest="in_data", default="fashion-mnist")
    p.add_argument("--out-data", "--out", dest="out_data", nargs="+", default=["mnist"])
    p.add_argument("--model", default="realnvp")
    p.add_argument("--set", action="append", default=None, help="model/training option")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--max-time", type=float, default=0, help="training seconds per model")
    p.add_argument("--perturb", type=float, default=0.2, help="background: mutation rate")
    p.add_argument("--bg-weight-decay", type=float, default=0.0, help="background: L2")
    p.add_argument("--limit", type=int, default=0, help="score the first N test inputs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dir", type=Path, default=None, help="default runs/bench-ood-IN-MODEL")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    args = p.parse_args()
    items = DEFAULT_SET if args.set is None else args.set
    root = args.dir or Path(f"runs/bench-ood-{args.in_data}-{args.model}")
    fg, bg = root / "model", root / "background"
    t_fg = train(fg, args.model, args.in_data, items, args)
    bg_items = [*items, f"perturb={args.perturb}", f"weight_decay={args.bg_weight_decay}"]
    t_bg = train(bg, args.model, args.in_data, bg_items, args)
    res_fg = json.loads((fg / "results.json").read_text())
    nll, bpd = res_fg.get("test_nll_nats", float("nan")), res_fg.get("test_bpd", float("nan"))
    took = lambda t: "reused" if t != t else f"{t:.0f} s"  # noqa: E731 (nan: an earlier run)
    print(
        f"model: {args.model} {' '.join(items)}; {res_fg['epochs']} epochs ({took(t_fg)}), "
        f"test NLL {nll:.1f} nats ({bpd:.3f} bpd); background {took(t_bg)}",
        flush=True,
    )
    results = []
    for out in args.out_data:
        cmd = ["ood", fg, "--in", args.in_data, "--out", out, "--background", bg, "--json"]
        if args.limit:
            cmd += ["--limit", args.limit]
        t0 = time.perf_counter()
        res = dgm_json(*cmd, threads=args.threads)
        res["wall_s"] = round(time.perf_counter() - t0, 1)
        results.append(res)
        print(f"\n{args.in_data} (in, n={res['n_in']}) vs {out} (out, n={res['n_out']}), "
              f"{res['wall_s']:.0f} s; histograms {res['plot']}")  # fmt: skip
        print("| score | AUROC | AUPR | FPR95 |\n|---|---|---|---|")
        for name, m in res["scores"].items():
            best = " (best)" if name == res["best"] else ""
            print(f"| {name}{best} | {m['auroc']:.4f} | {m['aupr']:.4f} | {m['fpr95']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
