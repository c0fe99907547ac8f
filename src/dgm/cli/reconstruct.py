"""``dgm reconstruct RUN``: inputs next to their reconstructions, for models that encode
(:class:`~dgm.models.capabilities.Autoencoder`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dgm.cli import common
from dgm.errors import ConfigError


def add_parser(sub: Any) -> None:
    r = sub.add_parser("reconstruct", help="inputs next to their reconstructions (latent models)")
    r.add_argument("run", metavar="RUN")
    r.add_argument("-n", type=int, default=32, help="number of inputs (default 32)")
    r.add_argument("--split", default="test", choices=["train", "val", "test"])
    common.add_data(r)
    r.add_argument(
        "--out", default=None, metavar="FILE.png", help="default: RUN/reconstructions.png"
    )
    r.add_argument("--seed", type=int, default=0, help="seeds any draws (default: 0)")
    common.add_device(r)


def run(args: argparse.Namespace) -> int:
    import torch

    from dgm.models.capabilities import Autoencoder
    from dgm.plotting import save_reconstructions

    common.check_positive(args.n, "-n")
    if args.out is not None and Path(args.out).suffix.lower() != ".png":
        raise ConfigError(f"--out {args.out}: use a .png file name")
    common.check_output(args.out, "--out")
    loaded = common.load_run(args.run, args.device)
    model = loaded.model
    out = Path(args.out) if args.out else loaded.folder.reconstructions_plot
    if not isinstance(model, Autoencoder):
        raise ConfigError(
            f"{model.name} has no encoder, so nothing to reconstruct; use a latent-variable "
            "model (e.g. vae)"
        )
    dataset = loaded.dataset(args.data, args.data_dir)
    x = common.split_inputs(dataset, args.split, args.n)
    model.check_input(x)
    torch.manual_seed(args.seed)
    model.eval()
    with torch.no_grad():
        recon = model.reconstruct(x.to(model.device)).cpu()
    title = f"{model.name}: inputs ({args.split} split) and their reconstructions"
    save_reconstructions(x, recon, dataset.spec, out, title=title)
    print(f"wrote {len(x)} inputs and their reconstructions to {out}")
    return common.EXIT_OK
