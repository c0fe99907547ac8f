"""``dgm detect`` and ``dgm ood``: using p(x) for decisions (see ``dgm.evaluation.decision``
and ``dgm.evaluation.ood``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dgm.errors import ConfigError, DataError

EVAL_SAMPLES = 100  # importance samples for latent models here: K=5000 per input is minutes


def add_parsers(sub: Any) -> None:
    d = sub.add_parser(
        "detect",
        help="score inputs: label, p(label|x), log p(x) and a decision for each",
        description="Score each input (an image or array file, or every file in a folder) "
        "with log p(x) and, for hybrid models, a label and p(label|x); decide 'confident', "
        "'uncertain-label' or 'uncertain-object' with a log p(x) threshold calibrated on the "
        "run's validation split. Image files are 8-bit and mapped to the model's levels; "
        "arrays (.npy, .npz, .csv) are read in the data's own units.",
    )
    d.add_argument("run", metavar="RUN", help="a run folder from 'dgm train'")
    d.add_argument("inputs", metavar="INPUTS", help="a file or folder of images or arrays")
    d.add_argument(
        "--keep",
        type=float,
        default=0.95,
        help="share of validation inputs whose log p(x) passes the threshold (default 0.95)",
    )
    d.add_argument(
        "--min-p-label",
        type=float,
        default=0.5,
        help="below this p(label|x) a plausible input is 'uncertain-label' (default 0.5)",
    )
    d.add_argument(
        "--log-px-threshold",
        type=float,
        default=None,
        metavar="NATS",
        help="use this log p(x) threshold instead of calibrating one on validation data",
    )
    _common(d)
    d.add_argument("--json", action="store_true", help="one JSON object per input, then a summary")
    d.add_argument(
        "--out", default=None, metavar="FILE.json|FILE.csv", help="also write the report to FILE"
    )

    o = sub.add_parser(
        "ood",
        help="out-of-distribution detection: AUROC, AUPR and FPR95 of every score",
        description="Score in-distribution (--in) and out-of-distribution (--out) test inputs "
        "with every OOD score that applies to the run's model, and report AUROC, AUPR and the "
        "false-positive rate at 95%% true-positive rate (OOD is the positive class), with "
        "histograms of the scores. --out may also be 'noise' or 'inverted' (built from --in).",
    )
    o.add_argument("run", metavar="RUN", help="a run folder from 'dgm train'")
    o.add_argument(
        "--in", dest="in_data", default=None, help="in-distribution data (default: the run's)"
    )
    o.add_argument(
        "--out", dest="out_data", required=True, help="OOD data: a dataset, a path, noise, inverted"
    )
    o.add_argument("--split", default="test", choices=["train", "val", "test"])
    o.add_argument("--limit", type=int, default=None, metavar="N", help="first N inputs of each")
    o.add_argument(
        "--background",
        default=None,
        metavar="RUN",
        help="a run of the same model on perturbed inputs (dgm train ... --set perturb=0.2), "
        "for the likelihood ratio (Ren et al. 2019)",
    )
    o.add_argument(
        "--compressor",
        default="png",
        choices=["png", "zlib", "bz2", "lzma"],
        help="lossless compressor of the input-complexity score (Serra et al. 2020)",
    )
    _common(o)
    o.add_argument("--plot", default=None, metavar="FILE.png", help="default: RUN/ood-IN-OUT.png")
    o.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None)
    p.add_argument(
        "--num-samples",
        type=int,
        default=None,
        metavar="K",
        help=f"importance samples where log p(x) is estimated (default {EVAL_SAMPLES} for latent "
        "models, 1 for dequantised flows)",
    )
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="cpu | cuda | auto")


def _num_samples(args: argparse.Namespace, model: Any) -> int | None:
    if model.exact_likelihood:
        return None
    k = args.num_samples or min(model.default_eval_samples, EVAL_SAMPLES)
    if k < 1:
        raise ConfigError(f"--num-samples must be >= 1, got {k}")
    return k


def _likelihood_model(model: Any) -> None:
    if not model.has_likelihood:
        raise ConfigError(
            f"{model.name} has no likelihood to score inputs with; use a likelihood model "
            "(arm, flow, vae, hybrid-flow, ...)"
        )


def _run_dataset(run_cfg: dict[str, Any], name: str | None, data_dir: str | None) -> Any:
    from dgm.data import load_dataset

    meta = run_cfg.get("data", {})
    return load_dataset(str(name or meta.get("name", "digits")), data_dir or meta.get("data_dir"))


def _eval_inputs(ds: Any, split: str, limit: int | None) -> Any:
    import torch

    x = ds.split(split).x
    if limit:
        x = x[:limit]
    if ds.spec.binarize:  # probabilities: one fixed binarization
        x = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))
    return x


def check_levels(model: Any, x: Any, what: str) -> None:
    """The model takes x: its shape (``check_input``) and, for discrete data, its levels."""
    model.check_input(x)
    levels = getattr(model.config, "levels", None)
    if levels is not None and x.numel() and (x.min() < 0 or x.max() > levels - 1):
        raise DataError(
            f"{what}: values span [{x.min().item():g}, {x.max().item():g}] but the model "
            f"was trained on {levels} levels (0..{levels - 1})"
        )


# -- dgm detect ---------------------------------------------------------------------------------
def cmd_detect(args: argparse.Namespace) -> int:
    import torch

    from dgm.cli import EXIT_OK, EXIT_USAGE, _err, _load_run
    from dgm.data import DataSpec
    from dgm.data.inputs import read_inputs
    from dgm.evaluation.decision import Thresholds, calibrate, decide, score, summarize

    model, cfg = _load_run(args.run, args.device)
    _likelihood_model(model)
    spec_dict = cfg.get("data", {}).get("spec")
    if not spec_dict:
        raise DataError(f"{args.run}: config.json names no data spec; retrain with this dgm")
    spec = DataSpec.from_dict(spec_dict)
    items = read_inputs(args.inputs, spec)
    k = _num_samples(args, model)
    torch.manual_seed(args.seed)
    if args.log_px_threshold is not None:
        thr = Thresholds(args.log_px_threshold, args.min_p_label, float("nan"), 0)
    else:
        val = _eval_inputs(_run_dataset(cfg, None, args.data_dir), "val", None)
        val_lp, _ = score(model, val, args.batch_size, k)
        thr = calibrate(val_lp, args.keep, args.min_p_label)
    valid = [it for it in items if it.x is not None]
    records: dict[int, dict[str, Any]] = {}
    if valid:
        x = torch.stack([it.x for it in valid])
        log_px, log_py = score(model, x, args.batch_size, k)
        for it, rec in zip(valid, decide(log_px, log_py, thr, spec.dim)):
            records[id(it)] = rec
    rows = [
        {"input": it.name, **records[id(it)]}
        if it.x is not None
        else {"input": it.name, "error": it.error}
        for it in items
    ]
    summary = {
        "model": model.name,
        "run": str(args.run),
        "inputs": len(rows),
        "invalid": len(items) - len(valid),
        **summarize(list(records.values())),
        "thresholds": thr.to_dict(),
        **({"num_samples": k} if k else {}),
    }
    if args.out:
        _write_report(Path(args.out), rows, summary)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        print(json.dumps({"summary": summary}))
    else:
        _print_detect(rows, summary, thr)
    if not valid:
        _err(f"dgm detect: error: none of the {len(items)} inputs could be scored (see above)")
        return EXIT_USAGE
    return EXIT_OK


def _print_detect(rows: list[dict[str, Any]], summary: dict[str, Any], thr: Any) -> None:
    width = min(48, max((len(r["input"]) for r in rows), default=5))
    for r in rows:
        name = r["input"] if len(r["input"]) <= width else "..." + r["input"][-(width - 3) :]
        if "error" in r:
            print(f"{name:<{width}}  invalid: {r['error']}")
            continue
        label = "" if r["label"] is None else f"label {r['label']}  p {r['p_label']:.3f}  "
        print(
            f"{name:<{width}}  {label}log p(x) {r['log_px']:9.2f} nats  "
            f"{r['bpd']:6.3f} bpd  {r['decision']}"
        )
    how = (
        f"keeps {thr.keep:.0%} of {thr.num_val} validation inputs"
        if thr.num_val
        else "given by --log-px-threshold"
    )
    counts = ", ".join(
        f"{summary[d]} {d}" for d in ("confident", "uncertain-label", "uncertain-object")
    )
    print(
        f"{summary['inputs']} inputs: {counts}, {summary['invalid']} invalid; "
        f"log p(x) threshold {thr.log_px:.2f} nats ({how})"
        + (
            f", p(label|x) threshold {thr.min_p_label:g}"
            if any(r.get("label") is not None for r in rows)
            else ""
        )
    )


def _write_report(path: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    from dgm.io import atomic_write

    suffix = path.suffix.lower()
    if suffix == ".json":
        with atomic_write(path, "w") as f:
            json.dump({"inputs": rows, "summary": summary}, f, indent=1)
    elif suffix == ".csv":
        import csv

        keys = ["input", "label", "p_label", "log_px", "bpd", "decision", "error"]
        with atomic_write(path, "w") as f:
            w = csv.DictWriter(f, fieldnames=keys, lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in keys})
    else:
        raise ConfigError(f"--out {path}: use a .json or .csv file name")


# -- dgm ood ------------------------------------------------------------------------------------
def cmd_ood(args: argparse.Namespace) -> int:
    import torch

    from dgm.cli import EXIT_OK, _err, _load_run
    from dgm.data.inputs import DERIVED, derived_inputs
    from dgm.evaluation.likelihood import per_example_nll
    from dgm.evaluation.ood import SCORES, ood_report, score_inputs, unavailable_scores
    from dgm.plotting import save_score_histograms

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    model, cfg = _load_run(args.run, args.device)
    _likelihood_model(model)
    ds_in = _run_dataset(cfg, args.in_data, args.data_dir)
    in_name = args.in_data or cfg.get("data", {}).get("name", "digits")
    x_in = _eval_inputs(ds_in, args.split, args.limit)
    check_levels(model, x_in, f"--in {in_name}")
    if args.out_data in DERIVED:
        x_out = derived_inputs(args.out_data, x_in, ds_in.spec, args.seed)
    else:
        from dgm.data import load_dataset

        ds_out = load_dataset(args.out_data, args.data_dir or cfg.get("data", {}).get("data_dir"))
        x_out = _eval_inputs(ds_out, args.split, args.limit)
    check_levels(model, x_out, f"--out {args.out_data}")
    background = None
    if args.background:
        background, _ = _load_run(args.background, args.device)
        _likelihood_model(background)
        check_levels(background, x_in[:1], f"--background {args.background}")
    k = _num_samples(args, model)
    kw = {} if k is None else {"num_samples": k}
    torch.manual_seed(args.seed)
    reference = _eval_inputs(ds_in, "val", args.limit)
    _err(
        f"scoring {reference.shape[0]} validation, {x_in.shape[0]} in and "
        f"{x_out.shape[0]} out inputs"
    )
    reference_nll = per_example_nll(model, reference, args.batch_size, **kw)
    common = {
        "reference_nll": reference_nll,
        "background": background,
        "compressor": args.compressor,
        "num_samples": k,
        "batch_size": args.batch_size,
        "progress": sys.stderr.isatty(),
    }
    scores_in = score_inputs(model, x_in, **common)
    scores_out = score_inputs(model, x_out, **common)
    report = ood_report(scores_in, scores_out)
    plot = (
        Path(args.plot)
        if args.plot
        else Path(args.run) / f"ood-{_slug(in_name)}-{_slug(args.out_data)}.png"
    )
    save_score_histograms(
        {k_: v.numpy() for k_, v in scores_in.items()},
        {k_: v.numpy() for k_, v in scores_out.items()},
        plot,
        in_name=str(in_name),
        out_name=str(args.out_data),
        metrics=report,
    )
    missing = unavailable_scores(
        model, reference_nll=reference_nll, background=background, compressor=args.compressor
    )
    notes = [f"{name}: {why}" for name, why in missing.items()]
    best = max(report, key=lambda s: report[s]["auroc"]) if report else None
    out = {
        "model": model.name,
        "run": str(args.run),
        "in": str(in_name),
        "out": str(args.out_data),
        "split": args.split,
        "n_in": int(x_in.shape[0]),
        "n_out": int(x_out.shape[0]),
        "scores": report,
        "best": best,
        "plot": str(plot),
        "notes": notes,
        **({"num_samples": k} if k else {}),
    }
    if args.json:
        print(json.dumps(out))
        return EXIT_OK
    print(
        f"{model.name}: {in_name} (in, n={out['n_in']}) vs {args.out_data} "
        f"(out, n={out['n_out']}), {args.split} split"
    )
    print(f"  {'score':<18} {'AUROC':>7} {'AUPR':>7} {'FPR95':>7}")
    for name, m in report.items():
        mark = "  <- best" if name == best else ""
        print(f"  {name:<18} {m['auroc']:7.4f} {m['aupr']:7.4f} {m['fpr95']:7.4f}{mark}")
    for name in report:
        print(f"  {name}: {SCORES.get(name, '')}")
    for note in notes:
        print(f"  note: {note}")
    print(f"  histograms: {plot}")
    return EXIT_OK


def _slug(name: str) -> str:
    stem = Path(str(name)).name if ("/" in str(name) or "\\" in str(name)) else str(name)
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in stem) or "data"
