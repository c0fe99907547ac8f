"""``dgm list [MODEL]``: the models, datasets and options, with one-line descriptions; with
MODEL, that model's options only."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dgm.cli import common
from dgm.errors import ConfigError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("list", help="models, datasets and options, with descriptions")
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        metavar="MODEL",
        help="show only this model's options and training defaults (default: everything)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _entry(name: str) -> Any:
    """The registry entry ``name``; an unknown name fails with the close matches."""
    import difflib

    from dgm import registry

    names = [e.name for e in registry.entries()]
    if name in names:
        return registry.get(name)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known models: {', '.join(names)}"
    raise ConfigError(f"unknown model {name!r}; {hint}")


def run(args: argparse.Namespace) -> int:
    from dgm import registry
    from dgm.config import describe
    from dgm.data import list_datasets
    from dgm.training.config import TrainConfig

    def options(cls: type, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        return [{"name": n, "default": d, "help": h} for n, d, h in describe(cls) if n not in skip]

    chosen = [_entry(args.model)] if args.model else registry.entries()
    models = [
        {
            "name": e.name,
            "family": e.family,
            "description": e.description,
            "options": options(e.cls.Config, e.cls.DATA_FIELDS),
            "train_defaults": dict(e.cls.train_defaults),
            "sized_for_data": e.cls.sizing_note,
        }
        for e in chosen
    ]
    if args.model:
        m = models[0]
        if args.json:
            print(json.dumps(m))
            return common.EXIT_OK
        print(f"{m['name']} [{m['family']}] {m['description']}")
        print(f"options (dgm train {m['name']} --set OPTION=VALUE):")
        for o in m["options"]:
            print(f"  {o['name'] + '=' + str(o['default']):<28} {o['help']}")
        if m["sized_for_data"]:
            print(f"sized for the data: {m['sized_for_data']}")
        if m["train_defaults"]:
            pairs = ", ".join(f"{k}={v}" for k, v in m["train_defaults"].items())
            print(f"training defaults of {m['name']} (over those of 'dgm list'): {pairs}")
        return common.EXIT_OK
    datasets = [{"name": n, "description": d} for n, d in list_datasets()]
    train = options(TrainConfig)
    if args.json:
        print(json.dumps({"models": models, "datasets": datasets, "training": train}))
        return common.EXIT_OK

    def show(opts: list[dict[str, Any]]) -> None:
        for o in opts:
            print(f"      {o['name'] + '=' + str(o['default']):<28} {o['help']}")

    print("models (dgm train MODEL --set OPTION=VALUE):")
    for m in models:
        print(f"  {m['name']:<16} [{m['family']}] {m['description']}")
        if m["sized_for_data"]:
            print(f"      sized for the data: {m['sized_for_data']}")
        show(m["options"])
    print("\ndatasets (--data NAME, or a path to an image folder, .npy, .npz or .csv):")
    for d in datasets:
        print(f"  {d['name']:<20} {d['description']}")
    print("\ntraining options (--set OPTION=VALUE, for every model):")
    show(train)
    return common.EXIT_OK
