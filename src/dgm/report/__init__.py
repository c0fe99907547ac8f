"""The comparison report: models side by side on one dataset, measured the same way.

``dgm compare`` and ``dgm report`` collect one flat dict of numbers per run (:class:`Entry`:
what ``dgm eval --json`` and ``dgm ood --json`` give, and the run's own ``results.json``);
this package turns them into the report: rows aggregated over seeds (mean ± spread), a
reading of the table in words (:mod:`dgm.report.reading`), a JSON file with every number,
one self-contained HTML page (a Jinja2 template, pictures embedded as data URIs, plain
JavaScript to sort the table) and a plain-text table for the terminal.

It knows nothing of models or training: the numbers and the pictures' paths come in.
"""

from __future__ import annotations

from dgm.report.build import (
    COLUMNS,
    Column,
    build_report,
    read_report,
    table_text,
    write_report,
)

__all__ = ["COLUMNS", "Column", "build_report", "read_report", "table_text", "write_report"]
