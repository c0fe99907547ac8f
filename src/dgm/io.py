"""Saving and loading: ``config.json`` + ``model.safetensors``, written atomically, no pickle."""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dgm.errors import CheckpointError

if TYPE_CHECKING:
    from dgm.models.base import GenerativeModel

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"  # a text model's tokenizer (dgm.data.text), JSON
FORMAT_VERSION = 1
# Files beside the weights that a layer above this one reads into the model, by module and
# function: imported only when the file is there (as the registry imports the families), so
# io imports nothing above it and ``import dgm`` stays light.
ATTACHMENTS = {TOKENIZER: "dgm.data.text:attach_tokenizer"}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path``, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(path: str | Path, save: Any) -> None:
    """Call ``save(tmp_path)``, then rename it over ``path``: for writers that want a path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # the writer may have made a private file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def read_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a model or run folder, with a clear error if there is none."""
    folder = Path(path)
    file = folder / CONFIG
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder; pass a run folder made by 'dgm train'")
    if not file.is_file():
        raise CheckpointError(f"{folder} is not a dgm run or model folder (no {CONFIG})")
    try:
        cfg = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(
            f"{file} is not valid JSON ({e}); the run folder is damaged"
        ) from None
    if not isinstance(cfg, dict) or "model" not in cfg or "config" not in cfg:
        raise CheckpointError(f"{file} has no 'model' and 'config' entries; not a dgm config")
    return cfg


def save_model(
    model: GenerativeModel, path: str | Path, extra: dict[str, Any] | None = None
) -> None:
    """Write ``config.json`` and ``model.safetensors`` into folder ``path`` (and
    ``tokenizer.json`` for a text model that has a tokenizer, so :func:`load` gets it back)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_save(folder / WEIGHTS, lambda tmp: save_file(state, tmp, metadata={"model": model.name}))
    tokenizer = getattr(model, "tokenizer", None)  # text models (TextModel) carry one
    if tokenizer is not None:
        with atomic_write(folder / TOKENIZER) as f:
            f.write(tokenizer.to_json())
    write_model_config(model, folder, extra)


def write_model_config(
    model: GenerativeModel, folder: str | Path, extra: dict[str, Any] | None = None
) -> None:
    """``config.json`` in ``folder``: the model's name, the format version, its config and
    ``extra`` entries (a run's data and training settings)."""
    cfg = {"model": model.name, "format": FORMAT_VERSION, "config": model.config_dict()}
    write_json(Path(folder) / CONFIG, {**cfg, **(extra or {})})


def load_weights(file: str | Path) -> dict[str, Any]:
    """Read a safetensors file; anything else is refused (never unpickled)."""
    file = Path(file)
    if not file.is_file():
        raise CheckpointError(f"{file} is missing; the run has no saved weights yet")
    try:
        return load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{file} is not a valid safetensors file ({str(e).splitlines()[0]}); "
            "refusing to load it (dgm never unpickles weights)"
        ) from None


def load(path: str | Path, map_location: str | None = None) -> GenerativeModel:
    """Load a model saved by :func:`save_model` or a run folder from ``dgm train``; a text
    model's ``tokenizer`` comes from the folder's tokenizer.json."""
    from dgm import registry

    cfg = read_config(path)
    model = registry.create(cfg["model"], **cfg["config"])
    state = load_weights(Path(path) / WEIGHTS)
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        which = sorted(missing or unexpected)[0]
        kind = "missing" if missing else "unexpected"
        raise CheckpointError(
            f"{Path(path) / WEIGHTS} does not match its config.json ({kind} tensor {which!r})"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{Path(path) / WEIGHTS}: {str(e).splitlines()[0]}") from None
    for name, target in ATTACHMENTS.items():
        file = Path(path) / name
        if file.is_file():
            module, function = target.split(":")
            getattr(importlib.import_module(module), function)(model, file)
    model.eval()
    if map_location is not None:
        model.to(map_location)
    return model
