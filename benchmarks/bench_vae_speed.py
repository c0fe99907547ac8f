"""Benchmark: dgm's ``vae`` against the same models built with ``pythae`` (Chadebec, Vincent &
Allassonnière 2022, "Pythae: Unifying Generative Autoencoders in Python"), on statically
binarised MNIST ``[100, 1, 28, 28]`` with a Bernoulli likelihood:

1. training speed: forward, backward and an Adam(1e-3) step, converted to seconds per epoch
   (50,000 images / batch size steps), for a plain VAE (Kingma & Welling 2014, standard
   normal prior, diagonal Gaussian posterior) and a VampPrior VAE (Tomczak & Welling 2018,
   "VAE with a VampPrior"; pythae's ``VAMP``);
2. whole epochs through each library's own trainer (``--epochs N``): ``dgm.pipeline.train``
   (Lightning, data held as one tensor, batches by index, validation every epoch, EMA of the
   weights, checkpoints) against pythae's ``TrainingPipeline`` (a per-item DataLoader,
   validation every epoch, a copy of the best model), both on all 50,000 training and 10,000
   validation images;
   the median seconds per epoch after the first (train + validation) is reported;
3. the importance-sampled NLL (Burda et al. 2016) with K = 5000 samples: dgm's
   ``evaluate_nll`` (what ``dgm eval`` runs) and pythae's ``get_nll``, timed on a subset of the
   test images and extrapolated to all 10,000.

pythae is NOT a dependency of dgm: run this under a scratch venv that has both::

    python3.11 -m venv /work/scratch/pyvenv
    /work/scratch/pyvenv/bin/pip install torch==2.13.0           # FIRST: the local CPU wheel
    /work/scratch/pyvenv/bin/pip install --no-deps pythae          # 0.1.2; never its torch pin
    /work/scratch/pyvenv/bin/pip install pydantic cloudpickle imageio numpy scipy \\
        scikit-learn tqdm typing-extensions lightning safetensors matplotlib pillow pyyaml \\
        torch==2.13.0                      # pythae's light deps + dgm's deps, torch kept pinned
    /work/scratch/pyvenv/bin/pip install --no-deps -e /work/main

    OMP_NUM_THREADS=1 /work/scratch/pyvenv/bin/python benchmarks/bench_vae_speed.py
    ... bench_vae_speed.py --models vae --steps 20 --rounds 5 --nll-images 20 --json out.json
    ... bench_vae_speed.py --profile 20     # also where dgm's training step spends its time
    ... bench_vae_speed.py --epochs 4 --steps 0 --nll-images 0   # whole epochs, own trainers

Equal architecture (dgm ``vae`` with ``backbone=mlp, levels=2``; the script prints both
parameter counts and checks that both losses agree on the same weights and noise):

- encoder: the example flattened to 784 values, scaled ``2x - 1`` to [-1, 1] (dgm's
  preprocessing of discrete levels; inside pythae's encoder module here), ``layers`` x
  (Linear(., H), ReLU), then ONE Linear(H, 2K) whose halves are the mean and the raw scale;
  sigma = softplus(raw) (dgm's parameterisation: pythae's encoder returns
  ``log_covariance = 2 log softplus(raw)``, so pythae's ``exp(0.5 log_var)`` is the same sigma);
- decoder: ``layers`` x (Linear(., H), ReLU) from z, then Linear(H, 784): dgm's Bernoulli
  likelihood reads logits (``binary_cross_entropy_with_logits``), pythae's ``bce`` loss needs
  probabilities, so its decoder ends in a sigmoid (``binary_cross_entropy``);
- vae: standard normal prior, analytic KL on both sides;
- vamp: C pseudo-inputs; the prior is the mixture of the encoder's Gaussians at them (both run
  the encoder on the C pseudo-inputs every step), one-sample Monte Carlo KL on both sides.
  Parameterisation differs: dgm holds the pseudo-inputs directly (``[C, 1, 28, 28]`` through a
  hardtanh to [-1, 1]); pythae computes them as ``hardtanh_[0,1](Linear(C, 784)(I_C))``, the
  VampPrior paper's code, so it has 784 more parameters (the bias) and does a ``[C, C] x [C,
  784]`` matmul (and its weight gradient) per step. ``vamp-direct`` swaps pythae's pseudo-input
  network for a directly held parameter like dgm's, to separate that choice from the rest.
  For the equality check pythae's weight is set to dgm's pseudo-inputs mapped to [0, 1] and its
  bias to 0.

Both models start from the same weights (pythae's copied from dgm's). Timing: ``--rounds``
rounds; in each, ``--steps`` training steps of each side in alternating order, so machine load
hits all alike; the median over rounds is reported. Batches cycle over the first
``--batches`` x ``--batch`` training images.

NLL: dgm runs ``dgm.evaluation.likelihood.evaluate_nll(model, x, num_samples=K)`` (no_grad,
``--nll-chunk`` decoded rows per pass, dgm's ``CHUNK`` = 2^14 by default); pythae runs
``get_nll(x, n_samples=K, batch_size=...)`` under ``torch.no_grad()`` (it loops over images,
encoding ``batch_size`` copies of each per pass; VAMP re-encodes the pseudo-inputs per pass).
Both on the same ``--nll-images`` test images and the same (initial, copied) weights, before
any training step, so the two estimates must agree up to Monte Carlo error.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads must not spin and skew timings

import argparse
import contextlib
import io
import itertools
import json
import math
import statistics
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from side_by_side import Side, profile_side, seconds_per_step
from torch import Tensor, nn

import dgm
from dgm.evaluation.likelihood import evaluate_nll
from dgm.models.latent.vae import CHUNK

try:
    from pythae.models import VAE as PVAE
    from pythae.models import VAMP, VAMPConfig
    from pythae.models import VAEConfig as PVAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
except ImportError:  # pragma: no cover - the point of the scratch venv
    sys.exit("pythae is not installed: see this script's docstring for the scratch venv")

SHAPE = (1, 28, 28)
DIM = math.prod(SHAPE)
TRAIN_SIZE = 50_000  # static MNIST's training split: one epoch
TEST_SIZE = 10_000
MODELS = ("vae", "vamp", "vamp-direct")


# -- theirs: the same networks as pythae modules ----------------------------------------------
def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear -> ReLU for every consecutive pair, as dgm's ``dgm.models.latent.networks._mlp``."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class Encoder(BaseEncoder):
    """dgm's MLPEncoder + GaussianPosterior head: ``[B, 1, 28, 28] in [0, 1] -> (mu, log var)``."""

    def __init__(self, hidden: int, layers: int, latent: int) -> None:
        BaseEncoder.__init__(self)
        self.net = _mlp([DIM] + [hidden] * layers)
        self.head = nn.Linear(hidden if layers > 0 else DIM, 2 * latent)

    def forward(self, x: Tensor) -> ModelOutput:
        h = self.net((2.0 * x - 1.0).flatten(1))  # [B, H]; dgm's levels -> [-1, 1]
        mu, raw = self.head(h).chunk(2, dim=-1)  # [B, K] each
        # sigma = softplus(raw) as dgm's posterior; pythae takes log sigma^2
        return ModelOutput(embedding=mu, log_covariance=2.0 * torch.log(F.softplus(raw)))


class Decoder(BaseDecoder):
    """dgm's MLPDecoder, ending in a sigmoid (pythae's ``bce`` reads probabilities)."""

    def __init__(self, hidden: int, layers: int, latent: int) -> None:
        BaseDecoder.__init__(self)
        self.body = _mlp([latent] + [hidden] * layers)
        self.last = nn.Linear(hidden if layers > 0 else latent, DIM)

    def forward(self, z: Tensor) -> ModelOutput:
        out = torch.sigmoid(self.last(self.body(z)))  # [B, 784]
        return ModelOutput(reconstruction=out.view(z.shape[0], *SHAPE))


class DirectPseudo(nn.Module):
    """Pseudo-inputs held directly (as dgm does), in pythae's ``pseudo_inputs(I_C)`` slot: it
    ignores the identity matrix and returns ``hardtanh_[0,1](u)`` ``[C, 784]``."""

    def __init__(self, u: Tensor) -> None:
        super().__init__()
        self.u = nn.Parameter(u.clone())  # [C, 784] in [0, 1] units

    def forward(self, eye: Tensor) -> Tensor:
        return F.hardtanh(self.u, 0.0, 1.0)


def _copy(dst: nn.Module, src: nn.Module) -> None:
    with torch.no_grad():
        for a, b in zip(dst.parameters(), src.parameters(), strict=True):
            a.copy_(b)


def pythae_model(name: str, ours: nn.Module, hidden: int, layers: int, latent: int, comps: int):
    """pythae's VAE / VAMP with our networks, weights copied from ``ours`` (dgm's model)."""
    enc, dec = Encoder(hidden, layers, latent), Decoder(hidden, layers, latent)
    _copy(enc.net, ours.encoder.net)
    _copy(enc.head, ours.posterior.net)
    _copy(dec.body, ours.decoder.body)
    _copy(dec.last, ours.decoder.last)
    if name == "vae":
        cfg = PVAEConfig(input_dim=SHAPE, latent_dim=latent, reconstruction_loss="bce")
        return PVAE(cfg, encoder=enc, decoder=dec)
    cfg = VAMPConfig(
        input_dim=SHAPE, latent_dim=latent, reconstruction_loss="bce", number_components=comps
    )
    model = VAMP(cfg, encoder=enc, decoder=dec)
    # dgm's pseudo-inputs, mapped from the encoder's [-1, 1] to pythae's [0, 1] data units
    u = ((ours.prior.pseudo_inputs().detach() + 1.0) / 2.0).reshape(comps, DIM)  # [C, 784]
    if name == "vamp-direct":
        model.pseudo_inputs = DirectPseudo(u)
    else:
        lin = model.pseudo_inputs[0]  # Linear(C, 784) applied to I_C: column c is u_c
        with torch.no_grad():
            lin.weight.copy_(u.T)
            lin.bias.zero_()
    return model


# -- both sides --------------------------------------------------------------------------------
def dgm_config(name: str, hidden: int, layers: int, latent: int, comps: int) -> dict[str, Any]:
    prior = "standard" if name == "vae" else "vampprior"
    return {"shape": SHAPE, "levels": 2, "backbone": "mlp", "hidden": hidden, "layers": layers,
            "latent": latent, "prior": prior, "components": comps, "likelihood": "bernoulli",
            "posterior": "gaussian", "activation": "relu"}  # fmt: skip


def build(name: str, args: argparse.Namespace) -> tuple[Side, Side]:
    torch.manual_seed(args.seed)
    cfg = dgm_config(name, args.hidden, args.layers, args.latent, args.components)
    ours = dgm.create("vae", **cfg).train()
    theirs = pythae_model(name, ours, args.hidden, args.layers, args.latent, args.components)
    theirs.train()
    return (
        Side("dgm", ours, lambda x: ours.loss(x)),
        Side("pythae", theirs, lambda x: theirs({"data": x}).loss),
    )


def check_equal(ours: Side, theirs: Side, x: Tensor, seed: int) -> tuple[float, float]:
    """Both losses on the same weights and the same posterior noise (one ``randn [B, K]``
    each, drawn first): they must agree, or the two models are not the same function."""
    with torch.no_grad():
        torch.manual_seed(seed)
        a = float(ours.loss(x))
        torch.manual_seed(seed)
        b = float(theirs.loss(x))
    if not math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-2):
        sys.exit(f"the two models differ: dgm loss {a:.4f}, pythae loss {b:.4f}")
    return a, b


def time_nll(
    ours: Side, theirs: Side, x: Tensor, k: int, pythae_batch: int, chunk: int
) -> dict[str, Any]:
    """Seconds for the K-sample NLL of ``x`` on each side, and the NLLs (nats per image)."""
    # pythae's get_nll draws batch_size samples when n_samples <= batch_size, and
    # (n_samples // batch_size) * batch_size otherwise: make that exactly k
    pythae_batch = min(pythae_batch, k)
    if k % pythae_batch:
        sys.exit(f"--nll-samples {k} must be a multiple of --pythae-nll-batch {pythae_batch}")
    ours.model.eval()
    theirs.model.eval()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    nll_ours = evaluate_nll(ours.model, x, batch_size=500, num_samples=k, chunk=chunk)["nll_nats"]
    t_ours = time.perf_counter() - t0
    torch.manual_seed(0)
    t0 = time.perf_counter()
    # pythae's VAMP prints a running mean every 1000 images; get_nll has no no_grad of its own
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        nll_theirs = -theirs.model.get_nll(x, n_samples=k, batch_size=pythae_batch)
    t_theirs = time.perf_counter() - t0
    ours.model.train()
    theirs.model.train()
    n = x.shape[0]
    return {
        "images": n,
        "samples": k,
        "pythae_batch_size": pythae_batch,
        "dgm_chunk": chunk,
        "dgm_s_per_image": t_ours / n,
        "pythae_s_per_image": t_theirs / n,
        "dgm_s_test_set": t_ours / n * TEST_SIZE,
        "pythae_s_test_set": t_theirs / n * TEST_SIZE,
        "dgm_nll": nll_ours,
        "pythae_nll": float(nll_theirs),
    }


class _EpochClock:
    """A pythae training callback that records the wall time of every epoch (train + eval)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._t0 = 0.0

    def __getattr__(self, name: str) -> Any:  # pythae calls every hook; we need two
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_epoch_begin(self, training_config: Any, **kwargs: Any) -> None:
        self._t0 = time.perf_counter()

    def on_epoch_end(self, training_config: Any, **kwargs: Any) -> None:
        self.seconds.append(time.perf_counter() - self._t0)


def time_epochs(name: str, args: argparse.Namespace, data: Any) -> dict[str, Any]:
    """Seconds per epoch (train + validation) of each library's own training loop."""
    import logging
    import tempfile

    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    from dgm.pipeline import train
    from dgm.training.callbacks import read_metrics

    torch.manual_seed(args.seed)
    cfg = dgm_config(name, args.hidden, args.layers, args.latent, args.components)
    out: dict[str, Any] = {"model": name, "epochs": args.epochs}
    with tempfile.TemporaryDirectory() as tmp:
        own = {k: v for k, v in cfg.items() if k not in ("shape", "levels")}  # from the data
        train(
            "vae", data, f"{tmp}/dgm", model_config=own, show=lambda m: None,
            train_config={"epochs": args.epochs, "batch_size": args.batch, "lr": 1e-3,
                          "optimizer": "adam", "sample_every": 0, "patience": 0,
                          "test": False, "eval_batch_size": 500, "seed": args.seed},
        )  # fmt: skip
        times = [r["time_s"] for r in read_metrics(f"{tmp}/dgm")]  # cumulative, per epoch
        out["dgm_epoch_s"] = [b - a for a, b in itertools.pairwise(times)]
        ours = dgm.create("vae", **cfg)
        theirs = pythae_model(name, ours, args.hidden, args.layers, args.latent, args.components)
        clock = _EpochClock()
        logging.getLogger("pythae").setLevel(logging.WARNING)
        pipe = TrainingPipeline(
            model=theirs,
            training_config=BaseTrainerConfig(
                output_dir=f"{tmp}/pythae", num_epochs=args.epochs, learning_rate=1e-3,
                per_device_train_batch_size=args.batch, per_device_eval_batch_size=500,
                optimizer_cls="Adam", steps_saving=None, no_cuda=True,
            ),
        )  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):
            pipe(train_data=data.train.x.numpy(), eval_data=data.val.x.numpy(), callbacks=[clock])
        out["pythae_epoch_s"] = clock.seconds[1:]  # the first epoch pays one-off costs
    out["dgm_s"] = statistics.median(out["dgm_epoch_s"])
    out["pythae_s"] = statistics.median(out["pythae_epoch_s"])
    out["speedup"] = out["pythae_s"] / out["dgm_s"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--steps", type=int, default=30, help="timed steps per side per round")
    p.add_argument("--rounds", type=int, default=7, help="rounds; the median is reported")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per side first")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--hidden", type=int, default=300, help="units per hidden layer (H)")
    p.add_argument("--layers", type=int, default=2, help="hidden layers of encoder and decoder")
    p.add_argument("--latent", type=int, default=40, help="dimensions of z (K)")
    p.add_argument("--components", type=int, default=500, help="vamp: pseudo-inputs (C)")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--batches", type=int, default=20, help="distinct training batches, cycled")
    p.add_argument("--nll-samples", type=int, default=5000, help="importance samples (K)")
    p.add_argument("--nll-images", type=int, default=50, help="test images timed (0: skip)")
    p.add_argument(
        "--nll-models", nargs="+", default=["vae", "vamp"], choices=MODELS, help="NLL timed for"
    )
    p.add_argument("--pythae-nll-batch", type=int, default=1000, help="get_nll's batch_size")
    p.add_argument(
        "--nll-chunk", type=int, default=CHUNK, help="dgm log_prob's decoded rows per pass"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=0, help="also time N whole epochs (N >= 2)")
    p.add_argument("--profile", type=int, default=0, help="then profile N steps of ours")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from dgm.data import load_dataset

    data = load_dataset("static-mnist")
    x_train = data.train.x[: args.batches * args.batch].float()  # [n * B, 1, 28, 28] in {0, 1}
    batches = list(x_train.split(args.batch))
    x_test = data.test.x[: args.nll_images].float()
    per_epoch = TRAIN_SIZE / args.batch

    rows, nlls, profiles, epochs = [], {}, {}, []
    for name in args.models if args.epochs >= 2 else []:
        epochs.append(time_epochs(name, args, data))
        print(f"# {name} epochs: {epochs[-1]}", file=sys.stderr, flush=True)
    for name in args.models if args.steps > 0 else []:
        ours, theirs = build(name, args)
        first = check_equal(ours, theirs, batches[0], args.seed)
        if args.nll_images > 0 and name in args.nll_models:  # on the same (initial) weights
            nlls[name] = time_nll(
                ours, theirs, x_test, args.nll_samples, args.pythae_nll_batch, args.nll_chunk
            )
            print(f"# {name} NLL: {nlls[name]}", file=sys.stderr, flush=True)
        for s in (ours, theirs):
            for i in range(args.warmup):
                s.step(batches[i % len(batches)])
        secs: dict[str, list[float]] = {ours.label: [], theirs.label: []}
        for r in range(args.rounds):
            for s in (ours, theirs) if r % 2 == 0 else (theirs, ours):
                secs[s.label].append(seconds_per_step(s, batches, args.steps, r * args.steps))
        med = {k: statistics.median(v) * per_epoch for k, v in secs.items()}  # s / epoch
        rows.append(
            {
                "model": name,
                "config": dgm_config(name, args.hidden, args.layers, args.latent, args.components),
                "dgm_s_per_epoch": med["dgm"],
                "pythae_s_per_epoch": med["pythae"],
                "ratio": med["dgm"] / med["pythae"],
                "speedup": med["pythae"] / med["dgm"],
                "dgm_params": ours.params,
                "pythae_params": theirs.params,
                "first_loss": {"dgm": first[0], "pythae": first[1]},
                "s_per_step": secs,
            }
        )
        print(f"# {name}: s/step {secs}", file=sys.stderr, flush=True)
        if args.profile > 0:
            profiles[name] = profile_side(ours, batches, args.profile)
            print(f"\n## profile of dgm {name}, {args.profile} steps\n", file=sys.stderr)
            print(profiles[name], file=sys.stderr, flush=True)

    if rows:
        print(
            f"\nstatic MNIST, batch {args.batch}, MLP {args.layers} x {args.hidden}, latent "
            f"{args.latent}, VampPrior C={args.components}, Adam 1e-3, {args.threads} thread(s), "
            f"median of {args.rounds} rounds x {args.steps} steps, epoch = {per_epoch:.0f} steps, "
            f"torch {torch.__version__}\n"
        )
        print("| model | dgm s/epoch | pythae s/epoch | dgm / pythae | pythae / dgm (speed-up) | "
              "dgm params | pythae params | first loss dgm / pythae |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            f = r["first_loss"]
            print(
                f"| {r['model']} | {r['dgm_s_per_epoch']:.2f} | {r['pythae_s_per_epoch']:.2f} | "
                f"{r['ratio']:.2f} | {r['speedup']:.2f}x | {r['dgm_params']:,} | "
                f"{r['pythae_params']:,} | {f['dgm']:.3f} / {f['pythae']:.3f} |"
            )
    if epochs:
        print(
            f"\nwhole epochs through each library's own trainer: 50,000 train + 10,000 val "
            f"images, batch {args.batch}, Adam 1e-3, median s/epoch over epochs 2..{args.epochs}\n"
        )
        print("| model | dgm s/epoch | pythae s/epoch | pythae / dgm (speed-up) |")
        print("|---|---|---|---|")
        for e in epochs:
            row = f"{e['dgm_s']:.2f} | {e['pythae_s']:.2f} | {e['speedup']:.2f}x"
            print(f"| {e['model']} | {row} |")
    if nlls:
        n = next(iter(nlls.values()))
        print(
            f"\nNLL, K={n['samples']} importance samples, timed on {n['images']} test images, "
            f"extrapolated to {TEST_SIZE:,}, initial weights (dgm chunk={n['dgm_chunk']} rows, "
            f"pythae get_nll batch_size={n['pythae_batch_size']})\n"
        )
        print("| model | dgm s/image | dgm s/test set | pythae s/image | pythae s/test set | "
              "pythae / dgm | NLL dgm / pythae (nats) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for name, v in nlls.items():
            print(
                f"| {name} | {v['dgm_s_per_image']:.4f} | {v['dgm_s_test_set']:.0f} | "
                f"{v['pythae_s_per_image']:.4f} | {v['pythae_s_test_set']:.0f} | "
                f"{v['pythae_s_per_image'] / v['dgm_s_per_image']:.2f}x | "
                f"{v['dgm_nll']:.2f} / {v['pythae_nll']:.2f} |"
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "args": vars(args),
                    "rows": rows,
                    "nll": nlls,
                    "profiles": profiles,
                    "epochs": epochs,
                },
                fh,
                indent=2,
                default=str,
            )


if __name__ == "__main__":
    main()
