"""dgm: deep generative modeling in PyTorch.

One contract for every family: ``log_prob(x) -> [B]`` in nats, ``sample(n)``, ``loss(batch)``;
models are built by name with :func:`create` and saved as ``config.json`` + ``model.safetensors``.
"""

from pathlib import Path
from typing import Any

from dgm.errors import CheckpointError, ConfigError, DataError, DgmError
from dgm.io import load
from dgm.registry import create
from dgm.version import __version__


def train(
    model: str,
    data: Any = "digits",
    out: str | Path | None = None,
    *,
    data_dir: str | Path | None = None,
    overwrite: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Train ``model`` on ``data`` into the run folder ``out`` as ``dgm train`` does: training,
    then the kept weights on the test split, results.json and summary.md; returns the results.

    ``data``: a dataset name, a path (image folder, .npy, .npz, .csv, a folder of .wav files)
    or a loaded :class:`dgm.data.Dataset`; ``options``: model, training and text- or audio-data
    options by name, as ``--set`` takes them (``hidden=64, epochs=5, lr=3e-4,
    tokenizer="char"``, ``sample_rate=8000``). ``out`` defaults to ``runs/MODEL-DATA-TIME``.
    Errors are :class:`DgmError` subclasses whose messages name these keywords. To continue an
    interrupted run: ``dgm train --resume RUN``.
    """
    import time

    from dgm.data import DATASETS, Dataset, load_dataset
    from dgm.data.audio import pop_audio_options
    from dgm.data.text import pop_text_options, text_options
    from dgm.pipeline import train as run
    from dgm.registry import get
    from dgm.training.config import split_options

    cls = get(model).cls
    options = dict(options)
    text = pop_text_options(options)  # tokenizer, vocab_size, ...: how text data is read
    text = {**text_options(cls.data_defaults), **text}  # mol-vae's properties, unless given
    audio = pop_audio_options(options)  # sample_rate, encoding, crop: how audio is read
    model_opts, train_opts = split_options(cls, options)
    dataset = (
        data
        if isinstance(data, Dataset)
        else load_dataset(str(data), data_dir, **text, **audio, molecules=cls.molecules)
    )
    if out is None:
        out = (
            Path("runs")
            / f"{model}-{Path(dataset.spec.name).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
    named = isinstance(data, Dataset) or str(data) in DATASETS
    meta = {  # where the data came from, so `dgm eval RUN` finds it again
        "name": dataset.spec.name if named else str(Path(data).resolve()),
        "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
        **text,
        **audio,
    }
    return run(model, dataset, out, model_opts, train_opts, overwrite=overwrite, data_meta=meta)


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DgmError",
    "__version__",
    "create",
    "load",
    "train",
]
