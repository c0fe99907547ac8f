"""Progress of long work, one owner for every command: a bar on a terminal, plain lines
elsewhere (logs, CI), nothing at all from library calls.

Loops report through :func:`task` (or :func:`track` over an iterable). Progress is off by
default, so a model or an evaluation called from Python prints nothing; the command line turns
it on for the length of a command with :func:`shown`:

- on a terminal (stderr a tty), a tqdm bar, once a task has run ``DELAY`` seconds;
- elsewhere, a plain line on stderr every ``every()`` seconds (``$DGM_PROGRESS_EVERY``,
  default ``EVERY``): the share done, the time so far and the time left.

After its first chunk a task says how long the whole will take (timed on that chunk), where
that is at least ``every()`` seconds: minutes of silence become one line up front.

Nothing here imports torch or tqdm at import time: models import this module.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

EVERY = 10.0  # seconds between plain lines (and the least time worth an estimate)
DELAY = 1.0  # seconds before a bar appears: quick loops draw nothing
ESTIMATE_AFTER = 0.01  # share of the work done when the one estimate of the whole is made
MODES = ("bar", "lines")

T = TypeVar("T")

_mode: str | None = None  # None: off (library calls); "bar" or "lines" inside shown()
_active: list[Task] = []


def every() -> float:
    """Seconds between plain progress lines: ``$DGM_PROGRESS_EVERY``, else ``EVERY``."""
    value = os.environ.get("DGM_PROGRESS_EVERY")
    if value:
        try:
            seconds = float(value)
        except ValueError:
            return EVERY
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return EVERY


def enabled() -> bool:
    """Whether progress is shown now (inside :func:`shown`)."""
    return _mode is not None


@contextmanager
def shown(mode: str | None = None) -> Iterator[None]:
    """Show progress inside: ``"bar"`` or ``"lines"`` (default: a bar when stderr is a
    terminal, else lines). Every task still open is closed on the way out, so a line printed
    after an interruption starts on a clean line."""
    global _mode
    if mode is not None and mode not in MODES:
        raise ValueError(f"progress mode must be one of {MODES}, got {mode!r}")
    before = _mode
    _mode = mode or ("bar" if _on_terminal() else "lines")
    try:
        yield
    finally:
        close_all()
        _mode = before


def close_all() -> None:
    """Close every open task (its bar cleared), innermost first."""
    for t in reversed(list(_active)):
        t.close()


def duration(seconds: float) -> str:
    """A rough duration for people: ``"40 s"``, ``"4 min"``, ``"2.5 h"``."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def _say(msg: str, bar: Any = None) -> None:
    if bar is not None:
        bar.write(msg, file=sys.stderr)  # above the bar, not through it
    else:
        print(msg, file=sys.stderr, flush=True)


def _amount(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 or v >= 10 else f"{v:.1f}"


class Task:
    """One long loop's progress towards ``total`` (in ``unit``): :meth:`update` after each
    chunk (fractions allowed), :meth:`close` at the end (or use it as a context manager).
    Does nothing while progress is off."""

    def __init__(self, total: float, desc: str, unit: str = "it") -> None:
        self.total, self.desc, self.unit = float(total), desc, unit
        self.n = 0.0
        self.mode = _mode
        self.every = every()
        self.start = self.last = time.perf_counter()
        self.lines = 0
        self.postfix = ""
        self.estimated = False
        self.bar: Any = None
        self.closed = self.mode is None
        if self.closed:
            return
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total,
                desc=desc,
                unit=unit,
                leave=False,
                delay=DELAY,
                file=sys.stderr,
                dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} {unit} "
                "[{elapsed}<{remaining}{postfix}]",
            )
        _active.append(self)

    def __enter__(self) -> Task:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        """``n`` more units done."""
        if self.closed:
            return
        self.n += n
        now = time.perf_counter()
        # one estimate, once a hundredth is done: the first item alone carries the start-up
        # (imports, a first parse), which made a 3-minute loop announce hours
        if not self.estimated and self.total * ESTIMATE_AFTER <= self.n < self.total:
            self.estimated = True
            spent = now - self.start
            whole = spent * self.total / self.n
            if whole >= self.every:
                _say(
                    f"{self.desc}: about {duration(whole)} in all (the first "
                    f"{self.n / self.total:.0%} took {duration(spent)})",
                    self.bar,
                )
        if self.bar is not None:
            self.bar.update(n)
        elif now - self.last >= self.every and self.n < self.total:
            self.last = now
            self.lines += 1
            _say(self._line(now))

    def set_postfix(self, **values: Any) -> None:
        """Numbers to show after the progress (a loss, an accuracy)."""
        if self.closed:
            return
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=False)

    def _line(self, now: float) -> str:
        spent = now - self.start
        left = spent * (self.total - self.n) / self.n if self.n > 0 else math.inf
        share = self.n / self.total if self.total > 0 else 1.0
        text = (
            f"{self.desc}: {share:.0%} ({_amount(self.n)}/{_amount(self.total)} {self.unit}), "
            f"{duration(spent)} so far, about {duration(left)} left"
        )
        return f"{text}; {self.postfix}" if self.postfix else text

    def close(self) -> None:
        """The end: the bar cleared; after plain lines, one saying it is done."""
        if self.closed:
            return
        self.closed = True
        if self in _active:
            _active.remove(self)
        if self.bar is not None:
            self.bar.close()
        elif self.lines and self.n >= self.total:
            spent = duration(time.perf_counter() - self.start)
            _say(f"{self.desc}: done in {spent}" + (f"; {self.postfix}" if self.postfix else ""))


def task(total: float, desc: str, unit: str = "it") -> Task:
    """A :class:`Task` (silent while progress is off)."""
    return Task(total, desc, unit)


def track(
    items: Iterable[T], desc: str, total: float | None = None, unit: str = "it"
) -> Iterable[T]:
    """``items`` as they are while progress is off; else yielded one by one with a task
    counting them (``total``: default ``len(items)``)."""
    if _mode is None:
        return items
    if total is None:
        total = len(items)  # type: ignore[arg-type]
    return _tracked(items, desc, total, unit)


def _tracked(items: Iterable[T], desc: str, total: float, unit: str) -> Iterator[T]:
    with Task(total, desc, unit) as t:
        for item in items:
            yield item
            t.update(1)


__all__ = [
    "DELAY",
    "EVERY",
    "Task",
    "close_all",
    "duration",
    "enabled",
    "every",
    "shown",
    "task",
    "track",
]
