"""``dgm train MODEL``: train a model into a run folder (or continue one with ``--resume``),
then evaluate the kept weights and write the report (:func:`dgm.pipeline.train`)."""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path
from typing import Any

from dgm.cli import common
from dgm.errors import ConfigError

# the run folder of a DDP run, for the worker processes Lightning starts with the same command
RUN_ENV = "DGM_RUN_DIR"


def add_parser(sub: Any) -> None:
    t = sub.add_parser("train", help="train a model into a run folder")
    t.add_argument("model", metavar="MODEL", help="a model name from 'dgm list'")
    t.add_argument("--data", default=None, help="dataset name or path (default: digits)")
    t.add_argument(
        "--data-dir",
        default=None,
        help="folder of named datasets "
        "(default: $DGM_DATA, else ../shared/data next to the project)",
    )
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a model or training option (repeatable), e.g. --set hidden=128",
    )
    t.add_argument(
        "--config",
        default=None,
        metavar="FILE.yaml",
        help="YAML file of options (the same keys as --set, plus data)",
    )
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--out", default=None, help="run folder (default: runs/MODEL-DATA-TIME)")
    t.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR")
    t.add_argument("--overwrite", action="store_true", help="reuse a non-empty --out folder")
    t.add_argument("--accelerator", default=None, help="cpu | gpu | auto")
    t.add_argument("--devices", default=None, help="number of devices (or auto)")
    t.add_argument("--num-nodes", type=int, default=None)
    t.add_argument("--strategy", default=None, help="auto | ddp | ddp_spawn | ...")
    t.add_argument("--precision", default=None, help="32 | bf16-mixed | 16-mixed")
    t.add_argument(
        "--max-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop training after this many seconds",
    )


def _read_yaml(path: str) -> dict[str, Any]:
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"--config {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of option: value")
    return data


def _split_options(model_cls: Any, values: dict[str, Any]) -> tuple[dict, dict]:
    """Route each option to the model config or the training config."""
    from dgm.config import field_types
    from dgm.training.config import TrainConfig

    model_keys, train_keys = set(field_types(model_cls.Config)), set(field_types(TrainConfig))
    model_opts, train_opts = {}, {}
    for key, value in values.items():
        if key in model_cls.DATA_FIELDS and key in model_keys:
            raise ConfigError(f"{key!r} comes from the data and cannot be set; choose other data")
        if key in model_keys:
            model_opts[key] = value
        elif key in train_keys:
            train_opts[key] = value
        else:
            valid = sorted((model_keys - set(model_cls.DATA_FIELDS)) | train_keys)
            raise ConfigError(
                f"unknown option {key!r} for {model_cls.name}; valid options: {', '.join(valid)}"
            )
    return model_opts, train_opts


def _data_meta(name: str, data_dir: str | None) -> dict[str, Any]:
    from dgm.data import DATASETS

    is_named = name in DATASETS
    return {
        "name": name if is_named else str(Path(name).resolve()),
        "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
    }


def run(args: argparse.Namespace) -> int:
    from lightning.pytorch.utilities import rank_zero_only

    from dgm import registry
    from dgm.config import build, parse_set
    from dgm.data import load_dataset
    from dgm.pipeline import train
    from dgm.runs import RunFolder
    from dgm.training.config import TrainConfig

    entry = registry.get(args.model)
    values: dict[str, Any] = _read_yaml(args.config) if args.config else {}
    data = values.pop("data", None)
    data_dir = values.pop("data_dir", None)
    values.update(parse_set(args.set))
    flags = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "accelerator": args.accelerator,
        "devices": args.devices,
        "num_nodes": args.num_nodes,
        "strategy": args.strategy,
        "precision": args.precision,
        "max_time": args.max_time,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    model_opts, train_opts = _split_options(entry.cls, values)

    if args.resume:
        run = Path(args.resume)
        saved = RunFolder(run).read_config()
        if saved["model"] != entry.name:
            raise ConfigError(
                f"--resume {run}: that run trained {saved['model']!r}, not {entry.name!r}; "
                f"use 'dgm train {saved['model']} --resume {run}'"
            )
        if model_opts:
            raise ConfigError(
                f"--resume keeps the run's model; drop --set {next(iter(model_opts))}=..."
            )
        model_opts = {k: v for k, v in saved["config"].items() if k not in entry.cls.DATA_FIELDS}
        train_opts = {**saved.get("train", {}), **train_opts}
        meta = saved.get("data", {})
        data, data_dir = meta.get("name", "digits"), args.data_dir or meta.get("data_dir")
    else:
        data = args.data or data or "digits"
        data_dir = args.data_dir or data_dir
        if args.out:
            run = Path(args.out)
        elif os.environ.get(RUN_ENV):  # a DDP worker started by Lightning: the parent's folder
            run = Path(os.environ[RUN_ENV])
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run = Path("runs") / f"{entry.name}-{Path(str(data)).stem}-{stamp}"
            if rank_zero_only.rank != 0:
                raise ConfigError("with several processes, name the run folder with --out")
        os.environ[RUN_ENV] = str(run)  # Lightning's worker processes inherit it
    if not args.resume:  # a resumed run's saved settings already hold its family's defaults
        train_opts = {**entry.cls.train_defaults, **train_opts}
    cfg = build(TrainConfig, train_opts, "training")  # bad options fail before data loads
    with warnings.catch_warnings():  # the loader's warnings are shown below, once, as notes
        warnings.simplefilter("ignore")
        dataset = load_dataset(str(data), data_dir)
    for note in dataset.notes:
        common.err(f"note: {note}")
    results = train(
        entry.name,
        dataset,
        run,
        model_opts,
        cfg,
        resume=bool(args.resume),
        overwrite=args.overwrite,
        data_meta=_data_meta(str(data), data_dir),
    )
    if results and "test_nll_nats" in results:
        print(
            f"test nll: {results['test_nll_nats']:.3f} nats ({results['test_bpd']:.4f} bpd)  "
            f"run: {run}"
        )
    elif results:
        print(f"run: {run}")
    return common.EXIT_OK
