"""When things happen: slice acquisition times, the Latin-square clip order, trial onsets."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def slice_timing(n_slices: int, tr: float, multiband: int = 1,
                 order: str = "interleaved") -> np.ndarray:
    """Return each slice's acquisition time within the TR, as BIDS ``SliceTiming`` wants.

    With multiband factor ``m`` the ``n_slices / m`` excitations of a TR are evenly spaced;
    excitation ``e`` acquires slices ``e, e + n/m, e + 2n/m, ...`` at once.  Interleaved order
    excites the even-numbered (0-based) positions first, then the odd ones.

    Parameters
    ----------
    n_slices : int
        Slices along the third image axis (slice encoding direction ``k``).
    tr : float
        Repetition time in seconds.
    multiband : int, optional
        Simultaneous-multislice acceleration factor; must divide ``n_slices``.
    order : {'interleaved', 'ascending'}, optional
        Order of the excitations.

    Returns
    -------
    numpy.ndarray
        Shape (n_slices,), seconds from the start of each volume, rounded to microseconds.
    """
    if n_slices % multiband:
        raise ValueError(f"{n_slices} slices are not a multiple of multiband {multiband}")
    n_exc = n_slices // multiband
    positions = np.arange(n_exc)
    if order == "interleaved":
        sequence = np.r_[positions[0::2], positions[1::2]]
    elif order == "ascending":
        sequence = positions
    else:
        raise ValueError(f"unknown slice order {order!r}")
    rank = np.empty(n_exc, dtype=int)
    rank[sequence] = np.arange(n_exc)
    times = rank[np.arange(n_slices) % n_exc] * (tr / n_exc)
    return np.round(times, 6)


def williams_square(n: int) -> np.ndarray:
    """Return an ``n x n`` Latin square; for even ``n`` it is balanced for carry-over.

    Row 0 is ``0, 1, n-1, 2, n-2, ...`` and row ``r`` adds ``r`` modulo ``n`` (Williams,
    1949): every clip appears once per row and column, and for even ``n`` every clip
    follows every other exactly once.

    Parameters
    ----------
    n : int
        Number of conditions (clips).

    Returns
    -------
    numpy.ndarray
        Shape (n, n) of ints in ``[0, n)``.
    """
    first = [0]
    low, high = 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    return (np.asarray(first)[None, :] + np.arange(n)[:, None]) % n


@dataclass(frozen=True)
class RunSchedule:
    """The trials of one run and its length; ``durations`` are in run order."""

    clip_order: tuple[int, ...]
    onsets: tuple[float, ...]
    durations: tuple[float, ...]
    n_volumes: int


def run_schedule(rng: np.random.Generator, run_index: int, n_clips: int,
                 clip_seconds: float | tuple[float, ...], tr: float,
                 gap_seconds: tuple[float, float], lead_in_seconds: float,
                 rest_seconds: float) -> RunSchedule:
    """Return the clip order and onsets of one run.

    Every run plays all clips, in row ``run_index`` (modulo ``n_clips``) of
    :func:`williams_square`, as in the study's test session.  After each clip a random gap
    (the rating questions) follows and the next clip starts on the next volume trigger, so
    onsets are multiples of the TR, as with stimulus software that waits for the scanner.

    Parameters
    ----------
    rng : numpy.random.Generator
        The run's schedule stream.
    run_index : int
        0-based run number.
    n_clips : int
        Clips per run.
    clip_seconds : float or tuple of float
        Duration of every clip, or of each clip in clip order.
    tr : float
        Repetition time.
    gap_seconds : (float, float)
        Range of the uniform random gap after each clip.
    lead_in_seconds : float
        Time before the first trial (rounded up to a volume).
    rest_seconds : float
        Time after the last clip ends.

    Returns
    -------
    RunSchedule
        Onsets in seconds from the first volume.
    """
    order = williams_square(n_clips)[run_index % n_clips]
    by_clip = (clip_seconds,) * n_clips if np.ndim(clip_seconds) == 0 else tuple(clip_seconds)
    durations = tuple(float(by_clip[c]) for c in order)
    onsets = []
    start = math.ceil(round(lead_in_seconds / tr, 9)) * tr
    for seconds in durations:
        onsets.append(round(start, 6))
        gap = rng.uniform(*gap_seconds)
        start = math.ceil(round((start + seconds + gap) / tr, 9)) * tr
    end = onsets[-1] + durations[-1] + rest_seconds
    n_volumes = math.ceil(round(end / tr, 9))
    return RunSchedule(tuple(int(c) for c in order), tuple(onsets), durations, n_volumes)
