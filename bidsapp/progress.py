"""Progress lines with a rate and an ETA for the long steps, written to the log.

A lab runs the app unattended, often as a batch job whose log is a file: progress goes
through :mod:`logging` as whole lines (no carriage returns, no bars): the first estimate
as soon as the first piece of work is done, then at every tenth of the work (at most one
line in 10 s) and at least every 5 minutes, and the end.  A 9-hour step writes a few dozen
lines and a 5-second step two.  :class:`Progress` is thread-safe: the searchlight's
threads report to one instance.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

LOGGER = logging.getLogger("bidsapp")

#: Seconds after which a line is written even when no tenth of the work was crossed.
HEARTBEAT_SECONDS = 300.0
#: Fewest seconds between two lines at tenths of the work: a step of seconds writes its
#: first estimate and its end, not ten lines.
MIN_INTERVAL_SECONDS = 10.0


def format_duration(seconds: float) -> str:
    """Return ``seconds`` as ``H:MM:SS`` (``D days, H:MM:SS`` past a day).

    Parameters
    ----------
    seconds : float
        A duration; negative values count as 0.

    Returns
    -------
    str
        The duration for a log line.

    Examples
    --------
    >>> format_duration(3725.4)
    '1:02:05'
    """
    seconds = max(0, round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days} day{'s' if days > 1 else ''}, {text}" if days else text


class Progress:
    """Count work done and log it with a rate and an ETA.

    Parameters
    ----------
    label : str
        What is running, e.g. ``"Searchlight sub-01 (centres 0-20000)"``.
    total : float
        Units of work in all (0 or less: nothing is logged).
    unit : str
        Name of a unit, plural, e.g. ``"centres"``.
    every : float, optional
        Fraction of the work between two lines (default a tenth).
    heartbeat : float, optional
        Seconds after which a line is written anyway.
    min_interval : float, optional
        Fewest seconds between lines at tenths of the work.
    warn_after : float, optional
        Seconds: when the first estimate of the total time exceeds it, log
        ``advice`` as a warning, once.
    advice : str, optional
        What shortens the step (named options).
    logger : logging.Logger, optional
        Where the lines go (default ``bidsapp``).
    clock : callable, optional
        Monotonic seconds (tests pass a fake clock).

    Examples
    --------
    >>> progress = Progress("Resampling run-1", 240, "volumes")
    >>> for _ in range(240):
    ...     progress.advance()
    """

    def __init__(self, label: str, total: int, unit: str, *, every: float = 0.1,
                 heartbeat: float = HEARTBEAT_SECONDS,
                 min_interval: float = MIN_INTERVAL_SECONDS, warn_after: float | None = None,
                 advice: str | None = None, logger: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.label, self.total, self.unit = label, total, unit
        self.every, self.heartbeat, self.min_interval = every, heartbeat, min_interval
        self.warn_after, self.advice = warn_after, advice
        self.logger = logger or LOGGER
        self.clock = clock
        self.done = 0
        self.started = clock()
        self._last_line = self.started
        self._next_mark = every
        self._first = True
        self._warned = False
        self._lock = threading.Lock()

    def advance(self, n: float = 1) -> None:
        """Count ``n`` more units done; log a line when a tenth is crossed or time is up.

        Parameters
        ----------
        n : float
            Units just finished.
        """
        if self.total <= 0:
            return
        with self._lock:
            self.done = min(self.total, self.done + n)
            now = self.clock()
            fraction = self.done / self.total
            crossed = fraction >= self._next_mark - 1e-12
            since = now - self._last_line
            finished = self.done >= self.total
            if not (self._first or finished or since >= self.heartbeat
                    or (crossed and since >= self.min_interval)):
                return
            while self._next_mark <= fraction + 1e-12:
                self._next_mark += self.every
            self._first = False
            self._last_line = now
            elapsed = now - self.started
            if finished:
                self.logger.info("%s: %s %s done in %s (%s/s)", self.label, f"{self.total:,.0f}",
                                 self.unit, format_duration(elapsed), self._rate(elapsed))
                return
            eta = elapsed / self.done * (self.total - self.done)
            self.logger.info("%s: %s/%s %s (%d%%), %s/s, elapsed %s, ETA %s", self.label,
                             f"{self.done:,.0f}", f"{self.total:,.0f}", self.unit,
                             int(100 * fraction), self._rate(elapsed),
                             format_duration(elapsed), format_duration(eta))
            self._maybe_warn(elapsed + eta)

    def _rate(self, elapsed: float) -> str:
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        return f"{rate:,.1f}" if rate < 100 else f"{rate:,.0f}"

    def _maybe_warn(self, estimate: float) -> None:
        if self._warned or self.warn_after is None or estimate <= self.warn_after:
            return
        self._warned = True
        self.logger.warning("%s is estimated to take %s in all. %s", self.label,
                            format_duration(estimate), self.advice or "")
