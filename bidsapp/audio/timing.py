"""From network frames to one value per TR: a common 64 ms grid, the HRF, TR averaging.

Every layer's frames are first averaged onto the conv5 frame grid (one frame per 1,024
samples, 64 ms).  The grid signal is convolved with nilearn's canonical SPM HRF sampled at
the same 64 ms, and only then averaged within each TR.  Convolving before binning keeps the
HRF's shape (its 5 s peak and undershoot) intact whatever the TR; binning first would
sample the HRF at the TR, which for a 2 s TR misplaces its peak by up to a second.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from nilearn.glm.first_level import spm_hrf
from scipy.signal import fftconvolve

from .resnet import FRAME_HOP, SAMPLE_RATE

GRID_PERIOD = FRAME_HOP / SAMPLE_RATE
"""Seconds between frames of the common grid (0.064 s)."""


def to_grid(activations: torch.Tensor, hop: int, n_grid: int) -> torch.Tensor:
    """Average a layer's frames onto the 64 ms grid of conv5 frames.

    Grid frame ``j`` is centred on sample ``j * 1024`` and takes the mean of the layer's
    frames centred in ``[j * 1024 - 512, j * 1024 + 512)``; frames past the last grid frame
    (at most 32 ms of audio) join it.

    Parameters
    ----------
    activations : torch.Tensor
        Shape (batch, width, frames) with frame ``k`` centred on sample ``k * hop``.
    hop : int
        The layer's hop in samples; divides 1024.
    n_grid : int
        Number of grid frames (the conv5 frame count).

    Returns
    -------
    torch.Tensor
        Shape (batch, width, n_grid), on the input's device.
    """
    if hop == FRAME_HOP:
        return activations[..., :n_grid]
    frames = activations.shape[-1]
    centres = torch.arange(frames, device=activations.device) * hop
    index = torch.clamp((centres + FRAME_HOP // 2) // FRAME_HOP, max=n_grid - 1)
    sums = activations.new_zeros((*activations.shape[:-1], n_grid)).index_add_(
        -1, index, activations
    )
    counts = torch.bincount(index, minlength=n_grid).to(activations.dtype)
    return sums / counts


def trial_trs(n_samples: int, tr: float) -> int:
    """Return how many TRs a stimulus of ``n_samples`` 16 kHz samples spans (partial counts).

    TR ``i`` covers ``[i * tr, (i + 1) * tr)`` seconds from the stimulus onset; every TR
    that starts before the stimulus ends is counted.
    """
    return math.ceil(round(n_samples / SAMPLE_RATE / tr, 9))


@functools.cache
def hrf_kernel(period: float = GRID_PERIOD) -> np.ndarray:
    """Return nilearn's canonical SPM HRF sampled every ``period`` seconds (32 s long, sum 1)."""
    return spm_hrf(period, oversampling=1)


def convolve_hrf(grid: np.ndarray, n_out: int, period: float = GRID_PERIOD) -> np.ndarray:
    """Convolve grid-sampled activations with the canonical HRF.

    Activity before the stimulus onset and after its end is taken as zero, so the output
    past the end is the response tail of the stimulus alone.

    Parameters
    ----------
    grid : numpy.ndarray
        Shape (width, frames), one column per grid frame from the onset.
    n_out : int
        Number of output frames; the response is zero-padded if longer than the full
        convolution.
    period : float, optional
        Grid period in seconds.

    Returns
    -------
    numpy.ndarray
        Shape (width, n_out), float64.
    """
    full = fftconvolve(np.asarray(grid, dtype=np.float64), hrf_kernel(period)[None, :], axes=1)
    out = np.zeros((full.shape[0], n_out))
    keep = min(n_out, full.shape[1])
    out[:, :keep] = full[:, :keep]
    return out


def average_per_tr(
    values: np.ndarray, tr: float, n_tr: int, period: float = GRID_PERIOD
) -> np.ndarray:
    """Average a grid signal within each TR.

    Parameters
    ----------
    values : numpy.ndarray
        Shape (width, frames); column ``j`` is at time ``j * period`` from the onset.
    tr : float
        Repetition time in seconds; at least ``period``.
    n_tr : int
        Number of TRs; TR ``i`` averages the columns with times in ``[i * tr, (i + 1) * tr)``.
        Must be covered by ``values``.

    Returns
    -------
    numpy.ndarray
        Shape (width, n_tr).
    """
    if tr < period:
        raise ValueError(f"TR {tr} s is shorter than the {period} s frame grid")
    times = np.arange(values.shape[1]) * period
    # A tiny tolerance puts a column that lands on a TR boundary (up to rounding) in the
    # later TR, as the half-open interval says.
    bins = np.floor(times / tr + 1e-9).astype(int)
    if bins[-1] < n_tr - 1:
        raise ValueError(f"{values.shape[1]} frames do not cover {n_tr} TRs of {tr} s")
    inside = bins < n_tr
    sums = np.zeros((values.shape[0], n_tr))
    np.add.at(sums.T, bins[inside], values[:, inside].T)
    return sums / np.bincount(bins[inside], minlength=n_tr)


def hrf_per_tr(grid: np.ndarray, tr: float, n_tr: int) -> np.ndarray:
    """Convolve grid activations with the HRF, then average them within each of ``n_tr`` TRs.

    Parameters
    ----------
    grid : numpy.ndarray
        Shape (width, frames) on the 64 ms grid, frame 0 at the stimulus onset.
    tr : float
        Repetition time in seconds.
    n_tr : int
        TRs to return, counted from the onset (see :func:`trial_trs`).

    Returns
    -------
    numpy.ndarray
        Shape (width, n_tr): the predicted BOLD response averaged over each TR.
    """
    n_out = math.ceil(n_tr * tr / GRID_PERIOD) + 1
    return average_per_tr(convolve_hrf(grid, n_out), tr, n_tr)
