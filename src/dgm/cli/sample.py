"""``dgm sample RUN``: draw samples from a run's model, as a picture or an array (.npy, .npz,
.csv). Models drawn in steps (:class:`~dgm.models.capabilities.IterativeSampler`: diffusion)
take their sampler and number of steps from ``--set``. Models with a decoder
(:class:`~dgm.models.capabilities.DecoderMean`) show pictures of decoder means E[x|z] by
default; ``--mode sample`` shows draws of p(x|z). Text models
(:class:`~dgm.models.capabilities.TextModel`) print sentences, one a line (``--out FILE.txt``
writes them), drawn with ``--temperature`` (0: greedy) and ``--top-p`` (nucleus sampling,
Holtzman et al. 2020). Audio models (:class:`~dgm.models.capabilities.Waveform`) write ``.wav``
files and a picture of their waveforms over spectrograms into a folder, given ``--label``,
``--speaker`` and ``--seconds`` where the model takes them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dgm.cli import common
from dgm.cli import molecules as molio
from dgm.cli import text as textio
from dgm.errors import ConfigError

if TYPE_CHECKING:
    from dgm.models.capabilities import LabelConditional


def add_parser(sub: Any) -> None:
    s = sub.add_parser("sample", help="draw samples from a run")
    s.add_argument("run", metavar="RUN")
    s.add_argument(
        "-n", type=int, default=None, help="number of samples (default 64; 10 sentences for text)"
    )
    s.add_argument(
        "--out",
        default=None,
        metavar="FILE.png|FILE.npy|FILE.npz|FILE.csv|FILE.txt|FOLDER",
        help="where to write them: a picture, or an array (.csv: one row per sample, "
        "flattened, with a header) (default: RUN/samples-seedS.png); text models: a .txt "
        "file, one sentence a line (default: print them); audio models: a folder for the .wav "
        "files and samples.png (default: RUN/samples-seedS/)",
    )
    s.add_argument("--seed", type=int, default=0, help="seeds the draws (default: 0)")
    s.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling temperature where the model supports it, >= 0; 0 takes the most "
        "likely value (default: 1; for text 0 is greedy decoding)",
    )
    s.add_argument(
        "--top-p",
        type=float,
        default=None,
        metavar="P",
        help="text models: draw each token from the smallest set of most likely tokens whose "
        "probability reaches P, in (0, 1] (nucleus sampling; default: 1, the whole vocabulary)",
    )
    s.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help="mean: the decoder's mean E[x|z] at z ~ p(z), smooth (models with a decoder); "
        "sample: x ~ p(x|z), what the likelihood scores (default: mean for pictures of models "
        "with a decoder without --temperature, else sample)",
    )
    s.add_argument(
        "--label",
        default=None,
        metavar="NAME|INDEX",
        help="class of every sample, for class-conditional models: one of the run's class "
        "names, or an index 0..K-1",
    )
    s.add_argument(
        "--speaker",
        default=None,
        metavar="NAME",
        help="audio models conditioned on speakers: the speaker of every sample, by name",
    )
    s.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="audio models: seconds of audio per sample (default: the model's sample_seconds)",
    )
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a sampling option of models drawn in steps (repeatable; diffusion models: steps, "
        "sampler, and eta for ddpm's DDIM), e.g. --set steps=50 --set sampler=ddim; 'dgm list "
        "MODEL' lists the choices (default: the run's config)",
    )
    common.add_device(s)


MODES = ("mean", "sample")
ARRAYS = (".npy", ".npz", ".csv")
TEXT = ".txt"
DEFAULT_N, DEFAULT_N_TEXT, DEFAULT_N_AUDIO = 64, 10, 8


def choose_mode(model: Any, mode: str | None, suffix: str, temperature: float | None) -> str:
    """``mean`` or ``sample``: as asked, else ``mean`` for a picture of a model with a decoder
    mean (a grid of draws of p(x|z) is mostly its per-pixel noise) unless a temperature is
    given (it acts on the draws); arrays get draws, whole levels in the data's space as
    ``model.sample`` promises."""
    from dgm.models.capabilities import DecoderMean

    has_mean = isinstance(model, DecoderMean)
    if mode == "mean":
        if not has_mean:
            raise ConfigError(f"{model.name} has no decoder mean; use --mode sample")
        if temperature is not None:
            raise ConfigError("--temperature acts on draws; drop it or use --mode sample")
        return "mean"
    if mode == "sample":
        return "sample"
    picture = suffix not in ARRAYS
    return "mean" if has_mean and picture and temperature is None else "sample"


def sample_settings(model: Any, items: list[str]) -> dict[str, Any]:
    """``--set key=value`` as keyword arguments of ``model.sample``, checked by the model's
    config (:class:`~dgm.models.capabilities.IterativeSampler`); a model drawn in one pass
    takes none."""
    from dgm.config import parse_set
    from dgm.models.capabilities import IterativeSampler

    if not items:
        return {}
    values = parse_set(items)
    if not isinstance(model, IterativeSampler):
        raise ConfigError(
            f"{model.name} draws its samples in one pass and takes no sampling options; drop "
            f"--set {items[0]}"
        )
    return model.sample_settings(values)


def _write_array(x: Any, out: Path) -> None:
    """``x`` ``[n, *shape]`` as .npy, .npz (key ``samples``) or .csv (one row per sample,
    flattened, with a header ``x0,x1,...``), atomically."""
    import numpy as np

    from dgm.io import atomic_write

    arr = x.numpy()
    suffix = out.suffix.lower()
    if suffix == ".npy":
        with atomic_write(out, "wb") as f:
            np.save(f, arr, allow_pickle=False)
    elif suffix == ".npz":
        with atomic_write(out, "wb") as f:
            np.savez(f, samples=arr)
    else:
        flat = arr.reshape(len(arr), -1)
        header = ",".join(f"x{i}" for i in range(flat.shape[1]))
        integral = bool(np.all(flat == np.round(flat)))
        with atomic_write(out, "w") as f:
            np.savetxt(f, flat, delimiter=",", header=header, comments="",
                       fmt="%d" if integral else "%.8g")  # fmt: skip


def _label_index(loaded: common.LoadedRun, model: LabelConditional, label: str) -> tuple[int, str]:
    """``--label`` as (class index, class name): one of the run's class names, or an index."""
    from dgm.data import DataSpec

    spec_dict = loaded.data_meta.get("spec")
    if spec_dict:
        spec = DataSpec.from_dict(spec_dict)
    else:  # a run saved without its data spec: indices only
        spec = DataSpec(
            name=loaded.data_name(),
            shape=tuple(loaded.model.event_shape),
            levels=loaded.model.levels,
            num_classes=model.num_classes,
        )
    index = spec.class_index(label)
    return index, spec.label_name(index)


def _data_for_view(loaded: common.LoadedRun) -> Any:
    """The run's test data (at most 5000 points) for the axes of a 2-D picture; None when the
    data cannot be read any more (the picture then takes the samples' own range)."""
    from dgm.errors import DgmError

    try:
        return loaded.dataset().test.x[:5000]
    except DgmError:
        return None


def _is_2d_density(loaded: common.LoadedRun) -> bool:
    """2-D continuous data with an exact density: worth a picture of the density itself."""
    meta = loaded.data_meta
    spec = meta.get("spec") or {}
    return (
        tuple(loaded.model.event_shape) == (2,)
        and spec.get("levels", 0) is None
        and bool(loaded.model.exact_likelihood)
        and "name" in meta
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from dgm.data import DataSpec
    from dgm.models.capabilities import DecoderMean, IterativeSampler, LabelConditional
    from dgm.plotting import save_samples

    common.check_positive(args.n, "-n")
    common.check_number(args.temperature, "--temperature", allow_zero=True)
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ConfigError(f"--top-p must be in (0, 1], got {args.top_p:g}")
    common.check_number(args.seconds, "--seconds")
    folder_out = common.names_folder(args.out)
    if args.out is not None:  # before the model loads: nothing drawn for nothing
        if not folder_out and Path(args.out).suffix.lower() not in (".png", *ARRAYS, TEXT, ".smi"):
            raise ConfigError(
                f"--out {args.out}: use a .png (picture), .npy, .npz or .csv (array) file name, "
                ".txt for the sentences of a text model, or a folder for the .wav files of an "
                "audio model"
            )
        common.check_output(args.out, "--out", folder=folder_out)
    loaded = common.load_run(args.run, args.device)
    model = loaded.model
    if _is_audio_run(loaded):
        return _run_audio(args, loaded, folder_out)
    for flag, value in (("--speaker", args.speaker), ("--seconds", args.seconds)):
        if value is not None:
            raise ConfigError(f"{flag} is for audio models; {model.name} draws arrays; drop it")
    if folder_out:
        raise ConfigError(
            f"--out {args.out} is a folder, for the .wav files of an audio model; {model.name} "
            "draws arrays: give a .png, .npy, .npz or .csv file name"
        )
    if molio.is_molecule_model(model):
        return _run_molecules(args, model)
    if textio.is_text_model(model):
        return _run_text(args, model)
    if args.out is not None and Path(args.out).suffix.lower() == TEXT:
        raise ConfigError(
            f"--out {args.out}: {model.name} draws arrays, not sentences; use a .png, .npy, "
            ".npz or .csv file name"
        )
    if args.top_p is not None:
        raise ConfigError(
            f"--top-p is for text models (nucleus sampling of tokens); {model.name} takes "
            "--temperature"
        )
    args.n = DEFAULT_N if args.n is None else args.n
    out = Path(args.out) if args.out else loaded.folder.samples_for_seed(args.seed)
    mode = choose_mode(model, args.mode, out.suffix.lower(), args.temperature)
    torch.manual_seed(args.seed)
    kwargs: dict[str, Any] = {}
    if args.temperature is not None:
        kwargs["temperature"] = args.temperature
    if args.label is not None:
        if not isinstance(model, LabelConditional):
            raise ConfigError(f"{model.name} takes no --label when sampling; drop it")
        kwargs["labels"], label_name = _label_index(loaded, model, args.label)
    kwargs.update(sample_settings(model, args.set))
    if mode == "mean" and isinstance(model, DecoderMean):
        x, what = model.sample_mean(args.n).cpu(), "decoder means E[x|z]"
    else:
        x, what = model.sample(args.n, **kwargs).cpu(), "samples"
        if isinstance(model, IterativeSampler):
            what += f" ({model.describe_sampling(kwargs)})"
        if "labels" in kwargs:
            what += f" of class {label_name}"
    if out.suffix.lower() in ARRAYS:
        _write_array(x, out)
    elif _is_2d_density(loaded):
        from dgm.plotting import save_density

        data = loaded.dataset().test.x[:5000]
        name = loaded.data_name()
        mass = save_density(model.picture_log_prob, data, x, out, title=f"{model.name} on {name}")
        print(f"density mass in the picture's window: {mass:.3f}")
    else:
        spec_dict = loaded.data_meta.get("spec")
        spec = (
            DataSpec.from_dict(spec_dict)
            if spec_dict
            else DataSpec(name="samples", shape=model.event_shape, levels=model.levels)
        )
        # 2-D points are drawn over the data, on its range: a collapsed model looks collapsed
        data = _data_for_view(loaded) if tuple(spec.shape) == (2,) else None
        save_samples(x, spec, out, title=f"{model.name}: {what}", data=data)
    print(f"wrote {args.n} {what} to {out}")
    return common.EXIT_OK


def _is_audio_run(loaded: common.LoadedRun) -> bool:
    from dgm.models.capabilities import Waveform

    return isinstance(loaded.model, Waveform) and loaded.model.sample_rate is not None


def _run_audio(args: argparse.Namespace, loaded: common.LoadedRun, folder_out: bool) -> int:
    """Audio: ``-n`` utterances as .wav files (16-bit PCM at the model's rate) in a folder,
    with samples.png (each waveform over its spectrogram); or an array of levels."""
    import torch

    from dgm.data import DataSpec
    from dgm.models.capabilities import LabelConditional, SpeakerConditional
    from dgm.plotting import save_audio_samples

    model: Any = loaded.model
    if args.mode == "mean" or args.top_p is not None or args.set:
        flag = "--mode mean" if args.mode == "mean" else "--top-p" if args.top_p else "--set"
        raise ConfigError(f"{model.name} draws audio one sample at a time; drop {flag}")
    spec = DataSpec.from_dict(loaded.data_meta["spec"])
    n = DEFAULT_N_AUDIO if args.n is None else args.n
    kwargs: dict[str, Any] = {}
    what = []
    if args.temperature is not None:
        kwargs["temperature"] = args.temperature
    if args.label is not None:
        if not (isinstance(model, LabelConditional) and model.conditional):
            raise ConfigError(f"{model.name} was not trained with labels; drop --label")
        kwargs["labels"] = spec.class_index(args.label)
        what.append(f"label {spec.label_name(kwargs['labels'])}")
    if args.speaker is not None:
        if not (isinstance(model, SpeakerConditional) and model.num_speakers):
            raise ConfigError(f"{model.name} was not trained with speakers; drop --speaker")
        kwargs["speakers"] = spec.speaker_index(args.speaker)
        what.append(f"speaker {args.speaker}")
    if args.seconds is not None:
        kwargs["length"] = max(1, round(args.seconds * model.sample_rate))
    out = Path(args.out) if args.out else loaded.folder.path / f"samples-seed{args.seed}"
    torch.manual_seed(args.seed)
    x = model.sample(n, **kwargs).cpu()  # [n, L] levels
    said = f"{n} samples" + (f" ({', '.join(what)})" if what else "")
    if not folder_out and args.out is not None:
        if out.suffix.lower() not in ARRAYS:
            raise ConfigError(
                f"--out {args.out}: audio samples go to a folder (.wav files and a picture) or "
                "an array file (.npy, .npz, .csv)"
            )
        _write_array(x, out)
        print(f"wrote {said} as levels to {out}")
        return common.EXIT_OK
    paths = save_audio_samples(
        x, spec, out, out / "samples.png", title=f"{model.name}: {said}, {spec.sample_rate} Hz"
    )
    seconds = x.shape[1] / spec.sample_rate
    print(
        f"wrote {said} of {seconds:.2f} s at {spec.sample_rate} Hz to {out}/: "
        f"{paths[0].name} .. {paths[-1].name}, samples.png"
    )
    return common.EXIT_OK


def _token_options(args: argparse.Namespace, model: Any) -> dict[str, Any]:
    """How a model of token sequences draws: its sampling settings, ``--temperature`` and
    ``--top-p`` where given."""
    kwargs: dict[str, Any] = sample_settings(model, args.set)
    if args.temperature is not None:
        kwargs["temperature"] = args.temperature
    if args.top_p is not None:
        kwargs["top_p"] = args.top_p
    return kwargs


def _run_molecules(args: argparse.Namespace, model: Any) -> int:
    """Molecules: SMILES printed one a line, or ``--out FILE.smi``, or drawn by RDKit with
    ``--out FILE.png`` (the valid ones, in a grid)."""
    import torch

    if args.out is not None:
        molio.check_out(args.out)
    if args.label is not None or args.mode == "mean":
        flag = "--label" if args.label is not None else "--mode mean"
        raise ConfigError(f"{model.name} draws molecules token by token; drop {flag}")
    n = DEFAULT_N if args.n is None else args.n
    kwargs = _token_options(args, model)
    torch.manual_seed(args.seed)
    strings = molio.smiles(model, model.sample(n, **kwargs))
    if args.out is None:
        print("\n".join(strings))
        return common.EXIT_OK
    said = molio.write(strings, Path(args.out), title=f"{model.name}: samples")
    print(f"{said} to {args.out}")
    return common.EXIT_OK


def _run_text(args: argparse.Namespace, model: Any) -> int:
    """Sentences of a text model: printed one a line, or written to ``--out FILE.txt``."""
    import torch

    from dgm.io import atomic_write

    if args.out is not None and Path(args.out).suffix.lower() != TEXT:
        raise ConfigError(f"--out {args.out}: {model.name} draws sentences; use a .txt file name")
    if args.label is not None:
        raise ConfigError(f"{model.name} models unlabelled text: it takes no --label; drop it")
    if args.mode == "mean":
        raise ConfigError(
            f"{model.name} draws sentences token by token; --mode mean is for pictures of "
            "decoder means (use --temperature 0 for greedy decoding)"
        )
    n = DEFAULT_N_TEXT if args.n is None else args.n
    kwargs = _token_options(args, model)
    torch.manual_seed(args.seed)
    lines = textio.texts(model, model.sample(n, **kwargs))
    # one sample a line; samples of text that holds line breaks (tinyshakespeare's characters)
    # keep them, a blank line between samples
    sep = "\n"
    if any("\n" in line for line in lines):
        sep = "\n\n"
        common.err("note: the samples hold line breaks; a blank line separates them")
    text = sep.join(line.rstrip("\n") for line in lines) + "\n"
    if args.out is None:
        print(text, end="")
        return common.EXIT_OK
    with atomic_write(Path(args.out), "wb") as f:  # UTF-8 whatever the locale says
        f.write(text.encode("utf-8"))
    print(f"wrote {n} sentences to {args.out}")
    return common.EXIT_OK
