"""What every ``dgm`` command shares: the parser that fails in one line, the exit codes, how a
run and its data are loaded, and the checks of inputs against a model. Nothing here knows one
command's options beyond the few flags several commands take."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from dgm.errors import ConfigError, DataError

if TYPE_CHECKING:
    import torch

    from dgm.data.base import Dataset
    from dgm.models.base import GenerativeModel
    from dgm.runs import RunFolder

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse that reports bad usage in one line and exits with code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def err(msg: str) -> None:
    """A line for people, on stderr (stdout is for results, e.g. ``--json``)."""
    print(msg, file=sys.stderr, flush=True)


# -- flags several commands take ----------------------------------------------------------------
def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu | cuda | auto")


def add_data(p: argparse.ArgumentParser, help: str = "other data (default: the run's)") -> None:
    p.add_argument("--data", default=None, help=help)
    p.add_argument("--data-dir", default=None)


def add_num_samples(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--num-samples",
        type=int,
        default=None,
        metavar="K",
        help=f"importance samples where log p(x) is estimated ({default})",
    )


def check_positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"{flag} must be >= 1, got {value}")


def device(name: str) -> str:
    """``auto`` -> cuda when there is one, else cpu; a missing cuda is a usage error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but no CUDA device is available")
    return name


# -- runs and their data ------------------------------------------------------------------------
@dataclass
class LoadedRun:
    """A run folder, its config.json and its kept model (in eval mode, on the device)."""

    folder: RunFolder
    config: dict[str, Any]
    model: GenerativeModel

    @property
    def data_meta(self) -> dict[str, Any]:
        return dict(self.config.get("data") or {})

    def dataset(self, name: str | None = None, data_dir: str | None = None) -> Dataset:
        """The run's data (or ``name`` from ``data_dir``, defaulting to the run's folder)."""
        from dgm.data import load_dataset

        meta = self.data_meta
        return load_dataset(
            str(name or meta.get("name", "digits")), data_dir or meta.get("data_dir")
        )

    def data_name(self, name: str | None = None) -> str:
        return str(name or self.data_meta.get("name", "digits"))


def load_run(run: str | Path, device_name: str = "auto") -> LoadedRun:
    """The run folder ``run`` with its model on ``device_name``; clear errors for a folder that
    is not a run."""
    from dgm.runs import RunFolder

    folder = RunFolder(run)
    cfg = folder.read_config()
    return LoadedRun(folder, cfg, folder.load_model(map_location=device(device_name)))


def split_inputs(dataset: Dataset, split: str, limit: int | None = None) -> torch.Tensor:
    """The examples of ``split`` (the first ``limit``), as a model scores them: training data
    kept as probabilities for dynamic binarization get one fixed draw (seed 0)."""
    import torch

    check_positive(limit, "--limit")
    x = dataset.split(split).x
    if limit:
        x = x[:limit]
    if dataset.spec.binarize:  # val/test are binary already: the draw leaves them as they are
        x = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))
    return x


def check_levels(model: GenerativeModel, x: torch.Tensor, what: str) -> None:
    """The model takes x: its shape (``check_input``) and, for discrete data, its levels."""
    model.check_input(x)
    levels = model.levels
    if levels is not None and x.numel() and (x.min() < 0 or x.max() > levels - 1):
        raise DataError(
            f"{what}: values span [{x.min().item():g}, {x.max().item():g}] but the model "
            f"was trained on {levels} levels (0..{levels - 1})"
        )


def require_likelihood(model: GenerativeModel) -> None:
    if not model.has_likelihood:
        raise ConfigError(
            f"{model.name} has no likelihood to score inputs with; use a likelihood model "
            "(arm, flow, vae, hybrid-flow, ...)"
        )
