"""Rows from runs, and the report's three forms: JSON, HTML and a terminal table."""

from __future__ import annotations

import base64
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# report.json's "format": what tells a comparison's report from any other JSON file
FORMAT = "dgm-comparison-report"
VERSION = 1


@dataclass(frozen=True)
class Column:
    """One number of the table: its key in a run's entry, its header, which way is better
    (``low``, ``high`` or ``""``), how it is printed and what it is."""

    key: str
    header: str
    better: str
    fmt: str
    help: str


# every number a row may hold, in the table's order; a column no model has is left out
COLUMNS: tuple[Column, ...] = (
    Column("nll_nats", "NLL (nats)", "low", ".2f", "test negative log-likelihood per example"),
    Column("bpd", "bits/dim", "low", ".3f", "the NLL in bits per dimension"),
    Column("ais_nll_nats", "AIS NLL (nats)", "low", ".2f",
           "annealed importance sampling estimate of a generator's NLL under Gaussian noise"),
    Column("parameters", "parameters", "", "human", "trainable parameters (k: 1e3, M: 1e6)"),
    Column("train_time_s", "train s", "", ".0f", "seconds of training"),
    Column("epochs", "epochs", "", ".0f", "epochs trained"),
    Column("sample_ms", "ms / sample", "low", ".2f", "milliseconds to draw one sample, in batches"),
    Column("fd", "FD", "low", ".2f", "Frechet distance of samples to the test split"),
    Column("precision", "precision", "high", ".3f", "share of samples near the test data"),
    Column("recall", "recall", "high", ".3f", "share of the test data near the samples"),
    Column("classes_covered", "classes", "high", ".0f", "classes found among the samples"),
    Column("modes_covered", "modes", "high", ".0f", "mixture modes covered by the samples"),
    Column("modes_total", "of modes", "", ".0f", "modes of the mixture"),
    Column("high_quality", "high quality", "high", ".3f", "samples within 3 std of a mode"),
    Column("auroc_noise", "AUROC noise", "high", ".3f",
           "test inputs against uniform noise, scored by -log p(x)"),
    Column("auroc_inverted", "AUROC inverted", "high", ".3f",
           "test inputs against the same inputs inverted, scored by -log p(x)"),
    Column("accuracy", "accuracy", "high", ".3f", "test accuracy of the model's classifier"),
    Column("ece", "ECE", "low", ".3f", "expected calibration error of the classifier"),
)  # fmt: skip


def ood_column(name: str) -> Column:
    """The AUROC column of a named OOD dataset (``--ood fashion-mnist``)."""
    return Column(
        f"auroc_{name}", f"AUROC {name}", "high", ".3f",
        f"test inputs against {name}'s test split, scored by -log p(x)",
    )  # fmt: skip


def _stat(values: list[float]) -> dict[str, Any]:
    mean = statistics.fmean(values)
    return {
        "mean": mean,
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
        "values": values,
    }


def _columns(entries: Sequence[dict[str, Any]]) -> list[Column]:
    extra = sorted(
        {k[6:] for e in entries for k in e if k.startswith("auroc_")}
        - {c.key[6:] for c in COLUMNS if c.key.startswith("auroc_")}
    )
    cols = [*COLUMNS, *(ood_column(n) for n in extra)]
    return [c for c in cols if any(_number(e.get(c.key)) is not None for e in entries)]


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def aggregate(entries: Sequence[dict[str, Any]], columns: Sequence[Column]) -> list[dict[str, Any]]:
    """One row per label (a model and its settings), its seeds' numbers as mean, spread (the
    sample standard deviation; none for one seed) and the values; the pictures and words of
    its first seed."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        groups.setdefault(e["label"], []).append(e)
    rows = []
    for label, group in groups.items():
        group = sorted(group, key=lambda e: e.get("seed", 0))
        first = group[0]
        stats = {}
        for c in columns:
            values = [v for v in (_number(e.get(c.key)) for e in group) if v is not None]
            if values:
                stats[c.key] = _stat(values)
        notes = []
        for e in group:
            notes += [n for n in e.get("notes", []) if n not in notes]
        rows.append({
            "label": label,
            "model": first["model"],
            "family": first.get("family", ""),
            "kind": first.get("kind", "none"),
            "kind_text": first.get("kind_text", ""),
            "num_samples": first.get("num_samples"),
            "seeds": [e.get("seed", 0) for e in group],
            "runs": [e["run"] for e in group],
            "stopped": [e.get("stopped") for e in group],
            "metrics": stats,
            "pictures": first.get("pictures", {}),
            "notes": notes,
        })  # fmt: skip
    return rows


def build_report(
    entries: Sequence[dict[str, Any]],
    *,
    data: dict[str, Any],
    settings: dict[str, Any],
    environment: dict[str, Any],
    skipped: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    """The report as one JSON-able dict: the rows, every run's own numbers, the data, how it
    was measured, the machine, the models left out and why, and the reading in words."""
    from dgm.report.reading import reading

    columns = _columns(entries)
    report = {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": data,
        "settings": settings,
        "environment": environment,
        "columns": [asdict(c) for c in columns],
        "models": aggregate(entries, columns),
        "runs": list(entries),
        "skipped": list(skipped),
    }
    report["reading"] = reading(report)
    return report


# -- the three forms ------------------------------------------------------------------------
def cell(row: dict[str, Any], column: dict[str, Any] | Column) -> str:
    """A row's number as the table prints it: the mean, ``± spread`` over several seeds."""
    c = column if isinstance(column, dict) else asdict(column)
    s = row["metrics"].get(c["key"])
    if s is None:
        return "-"
    text = _format(s["mean"], c["fmt"])
    if s["std"] is not None:
        text += " ± " + _format(s["std"], c["fmt"].replace(",", ""))
    return text


def _format(v: float, fmt: str) -> str:
    if fmt != "human":
        return format(v, fmt)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.0f}"


def kind_text(row: dict[str, Any]) -> str:
    """``exact``, ``bound``, ``bound, K=10`` (draws averaged or importance-weighted),
    ``estimate, K=1000`` or ``none``: what the NLL column is."""
    kind, k = row["kind"], row.get("num_samples")
    if k and (kind == "estimate" or (kind == "bound" and k > 1)):
        return f"{kind}, K={k}"
    return kind


def table_text(report: dict[str, Any], keys: Sequence[str] | None = None) -> str:
    """The table as fixed-width text (the terminal's copy of the HTML table)."""
    cols = [c for c in report["columns"] if keys is None or c["key"] in keys]
    head = ["model", "kind", *(c["header"] for c in cols)]
    body = [[r["label"], kind_text(r), *(cell(r, c) for c in cols)] for r in report["models"]]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in
                       enumerate(zip(head, widths)))]  # fmt: skip
    for b in body:
        lines.append("  ".join(x.ljust(w) if i < 2 else x.rjust(w)
                               for i, (x, w) in enumerate(zip(b, widths))))  # fmt: skip
    return "\n".join(lines)


def _write_text(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (dgm.io's temporary file and rename)."""
    from dgm.io import atomic_write

    with atomic_write(path) as f:
        f.write(text)


def _data_uri(path: str | Path) -> str | None:
    p = Path(path)
    if not p.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")


def render_html(report: dict[str, Any], extra_pictures: dict[str, str | Path] | None = None) -> str:
    """The report page: one self-contained HTML file (pictures as data URIs, CSS and the
    sorting script inline) from the Jinja2 template ``templates/report.html.j2``."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dgm.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    rows = []
    for r in report["models"]:
        pics = {k: _data_uri(v) for k, v in r["pictures"].items()}
        cells = []
        for c in report["columns"]:
            s = r["metrics"].get(c["key"])
            cells.append({"text": cell(r, c), "sort": "" if s is None else repr(s["mean"]),
                          "best": _is_best(report, r, c)})  # fmt: skip
        rows.append({**r, "kind_label": kind_text(r), "cells": cells,
                     "pics": {k: v for k, v in pics.items() if v}})  # fmt: skip
    figures = {k: _data_uri(v) for k, v in (extra_pictures or {}).items()}
    return env.get_template("report.html.j2").render(
        report=report, rows=rows, figures={k: v for k, v in figures.items() if v},
        title=f"{report['data'].get('name', '')}: models side by side",
    )  # fmt: skip


def _is_best(report: dict[str, Any], row: dict[str, Any], c: dict[str, Any]) -> bool:
    """The best value of a column with a direction (two or more models having it)."""
    if not c["better"]:
        return False
    vals = [r["metrics"][c["key"]]["mean"] for r in report["models"] if c["key"] in r["metrics"]]
    mine = row["metrics"].get(c["key"])
    if mine is None or len(vals) < 2:
        return False
    best = min(vals) if c["better"] == "low" else max(vals)
    return mine["mean"] == best


def write_report(
    report: dict[str, Any],
    html: str | Path,
    json_path: str | Path | None = None,
    extra_pictures: dict[str, str | Path] | None = None,
) -> None:
    """Write report.json (every number, the pictures' paths) and the HTML page, each whole."""
    if json_path is not None:
        text = json.dumps(report, indent=2, default=str) + "\n"
        _write_text(Path(json_path), text)
    _write_text(Path(html), render_html(report, extra_pictures))


def read_report(path: str | Path) -> dict[str, Any] | None:
    """A report.json written by :func:`write_report`, or None for any other file."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and d.get("format") == FORMAT else None


__all__ = [
    "COLUMNS",
    "FORMAT",
    "Column",
    "aggregate",
    "build_report",
    "cell",
    "kind_text",
    "ood_column",
    "read_report",
    "render_html",
    "table_text",
    "write_report",
]
