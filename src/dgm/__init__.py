"""dgm: deep generative modeling in PyTorch.

One contract for every family: ``log_prob(x) -> [B]`` in nats, ``sample(n)``, ``loss(batch)``;
models are built by name with :func:`create` and saved as ``config.json`` + ``model.safetensors``.
"""

from dgm.errors import CheckpointError, ConfigError, DataError, DgmError
from dgm.io import load
from dgm.registry import create

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DgmError",
    "__version__",
    "create",
    "load",
]
