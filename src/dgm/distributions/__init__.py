"""Likelihoods and distributions shared by the model families."""

from dgm.distributions.categorical import Categorical

__all__ = ["Categorical"]
