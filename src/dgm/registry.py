"""Names -> model classes, for ``dgm.create``, configs and the CLI."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dgm.errors import ConfigError

if TYPE_CHECKING:
    from dgm.models.base import GenerativeModel


@dataclass(frozen=True)
class Entry:
    name: str
    cls: type[GenerativeModel]
    family: str
    description: str


MODELS: dict[str, Entry] = {}
# the family packages whose import registers their models: a new family is a new folder under
# dgm/models and one line here
FAMILIES = (
    "dgm.models.autoregressive",
    "dgm.models.flows",
    "dgm.models.latent",
    "dgm.models.gan",
    "dgm.models.hybrid",
    "dgm.models.text",
    "dgm.models.diffusion",
    "dgm.models.molecules",
)


def register(name: str, family: str, description: str) -> Callable[[type], type]:
    """Class decorator: make a model available as ``dgm.create(name, ...)``."""

    def wrap(cls: type) -> type:
        if name in MODELS and MODELS[name].cls is not cls:
            raise RuntimeError(f"model name {name!r} registered twice")
        cls.name = name
        MODELS[name] = Entry(name, cls, family, description=description)
        return cls

    return wrap


def _load_all() -> None:
    for family in FAMILIES:
        importlib.import_module(family)


def get(name: str) -> Entry:
    _load_all()
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def entries() -> list[Entry]:
    _load_all()
    return [MODELS[k] for k in sorted(MODELS)]


def create(name: str, **config: Any) -> GenerativeModel:
    """Build model ``name`` from config values (strings from the command line are parsed), in
    eval mode as :func:`dgm.load` gives one: ``log_prob`` of a new model is the model's, without
    dropout; a training loop of one's own calls ``model.train()`` first."""
    entry = get(name)
    return entry.cls.from_config(config).eval()
