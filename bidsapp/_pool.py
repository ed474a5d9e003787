"""One process-pool map for the parallel steps outside nipype: rendering, transport, simulation."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence


def starmap(function: Callable, jobs: Sequence[tuple], processes: int,
            chunksize: int = 1) -> Iterator:
    """Yield ``function(*job)`` for each job, in order, in up to ``processes`` processes.

    Parameters
    ----------
    function : callable
        A module-level function (the "spawn" workers import it by name).
    jobs : sequence of tuple
        Positional arguments of each call.
    processes : int
        Worker processes; 1 or fewer runs the jobs here.
    chunksize : int, optional
        Jobs sent to a worker at a time (more for many small jobs).

    Yields
    ------
    object
        Each call's result as soon as it and the ones before it are done, so callers can
        write results while later jobs still run.
    """
    if processes <= 1:
        for job in jobs:
            yield function(*job)
        return

    # "spawn": forked workers would inherit FluidSynth's and torch's threads.
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        yield from pool.imap(_call, [(function, job) for job in jobs], chunksize=chunksize)


def _call(item: tuple[Callable, tuple]):
    function, job = item
    return function(*job)
