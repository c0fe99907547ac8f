"""Model families; importing this package registers every model."""

from dgm.models import arm, pixelcnn, wavenet
from dgm.models.base import GenerativeModel

__all__ = ["GenerativeModel", "arm", "pixelcnn", "wavenet"]
