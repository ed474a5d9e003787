"""The fMRI side of the study's RSA: masked runs to one V x T matrix of stacked trials.

Per run, each in-mask voxel's time course is linearly detrended and z-scored; the
volumes of each trial are cut at the trial's onset, repetitions of a stimulus are matched
across runs by ``stim_file`` and averaged, and the trials are stacked with
:func:`bidsapp.rsa.stacking.stack_trials` in the order the candidate RDMs use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np
from scipy.signal import detrend

from bidsapp.errors import BadDataError

from .stacking import DROP_SECONDS, canonical_stimulus_order, stack_trials


@dataclass(frozen=True)
class RunTrials:
    """One run's cleaned data and its trials.

    Attributes
    ----------
    data : numpy.ndarray
        Shape (n_volumes, V): the in-mask voxels of the template-space BOLD run.
    onsets : sequence of float
        Trial onsets in seconds from the first volume.
    stimuli : sequence of str
        The ``stim_file`` of each trial.
    start_time : float
        Time within each TR that the volume represents, in seconds: ``StartTime`` after
        slice-timing correction (``slice_time_ref * TR``), or half a TR without it.
    name : str
        Shown in error messages (the BOLD file name).
    """

    data: np.ndarray
    onsets: Sequence[float]
    stimuli: Sequence[str]
    start_time: float
    name: str = "run"


def masked_volumes(path: str | Path, mask: np.ndarray, block: int = 32) -> np.ndarray:
    """Read a 4D image's in-mask voxels, a block of volumes at a time.

    Loading a whole template-space run first would hold its full grid in memory (2 GB
    for one run of the study: 82 x 97 x 79 voxels x 826 volumes in float32) on top of the
    in-mask copy; reading blocks through one open file keeps only the in-mask values.

    Parameters
    ----------
    path : str or Path
        The 4D NIfTI file.
    mask : numpy.ndarray
        Boolean, the image's first three dimensions.
    block : int, optional
        Volumes read at a time.

    Returns
    -------
    numpy.ndarray
        Shape (n_volumes, n_in_mask), in the dtype nibabel gives the whole image
        (``np.asanyarray(img.dataobj)[mask].T``, to which it is identical).
    """
    # One open handle, so that each block continues the gzip stream instead of
    # decompressing the file again from its start.
    img = nb.load(path, keep_file_open=True)
    n_volumes = img.shape[3]
    out = None
    for start in range(0, n_volumes, block):
        values = np.asanyarray(img.dataobj[..., start:start + block])[mask].T
        if out is None:
            out = np.empty((n_volumes, values.shape[1]), values.dtype)
        out[start:start + len(values)] = values
    img.uncache()
    return out


def clean_run(data: np.ndarray) -> np.ndarray:
    """Linearly detrend and z-score each voxel's time course, as the study did per run.

    Parameters
    ----------
    data : numpy.ndarray
        Shape (n_volumes, V).

    Returns
    -------
    numpy.ndarray
        float32 of the same shape; voxels with a constant time course become 0 rather
        than NaN, so they add nothing to a searchlight instead of poisoning it.
    """
    values = detrend(np.asarray(data, dtype=np.float64), axis=0, type="linear")
    std = values.std(axis=0)
    constant = std < 1e-8 * max(1.0, float(np.abs(data).max(initial=0.0)))
    std[constant] = 1.0
    values /= std
    values[:, constant] = 0.0
    return values.astype(np.float32)


def first_volume(onset: float, tr: float, start_time: float) -> int:
    """Return the volume that holds TR 0 of a trial starting at ``onset``.

    TR ``i`` of a trial covers ``[onset + i * tr, onset + (i + 1) * tr)``, the same bins
    the stimulus features are averaged in; volume ``k`` represents time
    ``k * tr + start_time``.  The volume nearest the bin's centre is taken.
    """
    return int(np.floor((onset + 0.5 * tr - start_time) / tr + 0.5))


def average_trials(runs: Iterable[RunTrials], trial_trs: Mapping[str, int],
                   tr: float) -> dict[str, np.ndarray]:
    """Cut every trial's volumes and average the repetitions of each stimulus over runs.

    Parameters
    ----------
    runs : iterable of RunTrials
        The runs; ``data`` is cleaned here with :func:`clean_run`.
    trial_trs : mapping of str to int
        TRs per trial for each stimulus, as the features have them (partial TRs counted).
    tr : float
        Repetition time in seconds.

    Returns
    -------
    dict of str to numpy.ndarray
        Stimulus to (V, n_tr) float32 average over its presentations.

    Raises
    ------
    BadDataError
        If a trial's volumes run past the end of its run, or a stimulus has no features.
    """
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for run in runs:
        data = clean_run(run.data)
        for onset, stim in zip(run.onsets, run.stimuli, strict=True):
            if stim not in trial_trs:
                raise BadDataError(f"No stimulus features for {stim!r} (run {run.name})")
            start = first_volume(onset, tr, run.start_time)
            stop = start + trial_trs[stim]
            if start < 0 or stop > data.shape[0]:
                raise BadDataError(
                    f"The trial of {stim} at {onset:g} s needs volumes {start}-{stop - 1} but "
                    f"the run has {data.shape[0]}", path=run.name,
                    fix="check the onsets and that the run was not cut short",
                )
            trial = data[start:stop].T
            if stim in sums:
                sums[stim] += trial
                counts[stim] += 1
            else:
                sums[stim] = trial.astype(np.float64)
                counts[stim] = 1
    return {stim: (sums[stim] / counts[stim]).astype(np.float32) for stim in sums}


def stacked_patterns(runs: Iterable[RunTrials], trial_trs: Mapping[str, int], tr: float,
                     *, drop_seconds: float = DROP_SECONDS,
                     order: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Return the study's V x T matrix of averaged, trimmed and stacked trials.

    Parameters
    ----------
    runs : iterable of RunTrials
        The participant's runs of one task.
    trial_trs : mapping of str to int
        TRs per trial for each stimulus.
    tr : float
        Repetition time in seconds.
    drop_seconds : float, optional
        Seconds dropped from the start of each trial (6 in the study).
    order : sequence of str, optional
        The trial order; by default :func:`canonical_stimulus_order` of the stimuli seen,
        which is what the candidate RDMs use.

    Returns
    -------
    patterns : numpy.ndarray
        Shape (V, T), float32.
    order : list of str
        The stimulus order of the stacked trials.
    """
    per_trial = average_trials(runs, trial_trs, tr)
    order = list(order) if order is not None else canonical_stimulus_order(per_trial)
    return stack_trials(per_trial, order, tr, drop_seconds), order
