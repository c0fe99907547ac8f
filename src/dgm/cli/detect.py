"""dgm detect RUN INPUTS: score each input (an image or array file, or every file in a folder)
with log p(x) and, for models that classify, a label and p(label|x); decide 'confident',
'uncertain-label' or 'uncertain-object' with a log p(x) threshold calibrated on the run's
validation split (dgm.evaluation.decision). Image files are 8-bit and mapped to the model's
levels; arrays (.npy, .npz, .csv) are read in the data's own units. Text models score each
line of a .txt file (or of every .txt file in a folder), encoded with the run's tokenizer:
log p(x) of the sentence, per token, and a decision on log p(x) per token (so that a long
sentence is not improbable for its length alone). Molecule models score each SMILES of a .smi
file (or of a .csv's SMILES column) the same way, as written (RDKit only checks that it parses):
one RDKit cannot parse is invalid; one longer than the model's rows, or with a token outside
its vocabulary, has probability 0."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dgm.cli import common
from dgm.cli import text as textio
from dgm.errors import ConfigError, DataError

if TYPE_CHECKING:
    from dgm.evaluation.decision import Thresholds


def add_parser(sub: Any) -> None:
    summary = "score inputs: label, p(label|x), log p(x) and a decision for each"
    d = sub.add_parser("detect", help=summary, description=__doc__)
    d.add_argument("run", metavar="RUN", help="a run folder from 'dgm train'")
    d.add_argument(
        "inputs",
        metavar="INPUTS",
        help="a file or folder of images or arrays; for text models a .txt file (one sentence "
        "a line) or a folder of them; for molecule models a .smi file or a .csv with a SMILES "
        "column",
    )
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
        help="use this log p(x) threshold instead of calibrating one on validation data "
        "(for text models: nats per token)",
    )
    add_shared(d)
    d.add_argument("--json", action="store_true", help="one JSON object per input, then a summary")
    d.add_argument(
        "--out", default=None, metavar="FILE.json|FILE.csv", help="also write the report to FILE"
    )


def add_shared(p: argparse.ArgumentParser) -> None:
    """The options ``dgm detect`` and ``dgm ood`` share."""
    from dgm.evaluation.likelihood import QUICK_SAMPLES

    p.add_argument("--data-dir", default=None)
    common.add_num_samples(
        p, f"default {QUICK_SAMPLES} for latent models (at most), 1 for dequantised flows"
    )
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    common.add_device(p)


def quick_num_samples(args: argparse.Namespace, model: Any) -> int | None:
    """K for scoring many inputs: ``--num-samples``, or the model's own at most 100."""
    from dgm.evaluation.likelihood import QUICK_SAMPLES, num_samples_for

    return num_samples_for(model, args.num_samples, cap=QUICK_SAMPLES)


def run(args: argparse.Namespace) -> int:
    import torch

    from dgm.data import DataSpec
    from dgm.data.inputs import read_inputs
    from dgm.evaluation.decision import decide, score, summarize

    if args.out:  # before any scoring: a report that cannot be written fails first
        if Path(args.out).suffix.lower() not in (".json", ".csv"):
            raise ConfigError(f"--out {args.out}: use a .json or .csv file name")
        common.check_output(args.out, "--out")
    loaded = common.load_run(args.run, args.device)
    model = loaded.model
    common.refuse_audio(model, "dgm detect")
    common.require_likelihood(model)
    if textio.is_text_model(model):
        return _run_text(args, loaded)
    if Path(args.inputs).suffix.lower() in textio.TEXT_SUFFIXES:
        textio.refuse_text(model, args.inputs)
    spec_dict = loaded.data_meta.get("spec")
    if not spec_dict:
        raise DataError(f"{args.run}: config.json names no data spec; retrain with this dgm")
    spec = DataSpec.from_dict(spec_dict)
    items = read_inputs(args.inputs, spec)
    k = quick_num_samples(args, model)
    torch.manual_seed(args.seed)
    thr = _thresholds(args, loaded, k, text=False)
    valid = [it for it in items if it.x is not None]
    records: dict[int, dict[str, Any]] = {}
    if valid:
        x = torch.stack([it.x for it in valid])
        log_px, log_py = score(model, x, args.batch_size, k)
        for it, rec in zip(valid, decide(log_px, log_py, thr, spec.dim)):
            if rec["label"] is not None:  # the data's class name, else the index as text
                rec["label_name"] = spec.label_name(rec["label"])
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
        _print(rows, summary, thr)
    if not valid:
        common.err(
            f"dgm detect: error: none of the {len(items)} inputs could be scored (see above)"
        )
        return common.EXIT_USAGE
    return common.EXIT_OK


def _print(rows: list[dict[str, Any]], summary: dict[str, Any], thr: Any) -> None:
    width = min(48, max((len(r["input"]) for r in rows), default=5))
    for r in rows:
        name = r["input"] if len(r["input"]) <= width else "..." + r["input"][-(width - 3) :]
        if "error" in r:
            print(f"{name:<{width}}  invalid: {r['error']}")
            continue
        label = "" if r["label"] is None else f"label {r['label_name']}  p {r['p_label']:.3f}  "
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


def _write_report(
    path: Path, rows: list[dict[str, Any]], summary: dict[str, Any], keys: list[str] | None = None
) -> None:
    from dgm.io import atomic_write

    suffix = path.suffix.lower()
    if suffix == ".json":
        with atomic_write(path, "w") as f:
            json.dump({"inputs": rows, "summary": summary}, f, indent=1)
    elif suffix == ".csv":
        import csv

        keys = keys or ["input", "label", "label_name", "p_label", "log_px", "bpd", "decision",
                        "error"]  # fmt: skip
        with atomic_write(path, "w") as f:
            w = csv.DictWriter(f, fieldnames=keys, lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in keys})
    else:
        raise ConfigError(f"--out {path}: use a .json or .csv file name")


# validation sentences the text threshold is calibrated on (the first of the split)
CALIBRATION_SENTENCES = 1000
TEXT_KEYS = [
    "input", "log_px", "tokens", "log_px_per_token", "bpd", "decision", "note", "error", "text",
]  # fmt: skip


def _thresholds(
    args: argparse.Namespace, loaded: common.LoadedRun, k: int | None, text: bool
) -> Thresholds:
    """``--log-px-threshold`` as given, else thresholds calibrated on the run's validation
    split: on log p(x), or for text on log p(x) per token over at most
    CALIBRATION_SENTENCES (PTB's 3370 with K = 100 are many minutes on a CPU)."""
    from dgm.evaluation.decision import Thresholds, calibrate, score
    from dgm.evaluation.text import token_counts

    if args.log_px_threshold is not None:
        return Thresholds(args.log_px_threshold, args.min_p_label, keep=float("nan"), num_val=0)
    val = common.split_inputs(loaded.dataset(None, args.data_dir), "val")
    if text:
        val = val[:CALIBRATION_SENTENCES]
    val_lp, _ = score(loaded.model, val, args.batch_size, k)
    if text:
        val_lp = val_lp / token_counts(val)
    return calibrate(val_lp, args.keep, args.min_p_label)


def _run_text(args: argparse.Namespace, loaded: common.LoadedRun) -> int:
    """Every line of a text file scored by a text model (every molecule of a ``.smi`` or
    ``.csv`` file by a molecule model): log p(x) in nats, per token (and in bits per token,
    ``bpd``), and a decision on log p(x) per token calibrated on the run's validation
    sentences."""
    import torch

    from dgm.cli import molecules as molio
    from dgm.evaluation.decision import decide, score, summarize
    from dgm.evaluation.text import token_counts

    model: Any = loaded.model
    path = Path(args.inputs)
    if molio.is_molecule_model(model):
        entries = molio.read_for_scoring(model, path)
        what, unit = "molecules", "molecule"
    else:
        if path.is_file() and path.suffix.lower() in textio.NOT_TEXT:
            textio.refuse_non_text(model, str(args.inputs))
        lines = textio.read_lines(path)
        enc = textio.encode(model, [line.text for line in lines])
        entries = [
            textio.Entry(line.name, line.text, row, note)
            for line, row, note in zip(lines, enc.x, enc.notes)
        ]
        what, unit = "lines", "sentence"
    k = quick_num_samples(args, model)
    torch.manual_seed(args.seed)
    thr = _thresholds(args, loaded, k, text=True)
    scored = [e for e in entries if e.x is not None]
    by_entry: dict[int, dict[str, Any]] = {}
    if scored:
        x = torch.stack([e.x for e in scored])  # type: ignore[misc]
        log_px, _ = score(model, x, args.batch_size, k)
        tokens = token_counts(x)
        # decide on log p(x) per token: its bpd is then bits per token (one dimension a token)
        decided = decide(log_px / tokens, None, thr, 1)
        for e, lp, n, rec in zip(scored, log_px.tolist(), tokens.tolist(), decided):
            by_entry[id(e)] = {
                "log_px": lp,
                "tokens": int(n),
                "log_px_per_token": rec["log_px"],
                "bpd": rec["bpd"],
                "decision": rec["decision"],
            }
    rows: list[dict[str, Any]] = []
    for e in entries:
        row: dict[str, Any] = {"input": e.name}
        if e.error is not None:
            row["error"] = e.error
        elif e.x is None:  # too long, or unknown tokens: the model gives it probability 0
            row.update(log_px=None, tokens=e.tokens, log_px_per_token=None, bpd=None)
            row["decision"] = "uncertain-object"
        else:
            row.update(by_entry[id(e)])
        if e.note:
            row["note"] = e.note
        row["text"] = e.text
        rows.append(row)
    decided_rows = [r for r in rows if "decision" in r]
    summary = {
        "model": model.name,
        "run": str(args.run),
        "inputs": len(rows),
        "invalid": len(rows) - len(decided_rows),
        **summarize(decided_rows),
        "thresholds": thr.to_dict(),
        "threshold_unit": "nats per token",
        **({"num_samples": k} if k else {}),
    }
    if args.out:
        _write_report(Path(args.out), rows, summary, TEXT_KEYS)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        print(json.dumps({"summary": summary}))
        return common.EXIT_OK
    width = min(32, max(len(r["input"]) for r in rows))
    for r in rows:
        name = r["input"] if len(r["input"]) <= width else "..." + r["input"][-(width - 3) :]
        if "error" in r:
            print(f"{name:<{width}}  invalid: {r['error']}")
            continue
        if r["log_px"] is None:
            print(
                f"{name:<{width}}  log p(x)      -inf nats  {'':17}  {r['tokens']:3d} "
                f"tokens  {r['decision']:<16}  {r['text']}"
            )
        else:
            print(
                f"{name:<{width}}  log p(x) {r['log_px']:9.2f} nats  {r['log_px_per_token']:7.3f} "
                f"per token  {r['tokens']:3d} tokens  {r['decision']:<16}  {r['text']}"
            )
        if "note" in r:
            print(f"{'':<{width}}  note: {r['note']}")
    how = (
        f"keeps {thr.keep:.0%} of {thr.num_val} validation {unit}s"
        if thr.num_val
        else "given by --log-px-threshold"
    )
    invalid = f", {summary['invalid']} invalid" if summary["invalid"] else ""
    print(
        f"{len(rows)} {what}: {summary['confident']} confident, {summary['uncertain-object']} "
        f"uncertain-object{invalid}; log p(x) threshold {thr.log_px:.3f} nats per token ({how})"
    )
    return common.EXIT_OK
