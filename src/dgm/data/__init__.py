"""Datasets: named benchmarks and user data, validated and split into train/val/test."""

from dgm.data.base import Dataset, DataSpec, Split, check_values, summary_line
from dgm.data.datasets import (
    DATASETS,
    data_root,
    data_roots,
    list_datasets,
    load_dataset,
    set_levels,
)

__all__ = [
    "DATASETS",
    "DataSpec",
    "Dataset",
    "Split",
    "check_values",
    "data_root",
    "data_roots",
    "list_datasets",
    "load_dataset",
    "set_levels",
    "summary_line",
]
