"""The ``dgm`` command: list | train | eval | sample | reconstruct | detect | ood (see DESIGN.md,
"The command line").

Exit codes: 0 success, 2 bad usage or bad input (one line on stderr), 1 internal error.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NoReturn

from dgm import cli_ood
from dgm.errors import ConfigError, DataError, DgmError

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2
RUN_ENV = "DGM_RUN_DIR"


class Parser(argparse.ArgumentParser):
    """argparse that reports bad usage in one line and exits with code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _parser() -> Parser:
    p = Parser(prog="dgm", description="Deep generative models: train, evaluate, sample.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    ls = sub.add_parser("list", help="models, datasets and options, with descriptions")
    ls.add_argument("--json", action="store_true", help="print one JSON object")

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

    e = sub.add_parser(
        "eval", help="evaluate a run: NLL in nats and bits/dim, or the quality of its samples"
    )
    e.add_argument("run", metavar="RUN", help="a run folder from 'dgm train'")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument(
        "--num-samples",
        type=int,
        default=None,
        metavar="K",
        help="importance samples where log p(x) is estimated: latent-variable models "
        "(default 5000, as the papers) and dequantised flows (default 1)",
    )
    e.add_argument("--data", default=None, help="evaluate on other data (default: the run's)")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--batch-size", type=int, default=500)
    e.add_argument("--device", default="auto", help="cpu | cuda | auto")
    e.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    e.add_argument(
        "--metrics",
        default=None,
        metavar="LIST",
        help="comma-separated: nll, fd, precision, recall, classes, modes, accuracy, ais "
        "(default: nll; for GANs fd,precision,recall, or modes on the Gaussian-mixture toys)",
    )
    e.add_argument(
        "--features",
        default=None,
        metavar="DIR",
        help="the feature network's folder for fd/precision/recall (default: RUN/features, "
        "trained there on the data's labelled training split the first time)",
    )
    e.add_argument(
        "--num-generated",
        type=int,
        default=None,
        metavar="N",
        help="samples drawn for sample-quality metrics (default: the split's size, <= 10000)",
    )
    e.add_argument("--seed", type=int, default=0, help="seeds sampling and estimates")
    e.add_argument(
        "--limit", type=int, default=None, metavar="N", help="score only the first N examples"
    )
    e.add_argument(
        "--ais-steps",
        type=int,
        default=500,
        help="ais: annealing steps (Wu et al. use thousands; each costs 10 generator passes)",
    )
    e.add_argument("--ais-chains", type=int, default=8, help="ais: chains per example")
    e.add_argument(
        "--sigma",
        type=float,
        default=None,
        help="ais: the observation noise (default: the best of a grid on 32 validation examples)",
    )

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
    s.add_argument("--device", default="auto", help="cpu | cuda | auto")

    r = sub.add_parser("reconstruct", help="inputs next to their reconstructions (latent models)")
    r.add_argument("run", metavar="RUN")
    r.add_argument("-n", type=int, default=32, help="number of inputs (default 32)")
    r.add_argument("--split", default="test", choices=["train", "val", "test"])
    r.add_argument("--data", default=None, help="other data (default: the run's)")
    r.add_argument("--data-dir", default=None)
    r.add_argument(
        "--out", default=None, metavar="FILE.png", help="default: RUN/reconstructions.png"
    )
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto", help="cpu | cuda | auto")

    from dgm.cli_ood import add_parsers

    add_parsers(sub)
    return p


# -- helpers ------------------------------------------------------------------------------------
def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but no CUDA device is available")
    return name


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
    from dgm.training import TrainConfig

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


# -- commands -----------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from dgm import registry
    from dgm.config import describe
    from dgm.data import list_datasets
    from dgm.training import TrainConfig

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
        return EXIT_OK

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
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from lightning.pytorch.utilities import rank_zero_only

    from dgm import registry
    from dgm.config import build, parse_set
    from dgm.data import load_dataset
    from dgm.io import read_config
    from dgm.training import TrainConfig, train

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
        saved = read_config(run)
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
        _err(f"note: {note}")
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
    return EXIT_OK


def _load_run(run: str, device: str) -> tuple[Any, dict[str, Any]]:
    import dgm
    from dgm.io import read_config

    cfg = read_config(run)
    model = dgm.load(run, map_location=_device(device))
    return model, cfg


def _eval_metrics(arg: str | None, model: Any, dataset: Any) -> list[str]:
    """The metrics ``dgm eval`` computes: ``--metrics``, or what suits the model."""
    from dgm.evaluation.sample_quality import QUALITY_METRICS, default_quality_metrics

    if arg is None:
        if model.has_likelihood:
            return ["nll"]
        chosen = list(default_quality_metrics(dataset))
        if not chosen:
            raise DataError(
                f"{dataset.spec.name} has no labels to train a feature network on; use "
                "--metrics ais, or --features DIR of a run on labelled data of this shape"
            )
        return chosen
    chosen = [m.strip() for m in arg.split(",") if m.strip()]
    known = ("nll", "ais", *QUALITY_METRICS)
    for m in chosen:
        if m not in known:
            raise ConfigError(f"unknown metric {m!r}; use {', '.join(known)}")
    if "nll" in chosen and not model.has_likelihood:
        raise ConfigError(
            f"{model.name} has no likelihood; use --metrics ais (an annealed importance sampling "
            "estimate) or fd,precision,recall"
        )
    if "ais" in chosen and not callable(getattr(model, "ais_log_prob", None)):
        raise ConfigError(
            f"ais estimates the likelihood of GAN generators; {model.name} has its own: use nll"
        )
    return chosen or ["nll"]


def _eval_nll(args: argparse.Namespace, model: Any, x: Any) -> dict[str, Any]:
    from dgm.evaluation import evaluate_elbo, evaluate_nll

    kwargs: dict[str, Any] = {}
    exact = model.exact_likelihood
    if exact and args.num_samples is not None:
        _err(f"note: {model.name} has an exact likelihood; --num-samples is not needed")
    elif not exact:
        kwargs["num_samples"] = args.num_samples or model.default_eval_samples
        if kwargs["num_samples"] < 1:
            raise ConfigError(f"--num-samples must be >= 1, got {args.num_samples}")
    res = evaluate_nll(model, x, args.batch_size, **kwargs)
    if callable(getattr(model, "elbo", None)):  # latent-variable models: the bound trained on
        res.update(evaluate_elbo(model, x, args.batch_size))
    return {**res, "exact": exact, "estimate": model.likelihood_note(**kwargs)}


def _eval_ais(args: argparse.Namespace, model: Any, dataset: Any, x: Any) -> dict[str, Any]:
    """AIS under a Gaussian observation model (Wu et al. 2017), sigma from validation data."""
    from dgm.evaluation.ais import pick_sigma

    if args.ais_steps < 1 or args.ais_chains < 1:
        raise ConfigError("--ais-steps and --ais-chains must be >= 1")
    # AIS costs 10 x steps x chains generator passes per example: 100 examples by default
    x = x[: args.limit or 100]
    sigma = args.sigma
    if sigma is None:
        val = dataset.val.x[:32].to(model.device)
        _err(f"choosing sigma by short AIS runs on {val.shape[0]} validation examples")
        # short runs (Wu et al. choose sigma on validation data with full ones): a few
        # seconds instead of minutes; they lean a little towards larger sigma
        sigma = pick_sigma(model, val, steps=20, chains=2, seed=args.seed)
    elif sigma <= 0:
        raise ConfigError(f"--sigma must be > 0, got {sigma}")
    t0 = time.perf_counter()
    run = {"steps": args.ais_steps, "chains": args.ais_chains, "seed": args.seed,
           "progress": sys.stderr.isatty()}  # fmt: skip
    diagnostics: dict[str, Any] = {}
    if getattr(model.config, "conditional", False):  # the mixture over classes
        lp = model.ais_log_prob(x.to(model.device), sigma, **run).double()
    else:
        res = model.ais(x.to(model.device), sigma, **run)
        lp = res.log_prob.double()
        diagnostics = {"ais_acceptance": res.acceptance, "ais_ess": float(res.ess.mean())}
    n = lp.numel()
    sem = float(lp.std() / math.sqrt(n)) if n > 1 else float("nan")
    return {
        **diagnostics,
        "n": n,
        "ais_nll_nats": float(-lp.mean()),
        "ais_sem": sem,
        "ais_sigma": sigma,
        "ais_steps": args.ais_steps,
        "ais_chains": args.ais_chains,
        "ais_time_s": round(time.perf_counter() - t0, 2),
        "ais_estimate": (
            f"annealed importance sampling (Wu et al. 2017), {args.ais_steps} steps x "
            f"{args.ais_chains} chains: log-density of x under x = G(z) + {sigma:g} eps, a "
            "continuous Gaussian observation model in the data's units, not a probability of "
            "discrete levels; a stochastic lower bound"
        ),
    }


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from dgm.data import load_dataset
    from dgm.evaluation.decision import classifies, evaluate_classifier
    from dgm.evaluation.sample_quality import QUALITY_METRICS, evaluate_sample_quality

    model, cfg = _load_run(args.run, args.device)
    meta = cfg.get("data", {})
    name = args.data or meta.get("name", "digits")
    data_dir = args.data_dir or meta.get("data_dir")
    dataset = load_dataset(str(name), data_dir)
    metrics = _eval_metrics(args.metrics, model, dataset)
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    x = dataset.split(args.split).x
    if args.limit:
        x = x[: args.limit]
    if dataset.spec.binarize and args.split == "train":  # probabilities: one fixed draw
        x = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))
    cli_ood.check_levels(model, x, name)
    torch.manual_seed(args.seed)
    out: dict[str, Any] = {"model": model.name, "data": str(name), "split": args.split}
    if "nll" in metrics:
        out.update(_eval_nll(args, model, x))
    if "ais" in metrics:
        out.update(_eval_ais(args, model, dataset, x))
    quality = [m for m in metrics if m in QUALITY_METRICS]
    if quality:
        if args.num_generated is not None and args.num_generated < 2:
            raise ConfigError(f"--num-generated must be >= 2, got {args.num_generated}")
        out.update(
            evaluate_sample_quality(
                model,
                dataset,
                args.run,
                metrics=quality,
                features=args.features,
                split=args.split,
                num_generated=args.num_generated,
                seed=args.seed,
                show=_err,
            )
        )
    y = dataset.split(args.split).y
    if y is not None and "nll" in metrics and classifies(model):
        labels = evaluate_classifier(model, x, y[: x.shape[0]], args.batch_size)
        out.update({"accuracy": labels["accuracy"], "ece": labels["ece"],
                    "label_nll_nats": labels["label_nll"]})  # fmt: skip
    out.setdefault("n", int(x.shape[0]))
    out["run"] = str(args.run)
    if args.json:
        print(json.dumps(out))
        return EXIT_OK
    print(f"{model.name} on {name} ({args.split}, n={out['n']}):")
    if "nll_nats" in out:
        print(f"  nll {out['nll_nats']:.3f} ± {out['nll_sem']:.3f} nats, {out['bpd']:.4f} bits/dim")
        if "elbo_nats" in out:
            print(f"  -elbo {out['elbo_nats']:.3f} ± {out['elbo_sem']:.3f} nats")
        print(f"  {out['estimate']}")
    if "ais_nll_nats" in out:
        print(
            f"  ais nll {out['ais_nll_nats']:.3f} ± {out['ais_sem']:.3f} nats "
            f"(sigma {out['ais_sigma']:g})"
        )
        print(f"  {out['ais_estimate']}")
    if "ece" in out:
        print(
            f"  labels: accuracy {out['accuracy']:.4f}, expected calibration error "
            f"{out['ece']:.4f}, nll {out['label_nll_nats']:.4f} nats"
        )
    for key in ("fd", "precision", "recall", "accuracy"):
        if key == "accuracy" and "ece" in out:
            continue
        if key in out:
            print(f"  {key} {out[key]:.4f}")
    if "modes_covered" in out:
        print(
            f"  modes covered {out['modes_covered']} / {out['modes_total']}, high-quality "
            f"samples {out['high_quality']:.1%} (exact samples: {out['high_quality_expected']:.1%})"
        )
    if "classes" in out:
        c = out["classes"]
        print(f"  classes covered {c['classes_covered']} / {c['classes_total']}")
    if "features" in out:
        print(f"  features: {out['features']}")
    return EXIT_OK


def _is_2d_density(model: Any, cfg: dict[str, Any]) -> bool:
    """2-D continuous data with an exact density: worth a picture of the density itself."""
    spec = cfg.get("data", {}).get("spec") or {}
    return (
        tuple(model.event_shape) == (2,)
        and spec.get("levels", 0) is None
        and bool(model.exact_likelihood)
        and "name" in cfg.get("data", {})
    )


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from dgm.data import DataSpec
    from dgm.io import atomic_write
    from dgm.plotting import save_samples

    if args.n < 1:
        raise ConfigError(f"-n must be >= 1, got {args.n}")
    model, cfg = _load_run(args.run, args.device)
    out = Path(args.out) if args.out else Path(args.run) / f"samples-seed{args.seed}.png"
    if out.suffix.lower() not in (".png", ".npy"):
        raise ConfigError(f"--out {out}: use a .png (picture) or .npy (array) file name")
    torch.manual_seed(args.seed)
    kwargs: dict[str, Any] = {}
    if args.temperature is not None:
        kwargs["temperature"] = args.temperature
    if args.label is not None:
        kwargs["labels"] = args.label
    accepted = inspect.signature(model.sample).parameters
    for key, flag in (("temperature", "--temperature"), ("labels", "--label")):
        if key in kwargs and key not in accepted:
            raise ConfigError(f"{model.name} takes no {flag} when sampling; drop it")
    x = model.sample(args.n, **kwargs).cpu()
    if out.suffix.lower() == ".npy":
        with atomic_write(out, "wb") as f:
            np.save(f, x.numpy(), allow_pickle=False)
    elif _is_2d_density(model, cfg):
        from dgm.data import load_dataset
        from dgm.plotting import save_density

        meta = cfg["data"]
        data = load_dataset(str(meta["name"]), meta.get("data_dir")).test.x[:5000]
        mass = save_density(model.log_prob, data, x, out, title=f"{model.name} on {meta['name']}")
        print(f"density mass in the picture's window: {mass:.3f}")
    else:
        spec_dict = cfg.get("data", {}).get("spec")
        spec = (
            DataSpec.from_dict(spec_dict)
            if spec_dict
            else DataSpec(
                name="samples",
                shape=model.event_shape,
                levels=getattr(model.config, "levels", None),
            )
        )
        save_samples(x, spec, out, title=f"{model.name} samples")
    print(f"wrote {args.n} samples to {out}")
    return EXIT_OK


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import torch

    from dgm.data import load_dataset
    from dgm.plotting import save_reconstructions

    if args.n < 1:
        raise ConfigError(f"-n must be >= 1, got {args.n}")
    out = Path(args.out) if args.out else Path(args.run) / "reconstructions.png"
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {out}: use a .png file name")
    model, cfg = _load_run(args.run, args.device)
    if not callable(getattr(model, "reconstruct", None)):
        raise ConfigError(
            f"{model.name} has no encoder, so nothing to reconstruct; use a latent-variable "
            "model (e.g. vae)"
        )
    meta = cfg.get("data", {})
    dataset = load_dataset(
        str(args.data or meta.get("name", "digits")), args.data_dir or meta.get("data_dir")
    )
    x = dataset.split(args.split).x[: args.n]
    if dataset.spec.binarize:
        x = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))
    model.check_input(x)
    torch.manual_seed(args.seed)
    model.eval()
    with torch.no_grad():
        recon = model.reconstruct(x.to(model.device)).cpu()
    save_reconstructions(x, recon, dataset.spec, out)
    print(f"wrote {len(x)} inputs and their reconstructions to {out}")
    return EXIT_OK


COMMANDS = {
    "list": cmd_list,
    "train": cmd_train,
    "eval": cmd_eval,
    "sample": cmd_sample,
    "reconstruct": cmd_reconstruct,
    "detect": cli_ood.cmd_detect,
    "ood": cli_ood.cmd_ood,
}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from dgm import __version__

        print(f"dgm {__version__}")
        return EXIT_OK
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except DgmError as e:
        _err(f"dgm {args.command}: error: {e}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("dgm: interrupted")
        return 130
    except Exception as e:
        if os.environ.get("DGM_DEBUG"):
            raise
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        from dgm.training.module import TrainingError

        if isinstance(e, MisconfigurationException):  # e.g. --accelerator gpu with no GPU
            _err(f"dgm {args.command}: error: {str(e).splitlines()[0]}")
            return EXIT_USAGE
        if isinstance(e, TrainingError):
            _err(f"dgm {args.command}: {e}")
        else:
            first = str(e).splitlines()[0] if str(e) else ""
            _err(
                f"dgm {args.command}: internal error: {type(e).__name__}: {first} "
                "(run again with DGM_DEBUG=1 for the traceback, and please report it)"
            )
        return EXIT_INTERNAL
