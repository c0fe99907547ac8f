"""Benchmark: the audio models (issue 19) on the Free Spoken Digit Dataset's test takes.

    python benchmarks/bench_audio.py baselines                  # i.i.d. and linear prediction
    python benchmarks/bench_audio.py wavenet --max-time 1800    # conditional WaveNet
    python benchmarks/bench_audio.py vqvae --max-time 1800      # VQ-VAE with speaker swap
    python benchmarks/bench_audio.py speed                      # cached sampling, batch 1 / 16
    python benchmarks/bench_audio.py table                      # what has run, as tables

Runs train for ``--max-time`` seconds on one thread ("30 CPU-minutes" is ``--max-time 1800``),
are kept under ``--runs-dir`` and reused; each writes its scores to ``bench.json`` there. The
full GPU runs are the same ``dgm train`` with ``--epochs`` and ``--accelerator gpu`` (printed
with the table).

- ``baselines``: NLL of the test takes in bits per sample (8-bit mu-law, 256 levels) of two
  models computed here: the mu-law marginal of the training set (an i.i.d. model, add-one
  smoothing), and linear prediction: x_t predicted from the 32 amplitudes before it by least
  squares on the training set, the residual a Laplace density whose scale is fitted there too,
  each level's probability the residual's mass over that level's cell of amplitudes (the cells
  tile [-1, 1], so the 256 probabilities sum to 1).
- ``wavenet``: ``wavenet --set condition=digit``; bits per sample on the whole test takes
  (given the digit), and 100 conditional samples (10 per digit): the share dgm's audio feature
  network hears as the digit asked for, next to its accuracy on the real test takes; the
  Frechet distance of their features to the test takes'.
- ``vqvae``: ``vqvae`` (the audio model, 64x codes, speaker-conditioned decoder); the bound in
  bits per sample and its reconstruction part, the codebook's perplexity, and the speaker-swap
  accuracy of 60 converted test takes.
- ``speed``: samples per second of cached (Fast WaveNet) sampling of the default audio WaveNet,
  batch 1 and 16, against real time at 8 kHz (8000 samples per second per utterance).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads must not spin and skew timings

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from _cli import dgm_json, sets, train_once

ORDER = 32  # the linear predictor's taps
SWAP = 60  # converted test utterances


def _write(run: Path, scores: dict[str, Any]) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "bench.json").write_text(json.dumps(scores, indent=1))
    print(json.dumps(scores, indent=1), flush=True)


def baselines(runs: Path) -> dict[str, Any]:
    import numpy as np
    import torch

    from dgm.data import load_dataset
    from dgm.data.audio import decode

    ds = load_dataset("fsdd")

    def utterances(split: Any) -> list[np.ndarray]:
        return [split.x[i, : int(n)].numpy() for i, n in enumerate(split.lengths)]

    train, test = utterances(ds.train), utterances(ds.test)
    total = sum(len(u) for u in test)
    # the i.i.d. model: the training set's histogram of levels
    counts = np.bincount(np.concatenate(train).astype(int), minlength=256) + 1.0
    p = counts / counts.sum()
    iid = -sum(np.log2(p[u.astype(int)]).sum() for u in test) / total
    # linear prediction on amplitudes; each level's probability is the mass of a Laplace
    # residual over its cell: edges halfway between the decoded levels, the outer ones open
    amp = decode(torch.arange(256.0), "mulaw", 256).double().numpy()
    edges = np.concatenate([[-np.inf], (amp[1:] + amp[:-1]) / 2, [np.inf]])

    def frames(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = decode(torch.as_tensor(u), "mulaw", 256).double().numpy()
        padded = np.concatenate([np.zeros(ORDER), a])
        past = np.lib.stride_tricks.sliding_window_view(padded[:-1], ORDER)  # [L, ORDER]
        return past, a

    pairs = [frames(u) for u in train]
    past = np.concatenate([q for q, _ in pairs])
    target = np.concatenate([a for _, a in pairs])
    coef, *_ = np.linalg.lstsq(past, target, rcond=None)
    scale = np.abs(target - past @ coef).mean()  # the Laplace scale's maximum-likelihood value

    def laplace_cdf(z: np.ndarray) -> np.ndarray:
        return np.where(z < 0, 0.5 * np.exp(np.minimum(z, 0) / scale),
                        1 - 0.5 * np.exp(-np.maximum(z, 0) / scale))  # fmt: skip

    bits = 0.0
    for u in test:
        q, _ = frames(u)
        pred = q @ coef
        level = u.astype(int)
        mass = laplace_cdf(edges[level + 1] - pred) - laplace_cdf(edges[level] - pred)
        bits -= np.log2(np.maximum(mass, 1e-300)).sum()
    scores = {
        "test_samples": total,
        "iid_bits_per_sample": float(iid),
        "lpc_bits_per_sample": float(bits / total),
        "lpc_order": ORDER,
        "lpc_laplace_scale": float(scale),
    }
    _write(runs / "baselines", scores)
    return scores


def wavenet(runs: Path, max_time: float) -> dict[str, Any]:
    run = runs / "wavenet-digit"
    secs = train_once(run, "wavenet", "fsdd", "--max-time", max_time, *sets(["condition=digit"]))
    nll = dgm_json("eval", run, "--json")
    quality = dgm_json("eval", run, "--json", "--metrics", "accuracy,fd", "--num-generated", 100)
    scores = {"train_seconds": secs, **_results(run), **nll, **quality}
    _write(run, scores)
    return scores


def vqvae(runs: Path, max_time: float) -> dict[str, Any]:
    run = runs / "vqvae"
    secs = train_once(run, "vqvae", "fsdd", "--max-time", max_time)
    nll = dgm_json("eval", run, "--json")
    swap = dgm_json("eval", run, "--json", "--metrics", "swap")
    scores = {"train_seconds": secs, **_results(run), **nll, **swap}
    _write(run, scores)
    return scores


def _results(run: Path) -> dict[str, Any]:
    res = json.loads((run / "results.json").read_text())
    return {k: res.get(k) for k in ("parameters", "epochs", "receptive_field")}


def speed(runs: Path, seconds: float = 0.25) -> dict[str, Any]:
    import torch

    import dgm
    from dgm.data import load_dataset

    torch.set_num_threads(1)
    spec = load_dataset("fsdd").spec
    model = dgm.registry.get("wavenet").cls.for_data(spec, condition="digit").eval()
    length = int(seconds * spec.sample_rate)
    scores: dict[str, Any] = {"parameters": model.num_parameters(), "seconds_drawn": seconds,
                              "receptive_field": model.receptive_field}  # fmt: skip
    for batch in (1, 16):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            model.sample(batch, length=length, labels=7)
            times.append(time.perf_counter() - t0)
        t = sorted(times)[1]  # the median of 3
        rate = batch * length / t
        scores[f"batch{batch}_samples_per_s"] = round(rate, 1)
        scores[f"batch{batch}_x_real_time"] = round(rate / spec.sample_rate, 4)
    _write(runs / "speed", scores)
    return scores


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def table(runs: Path) -> None:
    def read(name: str) -> dict[str, Any]:
        path = runs / name / "bench.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    base, wn, vq, sp = read("baselines"), read("wavenet-digit"), read("vqvae"), read("speed")
    print("| model (FSDD test takes, 8-bit mu-law) | bits per sample |")
    print("|---|---|")
    print(
        f"| i.i.d. mu-law marginal of the training set | {_fmt(base.get('iid_bits_per_sample'))} |"
    )
    print(f"| linear prediction ({ORDER} taps, Laplace residual) | "
          f"{_fmt(base.get('lpc_bits_per_sample'))} |")  # fmt: skip
    if wn:
        print(f"| wavenet, condition=digit, {wn.get('epochs')} epochs on CPU | "
              f"{_fmt(wn.get('bits_per_sample'))} (given the digit) |")  # fmt: skip
    if vq:
        print(f"| vqvae (audio), {vq.get('epochs')} epochs on CPU | "
              f"<= {_fmt(vq.get('bits_per_sample'))} (bound; reconstruction "
              f"{_fmt(vq.get('recon_bits_per_sample'))}) |")  # fmt: skip
    if wn:
        print()
        print(f"conditional samples heard as the asked digit: {_fmt(wn.get('accuracy'))} "
              f"(the feature net on real test takes: {_fmt(wn.get('real_accuracy'))}); "
              f"FD {_fmt(wn.get('fd'), 2)}")  # fmt: skip
    if vq:
        print(f"vqvae: codebook perplexity {_fmt(vq.get('codebook_perplexity'), 1)} "
              f"({vq.get('codes_used')} codes used), speaker swap "
              f"{_fmt(vq.get('swap_accuracy'))} (real {_fmt(vq.get('real_speaker_accuracy'))}), "
              f"digit kept {_fmt(vq.get('swap_label_accuracy'))}")  # fmt: skip
    if sp:
        b1, b16 = sp["batch1_samples_per_s"], sp["batch16_samples_per_s"]
        print(
            f"sampling (cached, one CPU thread): batch 1 {b1} samples/s "
            f"({sp['batch1_x_real_time']}x real time), batch 16 {b16} samples/s "
            f"({sp['batch16_x_real_time']}x)"
        )
    print()
    print(
        "GPU: dgm train wavenet --data fsdd --set condition=digit --epochs 100 --accelerator "
        "gpu; dgm train vqvae --data fsdd --epochs 100 --accelerator gpu"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("suite", choices=["baselines", "wavenet", "vqvae", "speed", "table"])
    p.add_argument("--max-time", type=float, default=1800)
    p.add_argument("--runs-dir", type=Path, default=Path("runs/bench-audio"))
    a = p.parse_args()
    a.runs_dir.mkdir(parents=True, exist_ok=True)
    if a.suite == "baselines":
        baselines(a.runs_dir)
    elif a.suite == "wavenet":
        wavenet(a.runs_dir, a.max_time)
    elif a.suite == "vqvae":
        vqvae(a.runs_dir, a.max_time)
    elif a.suite == "speed":
        speed(a.runs_dir)
    else:
        table(a.runs_dir)


if __name__ == "__main__":
    main()
