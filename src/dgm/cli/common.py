"""What every ``dgm`` command shares: the parser that fails in one line, the exit codes, how a
run and its data are loaded, and the checks of inputs against a model. Nothing here knows one
command's options beyond the few flags several commands take."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from dgm.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from dgm.data.base import Dataset
    from dgm.models.base import GenerativeModel
    from dgm.runs import RunFolder

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


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
        help=f"importance samples where log p(x) is estimated; for diffusion models the draws "
        f"averaged (of t for ddpm and vdm, Hutchinson probes for score-sde and flow-matching) "
        f"({default})",
    )


def check_positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"{flag} must be >= 1, got {value}")


def check_number(value: float | None, flag: str, allow_zero: bool = False) -> None:
    """``value`` (when given) is a finite number > 0 (>= 0 with ``allow_zero``)."""
    import math

    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{flag} must be a number {bound}, got {value:g}")


def names_folder(out: str | None) -> bool:
    """Whether ``--out`` names a folder (audio's wav files): an existing folder, a name with
    no suffix, or one ending in a slash."""
    return out is not None and (Path(out).is_dir() or not Path(out).suffix or out.endswith("/"))


def check_output(path: str | Path | None, flag: str, folder: bool = False) -> None:
    """Fail in one line, before any work, when ``path`` cannot be written: its folder is
    missing, is a file or is not writable, or the path is a folder. ``folder=True`` is for a
    folder the command creates with its parents (a run folder): then the nearest existing
    ancestor must be a writable folder."""
    import os

    if path is None:
        return
    p = Path(path)
    if folder:
        if p.exists() and not p.is_dir():
            raise ConfigError(f"{flag} {p} is a file; choose a folder")
        base = p
        while not base.exists() and base != base.parent:
            base = base.parent
        if not base.is_dir():
            raise ConfigError(f"{flag} {p}: {base} is a file, so the folder cannot be made")
        if not os.access(base, os.W_OK | os.X_OK):
            raise ConfigError(f"{flag} {p}: {base} is not writable")
        return
    parent = p.parent
    if p.is_dir():
        raise ConfigError(f"{flag} {p} is a folder; give a file name")
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise ConfigError(f"{flag} {p}: the folder {parent} {what}")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ConfigError(f"{flag} {p}: not writable")


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
        """The run's data (or ``name`` from ``data_dir``, defaulting to the run's folder); the
        run's own data with the levels it was trained on (its --data-levels/--data-continuous)."""
        from dgm.data import load_dataset
        from dgm.data.audio import AUDIO_OPTIONS

        meta = self.data_meta
        own = name is None or str(name) == meta.get("name")
        levels = {k: meta[k] for k in ("levels", "continuous") if k in meta} if own else {}
        # audio: the run's own reading (its crop, encoding, rate); other audio at its rate
        audio = {k: meta[k] for k in AUDIO_OPTIONS if k in meta} if own else {}
        return load_dataset(
            str(name or meta.get("name", "digits")), data_dir or meta.get("data_dir"), **levels,
            **run_text_options(self.folder, self.config), **audio,
        )  # fmt: skip

    def data_name(self, name: str | None = None) -> str:
        return str(name or self.data_meta.get("name", "digits"))


def run_text_options(folder: RunFolder, config: dict[str, Any] | None) -> dict[str, Any]:
    """How a text run's data is read again: its own tokenizer.json (never re-trained) and its
    examples' length; nothing for a run of other data. Other text data (``dgm ood RUN --out
    tinyshakespeare``) is encoded the same way, and data that is not text ignores them."""
    if not folder.has_tokenizer():
        return {}
    from dgm.data.text import TextTokenizer

    spec = ((config or {}).get("data") or {}).get("spec") or {}
    shape = spec.get("shape") or []
    return {
        "tokenizer": TextTokenizer.load(folder.tokenizer_file),
        **({"max_len": int(shape[0])} if len(shape) == 1 else {}),
        # molecules: the properties the run read (its head's targets), in the same order
        **({"properties": list(spec["properties"])} if spec.get("properties") else {}),
    }


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
    """The model takes x: its shape and, for discrete data, whole levels in range (the Python
    API's one check, :func:`dgm.models.base.as_examples`, its lines naming ``what``)."""
    from dgm.models.base import as_examples

    as_examples(model, x, what)


def refuse_audio(model: GenerativeModel, command: str) -> None:
    """A one-line refusal for commands that do not score audio yet."""
    from dgm.models.capabilities import Waveform

    if isinstance(model, Waveform) and model.sample_rate is not None:
        raise ConfigError(
            f"{command} scores images, vectors, text and molecules; {model.name} models audio: "
            "use dgm eval (whole utterances in bits per sample)"
        )


def require_likelihood(model: GenerativeModel) -> None:
    if not model.has_likelihood:
        raise ConfigError(
            f"{model.name} has no likelihood to score inputs with; use a likelihood model "
            "(arm, flow, vae, hybrid-flow, ...)"
        )
