"""``dgm interpolate RUN "sentence a" "sentence b" --steps 5``: the homotopy between two
sentences of a latent text model (Bowman et al. 2016, "Generating sentences from a continuous
space", section 5.2): the posterior means of the two, the straight line between them in
steps, and the greedy decode of each point, one line per step (the first and the last are
the decodes of the two sentences' own codes)."""

from __future__ import annotations

import argparse
from typing import Any

from dgm.cli import common
from dgm.cli import text as textio
from dgm.errors import ConfigError


def add_parser(sub: Any) -> None:
    i = sub.add_parser(
        "interpolate",
        help="sentences on the way between two sentences (latent text models)",
        description=__doc__,
    )
    i.add_argument("run", metavar="RUN", help="a run folder of a latent text model (text-vae)")
    i.add_argument("first", metavar="SENTENCE_A")
    i.add_argument("second", metavar="SENTENCE_B")
    i.add_argument(
        "--steps", type=int, default=5, help="points on the line, both ends included (default 5)"
    )
    i.add_argument("--seed", type=int, default=0, help="seeds any draws (default: 0)")
    common.add_device(i)


def run(args: argparse.Namespace) -> int:
    import torch

    if args.steps < 2:
        raise ConfigError(f"--steps must be >= 2 (both ends), got {args.steps}")
    loaded = common.load_run(args.run, args.device)
    model: Any = loaded.model
    textio.require_latent_text(model, "interpolate")
    enc = textio.encode(model, [args.first, args.second])
    for which, note in zip(("SENTENCE_A", "SENTENCE_B"), enc.notes):
        if note:
            common.err(f"note: {which}: {note}")
    torch.manual_seed(args.seed)
    model.eval()
    x = enc.x.to(model.device)
    with torch.no_grad():
        path = model.interpolate(x[0], x[1], steps=args.steps)  # [steps, max_len]
    common.err(
        f"{model.name}: {args.steps} points from the posterior mean of SENTENCE_A to that of "
        "SENTENCE_B, each decoded greedily"
    )
    for line in textio.texts(model, path):
        print(textio.one_line(line))
    return common.EXIT_OK
