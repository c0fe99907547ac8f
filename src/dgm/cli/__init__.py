"""The ``dgm`` command: one module per command (``list``, ``train``, ``eval``, ``sample``,
``reconstruct``, ``interpolate``, ``detect``, ``optimize``, ``ood``, ``convert``, ``compare``,
``report``), each with its
parser (``add_parser``) and its ``run``; :mod:`dgm.cli.common` holds what they share
(docs/architecture.md, "The command line"), :mod:`dgm.cli.text` what the commands share for
text models.

Exit codes: 0 success, 2 bad usage or bad input (one line on stderr), 1 internal error, 130
interrupted (Ctrl-C; SIGTERM too during training, which leaves the run resumable).

Progress (:mod:`dgm.progress`) is on for the length of a command: a bar on a terminal, plain
lines on stderr elsewhere; the same functions called from Python print nothing.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

from dgm import progress
from dgm.cli import (
    compare,
    convert,
    detect,
    eval,
    interpolate,
    list,
    ood,
    optimize,
    reconstruct,
    report,
    sample,
    train,
)
from dgm.cli.common import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Parser, err
from dgm.errors import DgmError, Interrupted, command_line

# name -> the module that parses and runs it, in the order `dgm --help` lists them
COMMANDS: dict[str, ModuleType] = {
    "list": list,
    "train": train,
    "eval": eval,
    "sample": sample,
    "reconstruct": reconstruct,
    "interpolate": interpolate,
    "detect": detect,
    "optimize": optimize,
    "ood": ood,
    "convert": convert,
    "compare": compare,
    "report": report,
}


def build_parser() -> Parser:
    p = Parser(prog="dgm", description="Deep generative models: train, evaluate, sample.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from dgm.version import __version__

        print(f"dgm {__version__}")
        return EXIT_OK
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        # progress closes its bars on the way out, before the lines below; messages name
        # options as the command spells them (--data-dir, not data_dir=)
        with progress.shown(), command_line():
            return COMMANDS[args.command].run(args)
    except Interrupted as e:  # training: how far it got and how to go on
        err(f"dgm {args.command}: {e}")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        err(f"dgm {args.command}: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `dgm list | head`: the reader has what it wanted
        # Python's recipe: point stdout at devnull so the flush at exit does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except DgmError as e:
        err(f"dgm {args.command}: error: {e}")
        return EXIT_USAGE
    except Exception as e:
        if os.environ.get("DGM_DEBUG"):
            raise
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        from dgm.training.module import TrainingError

        if isinstance(e, MisconfigurationException):  # e.g. --accelerator gpu with no GPU
            err(f"dgm {args.command}: error: {str(e).splitlines()[0]}")
            return EXIT_USAGE
        if isinstance(e, TrainingError):
            err(f"dgm {args.command}: {e}")
        else:
            first = str(e).splitlines()[0] if str(e) else ""
            err(
                f"dgm {args.command}: internal error: {type(e).__name__}: {first} "
                "(run again with DGM_DEBUG=1 for the traceback, and please report it)"
            )
        return EXIT_INTERNAL


__all__ = ["COMMANDS", "EXIT_INTERRUPTED", "build_parser", "main"]
