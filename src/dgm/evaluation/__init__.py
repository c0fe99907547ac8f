"""Evaluation that reads models through the contract only."""

from dgm.evaluation.likelihood import (
    bits_per_dim,
    evaluate_elbo,
    evaluate_nll,
    per_example,
    per_example_nll,
    summarize_nll,
)

__all__ = [
    "bits_per_dim",
    "evaluate_elbo",
    "evaluate_nll",
    "per_example",
    "per_example_nll",
    "summarize_nll",
]
