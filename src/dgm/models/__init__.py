"""Model families; importing this package registers every model."""

from dgm.models import (
    arm,
    flows,
    gan,
    hvae,
    hybrid,
    made,
    pixelcnn,
    svae,
    transformer_arm,
    vae,
    vqvae,
    wavenet,
)
from dgm.models.base import GenerativeModel

__all__ = [
    "GenerativeModel",
    "arm",
    "flows",
    "gan",
    "hvae",
    "hybrid",
    "made",
    "pixelcnn",
    "svae",
    "transformer_arm",
    "vae",
    "vqvae",
    "wavenet",
]
