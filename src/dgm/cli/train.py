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
    t = sub.add_parser(
        "train",
        help="train a model into a run folder",
        description="Train MODEL into a run folder (config.json, model.safetensors,\n"
        "metrics.jsonl, samples.png, loss.png, results.json, summary.md), then evaluate the\n"
        "kept weights on the test split. Options not given take the model's training\n"
        "defaults ('dgm list MODEL' shows them), else those below.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument(
        "model",
        metavar="MODEL",
        nargs="?",
        help="a model name from 'dgm list' (with --resume, the run's own: MODEL may be left out)",
    )
    t.add_argument(
        "--data",
        default=None,
        help="dataset name from 'dgm list', or a path to an image folder, .npy, .npz, .csv, "
        "or text: a .txt file (one example a line) or a folder of .txt files (default: digits)",
    )
    t.add_argument(
        "--data-dir",
        default=None,
        help="folder of named datasets, searched first; then $DGM_DATA, ../shared/data next to "
        "a source checkout, and the user data folder (default: none, the search above)",
    )
    t.add_argument(
        "--data-levels",
        type=int,
        default=None,
        metavar="K",
        help="treat the data as K discrete levels 0..K-1 (default: inferred from the values; "
        "a named dataset's own)",
    )
    t.add_argument(
        "--data-continuous",
        action="store_true",
        default=None,
        help="treat the data as continuous values, not levels (default: inferred)",
    )
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a model or training option (repeatable), e.g. --set hidden=128; "
        "'dgm list MODEL' lists them; for text also the data options tokenizer=word|char|bpe, "
        "vocab_size, min_count, max_len (default: none)",
    )
    t.add_argument(
        "--config",
        default=None,
        metavar="FILE.yaml",
        help="YAML file of options (the same keys as --set, plus data); flags and --set "
        "override it (default: none)",
    )
    t.add_argument(
        "--epochs",
        type=int,
        default=None,
        metavar="N",
        help="most epochs to train; early stopping (patience) usually ends sooner "
        "(default: 200, or the model's own)",
    )
    t.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="B",
        help="training examples per step, per device (default: 64, or the model's own)",
    )
    t.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="S",
        help="seeds weights, shuffling and sampling; CPU runs repeat exactly (default: 0)",
    )
    t.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="run folder, made with its parents (default: runs/MODEL-DATA-TIME)",
    )
    t.add_argument(
        "--resume",
        default=None,
        metavar="DIR",
        help="continue the run in DIR from its last.ckpt (default: a new run)",
    )
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="reuse a non-empty --out folder, replacing the files a run writes (default: off)",
    )
    t.add_argument(
        "--logger",
        default=None,
        metavar="none|csv|tensorboard",
        help="also log with Lightning's CSVLogger or TensorBoardLogger into RUN/logs/; "
        "metrics.jsonl is written either way (default: none)",
    )
    t.add_argument("--accelerator", default=None, help="cpu | gpu | auto (default: auto)")
    t.add_argument(
        "--devices", default=None, help="number of devices, a list, or auto (default: auto)"
    )
    t.add_argument("--num-nodes", type=int, default=None, metavar="N", help="machines (default: 1)")
    t.add_argument("--strategy", default=None, help="auto | ddp | ddp_spawn | ... (default: auto)")
    t.add_argument(
        "--precision",
        default=None,
        help="auto | 32 | bf16-mixed | 16-mixed (default: auto, bf16 mixed precision where the "
        "hardware has bf16 units and the model is proven equal, else 32)",
    )
    t.add_argument(
        "--max-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop training after this many seconds, > 0 (default: no limit)",
    )


EXAMPLES = """examples:
  dgm train arm --epochs 5                      # digits, the default data
  dgm train vae --data mnist --set latent=32 --set lr=3e-4 --out runs/vae-mnist
  dgm train realnvp --data two-moons --max-time 60
  dgm train vae --config vae.yaml --logger tensorboard   # then: tensorboard --logdir runs
  dgm train vae --resume runs/vae-mnist         # continue a run where it stopped
  dgm train lstm-lm --data lines.txt --set tokenizer=char --epochs 2   # your own text
  dgm list vae                                  # the options --set takes for vae
"""


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


def _data_meta(name: str, data_dir: str | None, options: dict[str, Any]) -> dict[str, Any]:
    from dgm.data import DATASETS

    is_named = name in DATASETS
    return {
        "name": name if is_named else str(Path(name).resolve()),
        "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
        # the user's --data-levels / --data-continuous and text options, so every reload matches
        **options,
    }


def _level_options(args: argparse.Namespace, values: dict[str, Any]) -> dict[str, Any]:
    """``levels`` / ``continuous`` for load_dataset: the flags, else the YAML's ``data_levels``
    and ``data_continuous`` (popped from ``values``); only those given."""
    levels = values.pop("data_levels", None)
    continuous = values.pop("data_continuous", None)
    if levels is not None and (isinstance(levels, bool) or not isinstance(levels, int)):
        raise ConfigError(f"data_levels must be a whole number, got {levels!r}")
    if continuous is not None and not isinstance(continuous, bool):
        raise ConfigError(f"data_continuous must be true or false, got {continuous!r}")
    levels = args.data_levels if args.data_levels is not None else levels
    continuous = args.data_continuous or continuous
    if levels is not None and continuous:
        raise ConfigError("--data-levels and --data-continuous exclude each other; give one")
    if levels is not None:
        return {"levels": levels}
    return {"continuous": True} if continuous else {}


def run(args: argparse.Namespace) -> int:
    from lightning.pytorch.utilities import rank_zero_only

    from dgm import registry
    from dgm.config import build, parse_set
    from dgm.data import load_dataset, summary_line
    from dgm.data.audio import AUDIO_OPTIONS, pop_audio_options
    from dgm.data.text import TEXT_OPTIONS, pop_text_options, text_options
    from dgm.pipeline import train
    from dgm.runs import RunFolder
    from dgm.training.config import TrainConfig, split_options

    common.check_number(args.max_time, "--max-time")
    if not args.resume:  # a run folder that cannot be made fails now, not after the data load
        common.check_output(args.out, "--out", folder=True)
    if args.model is None and not args.resume:
        raise ConfigError(
            "name the MODEL to train (see 'dgm list'), or continue a run with --resume RUN"
        )
    saved = RunFolder(args.resume).read_config() if args.resume else None
    entry = registry.get(args.model or saved["model"])  # --resume alone: the run's model
    values: dict[str, Any] = _read_yaml(args.config) if args.config else {}
    data = values.pop("data", None)
    data_dir = values.pop("data_dir", None)
    level_opts = _level_options(args, values)
    values.update(parse_set(args.set))
    text_opts = pop_text_options(values)  # data options (YAML or --set), not the model's
    audio_opts = pop_audio_options(values)  # sample_rate, encoding, crop: how audio is read
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
        "logger": args.logger,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    model_opts, train_opts = split_options(entry.cls, values)

    if args.resume:
        run = Path(args.resume)
        assert saved is not None
        if saved["model"] != entry.name:
            raise ConfigError(
                f"--resume {run}: that run trained {saved['model']!r}, not {entry.name!r}; "
                f"use 'dgm train --resume {run}'"
            )
        if model_opts:
            raise ConfigError(
                f"--resume keeps the run's model; drop --set {next(iter(model_opts))}=..."
            )
        model_opts = {k: v for k, v in saved["config"].items() if k not in entry.cls.DATA_FIELDS}
        train_opts = {**saved.get("train", {}), **train_opts}
        meta = saved.get("data", {})
        asked = args.data or data
        if asked is not None and str(asked) != meta.get("name", "digits"):
            raise ConfigError(  # silently training on the run's own data would mislead
                f"--resume keeps the run's data ({meta.get('name', 'digits')}); drop --data {asked}"
            )
        data, data_dir = meta.get("name", "digits"), args.data_dir or meta.get("data_dir")
        saved_levels = {k: meta[k] for k in ("levels", "continuous") if k in meta}
        if level_opts and level_opts != saved_levels:
            raise ConfigError(
                "--resume keeps the run's data; drop --data-levels and --data-continuous"
            )
        level_opts = saved_levels
        saved_text = {k: meta[k] for k in TEXT_OPTIONS if k in meta}
        if text_opts and text_opts != saved_text:
            raise ConfigError(
                f"--resume keeps the run's data; drop --set {next(iter(text_opts))}=..."
            )
        text_opts = saved_text
        saved_audio = {k: meta[k] for k in AUDIO_OPTIONS if k in meta}
        if audio_opts and audio_opts != saved_audio:
            raise ConfigError(
                f"--resume keeps the run's data; drop --set {next(iter(audio_opts))}=..."
            )
        audio_opts = saved_audio
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
    user_train_opts = dict(train_opts)
    if not args.resume:  # a resumed run's saved settings already hold its family's defaults
        train_opts = {**entry.cls.train_defaults, **train_opts}
    cfg = build(TrainConfig, train_opts, "training")  # bad options fail before data loads
    if not args.resume:  # the family's data options (mol-vae's properties) under the user's
        text_opts = {**text_options(entry.cls.data_defaults), **text_opts}
    with warnings.catch_warnings():  # the loader's warnings are shown below, once, as notes
        warnings.simplefilter("ignore")
        reread = common.run_text_options(RunFolder(run), saved) if args.resume else {}
        dataset = load_dataset(
            str(data), data_dir, **{**level_opts, **text_opts, **reread}, **audio_opts,
            molecules=entry.cls.molecules,
        )  # fmt: skip
    for note in dataset.notes:
        common.err(f"note: {note}")
    common.err(summary_line(dataset))
    if not args.resume:  # the family's defaults for this kind of data (a GAN's on vectors)
        defaults = entry.cls.train_defaults_for(dataset.spec)
        cfg = build(TrainConfig, {**defaults, **user_train_opts}, "training")
    results = train(
        entry.name,
        dataset,
        run,
        model_opts,
        cfg,
        resume=bool(args.resume),
        overwrite=args.overwrite,
        data_meta=_data_meta(str(data), data_dir, {**level_opts, **text_opts, **audio_opts}),
    )
    if results and "test_ppl" in results:  # text: bpd would be bits per token; say perplexity
        print(
            f"test nll: {results['test_nll_nats']:.3f} nats per "
            f"{results.get('test_unit', 'sentence')} (perplexity "
            f"{results['test_ppl']:.2f})  run: {run}"
        )
    elif results and "test_bits_per_sample" in results:  # audio: whole test utterances
        print(
            f"test nll: {results['test_bits_per_sample']:.4f} bits per sample "
            f"({results['test_nll_nats']:.1f} nats per utterance)  run: {run}"
        )
    elif results and "test_nll_nats" in results:
        print(
            f"test nll: {results['test_nll_nats']:.3f} nats ({results['test_bpd']:.4f} bpd)  "
            f"run: {run}"
        )
    elif results:
        print(f"run: {run}")
    return common.EXIT_OK
