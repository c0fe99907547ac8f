"""Flow-based models (Rezende & Mohamed 2015; Dinh et al. 2017): an invertible map from data to
noise and the change of variables. ``FlowModel`` (``base``) is the data side every flow shares;
the registered flows say how to build their transform: ``realnvp``, ``glow``, ``maf`` (IAF with
``inverse=true``), ``nsf`` and ``flow`` (a list of named transforms). The composition
``Flow(transform, base)`` itself lives in :mod:`dgm.transforms`, where VAE priors use it too."""

from dgm.models.flows.base import FlowConfig, FlowModel
from dgm.models.flows.generic import TRANSFORMS, GenericFlow, GenericFlowConfig, parse_transforms
from dgm.models.flows.glow import Glow, GlowConfig
from dgm.models.flows.maf import MAF, MAFConfig
from dgm.models.flows.nsf import NSF, NSFConfig
from dgm.models.flows.realnvp import RealNVP, RealNVPConfig

__all__ = [
    "MAF",
    "NSF",
    "TRANSFORMS",
    "FlowConfig",
    "FlowModel",
    "GenericFlow",
    "GenericFlowConfig",
    "Glow",
    "GlowConfig",
    "MAFConfig",
    "NSFConfig",
    "RealNVP",
    "RealNVPConfig",
    "parse_transforms",
]
