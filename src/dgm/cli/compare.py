"""``dgm compare --data DATA --out DIR``: one model of each family that fits the data, each
trained with the same time budget, measured the same way, side by side in ``DIR/report.html``
and ``DIR/report.json``.

Each model trains as its own ``dgm train`` process (two or more at once where there are cores
for them, one thread each), into ``DIR/runs/LABEL-seedS``; then every run is measured by
``dgm report``'s code (the same numbers as ``dgm eval --json`` and ``dgm ood --json``, with
one feature network for every model's samples, in ``DIR/features``). Running the same command
again resumes: finished runs are reused, interrupted ones continue from their last epoch, and
measurements already made are read back (``DIR/evals``)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dgm.cli import common
from dgm.cli import report as report_cmd
from dgm.config import parse_set
from dgm.errors import ConfigError, DataError

# compare.json's "format": what tells a comparison's folder from any other
FORMAT = "dgm-comparison"
DEFAULT_BUDGET = 30.0  # seconds of training per model: the README's first command
# one model per family, in the table's order: (model, settings). The settings make a model
# measurable in a comparison's time (VDM's 1000 sampling steps take minutes for a few hundred
# digits; 100 keep its samples) and are listed with its row.
DEFAULT_MODELS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "arrays": (
        ("arm", {}),
        ("realnvp", {}),
        ("vae", {}),
        ("gan", {}),
        ("vdm", {"steps": 100}),
        ("hybrid-vae", {}),
    ),
    "text": (("lstm-lm", {}), ("transformer-lm", {}), ("text-vae", {})),
    "molecules": (("char-rnn", {}), ("mol-vae", {}), ("grammar-vae", {})),
    "audio": (("wavenet", {}), ("vqvae", {})),
}
EXAMPLES = """examples:
  dgm compare                                   # digits, one model per family, 30 s each
  dgm compare --data mnist --budget 600 --seeds 3 --ood fashion-mnist
  dgm compare --data my_images/ --models arm,realnvp,gan:objective=hinge --out runs/cmp
                                                # the same again: resumes, reuses what is done
"""
POLL_S = 0.5  # how often running training processes are checked
STOP_WAIT_S = 60.0  # how long an interrupted training process may take to save and stop


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="train one model per family with the same budget; one HTML report side by side",
        description=(__doc__ or "").replace("``", ""),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common.add_data(p, "dataset name or path (default: digits)")
    p.add_argument(
        "--models",
        default=None,
        metavar="LIST",
        help="comma-separated models, each NAME or NAME:KEY=VALUE[:KEY=VALUE] (e.g. "
        "arm,gan:objective=hinge) (default: one per family that fits the data)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET,
        metavar="SECONDS",
        help=f"seconds of training per model and seed (default: {DEFAULT_BUDGET:g})",
    )
    p.add_argument("--seeds", type=int, default=1, metavar="N", help="seeds 0..N-1 (default: 1)")
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="J",
        help="training processes at once, one thread each (default: one per CPU core, at most "
        "one per run; 1 with a GPU)",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="default: runs/compare-DATA")
    p.add_argument(
        "--accelerator",
        default="auto",
        help="passed to dgm train: cpu | gpu | auto (default: auto)",
    )
    report_cmd.add_measure(p)


@dataclass
class Job:
    """One training run of the comparison: a model with its settings and a seed."""

    label: str
    name: str
    settings: dict[str, Any]
    seed: int
    folder: Path

    @property
    def run_name(self) -> str:
        return f"{self.label}-seed{self.seed}"

    def state(self) -> str:
        """``done`` (results.json written), ``resume`` (a checkpoint to go on from) or ``new``."""
        if (self.folder / "results.json").is_file():
            return "done"
        if (self.folder / "last.ckpt").is_file():
            return "resume"
        return "new"

    def argv(self, args: argparse.Namespace) -> list[str]:
        if self.state() == "resume":
            return ["train", "--resume", str(self.folder)]
        data = ["--data", args.data or "digits"] + (
            ["--data-dir", args.data_dir] if args.data_dir else []
        )
        sets = [a for k, v in self.settings.items() for a in ("--set", f"{k}={v}")]
        return [
            "train", self.name, *data, "--out", str(self.folder), "--overwrite",
            "--seed", str(self.seed), "--max-time", f"{args.budget:g}",
            "--accelerator", args.accelerator, *sets,
        ]  # fmt: skip


def parse_models(text: str) -> list[tuple[str, dict[str, str]]]:
    """``arm,gan:objective=hinge:d_steps=2`` -> ``[("arm", {}), ("gan", {...})]``."""
    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, *pairs = item.split(":")
        try:
            settings = parse_set(pairs)
        except ConfigError:
            raise ConfigError(
                f"--models {item}: settings are KEY=VALUE, as in gan:objective=hinge"
            ) from None
        out.append((name.strip(), settings))
    if not out:
        raise ConfigError("--models is empty; name at least one model (see 'dgm list')")
    return out


def _label(name: str, settings: dict[str, str]) -> str:
    return name + "".join(f"-{k}={v}" for k, v in settings.items())


def _fits(name: str, settings: dict[str, Any], spec: Any) -> None:
    """Raise the one-line error that says why ``name`` with ``settings`` cannot be trained on
    data like ``spec`` (the same checks dgm train makes before it starts)."""
    from dgm import registry
    from dgm.training import build
    from dgm.training.config import split_options

    cls = registry.get(name).cls
    model_opts, train_opts = split_options(cls, dict(settings))
    build(name, spec, model_opts, {**cls.train_defaults_for(spec), **train_opts})


def choose(args: argparse.Namespace, spec: Any, kind: str) -> tuple[list[tuple], list[dict]]:
    """The models to compare, ``(label, name, settings)``, and those left out of the
    default set with why. A model the user named that cannot take the data is an error."""
    from dgm import registry
    from dgm.errors import DgmError

    chosen, skipped = [], []
    if args.models is None:
        group = "arrays" if kind in report_cmd.ARRAY_KINDS else kind
        for name, settings in DEFAULT_MODELS[group]:
            try:
                _fits(name, settings, spec)
            except DgmError as e:
                skipped.append({"model": name, "why": str(e)})
                continue
            chosen.append((name, name, settings))
        if not chosen:
            raise DataError(f"no model of the default set takes {spec.name}: " + "; ".join(
                f"{s['model']}: {s['why']}" for s in skipped))  # fmt: skip
        return chosen, skipped
    for name, settings in parse_models(args.models):
        registry.get(name)  # an unknown name: one line with the known ones
        try:
            _fits(name, settings, spec)
        except DataError as e:
            raise DataError(f"--models {name} cannot model {spec.name}: {e}") from None
        chosen.append((_label(name, settings), name, settings))
    labels = [c[0] for c in chosen]
    if len(set(labels)) < len(labels):
        raise ConfigError("--models names the same model and settings twice")
    return chosen, skipped


def check_out(out: Path, data: str, budget: float) -> dict[str, Any] | None:
    """``--out`` is new, empty or a comparison of the same data and budget (then resumed):
    its compare.json, or None for a new one. Anything else is refused before any work."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; choose a folder for the comparison")
    common.check_output(out, "--out", folder=True)
    if not out.is_dir() or not any(out.iterdir()):
        return None
    marker = out / "compare.json"
    try:
        kept = json.loads(marker.read_text()) if marker.is_file() else None
    except ValueError:
        kept = None
    if not isinstance(kept, dict) or kept.get("format") != FORMAT:
        raise ConfigError(
            f"--out {out} holds other files, not a comparison; choose a new or empty folder"
        )
    if kept.get("data") != data:
        raise ConfigError(
            f"--out {out} compares models on {kept.get('data')}, not {data}; choose another folder"
        )
    if kept.get("budget_s") != budget:
        raise ConfigError(
            f"--out {out} was trained with --budget {kept.get('budget_s'):g}; give the same "
            "budget to go on, or another folder"
        )
    return kept


def _last_line(log: Path) -> str:
    try:
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def train_all(jobs: list[Job], args: argparse.Namespace, parallel: int, threads: int) -> dict:
    """Train the jobs that are not done, ``parallel`` processes at a time; return the failed
    ones' reasons by run name. Ctrl-C (or SIGTERM) stops every process cleanly (each saves
    its last epoch) and re-raises KeyboardInterrupt."""
    todo = [j for j in jobs if j.state() != "done"]
    for j in jobs:
        if j.state() == "done":
            common.err(f"reusing {j.folder} (finished)")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}  # fmt: skip
    running: list[tuple[Job, subprocess.Popen, float, Any]] = []
    failed: dict[str, str] = {}
    total, started = len(todo), 0
    try:
        while todo or running:
            while todo and len(running) < parallel:
                job = todo.pop(0)
                started += 1
                how = "resuming" if job.state() == "resume" else "training"
                job.folder.parent.mkdir(parents=True, exist_ok=True)
                log_path = job.folder.parent / f"{job.run_name}.log"
                log = open(log_path, "a")  # noqa: SIM115 (closed when the process ends)
                argv = job.argv(args)
                log.write(f"$ dgm {shlex.join(argv)}\n")
                log.flush()
                common.err(
                    f"[{started}/{total}] {how} {job.label} (seed {job.seed}) for up to "
                    f"{args.budget:g} s: log {log_path}"
                )
                proc = subprocess.Popen(
                    [sys.executable, "-m", "dgm", *argv], stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, env=env,
                    # its own session: Ctrl-C reaches this process only, which passes it on once
                    # (a second signal could cut a run's checkpoint short)
                    start_new_session=True,
                )  # fmt: skip
                running.append((job, proc, time.perf_counter(), log))
            time.sleep(POLL_S)
            for item in list(running):
                job, proc, t0, log = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                log.close()
                took = time.perf_counter() - t0
                if proc.returncode == 0 and job.state() == "done":
                    common.err(f"finished {job.label} (seed {job.seed}) in {took:.0f} s")
                else:
                    why = _last_line(job.folder.parent / f"{job.run_name}.log")
                    failed[job.run_name] = f"training failed (exit {proc.returncode}): {why}"
                    common.err(f"failed {job.label} (seed {job.seed}): {why}")
    except KeyboardInterrupt:
        # SIGTERM, which dgm train handles as Ctrl-C (it saves its last epoch and exits 130):
        # SIGINT may be ignored where this command runs in the background of a shell
        for _, proc, _, _ in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.perf_counter() + STOP_WAIT_S
        for _, proc, _, log in running:
            try:
                proc.wait(max(0.1, deadline - time.perf_counter()))
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        raise
    return failed


def run(args: argparse.Namespace) -> int:
    from dgm.data import load_dataset

    common.check_number(args.budget, "--budget")
    common.check_positive(args.seeds, "--seeds")
    common.check_positive(args.jobs, "--jobs")
    report_cmd.check_measure(args)
    data = args.data or "digits"
    dataset = load_dataset(data, args.data_dir)
    kind = report_cmd.data_kind(dataset.spec)
    chosen, skipped = choose(args, dataset.spec, kind)
    out = Path(args.out or f"runs/compare-{Path(data).stem}")
    kept = check_out(out, data, args.budget)
    for s in skipped:
        common.err(f"note: left out {s['model']}: {s['why']}")
    jobs = [
        Job(label, name, settings, seed, out / "runs" / f"{label}-seed{seed}")
        for label, name, settings in chosen
        for seed in range(args.seeds)
    ]
    gpu = args.accelerator == "gpu" or (args.accelerator == "auto" and _has_gpu())
    parallel = args.jobs or (1 if gpu else max(1, min(report_cmd.cores(), len(jobs))))
    threads = 1 if parallel > 1 else max(1, report_cmd.cores())
    from dgm.io import write_json

    write_json(out / "compare.json", {
        "format": FORMAT, "data": data, "data_dir": args.data_dir, "budget_s": args.budget,
        "created": (kept or {}).get("created") or time.strftime("%Y-%m-%dT%H:%M:%S"),
        "models": sorted({*(kept or {}).get("models", []), *(c[0] for c in chosen)}),
    })  # fmt: skip
    common.err(
        f"comparing {', '.join(c[0] for c in chosen)} on {data}: {args.budget:g} s of training "
        f"each, {args.seeds} seed{'s' if args.seeds > 1 else ''}, {parallel} at a time; in {out}"
    )
    t0 = time.perf_counter()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # a scheduler's stop: as Ctrl-C
    try:
        failed = train_all(jobs, args, parallel, threads)
        train_s = time.perf_counter() - t0
        done = [j for j in jobs if j.run_name not in failed]
        if not done:
            raise ConfigError("every training run failed: " + "; ".join(failed.values()))
        features = str(out / "features")
        common.err(f"measuring {len(done)} runs (features: {features})")
        report_cmd.prepare_features(dataset, features)
        measured = [(j.folder, j.label, j.seed, out / "evals" / f"{j.run_name}.json") for j in done]
        # side by side as they trained: one process a core (one on a GPU)
        entries = report_cmd.measure_all(measured, dataset.spec, args, features, parallel, threads)
    except KeyboardInterrupt:
        common.err(
            f"dgm compare: interrupted; finished runs and measurements are kept in {out}: the "
            "same command goes on where it stopped"
        )
        return common.EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
    for j, e in zip(done, entries):
        if j.settings:
            e["notes"] = [f"settings: {', '.join(f'{k}={v}' for k, v in j.settings.items())}",
                          *e["notes"]]  # fmt: skip
    skipped += [{"model": name, "why": why} for name, why in failed.items()]
    settings = {
        "command": command_line(args, data, out),
        "budget_s": args.budget,
        "seeds": list(range(args.seeds)),
        "num_samples": args.num_samples
        or f"{report_cmd.ESTIMATE_K} (estimates), {report_cmd.AVERAGED_K} (averaged bounds)",
        "num_generated": next(
            (e["measured"]["samples"].get("generated") for e in entries
             if "samples" in e["measured"]), None),
        "features": features,
        "training wall time, this session (s)": round(train_s, 1),
    }  # fmt: skip
    html = out / "report.html"
    settings["training and measuring, this session (s)"] = round(time.perf_counter() - t0, 1)
    env = report_cmd.environment(parallel, threads)
    report = report_cmd.write(
        entries, html, out / "report.json", dataset, data, settings, env, skipped, out
    )
    report_cmd.print_table(report, html)
    return common.EXIT_OK


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def command_line(args: argparse.Namespace, data: str, out: Path) -> str:
    """The command that makes (or resumes) this comparison."""
    argv = ["compare", "--data", data, "--budget", f"{args.budget:g}", "--out", str(out)]
    if args.models:
        argv += ["--models", args.models]
    if args.seeds > 1:
        argv += ["--seeds", str(args.seeds)]
    for flag, value in (("--ood", args.ood), ("--num-samples", args.num_samples),
                        ("--num-generated", args.num_generated)):  # fmt: skip
        if value is not None:
            argv += [flag, str(value)]
    return "dgm " + shlex.join(argv)
