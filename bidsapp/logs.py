"""bidsapp's log: one stderr handler, set up by the command line and by spawned workers."""

from __future__ import annotations

import logging
import sys


class _StderrHandler(logging.StreamHandler):
    """Write to whatever ``sys.stderr`` is at each record, not the one seen at set-up.

    ``main`` may run several times in one process (tests, notebooks) with ``sys.stderr``
    swapped in between; a handler holding the old stream would write to a closed file.
    """

    @property
    def stream(self):  # noqa: D102 - logging's own attribute
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(verbose: int = 0) -> None:
    """Send bidsapp's log records to stderr, INFO by default and DEBUG with ``-v``.

    Parameters
    ----------
    verbose : int
        How many ``-v`` were given.
    """
    level = logging.DEBUG if verbose else logging.INFO
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(message)s",
                                           "%y%m%d-%H:%M:%S"))
    root = logging.getLogger("bidsapp")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # nipype's own chatter is useful only when debugging.
    logging.getLogger("nipype").setLevel(logging.INFO if verbose > 1 else logging.WARNING)
