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
