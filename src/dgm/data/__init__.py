"""Datasets: named benchmarks and user data, validated and split into train/val/test."""

from dgm.data.base import Dataset, DataSpec, Split, check_values
from dgm.data.datasets import DATASETS, data_root, list_datasets, load_dataset

__all__ = [
    "DATASETS",
    "DataSpec",
    "Dataset",
    "Split",
    "check_values",
    "data_root",
    "list_datasets",
    "load_dataset",
]
