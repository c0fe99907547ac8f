"""Benchmark: training steps per second of dgm's ``realnvp`` and ``glow`` against the same
architectures built from ``normflows`` (Stimper, Liu, Campbell, Nicoli, Guarino & Hernández-Lobato
2023, "normflows: A PyTorch Package for Normalizing Flows"), on MNIST batches ``[128, 1, 28, 28]``
of levels 0..255: uniform dequantisation, preprocessing, forward, backward and an Adam step.

normflows is NOT a dependency of dgm: run this under a scratch venv that has both::

    python3.11 -m venv /work/scratch/nfvenv
    /work/scratch/nfvenv/bin/pip install torch==2.13.0          # pinned: the local CPU wheel
    /work/scratch/nfvenv/bin/pip install --no-deps normflows==1.7.3   # imports torch + numpy only
    /work/scratch/nfvenv/bin/pip install numpy scipy lightning safetensors scikit-learn \\
        matplotlib pillow pyyaml tqdm torch==2.13.0                 # dgm's deps, torch kept pinned
    /work/scratch/nfvenv/bin/pip install --no-deps -e /work/main

    OMP_NUM_THREADS=1 /work/scratch/nfvenv/bin/python benchmarks/bench_flow_speed.py
    ... bench_flow_speed.py --models glow --steps 10 --rounds 5 --json out.json
    ... bench_flow_speed.py --profile 5          # also where dgm's time goes (cProfile + torch)

Equal architecture (checked by printing both parameter counts):

- glow: ``scales=2`` (28 -> 14 -> 7), per scale squeeze, ``K`` x (actnorm, LU 1x1 conv, affine
  channel coupling whose net is 3x3 -> 1x1 -> 3x3 convs of ``H`` channels with ReLUs), factor out
  half the channels. normflows: ``nf.flows.GlowBlock`` (its default Glow scale map
  ``sigmoid(s + 2)``; ours is ``exp(2 tanh(s / 2))``: both one elementwise map),
  ``nf.flows.Squeeze``, ``nf.MultiscaleFlow``. normflows' split prior (``GlowBase``) is an
  unconditional per-channel Gaussian, ours a coupling given the kept half, so both sides run
  WITHOUT one (``split_prior=false``; fixed ``DiagGaussian`` bases on theirs, a standard normal
  on ours).
- realnvp: ``arch=conv, scales=2, blocks=0``: on 1x28x28 three checkerboard affine couplings,
  squeeze, three channel couplings, factor out half; on 2x14x14 four checkerboard couplings;
  an actnorm after every coupling; each coupling net the same 3x3 -> 1x1 -> 3x3 convs. normflows:
  ``nf.flows.AffineCouplingBlock`` (split modes ``checkerboard[_inv]`` / ``channel[_inv]``, scale
  map ``exp`` as in RealNVP; ours soft-clamps the log-scale with a tanh), ``nf.flows.ActNorm``,
  ``nf.flows.Squeeze`` and ``nf.transforms.Logit(0.05)`` (the same logit preprocessing as ours).
  normflows' checkerboard split GATHERS the kept pixels into a ``[B, C, H, W/2]`` tensor and
  runs the coupling net on that, so ``realnvp`` runs ours with ``checkerboard=packed`` (the
  same); ``realnvp-mask`` runs both on the masked full ``[B, C, H, W]`` image (RealNVP's own
  formulation, our default), normflows through a small masked coupling written here.

Coupling nets: ``--conditioner native`` (default) gives normflows its own ``nf.nets.ConvNet2d``
(the same layers: Conv2d 3x3, LeakyReLU(0) = ReLU, Conv2d 1x1, ReLU, Conv2d 3x3);
``--conditioner shared`` puts dgm's ``ConvConditioner`` into normflows' couplings, so both sides
run the very same module class.

Data: the first ``--batches`` x 128 MNIST training images (from ``dgm.data``), or with
``--data random`` uniform random levels of the same shape (speed does not depend on the values).
Dequantisation ``u ~ U[0, 1)`` and the preprocessing (``v - 1/2`` for glow, the logit for
realnvp) happen inside both timed steps. Timing: ``--rounds`` rounds; in each, ``--steps`` timed
steps of ours and of theirs, in alternating order, so machine load hits both alike; the median
over rounds of steps/s is reported. dgm stores its coupling nets' conv weights channels-last
by default (oneDNN's CPU convolutions run much faster in that layout); ``--channels-last``
converts normflows' too, to separate that layout choice from the rest.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads must not spin and skew timings

import argparse
import json
import math
import statistics
import sys
import warnings
from typing import Any

import torch
from side_by_side import Side, profile_side, seconds_per_step
from torch import Tensor, nn

import dgm
from dgm.nn.conv import ConvConditioner

try:
    import normflows as nf
except ImportError:  # pragma: no cover - the point of the scratch venv
    sys.exit("normflows is not installed: see this script's docstring for the scratch venv")

SHAPE = (1, 28, 28)
LEVELS = 256
ALPHA = 0.05  # RealNVP's logit margin, the same on both sides


# -- theirs: the same architectures from normflows' parts -----------------------------------
def _net(c_in: int, c_out: int, hidden: int, conditioner: str) -> nn.Module:
    """A coupling net 3x3 -> 1x1 -> 3x3 of ``hidden`` channels, ReLUs between."""
    if conditioner == "shared":
        return ConvConditioner(c_in, c_out, hidden, blocks=0)
    return nf.nets.ConvNet2d((c_in, hidden, hidden, c_out), (3, 1, 3), 0.0, init_zeros=True)


def _nf_coupling(ch: int, hidden: int, mode: str, scale_map: str, conditioner: str) -> nn.Module:
    if mode.startswith("checkerboard"):
        c_in, c_out = ch, 2 * ch
    elif mode == "channel":
        c_in, c_out = (ch + 1) // 2, 2 * (ch // 2)
    else:  # channel_inv
        c_in, c_out = ch // 2, 2 * ((ch + 1) // 2)
    return nf.flows.AffineCouplingBlock(
        _net(c_in, c_out, hidden, conditioner), True, scale_map, mode
    )


def nf_glow(steps: int, hidden: int, conditioner: str) -> nf.MultiscaleFlow:
    """normflows' Glow, two scales on 1x28x28; level 0 is the deepest (normflows' order)."""
    flows, bases, merges = [], [], []
    for level, (ch, hw) in enumerate([(8, 7), (4, 14)]):  # channels after each squeeze
        blocks: list[nn.Module] = []
        for _ in range(steps):
            block = nf.flows.GlowBlock(
                ch, hidden, scale=True, scale_map="sigmoid", split_mode="channel", leaky=0.0,
                init_zeros=True, use_lu=True,
            )  # fmt: skip
            if conditioner == "shared":
                block.flows[0].flows[1].param_map = _net(ch // 2, ch, hidden, conditioner)
            blocks.append(block)
        # generative order: blocks then the squeeze's inverse (depth to space)
        flows.append([*blocks, nf.flows.Squeeze()])
        # the deepest level keeps all 8 channels; the top one factors out 2 of its 4
        bases.append(nf.distributions.DiagGaussian((ch if level == 0 else ch // 2, hw, hw), False))
        if level > 0:
            merges.append(nf.flows.Merge())
    return nf.MultiscaleFlow(bases, flows, merges, class_cond=False)


class MaskedCheckerboardCoupling(nf.flows.Flow):
    """RealNVP's own checkerboard coupling in normflows' Flow API (not part of normflows): the
    net sees the masked full image ``x * b`` and the kept pixels pass unchanged, as in dgm, so
    both sides do the same convolution work (normflows' ``checkerboard`` split instead gathers
    the kept pixels into a half-width image). The arithmetic is normflows' ``AffineCoupling``
    with the ``exp`` scale map."""

    def __init__(self, net: nn.Module, ch: int, hw: int, inv: bool) -> None:
        super().__init__()
        self.net = net
        board = (torch.arange(hw)[:, None] + torch.arange(hw)[None, :]) % 2 == int(inv)
        self.register_buffer("b", board.expand(ch, hw, hw).float()[None])  # [1, C, H, W]

    def _params(self, z: Tensor) -> tuple[Tensor, Tensor]:
        param = self.net(z * self.b)  # [B, 2C, H, W]: normflows' interleaved shift / scale
        return param[:, 0::2], param[:, 1::2] * (1 - self.b)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:  # generative direction
        shift, scale = self._params(z)
        return z * torch.exp(scale) + shift * (1 - self.b), scale.sum(dim=(1, 2, 3))

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:  # density direction
        shift, scale = self._params(z)
        return (z - shift * (1 - self.b)) * torch.exp(-scale), -scale.sum(dim=(1, 2, 3))


def nf_realnvp(hidden: int, conditioner: str, masked: bool = False) -> nf.MultiscaleFlow:
    """normflows' RealNVP, two scales on 1x28x28, built in the density direction and then
    reversed into normflows' generative order. ``masked``: full-image checkerboard couplings
    (:class:`MaskedCheckerboardCoupling`) in place of normflows' gathering ones."""

    def couplings(ch: int, n: int, mask: str, hw: int) -> list[nn.Module]:
        out: list[nn.Module] = []
        for i in range(n):
            mode = mask + ("_inv" if i % 2 == 1 else "")
            if masked and mask == "checkerboard":
                net = _net(ch, 2 * ch, hidden, conditioner)
                out += [MaskedCheckerboardCoupling(net, ch, hw, i % 2 == 1)]
            else:
                out += [_nf_coupling(ch, hidden, mode, "exp", conditioner)]
            out += [nf.flows.ActNorm((ch, 1, 1))]
        return out

    # density direction: x -> z
    top = [
        *couplings(1, 3, "checkerboard", 28),
        nf.flows.Squeeze(),
        *couplings(4, 3, "channel", 14),
    ]
    deep = couplings(2, 4, "checkerboard", 14)
    # a Squeeze in the list runs its inverse (space to depth) on the density pass: correct as
    # is; every other flow here is written data -> noise via its ``inverse`` by MultiscaleFlow,
    # so the couplings/actnorms must be listed generative-first, i.e. reversed
    flows = [list(reversed(deep)), list(reversed(top))]
    bases = [
        nf.distributions.DiagGaussian((2, 14, 14), False),  # the deepest scale's output
        nf.distributions.DiagGaussian((2, 14, 14), False),  # the top scale's factored half
    ]
    return nf.MultiscaleFlow(
        bases, flows, [nf.flows.Merge()], transform=nf.transforms.Logit(ALPHA), class_cond=False
    )


# -- ours -----------------------------------------------------------------------------------
DGM_NAME = {"glow": "glow", "realnvp": "realnvp", "realnvp-mask": "realnvp"}


def dgm_config(name: str, steps: int, hidden: int) -> dict[str, Any]:
    common = {"shape": SHAPE, "levels": LEVELS, "dequantization": "uniform", "hidden": hidden}
    if name == "glow":
        return {**common, "steps": steps, "scales": 2, "split_prior": False, "lu": True,
                "coupling": "affine", "preprocess": "center", "activation": "relu"}  # fmt: skip
    # realnvp: normflows' checkerboard couplings gather the kept pixels, so ours packs too;
    # realnvp-mask: both run the nets on the masked full image (RealNVP's own formulation)
    packing = "packed" if name == "realnvp" else "masked"
    return {**common, "arch": "conv", "scales": 2, "blocks": 0, "actnorm": True,
            "preprocess": "logit", "alpha": ALPHA, "activation": "relu",
            "checkerboard": packing}  # fmt: skip


def build(name: str, steps: int, hidden: int, conditioner: str, seed: int) -> tuple[Side, Side]:
    """``name``: glow, realnvp, or realnvp-mask (dgm's realnvp against normflows' RealNVP with
    full-image masked checkerboard couplings: equal convolution work)."""
    torch.manual_seed(seed)
    ours = dgm.create(DGM_NAME[name], **dgm_config(name, steps, hidden)).train()
    torch.manual_seed(seed)
    if name == "glow":
        theirs = nf_glow(steps, hidden, conditioner).train()
    else:
        theirs = nf_realnvp(hidden, conditioner, masked=name == "realnvp-mask").train()
    offset = math.prod(SHAPE) * math.log(LEVELS)  # D log L: the same bound as ours

    def their_nll(x: Tensor) -> Tensor:
        v = (x + torch.rand_like(x)) / LEVELS  # uniform dequantisation, as ours
        y = v - 0.5 if name == "glow" else v  # realnvp: the Logit transform inside the model
        return offset - theirs.log_prob(y, None).mean()

    return (
        Side("dgm", ours, lambda x: ours.loss((x, None))),
        Side("normflows", theirs, their_nll),
    )


def load_batches(kind: str, n: int, batch: int) -> list[Tensor]:
    if kind == "mnist":
        from dgm.data import load_dataset

        x = load_dataset("mnist").train.x[: n * batch].float()  # [n * batch, 1, 28, 28]
    else:
        x = torch.randint(
            0, LEVELS, (n * batch, *SHAPE), generator=torch.Generator().manual_seed(0)
        )
        x = x.float()
    return list(x.split(batch))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--models",
        nargs="+",
        default=["realnvp", "glow"],
        choices=sorted(DGM_NAME),
        help="realnvp-mask: normflows' RealNVP with full-image checkerboard couplings",
    )
    p.add_argument("--steps", type=int, default=5, help="timed steps per side per round")
    p.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per side first")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--hidden", type=int, default=128, help="channels of the coupling nets (H)")
    p.add_argument("--glow-steps", type=int, default=8, help="glow: flow steps per scale (K)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--batches", type=int, default=4, help="distinct batches, cycled")
    p.add_argument("--data", default="mnist", choices=["mnist", "random"])
    p.add_argument("--conditioner", default="native", choices=["native", "shared"])
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="store both models' conv weights channels-last (oneDNN's faster layout on CPU)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", type=int, default=0, help="then profile N steps of ours")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args()
    # normflows' LU 1x1 convolution calls the deprecated torch.lu at construction
    warnings.filterwarnings("ignore", message="torch.lu is deprecated")
    torch.set_num_threads(args.threads)
    batches = load_batches(args.data, args.batches, args.batch)
    bpd = math.prod(SHAPE) * math.log(2)  # nats per example -> bits per dimension

    rows = []
    for name in args.models:
        ours, theirs = build(name, args.glow_steps, args.hidden, args.conditioner, args.seed)
        if args.channels_last:  # the same for both: only 4-d tensors (conv weights) change
            for s in (ours, theirs):
                s.model.to(memory_format=torch.channels_last)
        first = {s.label: s.step(batches[0]) / bpd for s in (ours, theirs)}  # actnorm init
        for s in (ours, theirs):
            for i in range(args.warmup):
                s.step(batches[(i + 1) % len(batches)])
        rates: dict[str, list[float]] = {ours.label: [], theirs.label: []}
        for r in range(args.rounds):
            order = (ours, theirs) if r % 2 == 0 else (theirs, ours)
            for s in order:
                rates[s.label].append(1 / seconds_per_step(s, batches, args.steps, r * args.steps))
        med = {k: statistics.median(v) for k, v in rates.items()}
        row = {
            "model": name,
            "config": dgm_config(name, args.glow_steps, args.hidden),
            "dgm_steps_per_s": med["dgm"],
            "normflows_steps_per_s": med["normflows"],
            "ratio": med["dgm"] / med["normflows"],
            "dgm_params": ours.params,
            "normflows_params": theirs.params,
            "first_loss_bpd": first,
            "rates": rates,
        }
        rows.append(row)
        print(f"# {name}: {rates}", file=sys.stderr, flush=True)
        if args.profile > 0:
            print(f"\n## profile of dgm {name}, {args.profile} steps\n", file=sys.stderr)
            print(profile_side(ours, batches, args.profile), file=sys.stderr, flush=True)

    print(
        f"\nbatch {args.batch} x {SHAPE}, {args.data} data, {args.threads} thread(s), "
        f"H={args.hidden}, glow K={args.glow_steps}, conditioner={args.conditioner}, "
        f"channels_last={args.channels_last}, "
        f"median of {args.rounds} rounds x {args.steps} steps, torch {torch.__version__}\n"
    )
    print("| model | dgm steps/s | normflows steps/s | dgm / normflows | dgm params | "
          "normflows params | first loss (bpd) dgm / nf |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        f = r["first_loss_bpd"]
        print(
            f"| {r['model']} | {r['dgm_steps_per_s']:.3f} | {r['normflows_steps_per_s']:.3f} | "
            f"{r['ratio']:.2f}x | {r['dgm_params']:,} | {r['normflows_params']:,} | "
            f"{f['dgm']:.2f} / {f['normflows']:.2f} |"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
