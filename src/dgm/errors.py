"""Errors that mean "the user asked for something we cannot do".

The CLI turns a :class:`DgmError` into one line on stderr and exit code 2; any other
exception is an internal error (exit code 1). Library users catch :class:`DgmError`.
"""


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
            msg = (
                f"interrupted before the first epoch finished: nothing to resume in {run}; "
                "train again (--overwrite reuses the folder)"
            )
        else:
            msg = f"interrupted after epoch {epoch}; resume with: dgm train --resume {run}"
        super().__init__(msg)
