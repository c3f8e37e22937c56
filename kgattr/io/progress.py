"""Progress of long steps on stderr: a tqdm bar on a terminal, plain lines elsewhere (a log, a pipe, CI)."""
from __future__ import annotations

import sys
import time


def bar(iterable=None, *, total: int | None = None, desc: str, unit: str, enabled: bool):
    """A progress bar with tqdm's ``update``, ``set_postfix``, ``close`` and iteration.

    Args:
        iterable: steps to go through (its length is the total), or None and ``update`` calls.
        enabled: False shows nothing.

    Returns:
        A tqdm bar when stderr is a terminal; else :class:`Lines`, which prints ``desc: 5000/42992 unit`` at most
        every :attr:`Lines.every` seconds, and once at the end of a step that took longer (short steps say
        nothing).
    """
    if enabled and not sys.stderr.isatty():
        return Lines(iterable, total, desc, unit)
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled)


class Lines:
    """Progress as plain lines on stderr, for a stderr that is not a terminal."""

    every = 5.0                                      # seconds between two lines

    def __init__(self, iterable, total: int | None, desc: str, unit: str):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = len(iterable) if total is None and hasattr(iterable, "__len__") else total
        self.n, self.postfix, self.start = 0, "", time.monotonic()
        self.shown = self.start

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.shown >= self.every:
            self._line()

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        took = time.monotonic() - self.start
        if took >= self.every:
            self._line(f" in {took:.0f} s")

    def _line(self, end: str = "") -> None:
        self.shown = time.monotonic()
        of = f"/{self.total}" if self.total is not None else ""
        postfix = f" ({self.postfix})" if self.postfix else ""
        print(f"{self.desc}: {self.n}{of} {self.unit}{postfix}{end}", file=sys.stderr, flush=True)
