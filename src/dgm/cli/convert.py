"""``dgm convert RUN INPUT.wav --speaker NAME``: voice conversion with a speaker-conditioned
VQ-VAE (:class:`~dgm.models.capabilities.VoiceConverter`; van den Oord et al. 2017, sec. 4.3):
the input's codes decoded with another speaker's embedding, written as a wav file at the
model's rate, with a picture of the input and the result (waveforms over spectrograms)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dgm.cli import common
from dgm.errors import ConfigError


def add_parser(sub: Any) -> None:
    c = sub.add_parser("convert", help="re-speak a wav file in another speaker's voice (vqvae)")
    c.add_argument("run", metavar="RUN")
    c.add_argument("input", metavar="INPUT.wav", help="the utterance to convert (mono or not)")
    c.add_argument("--speaker", required=True, metavar="NAME", help="the target speaker's name")
    c.add_argument(
        "--out",
        default=None,
        metavar="OUT.wav",
        help="where to write it (default: INPUT-to-NAME.wav in the working folder); a picture "
        "of the input and the result goes next to it (OUT.png)",
    )
    c.add_argument(
        "--resample",
        action="store_true",
        help="resample an input at another rate to the model's (polyphase filter)",
    )
    c.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="of the decoder's draws, >= 0 (default: 1, the model itself)",
    )
    c.add_argument("--seed", type=int, default=0, help="seeds the decoder's draws (default: 0)")
    common.add_device(c)


def run(args: argparse.Namespace) -> int:
    import torch

    from dgm.data import DataSpec
    from dgm.data.audio import check_rate, decode, encode, read_wav, resample, write_wav
    from dgm.models.capabilities import VoiceConverter
    from dgm.plotting import save_audio_figure

    common.check_number(args.temperature, "--temperature", allow_zero=True)
    source = Path(args.input)
    out = Path(args.out) if args.out else Path(f"{source.stem}-to-{args.speaker}.wav")
    if out.suffix.lower() != ".wav":
        raise ConfigError(f"--out {args.out}: give a .wav file name")
    common.check_output(out, "--out")
    if not source.is_file():
        raise ConfigError(f"{source}: no such file; give a .wav file")
    loaded = common.load_run(args.run, args.device)
    model: Any = loaded.model
    if not isinstance(model, VoiceConverter) or not model.num_speakers:
        raise ConfigError(
            f"{model.name} cannot convert voices: train vqvae on audio with speakers (fsdd, or "
            "wav files named label_speaker_take.wav)"
        )
    spec = DataSpec.from_dict(loaded.data_meta["spec"])
    target = spec.speaker_index(args.speaker)
    wave, rate, notes = read_wav(source)
    for note in notes:
        common.err(f"note: {note}")
    if args.resample and rate != model.sample_rate:
        wave = resample(wave, rate, model.sample_rate)
        common.err(f"note: resampled {source} from {rate} Hz to {model.sample_rate} Hz")
    else:
        check_rate(rate, model.sample_rate, str(source), "add --resample to resample it")
    x = encode(wave, spec.encoding or "mulaw", spec.levels)[None].to(model.device)  # [1, L]
    kwargs = {} if args.temperature is None else {"temperature": args.temperature}
    torch.manual_seed(args.seed)
    converted = model.convert(x, target, **kwargs).cpu()  # [1, L] levels
    result = decode(converted, spec.encoding or "mulaw", spec.levels)[0].numpy()
    write_wav(out, result, model.sample_rate)
    picture = out.with_suffix(".png")
    save_audio_figure(
        [wave, result], model.sample_rate, picture,
        titles=[f"input: {source.name}", f"converted to {args.speaker}"],
        title=f"{model.name}: voice conversion",
    )  # fmt: skip
    seconds = len(result) / model.sample_rate
    print(
        f"wrote {out} ({seconds:.2f} s at {model.sample_rate} Hz, speaker {args.speaker}) and "
        f"{picture}"
    )
    return common.EXIT_OK
