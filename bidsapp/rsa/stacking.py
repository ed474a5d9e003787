"""The one definition of trial order and stacking, shared by the fMRI and the model side.

The study drops the first 6 s of every trial (the BOLD delay) and concatenates the trials;
a target RDM and a candidate RDM are comparable only if both sides order trials and drop
samples identically, so both call :func:`stack_trials` with the order from
:func:`canonical_stimulus_order`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np

from bidsapp.errors import BadDataError

DROP_SECONDS = 6.0
"""Seconds removed from the start of each trial, as in the study."""


def canonical_stimulus_order(stim_ids: Iterable[Hashable]) -> list:
    """Return the trial order every stacked array uses: the sorted unique stimulus ids.

    Parameters
    ----------
    stim_ids : iterable of hashable
        Stimulus identifiers, e.g. the ``stim_file`` column of every run's events (with
        repetitions); they must be mutually comparable (all strings, say).

    Returns
    -------
    list
        Each identifier once, sorted.
    """
    return sorted(set(stim_ids))


def n_dropped(tr: float, drop_seconds: float = DROP_SECONDS) -> int:
    """Return how many samples to drop from the start of a trial: ``ceil(drop_seconds / tr)``.

    The ratio is rounded to 9 decimals first so that, e.g., 6 s at TR 0.6 s drops exactly
    10 samples and not 11 because of floating-point error.
    """
    if tr <= 0:
        raise ValueError(f"TR must be positive, not {tr}")
    return max(0, math.ceil(round(drop_seconds / tr, 9)))


def stack_trials(
    per_trial: Mapping[Hashable, np.ndarray],
    order: Sequence[Hashable],
    tr: float,
    drop_seconds: float = DROP_SECONDS,
) -> np.ndarray:
    """Drop the first samples of each trial and concatenate the trials in ``order``.

    Parameters
    ----------
    per_trial : mapping of hashable to numpy.ndarray
        Per stimulus, an array of shape (p, n_tr): p features (voxels or units) by the TRs
        of the trial, TR 0 starting at the stimulus onset.  Extra stimuli are ignored.
    order : sequence of hashable
        The trial order, normally :func:`canonical_stimulus_order`.
    tr : float
        Repetition time in seconds.
    drop_seconds : float, optional
        Seconds to drop from each trial's start; samples ``0 ... n_dropped(tr) - 1`` go.

    Returns
    -------
    numpy.ndarray
        Shape (p, T) with T the sum over trials of ``n_tr - n_dropped(tr, drop_seconds)``.

    Raises
    ------
    BadDataError
        If a stimulus of ``order`` is missing, the arrays disagree in p, or a trial is not
        longer than the dropped part.
    """
    drop = n_dropped(tr, drop_seconds)
    missing = [stim for stim in order if stim not in per_trial]
    if missing:
        raise BadDataError(
            f"No data for {len(missing)} trial(s) of the stimulus order, e.g. {missing[0]!r}",
            fix="check that every stimulus in the events files has data on both sides",
        )
    if not order:
        raise BadDataError("There are no trials to stack")
    pieces = []
    for stim in order:
        trial = np.asarray(per_trial[stim])
        if trial.ndim != 2:
            raise BadDataError(f"Trial {stim!r} is not a 2-D (features x TRs) array")
        if trial.shape[1] <= drop:
            raise BadDataError(
                f"Trial {stim!r} has {trial.shape[1]} TRs of {tr} s; nothing is left after "
                f"dropping the first {drop_seconds} s ({drop} TRs)",
                fix="use stimuli longer than the dropped part",
            )
        pieces.append(trial[:, drop:])
    widths = {piece.shape[0] for piece in pieces}
    if len(widths) > 1:
        raise BadDataError(f"Trials have different numbers of features: {sorted(widths)}")
    return np.concatenate(pieces, axis=1)
