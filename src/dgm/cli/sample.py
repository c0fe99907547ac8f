"""``dgm sample RUN``: draw samples from a run's model, as a picture or an array."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dgm.cli import common
from dgm.errors import ConfigError


def add_parser(sub: Any) -> None:
    s = sub.add_parser("sample", help="draw samples from a run")
    s.add_argument("run", metavar="RUN")
    s.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument(
        "--out",
        default=None,
        metavar="FILE.png|FILE.npy",
        help="where to write them (default: RUN/samples-seedS.png)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling temperature where the model supports it",
    )
    s.add_argument(
        "--label",
        type=int,
        default=None,
        help="class of every sample, for class-conditional models",
    )
    common.add_device(s)


def _is_2d_density(loaded: common.LoadedRun) -> bool:
    """2-D continuous data with an exact density: worth a picture of the density itself."""
    meta = loaded.data_meta
    spec = meta.get("spec") or {}
    return (
        tuple(loaded.model.event_shape) == (2,)
        and spec.get("levels", 0) is None
        and bool(loaded.model.exact_likelihood)
        and "name" in meta
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from dgm.data import DataSpec
    from dgm.io import atomic_write
    from dgm.models.capabilities import LabelConditional
    from dgm.plotting import save_samples

    common.check_positive(args.n, "-n")
    loaded = common.load_run(args.run, args.device)
    model = loaded.model
    out = Path(args.out) if args.out else loaded.folder.samples_for_seed(args.seed)
    if out.suffix.lower() not in (".png", ".npy"):
        raise ConfigError(f"--out {out}: use a .png (picture) or .npy (array) file name")
    torch.manual_seed(args.seed)
    kwargs: dict[str, Any] = {}
    if args.temperature is not None:
        kwargs["temperature"] = args.temperature
    if args.label is not None:
        if not isinstance(model, LabelConditional):
            raise ConfigError(f"{model.name} takes no --label when sampling; drop it")
        kwargs["labels"] = args.label
    x = model.sample(args.n, **kwargs).cpu()
    if out.suffix.lower() == ".npy":
        with atomic_write(out, "wb") as f:
            np.save(f, x.numpy(), allow_pickle=False)
    elif _is_2d_density(loaded):
        from dgm.plotting import save_density

        data = loaded.dataset().test.x[:5000]
        name = loaded.data_name()
        mass = save_density(model.log_prob, data, x, out, title=f"{model.name} on {name}")
        print(f"density mass in the picture's window: {mass:.3f}")
    else:
        spec_dict = loaded.data_meta.get("spec")
        spec = (
            DataSpec.from_dict(spec_dict)
            if spec_dict
            else DataSpec(name="samples", shape=model.event_shape, levels=model.levels)
        )
        save_samples(x, spec, out, title=f"{model.name} samples")
    print(f"wrote {args.n} samples to {out}")
    return common.EXIT_OK
