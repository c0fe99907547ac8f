"""``dgm list``: the models, datasets and options, with one-line descriptions."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dgm.cli import common


def add_parser(sub: Any) -> None:
    p = sub.add_parser("list", help="models, datasets and options, with descriptions")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from dgm import registry
    from dgm.config import describe
    from dgm.data import list_datasets
    from dgm.training.config import TrainConfig

    def options(cls: type, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        return [{"name": n, "default": d, "help": h} for n, d, h in describe(cls) if n not in skip]

    models = [
        {
            "name": e.name,
            "family": e.family,
            "description": e.description,
            "options": options(e.cls.Config, e.cls.DATA_FIELDS),
        }
        for e in registry.entries()
    ]
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
        show(m["options"])
    print("\ndatasets (--data NAME, or a path to an image folder, .npy, .npz or .csv):")
    for d in datasets:
        print(f"  {d['name']:<20} {d['description']}")
    print("\ntraining options (--set OPTION=VALUE, for every model):")
    show(train)
    return common.EXIT_OK
