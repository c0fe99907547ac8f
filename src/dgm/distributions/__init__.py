"""Likelihoods and distributions shared by the model families."""

from dgm.distributions.base import LIKELIHOODS, Likelihood, full_precision, make_likelihood
from dgm.distributions.bernoulli import Bernoulli
from dgm.distributions.categorical import Categorical
from dgm.distributions.gaussian import Gaussian, discretized_gaussian_log_prob
from dgm.distributions.logistic import DiscretizedLogisticMixture
from dgm.distributions.normal import StandardNormal
from dgm.distributions.spherical import HypersphericalUniform, PowerSpherical, VonMisesFisher

__all__ = [
    "LIKELIHOODS",
    "Bernoulli",
    "Categorical",
    "DiscretizedLogisticMixture",
    "Gaussian",
    "HypersphericalUniform",
    "Likelihood",
    "PowerSpherical",
    "StandardNormal",
    "VonMisesFisher",
    "discretized_gaussian_log_prob",
    "full_precision",
    "make_likelihood",
]
