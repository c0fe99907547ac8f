"""Model families; importing this package registers every model."""

from dgm.models import arm, flows, made, pixelcnn, transformer_arm, wavenet
from dgm.models.base import GenerativeModel

__all__ = ["GenerativeModel", "arm", "flows", "made", "pixelcnn", "transformer_arm", "wavenet"]
