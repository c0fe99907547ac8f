"""Errors that mean "the user asked for something we cannot do".

The CLI turns a :class:`DgmError` into one line on stderr and exit code 2; any other
exception is an internal error (exit code 1). Library users catch :class:`DgmError`.
"""

from collections.abc import Iterator
from contextlib import contextmanager

# whether messages name options as the dgm command spells them (--data-dir DIR) or as Python
# does (data_dir=DIR): the command turns it on for its length; library calls keep Python's
_command_line = False


@contextmanager
def command_line() -> Iterator[None]:
    """Messages raised inside name options the dgm command's way."""
    global _command_line
    before, _command_line = _command_line, True
    try:
        yield
    finally:
        _command_line = before


def option(command: str, python: str) -> str:
    """How a message names an option: ``command`` (``--data-dir DIR``) under the dgm command,
    ``python`` (``data_dir=DIR``) otherwise, so neither kind of user reads the other's words."""
    return command if _command_line else python


def setting(name: str, value: str = "...") -> str:
    """A model or training option: ``--set lr=...`` under the dgm command, ``lr=...`` in Python."""
    return option(f"--set {name}={value}", f"{name}={value}")


class DgmError(Exception):
    """Bad usage or bad input: the message says what is wrong and how to fix it."""


class DataError(DgmError, ValueError):
    """A dataset or data file that cannot be used as it is."""


class ConfigError(DgmError, ValueError):
    """An unknown name, an unknown config key or a value of the wrong type."""


class CheckpointError(DgmError):
    """A run folder or weights file that cannot be loaded."""


class Interrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C or SIGTERM, with the run folder left resumable.

    A :class:`KeyboardInterrupt` (not a :class:`DgmError`: nothing was wrong with the input),
    so code that stops on Ctrl-C still stops; ``run`` is the run folder and ``epoch`` the last
    epoch saved in it (None: none finished, nothing to resume)."""

    def __init__(self, run: str, epoch: int | None) -> None:
        self.run, self.epoch = str(run), epoch
        if epoch is None:
            again = option("--overwrite", "overwrite=True")
            msg = (
                f"interrupted before the first epoch finished: nothing to resume in {run}; "
                f"train again ({again} reuses the folder)"
            )
        else:
            # the command resumes from Python too: it reads the run's own settings
            msg = f"interrupted after epoch {epoch}; resume with: dgm train --resume {run}"
        super().__init__(msg)
