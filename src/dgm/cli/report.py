"""``dgm report RUN... --out report.html``: existing runs on one dataset side by side, in one
self-contained HTML page and a JSON file beside it (``dgm.report``).

Each run is measured the way ``dgm eval --json`` and ``dgm ood --json`` measure it, by the
same code with the same arguments (the report keeps each command): the likelihood with its
kind, the samples in one shared feature network, OOD AUROC against noise and inverted
inputs. ``dgm compare`` trains the runs first and then collects them here."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
from pathlib import Path
from typing import Any

from dgm.cli import common
from dgm.errors import ConfigError, DataError

# identical numbers whatever the order the runs come in
SEED_SUFFIX = re.compile(r"-seed(\d+)$")
# data kinds whose inputs `dgm ood --out noise|inverted` can build
ARRAY_KINDS = ("images", "vectors")
# K of a comparison's likelihoods where dgm eval's defaults take minutes a model: importance
# samples of an estimate (VAEs: 5000 in dgm eval), draws averaged of a diffusion bound (100,
# or T - 1 = 999 for ddpm: each draw one network pass per example; K lowers the variance of
# each example's number, not its mean)
ESTIMATE_K = 1000
AVERAGED_K = 10
# the columns the terminal's table shows (the page has them all)
TERMINAL_COLUMNS = ("nll_nats", "bpd", "train_time_s", "sample_ms", "fd", "precision", "recall",
                    "modes_covered", "auroc_noise", "auroc_inverted", "accuracy")  # fmt: skip
PICTURES = {"samples": "samples_plot", "curves": "loss_plot", "density": "density_plot"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="side-by-side report of existing runs on one dataset: one HTML page + JSON",
        description=(__doc__ or "").replace("``", ""),
        epilog="examples:\n  dgm report runs/arm runs/vae runs/gan --out report.html\n"
        "  dgm report runs/cmp/runs/*/ --out all.html   # a comparison's runs; seeds share a row\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders from 'dgm train'")
    p.add_argument(
        "--out", required=True, metavar="FILE.html", help="the page; FILE.json is written beside it"
    )
    add_measure(p)
    p.add_argument(
        "--features",
        default=None,
        metavar="DIR",
        help="the feature network every run's samples are scored in (default: the first run's "
        "RUN/features, trained there the first time)",
    )


def add_measure(p: argparse.ArgumentParser) -> None:
    """How runs are measured: the options ``dgm report`` and ``dgm compare`` share."""
    p.add_argument(
        "--num-samples",
        type=int,
        default=None,
        metavar="K",
        help=f"K of likelihoods that are not exact (default: {ESTIMATE_K} importance samples "
        f"for estimates, VAEs (dgm eval's own default is 5000, as the papers); {AVERAGED_K} "
        "draws averaged for diffusion bounds; the model's own for the others)",
    )
    p.add_argument(
        "--num-generated",
        type=int,
        default=None,
        metavar="N",
        help="samples each model draws for FD, precision and recall (default: the test split's "
        "size, <= 10000)",
    )
    p.add_argument(
        "--ood",
        default=None,
        metavar="DATA",
        help="also the AUROC against this dataset's test split (e.g. fashion-mnist for mnist)",
    )
    common.add_device(p)


def check_measure(args: argparse.Namespace) -> None:
    common.check_positive(args.num_samples, "--num-samples")
    if args.num_generated is not None and args.num_generated < 2:
        raise ConfigError(f"--num-generated must be >= 2, got {args.num_generated}")


# -- one run, measured as dgm eval and dgm ood measure it ----------------------------------------
def _parse(command: list[str]) -> argparse.Namespace:
    """``command`` (``["eval", RUN, ...]``) parsed by the command's own parser: the same
    defaults as on the command line."""
    from dgm.cli import eval as eval_cmd
    from dgm.cli import ood as ood_cmd

    p = common.Parser(prog="dgm")
    sub = p.add_subparsers(dest="command", parser_class=common.Parser)
    eval_cmd.add_parser(sub)
    ood_cmd.add_parser(sub)
    return p.parse_args(command)


def measure(command: list[str]) -> dict[str, Any]:
    """What ``dgm COMMAND --json`` prints, from the same code."""
    from dgm.cli import eval as eval_cmd
    from dgm.cli import ood as ood_cmd

    args = _parse(command)
    return (eval_cmd if args.command == "eval" else ood_cmd).evaluate(args)


def data_kind(spec: Any) -> str:
    if spec.is_audio:
        return "audio"
    if spec.is_molecules:
        return "molecules"
    if spec.is_text:
        return "text"
    return "images" if spec.is_image else "vectors"


def plan(
    run: str | Path, model: Any, spec: Any, args: argparse.Namespace, features: str
) -> list[tuple[str, list[str]]]:
    """The commands that measure ``run``: ``(what, argv)`` pairs, each argv what a person types
    after ``dgm`` to get the same numbers."""
    from dgm.data.toy import MODES

    run = str(run)
    device = ["--device", args.device] if args.device != "auto" else []
    kind = data_kind(spec)
    out: list[tuple[str, list[str]]] = []
    k = num_samples(model, args.num_samples)
    k_nll = ["--num-samples", str(k)] if k else []
    # scoring three sets one input at a time: dgm ood's own K (<= 100), but the averaged
    # draws of a diffusion bound as in the NLL
    k_ood = k_nll if k and model.averaged_samples else []
    if model.has_likelihood:
        out.append(("nll", ["eval", run, "--json", *k_nll, *device]))
    gen = ["--num-generated", str(args.num_generated)] if args.num_generated else []
    if spec.name in MODES:
        out.append(("samples", ["eval", run, "--json", "--metrics", "modes", *gen, *device]))
    elif spec.num_classes and kind in ARRAY_KINDS:
        out.append((
            "samples",
            ["eval", run, "--json", "--metrics", "fd,precision,recall,classes", "--features",
             features, *gen, *device],
        ))  # fmt: skip
    if model.has_likelihood and kind in ARRAY_KINDS:
        # inverted levels are another kind of image; inverted vectors (low + high - x) may be
        # the same distribution (the toys are symmetric): noise only there
        for target in ("noise", "inverted") if kind == "images" else ("noise",):
            out.append((f"ood-{target}", ["ood", run, "--out", target, "--json", *k_ood, *device]))
    if model.has_likelihood and args.ood and kind in (*ARRAY_KINDS, "text"):
        name = ood_name(args.ood)
        out.append((f"ood-{name}", ["ood", run, "--out", args.ood, "--json", *k_ood, *device]))
    return out


def ood_name(data: str) -> str:
    """A column's name for ``--ood DATA``: a dataset's name, or a file's or folder's stem."""
    p = Path(data)
    return p.stem if (p.suffix or len(p.parts) > 1 or p.exists()) else data


def num_samples(model: Any, asked: int | None) -> int | None:
    """K of ``model``'s likelihood in a comparison: ``asked`` (--num-samples) where the
    likelihood is not exact, else :data:`ESTIMATE_K` for estimates and :data:`AVERAGED_K` for
    averaged bounds; None (the model's own) for the rest."""
    if not model.has_likelihood or model.likelihood_kind() == "exact":
        return None
    if asked is not None:
        return asked
    if model.likelihood_kind() == "estimate":
        return ESTIMATE_K
    return AVERAGED_K if model.averaged_samples else None


def prepare_features(dataset: Any, folder: str | Path) -> None:
    """Train the shared feature network now (when the data has labels for one and ``folder``
    holds none), before runs are measured side by side, so that it is trained once."""
    from dgm.data.toy import MODES
    from dgm.evaluation.features import feature_net_for

    spec = dataset.spec
    if spec.num_classes and data_kind(spec) in ARRAY_KINDS and spec.name not in MODES:
        if not (Path(folder) / "config.json").is_file():
            common.err(f"training the feature network on {spec.name} (once; kept in {folder})")
        feature_net_for(dataset, folder)


def measure_all(
    jobs: list[tuple[str | Path, str, int, Path | None]],
    spec: Any,
    args: argparse.Namespace,
    features: str,
    processes: int = 1,
    threads: int = 1,
) -> list[dict[str, Any]]:
    """The entries of every ``(run, label, seed, cache)`` of one dataset (``spec``, read once
    by the caller), in order: each run's commands
    (:func:`plan`) run in ``processes`` worker processes of ``threads`` threads each (in this
    process when 1), the slowest first so that the workers finish together; a run whose
    ``cache`` holds the same commands, written after its results.json, is read back."""
    plans = [
        _plan_run(r, label, seed, spec, args, features, cache) for r, label, seed, cache in jobs
    ]
    tasks = [(i, what, argv) for i, p in enumerate(plans) if p["entry"] is None
             for what, argv in p["commands"].items()]  # fmt: skip
    # a diffusion bound's K draws and samples of many steps, then importance-sampled estimates
    tasks.sort(key=lambda t: -plans[t[0]]["cost"])
    results: dict[tuple[int, str], dict[str, Any]] = {}
    if processes <= 1 or len(tasks) <= 1:
        for i, what, argv in tasks:
            common.err(f"  {plans[i]['label']}: dgm {shlex.join(argv)}")
            results[i, what] = measure(argv)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: a forked copy of a process that has run torch's thread pools can hang
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(processes, mp_context=context, initializer=_threads,
                                 initargs=(threads,)) as pool:  # fmt: skip
            common.err(f"  {len(tasks)} commands, {processes} at a time:")
            futures = {}
            for i, what, argv in tasks:
                common.err(f"  {plans[i]['label']}: dgm {shlex.join(argv)}")
                futures[i, what] = pool.submit(measure, argv)
            results = {key: f.result() for key, f in futures.items()}
    entries = []
    for i, p in enumerate(plans):
        if p["entry"] is None:
            measured = {what: results[i, what] for what in p["commands"]}
            p["entry"] = entry(p["run"], p["label"], p["seed"], measured, p["commands"],
                               p["family"], p["notes"])  # fmt: skip
            if p["cache"] is not None:
                from dgm.io import write_json

                write_json(p["cache"], {"commands": p["commands"], "entry": p["entry"]})
        entries.append(p["entry"])
    return entries


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _stopped(results: dict[str, Any], train: dict[str, Any]) -> str:
    """What ended training: ``epochs`` (all of them), ``budget`` (--max-time) or ``early``."""
    epochs = results.get("epochs") or 0
    if epochs >= int(train.get("epochs") or 0) > 0:
        return "epochs"
    budget = float(train.get("max_time") or 0)
    if budget and float(results.get("train_time_s") or 0) >= 0.9 * budget:
        return "budget"
    return "early"


def entry(
    run: str | Path,
    label: str,
    seed: int,
    measured: dict[str, dict[str, Any]],
    commands: dict[str, list[str]],
    family: str,
    notes: list[str],
) -> dict[str, Any]:
    """One run's row of the report: its own numbers (results.json), the measured ones and the
    pictures of its folder."""
    from dgm.runs import RunFolder

    folder = RunFolder(run)
    config = folder.read_config()
    results = folder.read_results()
    train = config.get("train") or {}
    e: dict[str, Any] = {
        "label": label,
        "model": config["model"],
        "family": family,
        "seed": seed,
        "run": str(run),
        "parameters": results.get("parameters"),
        "train_time_s": results.get("train_time_s"),
        "epochs": results.get("epochs"),
        "best_epoch": results.get("best_epoch"),
        "precision_mode": results.get("precision"),
        "stopped": _stopped(results, train),
        "kind": "none",
        "commands": {k: "dgm " + shlex.join(v) for k, v in commands.items()},
        "measured": measured,
        "notes": list(notes),
    }
    if results.get("precision") and not str(results["precision"]).startswith("32"):
        e["notes"].append(f"trained in {results['precision']} precision")
    nll = measured.get("nll", {})
    if "nll_nats" in nll:
        e.update({
            "nll_nats": nll["nll_nats"], "bpd": nll.get("bpd"), "kind": nll.get("kind", "exact"),
            "kind_text": nll.get("estimate", ""), "num_samples": nll.get("num_samples"),
        })  # fmt: skip
        for key in ("elbo_nats", "accuracy", "ece"):
            if key in nll:
                e[key] = nll[key]
    q = measured.get("samples") or (nll if "fd" in nll else {})
    for key in ("fd", "precision", "recall", "modes_covered", "modes_total", "high_quality"):
        if key in q:
            e[key] = q[key]
    if "classes" in q:
        e["classes_covered"] = q["classes"]["classes_covered"]
    if q.get("generated"):
        e["sample_ms"] = 1000 * q["sample_time_s"] / q["generated"]
    elif results.get("sample_time_s") is not None and train.get("num_samples"):
        e["sample_ms"] = 1000 * results["sample_time_s"] / train["num_samples"]
    for what, m in measured.items():
        if what.startswith("ood-") and "likelihood" in m.get("scores", {}):
            e[f"auroc_{what[4:]}"] = m["scores"]["likelihood"]["auroc"]
    e["curve"] = [
        [r["time_s"], r["val_bpd"]]
        for r in folder.read_metrics()
        if r.get("val_bpd") is not None and r.get("time_s") is not None
    ]
    e["pictures"] = {
        name: str(getattr(folder, attr))
        for name, attr in PICTURES.items()
        if getattr(folder, attr).is_file()
    }
    return e


def _plan_run(
    run: str | Path, label: str, seed: int, spec: Any, args: argparse.Namespace,
    features: str, cache: Path | None,
) -> dict[str, Any]:  # fmt: skip
    """What measuring ``run`` takes: its commands, notes and family, how slow it is likely
    to be, and its entry when ``cache`` holds it for the same commands and results."""
    from dgm import registry

    loaded = common.load_run(run, "cpu")
    model = loaded.model
    commands = dict(plan(run, model, spec, args, features))
    notes: list[str] = []
    if not model.has_likelihood:
        notes.append(f"{model.name} has no likelihood: no NLL and no OOD scores")
    if spec.num_classes is None and "samples" not in commands and data_kind(spec) in ARRAY_KINDS:
        notes.append(f"{spec.name} has no labels to train a feature network on: no FD")
    kept = None
    results = loaded.folder.results_file
    if cache is not None and cache.is_file() and results.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("commands") == commands and cache.stat().st_mtime >= results.stat().st_mtime:
            kept = saved["entry"]
    kind = model.likelihood_kind() if model.has_likelihood else "none"
    return {
        "run": run, "label": label, "seed": seed, "cache": cache, "commands": commands,
        "notes": notes, "family": registry.get(loaded.config["model"]).family, "entry": kept,
        "cost": 3 if model.averaged_samples else 2 if kind == "estimate" else 1,
    }  # fmt: skip


# -- the report ----------------------------------------------------------------------------------
def environment(jobs: int | None = None, threads: int | None = None) -> dict[str, Any]:
    """The machine and the software the numbers were measured with."""
    import torch

    from dgm.version import __version__

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = {
        "dgm": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpu": f"{cpu}, {cores()} cores",
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }
    if jobs is not None:
        env["parallel training jobs"] = jobs
    if threads is not None:
        env["threads per job"] = threads
    return env


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))  # Linux: what a container or taskset allows
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def data_info(dataset: Any, name: str) -> dict[str, Any]:
    spec = dataset.spec
    kind = data_kind(spec)
    unit = {"text": "bits/token", "molecules": "bits/token", "audio": "bits/sample"}.get(
        kind, "bits/dim"
    )
    shape = "x".join(str(s) for s in spec.shape)
    levels = f"{spec.levels} levels" if spec.levels else "continuous"
    return {
        "name": name,
        "kind": kind,
        "shape": list(spec.shape),
        "levels": spec.levels,
        "num_classes": spec.num_classes,
        "n_train": len(dataset.train),
        "n_test": len(dataset.test),
        "bpd_unit": unit,
        "description": f"{name}: {kind}, {shape}, {levels}, {len(dataset.train)} training and "
        f"{len(dataset.test)} test examples",
    }


def curves_figure(entries: list[dict[str, Any]], path: Path, unit: str) -> Path | None:
    """Validation NLL against training time, every model on one axis (first seed of each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen: dict[str, list] = {}
    for e in sorted(entries, key=lambda e: e.get("seed", 0)):
        if e["curve"] and e["label"] not in seen:
            seen[e["label"]] = e["curve"]
    if not seen:
        return None
    fig, ax = plt.subplots(figsize=(7.2, 3.8), dpi=110)
    for label, curve in seen.items():
        t, v = zip(*curve)
        ax.plot(t, v, label=label, lw=1.6)
    lows = sorted(min(c[1] for c in curve) for curve in seen.values())
    highs = sorted(curve[min(2, len(curve) - 1)][1] for curve in seen.values())
    ax.set_ylim(lows[0] - 0.05 * abs(lows[0]), max(highs[-1], lows[-1]) * 1.05)  # skip the start
    ax.set_xlabel("training time (s)")
    ax.set_ylabel(f"validation NLL ({unit})")
    ax.set_title("validation NLL during training (bounds and estimates as they trained)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def labels_of(runs: list[str]) -> list[tuple[str, int]]:
    """Each run's row label and seed: its folder name, less a ``-seedN`` suffix (``dgm
    compare``'s runs), so the seeds of one model share a row."""
    out = []
    for r in runs:
        name = Path(r).resolve().name
        m = SEED_SUFFIX.search(name)
        out.append((name[: m.start()], int(m.group(1))) if m else (name, 0))
    return out


def check_same_data(runs: list[str]) -> None:
    """Refuse runs on different datasets (naming them) and runs with no model yet."""
    from dgm.runs import RunFolder

    configs = {r: RunFolder(r).read_config() for r in runs}
    for r in runs:
        if not RunFolder(r).has_weights():
            raise ConfigError(
                f"{r} holds no trained model yet: finish it with dgm train --resume {r}"
            )
    names = {r: str((c.get("data") or {}).get("name", "digits")) for r, c in configs.items()}
    if len(set(names.values())) > 1:
        listed = ", ".join(f"{r} ({n})" for r, n in names.items())
        raise DataError(
            f"the runs are on different datasets: {listed}; a report compares runs on one dataset"
        )


def write(
    entries: list[dict[str, Any]],
    html: Path,
    json_path: Path,
    dataset: Any,
    name: str,
    settings: dict[str, Any],
    env: dict[str, Any],
    skipped: list[dict[str, str]] = (),  # type: ignore[assignment]
    figure_dir: Path | None = None,
) -> dict[str, Any]:
    from dgm.report import build_report, write_report

    info = data_info(dataset, name)
    precisions = sorted({str(e["precision_mode"]) for e in entries if e.get("precision_mode")})
    env = {**env, "precision": ", ".join(precisions) or "unknown"}
    report = build_report(entries, data=info, settings=settings, environment=env,
                          skipped=list(skipped))  # fmt: skip
    fig = curves_figure(entries, (figure_dir or html.parent) / f"{html.stem}-curves.png",
                        info["bpd_unit"])  # fmt: skip
    if fig is not None:
        report["pictures"] = {"curves": str(fig)}
    write_report(report, html, json_path, {"validation curves": fig} if fig else None)
    return report


def print_table(report: dict[str, Any], html: Path) -> None:
    from dgm.report import table_text

    named = [c["key"] for c in report["columns"] if c["key"].startswith("auroc_")]
    print(table_text(report, (*TERMINAL_COLUMNS, *named)))
    print()
    for line in report["reading"]:
        print(f"- {line}")
    print(f"\nreport: {html}")


def command_line(args: argparse.Namespace, html: Path) -> str:
    """The command that makes this report again."""
    argv = ["report", *map(str, args.runs), "--out", str(html)]
    for flag, value in (
        ("--num-samples", args.num_samples),
        ("--num-generated", args.num_generated),
        ("--ood", args.ood),
        ("--features", args.features),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return "dgm " + shlex.join(argv)


def run(args: argparse.Namespace) -> int:
    html = Path(args.out)
    if html.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out {html}: give the page's file name, ending in .html")
    common.check_output(html, "--out")
    check_measure(args)
    check_same_data(args.runs)
    labels = labels_of(args.runs)
    if len(set(labels)) < len(labels):
        raise ConfigError("two runs share a folder name and seed; pass each run once")
    first = common.load_run(args.runs[0], "cpu")
    dataset = first.dataset()
    name = first.data_name()
    features = args.features or str(first.folder.features)
    common.err(f"measuring {len(args.runs)} runs on {name} (features: {features})")
    prepare_features(dataset, features)
    jobs = [(r, label, seed, None) for r, (label, seed) in zip(args.runs, labels)]
    # one process a core, one thread each (in this process on a GPU, or for one run)
    processes = 1 if common.device(args.device) != "cpu" else min(cores(), len(jobs))
    entries = measure_all(jobs, dataset.spec, args, features, processes)
    settings = {
        "command": command_line(args, html),
        "num_samples": args.num_samples
        or f"{ESTIMATE_K} (estimates), {AVERAGED_K} (averaged bounds)",
        "num_generated": entries[0].get("measured", {}).get("samples", {}).get("generated"),
        "features": features,
        "seeds": sorted({e["seed"] for e in entries}),
    }
    report = write(entries, html, html.with_suffix(".json"), dataset, name, settings,
                   environment())  # fmt: skip
    print_table(report, html)
    return common.EXIT_OK
