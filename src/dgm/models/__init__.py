"""The model families, one folder each (``autoregressive``, ``flows``, ``latent``, ``gan``,
``hybrid``), and the contract they follow (``base``). Importing this package registers no
model by itself: :mod:`dgm.registry` imports the family packages it lists when a model is
first looked up by name."""

from dgm.models.base import GenerativeModel

__all__ = ["GenerativeModel"]
