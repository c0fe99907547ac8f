"""The run folder: the one place that knows the files a training run writes, their format
version and how each is written (atomically: a reader sees the old file or the new one, never
half of one). The trainer, the pipeline, evaluation and the command line reach a run's files
only through :class:`RunFolder` (docs/architecture.md, "The run folder").

=================  ==========================================================================
file               what
=================  ==========================================================================
config.json        model name and config, data, training settings (``dgm.load`` rebuilds)
model.safetensors  the weights kept (best on validation; EMA weights when ``ema`` > 0)
last.ckpt          the full training state after the last finished epoch, for ``--resume``
metrics.jsonl      one JSON object per epoch
samples.png        a sample grid (every ``sample_every`` epochs and at the end)
samples.txt        text models: decoded samples, one a line (instead of samples.png)
samples/           audio models: the samples as .wav files (samples.png shows them)
tokenizer.json     text data: the tokenizer (dgm.data.text, JSON), written when training starts
loss.png           the training curves
density.png        the density of a 2-D model, next to the data and its samples
results.json       the final numbers, for machines
summary.md         the final numbers, for people
features/          the feature network sample-quality metrics use (trained once)
logs/              Lightning's CSV or TensorBoard logs, with ``logger`` csv or tensorboard
=================  ==========================================================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dgm.errors import ConfigError, option
from dgm.io import (
    CONFIG,
    TOKENIZER,
    WEIGHTS,
    atomic_write,
    read_config,
    write_json,
    write_model_config,
)

if TYPE_CHECKING:
    from dgm.data.text import TextTokenizer
    from dgm.models.base import GenerativeModel


LAST = "last.ckpt"
METRICS = "metrics.jsonl"
SAMPLES = "samples.png"
SAMPLES_TEXT = "samples.txt"
LOSS = "loss.png"
DENSITY = "density.png"
PROPERTIES = "properties.png"  # molecules: the properties of samples against the test set
RESULTS = "results.json"
SUMMARY = "summary.md"
FEATURES = "features"
RECONSTRUCTIONS = "reconstructions.png"
LOGS = "logs"
SAMPLES_AUDIO = "samples"  # audio: sample-00.wav, ...


class _File:
    """A file of the run folder: ``run.samples_plot`` is ``run.path / "samples.png"``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, run: RunFolder | None, owner: type) -> Any:
        return self.name if run is None else run.path / self.name


class RunFolder(os.PathLike):
    """A run folder at ``path`` (which need not exist yet)."""

    LAST = LAST
    # what a new run replaces when asked to overwrite a folder (nothing else is touched)
    TRAINING_FILES = (
        CONFIG, WEIGHTS, LAST, METRICS, SAMPLES, SAMPLES_TEXT, TOKENIZER, LOSS, DENSITY, RESULTS,
        SUMMARY,
    )  # fmt: skip

    def __init__(self, path: str | Path | RunFolder) -> None:
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    # -- the files (paths in the folder) -------------------------------------------------------
    config_file = _File(CONFIG)
    weights_file = _File(WEIGHTS)
    checkpoint = _File(LAST)
    samples_plot = _File(SAMPLES)
    samples_text = _File(SAMPLES_TEXT)  # a text model's samples, decoded, one a line
    samples_audio = _File(SAMPLES_AUDIO)  # an audio model's samples, .wav files
    tokenizer_file = _File(TOKENIZER)  # text data: the tokenizer, JSON
    loss_plot = _File(LOSS)
    density_plot = _File(DENSITY)
    properties_plot = _File(PROPERTIES)
    summary_file = _File(SUMMARY)
    results_file = _File(RESULTS)  # the final numbers, written last: a finished run has it
    features = _File(FEATURES)  # the folder of the run's feature network (sample quality)
    reconstructions_plot = _File(RECONSTRUCTIONS)
    logs = _File(LOGS)  # the folder of Lightning's loggers (one version_N per session)

    def samples_for_seed(self, seed: int) -> Path:
        """Where ``dgm sample`` writes its grid by default."""
        return self.path / f"samples-seed{seed}.png"

    def ood_plot(self, in_name: str, out_name: str) -> Path:
        """Where ``dgm ood`` draws the score histograms of ``in_name`` against ``out_name``."""
        return self.path / f"ood-{_slug(in_name)}-{_slug(out_name)}.png"

    # -- a new run -----------------------------------------------------------------------------
    def prepare(self, overwrite: bool) -> None:
        """Make the folder for a new run; refuse one that holds something else unless
        ``overwrite``, which removes only the files a run writes."""
        out = self.path
        if out.exists() and not out.is_dir():
            raise ConfigError(f"the run folder {out} is a file; choose a folder")
        if out.is_dir() and any(out.iterdir()):
            if not overwrite:
                resume = option(f"--resume {out}", "resume=True")
                again = option("--overwrite", "overwrite=True")
                raise ConfigError(
                    f"the run folder {out} already holds files; continue it with {resume}, "
                    f"pick another folder, or pass {again}"
                )
            for name in self.TRAINING_FILES:
                (out / name).unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)

    def write_config(self, model: GenerativeModel, meta: dict[str, Any]) -> None:
        """config.json: the model's name and config, and ``meta`` (data, training settings)."""
        write_model_config(model, self.path, meta)

    def write_tokenizer(self, tokenizer: TextTokenizer) -> None:
        """tokenizer.json: the tokenizer that encoded the run's text (read back, never
        re-trained, by ``--resume``, ``dgm eval`` and :func:`dgm.load`)."""
        with atomic_write(self.tokenizer_file) as f:
            f.write(tokenizer.to_json())

    def has_tokenizer(self) -> bool:
        return self.tokenizer_file.is_file()

    def write_samples_text(self, lines: Sequence[str]) -> None:
        """samples.txt (UTF-8): one decoded sample a line; when a sample holds line breaks
        (character-level text), each is followed by a line of dashes instead."""
        multiline = any("\n" in line for line in lines)
        end = "\n" + "-" * 40 + "\n" if multiline else "\n"
        with atomic_write(self.samples_text, "wb") as f:
            f.write("".join(line + end for line in lines).encode("utf-8"))

    def save_model(self, model: GenerativeModel, meta: dict[str, Any]) -> None:
        """The weights to keep, with config.json (``meta`` as :meth:`write_config`)."""
        model.save(self.path, meta)

    # -- reading ---------------------------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        """config.json, with a clear error when the folder is no run."""
        return read_config(self.path)

    def has_weights(self) -> bool:
        return self.weights_file.is_file()

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file()

    def load_model(self, map_location: str | None = None) -> GenerativeModel:
        """The kept model, in eval mode (``dgm.load``)."""
        from dgm.io import load

        return load(self.path, map_location=map_location)

    # -- metrics.jsonl ---------------------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, Any]]:
        """One dict per finished epoch (empty before the first)."""
        file = self.path / METRICS
        if not file.is_file():
            return []
        return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Add one epoch's line (appending one line is atomic enough)."""
        with open(self.path / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")

    def keep_metrics(self, records: Iterable[dict[str, Any]]) -> None:
        """Replace metrics.jsonl by ``records`` (a resumed run drops the epoch it repeats)."""
        with atomic_write(self.path / METRICS) as f:
            f.writelines(json.dumps(r) + "\n" for r in records)

    # -- the end of a run --------------------------------------------------------------------------
    def write_results(self, results: dict[str, Any]) -> None:
        write_json(self.path / RESULTS, results)

    def read_results(self) -> dict[str, Any]:
        """results.json ({} when the run has not finished)."""
        if not self.results_file.is_file():
            return {}
        return json.loads(self.results_file.read_text())

    def write_summary(self, text: str) -> None:
        with atomic_write(self.summary_file) as f:
            f.write(text)


def _slug(name: str) -> str:
    """A file-name-safe short form of a dataset name or path."""
    stem = Path(str(name)).name if ("/" in str(name) or "\\" in str(name)) else str(name)
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in stem) or "data"


__all__ = ["RunFolder"]
