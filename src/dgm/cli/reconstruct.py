"""``dgm reconstruct RUN``: inputs next to their reconstructions, for models that encode
(:class:`~dgm.models.capabilities.Autoencoder`): a picture for images; for a latent text model
the sentences given (``dgm reconstruct RUN "a sentence" ...``, else the split's first ``-n``)
and the greedy decode of each one's posterior mean, printed; for audio (``vqvae`` on audio) each
input utterance and its reconstruction as .wav files side by side in a folder, with a picture
of both."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dgm.cli import common
from dgm.cli import text as textio
from dgm.errors import ConfigError


def add_parser(sub: Any) -> None:
    r = sub.add_parser("reconstruct", help="inputs next to their reconstructions (latent models)")
    r.add_argument("run", metavar="RUN")
    r.add_argument(
        "sentences",
        metavar="SENTENCE",
        nargs="*",
        help="latent text models: sentences to reconstruct (default: the split's first -n)",
    )
    r.add_argument(
        "-n", type=int, default=None, help="number of inputs (default 32; 8 sentences for text)"
    )
    r.add_argument("--split", default="test", choices=["train", "val", "test"])
    common.add_data(r)
    r.add_argument(
        "--out",
        default=None,
        metavar="FILE.png|FILE.txt|FOLDER",
        help="default: RUN/reconstructions.png; text: FILE.txt also keeps the printed lines "
        "(default: print only); audio: a folder for the wav files and reconstructions.png "
        "(default: RUN/reconstructions/)",
    )
    r.add_argument("--seed", type=int, default=0, help="seeds any draws (default: 0)")
    common.add_device(r)


def run(args: argparse.Namespace) -> int:
    import torch

    from dgm.models.capabilities import Autoencoder
    from dgm.plotting import save_reconstructions

    common.check_positive(args.n, "-n")
    folder = common.names_folder(args.out)
    if (
        args.out is not None
        and not folder
        and Path(args.out).suffix.lower() not in (".png", ".txt")
    ):
        raise ConfigError(
            f"--out {args.out}: use a .png (or, for text, .txt) file name, or a folder for audio"
        )
    common.check_output(args.out, "--out", folder=folder)
    loaded = common.load_run(args.run, args.device)
    model = loaded.model
    if _is_audio(model):
        return _run_audio(args, loaded)
    if folder:
        raise ConfigError(f"--out {args.out} is a folder, for audio; {model.name} needs a .png")
    if textio.is_text_model(model):
        return _run_text(args, loaded)
    if args.sentences:
        textio.refuse_text(model, "SENTENCE")
    if args.out is not None and Path(args.out).suffix.lower() != ".png":
        raise ConfigError(f"--out {args.out}: {model.name} reconstructs images; use a .png")
    args.n = 32 if args.n is None else args.n
    out = Path(args.out) if args.out else loaded.folder.reconstructions_plot
    if not isinstance(model, Autoencoder):
        raise ConfigError(
            f"{model.name} has no encoder, so nothing to reconstruct; use a latent-variable "
            "model (e.g. vae)"
        )
    dataset = loaded.dataset(args.data, args.data_dir)
    x = common.split_inputs(dataset, args.split, args.n)
    model.check_input(x)
    torch.manual_seed(args.seed)
    model.eval()
    with torch.no_grad():
        recon = model.reconstruct(x.to(model.device)).cpu()
    title = f"{model.name}: inputs ({args.split} split) and their reconstructions"
    save_reconstructions(x, recon, dataset.spec, out, title=title)
    print(f"wrote {len(x)} inputs and their reconstructions to {out}")
    return common.EXIT_OK


def _is_audio(model: Any) -> bool:
    from dgm.models.capabilities import Autoencoder, Waveform

    return isinstance(model, Waveform) and isinstance(model, Autoencoder)


def _run_audio(args: argparse.Namespace, loaded: common.LoadedRun) -> int:
    """The split's first ``-n`` utterances (default 4) and their reconstructions, each drawn
    from p(x | codes(x), its own speaker): input-XX.wav and reconstruction-XX.wav in a folder,
    and reconstructions.png (each input over its reconstruction)."""
    import torch

    from dgm.data.audio import decode, write_wav
    from dgm.plotting import save_audio_figure

    model: Any = loaded.model
    dataset = loaded.dataset(args.data, args.data_dir)
    spec = dataset.spec
    split = dataset.split(args.split)
    n = min(4 if args.n is None else args.n, len(split))
    out = Path(args.out) if args.out else loaded.folder.path / "reconstructions"
    torch.manual_seed(args.seed)
    inputs, recons, titles = [], [], []
    for i in range(n):  # one at a time: each its own length, each decoded sample by sample
        x = split.x[i : i + 1, : int(split.lengths[i])].to(model.device)
        y = None if split.y is None else split.y[i : i + 1].to(model.device)
        inputs.append(x.cpu())
        recons.append(model.reconstruct(x, y).cpu())
        who = []
        if split.y is not None and int(split.y[i, 0]) >= 0:
            who.append(f"label {spec.label_name(int(split.y[i, 0]))}")
        if split.y is not None and int(split.y[i, 1]) >= 0 and spec.speakers:
            who.append(f"speaker {spec.speakers[int(split.y[i, 1])]}")
        titles += [f"input {i}" + (f" ({', '.join(who)})" if who else ""), f"reconstruction {i}"]
    out.mkdir(parents=True, exist_ok=True)
    waves = []
    for i, pair in enumerate(zip(inputs, recons)):
        for stem, levels in zip(("input", "reconstruction"), pair):
            wave = decode(levels[0], spec.encoding or "mulaw", spec.levels).numpy()
            write_wav(out / f"{stem}-{i:02d}.wav", wave, spec.sample_rate or 1)
            waves.append(wave)
    picture = out / "reconstructions.png"
    what = f"{model.name}: {args.split} utterances and their reconstructions"
    save_audio_figure(waves, spec.sample_rate or 1, picture, titles, title=what)
    print(
        f"wrote {n} inputs and their reconstructions to {out}/ (input-XX.wav, "
        "reconstruction-XX.wav, reconstructions.png)"
    )
    return common.EXIT_OK


def _run_text(args: argparse.Namespace, loaded: common.LoadedRun) -> int:
    """Each sentence and the greedy decode of its posterior mean, printed as two lines."""
    import torch

    from dgm.io import atomic_write

    model: Any = loaded.model
    textio.require_latent_text(model, "reconstruct")
    if args.out is not None and Path(args.out).suffix.lower() != ".txt":
        raise ConfigError(f"--out {args.out}: {model.name} reconstructs sentences; use a .txt")
    if args.sentences:
        if args.n is not None:
            raise ConfigError("-n counts sentences of the split; give sentences or -n, not both")
        enc = textio.encode(model, list(args.sentences))
        x, inputs = enc.x, list(args.sentences)
        for s, note in zip(inputs, enc.notes):
            if note:
                common.err(f"note: {s!r}: {note}")
    else:
        dataset = loaded.dataset(args.data, args.data_dir)
        x = common.split_inputs(dataset, args.split, 8 if args.n is None else args.n)
        common.check_levels(model, x, loaded.data_name(args.data))
        inputs = textio.texts(model, x)
    torch.manual_seed(args.seed)
    model.eval()
    with torch.no_grad():
        recon = textio.texts(model, model.reconstruct(x.to(model.device)))
    common.err(f"{model.name}: '> ' an input, '= ' the greedy decode of its posterior mean")
    pairs = zip(inputs, recon)
    lines = [f"{tag}{textio.one_line(s)}" for a, b in pairs for tag, s in (("> ", a), ("= ", b))]
    for line in lines:
        print(line)
    if args.out is not None:
        with atomic_write(Path(args.out), "wb") as f:
            f.write("".join(f"{line}\n" for line in lines).encode("utf-8"))
        common.err(f"wrote {len(inputs)} sentences and their reconstructions to {args.out}")
    return common.EXIT_OK
