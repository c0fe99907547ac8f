"""The ``dgm`` command: one module per command (``list``, ``train``, ``eval``, ``sample``,
``reconstruct``, ``detect``, ``ood``), each with its parser (``add_parser``) and its ``run``;
:mod:`dgm.cli.common` holds what they share (docs/architecture.md, "The command line").

Exit codes: 0 success, 2 bad usage or bad input (one line on stderr), 1 internal error.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

from dgm.cli import detect, eval, list, ood, reconstruct, sample, train
from dgm.cli.common import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, Parser, err
from dgm.errors import DgmError

# name -> the module that parses and runs it, in the order `dgm --help` lists them
COMMANDS: dict[str, ModuleType] = {
    "list": list,
    "train": train,
    "eval": eval,
    "sample": sample,
    "reconstruct": reconstruct,
    "detect": detect,
    "ood": ood,
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
        from dgm import __version__

        print(f"dgm {__version__}")
        return EXIT_OK
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command].run(args)
    except DgmError as e:
        err(f"dgm {args.command}: error: {e}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err("dgm: interrupted")
        return 130
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


__all__ = ["COMMANDS", "build_parser", "main"]
