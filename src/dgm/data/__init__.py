"""Datasets: named benchmarks and user data (arrays, images, text), validated and split into
train/val/test."""

from dgm.data.base import Dataset, DataSpec, Split, check_values, summary_line
from dgm.data.datasets import (
    DATASETS,
    TEXT_DATASETS,
    data_root,
    data_roots,
    list_datasets,
    load_dataset,
    set_levels,
)
from dgm.data.text import TextTokenizer

__all__ = [
    "DATASETS",
    "TEXT_DATASETS",
    "DataSpec",
    "Dataset",
    "Split",
    "TextTokenizer",
    "check_values",
    "data_root",
    "data_roots",
    "list_datasets",
    "load_dataset",
    "set_levels",
    "summary_line",
]
