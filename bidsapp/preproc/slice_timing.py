"""Slice-timing correction: a Fourier (sinc) shift of every slice to one reference time.

Each slice of a BOLD volume is acquired at its own time ``SliceTiming[z]`` within the TR.
Correcting a slice shifts its time series by the fraction of a TR between its acquisition
time and the reference time ``StartTime``, as a phase ramp on its discrete Fourier
transform (band-limited, i.e. sinc, interpolation).  The reference follows fMRIPrep:
``StartTime = first + slice_time_ref * (last - first)`` over the slice times, so the
default 0.5 is the middle of the acquisition.  Missing or invalid ``SliceTiming`` never
stops a run: the plan says the correction is skipped and why, for the report.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nibabel as nb
import numpy as np
from scipy import fft

LOGGER = logging.getLogger("bidsapp.preproc")

_AXES = {"i": 0, "j": 1, "k": 2}


@dataclass(frozen=True)
class SliceTimingPlan:
    """What slice-timing correction will do for one run.

    Attributes
    ----------
    slice_times : tuple of float or None
        Acquisition time (s from the start of the volume) of each slice, in image index
        order along ``slice_axis``; ``None`` when the correction is skipped.
    start_time : float or None
        The time (s from the start of the volume) every slice is shifted to; the
        ``StartTime`` of the corrected series.  ``None`` when skipped.
    slice_axis : int
        The image axis along which slices are stacked (0, 1 or 2).
    warning : str or None
        Why the correction is skipped, in one sentence for the report.
    """

    slice_times: tuple[float, ...] | None
    start_time: float | None
    slice_axis: int = 2
    warning: str | None = None

    @property
    def corrected(self) -> bool:
        """Whether the correction will be applied (``SliceTimingCorrected``)."""
        return self.slice_times is not None

    def sidecar(self) -> dict[str, Any]:
        """Return the BIDS metadata of the output series.

        Returns
        -------
        dict
            ``SliceTimingCorrected`` and, when corrected, ``StartTime``.
        """
        meta: dict[str, Any] = {"SliceTimingCorrected": self.corrected}
        if self.corrected:
            meta["StartTime"] = self.start_time
        return meta


def volume_time(start_time: float | None, tr: float) -> float:
    """Return the time within each TR that a preprocessed volume stands for, in seconds.

    The one rule every part of the analysis uses to place volumes against trial onsets.

    Parameters
    ----------
    start_time : float or None
        The series' ``StartTime`` when slice timing was corrected, ``None`` when not.
    tr : float
        Repetition time in seconds.

    Returns
    -------
    float
        ``start_time`` after correction; otherwise half a TR, because an uncorrected
        volume mixes slices from the whole TR, which 0 would place too early.
    """
    return float(start_time) if start_time is not None else 0.5 * float(tr)


def _skip(reason: str, axis: int = 2, log: bool = True) -> SliceTimingPlan:
    if log:
        LOGGER.warning("Slice-timing correction skipped: %s", reason)
    return SliceTimingPlan(None, None, axis, f"Slice-timing correction skipped: {reason}")


def plan_slice_timing(metadata: Mapping[str, Any], shape: Sequence[int], tr: float,
                      slice_time_ref: float = 0.5, *, log: bool = True) -> SliceTimingPlan:
    """Check a run's ``SliceTiming`` and choose the reference time.

    Parameters
    ----------
    metadata : mapping
        The BOLD sidecar: ``SliceTiming`` (s) and optionally ``SliceEncodingDirection``
        (``i``, ``j``, ``k``, with ``-`` when the list runs from the last slice).
    shape : sequence of int
        Shape of the 4D series, to check the number of slices.
    tr : float
        Repetition time in seconds.
    slice_time_ref : float, optional
        Reference as a fraction of the slice acquisition range, 0 (first slice) to 1
        (last slice); 0.5 by default, as in fMRIPrep.
    log : bool, optional
        Log why the correction is skipped; off where the same run was planned already.

    Returns
    -------
    SliceTimingPlan
        The plan; never raises for bad metadata but records a warning instead.
    """
    direction = str(metadata.get("SliceEncodingDirection", "k"))
    axis = _AXES.get(direction[:1])
    if axis is None or direction[1:] not in ("", "-"):
        return _skip(f"SliceEncodingDirection {direction!r} is not one of i, j, k, i-, j-, k-",
                     log=log)
    times = metadata.get("SliceTiming")
    if times is None:
        return _skip("the BOLD sidecar has no SliceTiming", axis, log=log)
    if not isinstance(times, list | tuple) or not all(
            isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)
            for t in times):
        return _skip("SliceTiming is not a list of numbers", axis, log=log)
    n_slices = int(shape[axis]) if len(shape) > axis else 0
    if len(times) != n_slices:
        return _skip(f"SliceTiming has {len(times)} entries but the image has {n_slices} "
                     f"slices along axis {direction[:1]}", axis, log=log)
    values = np.asarray(times, dtype=float)
    if values.min() < 0 or values.max() >= tr:
        hint = " (milliseconds instead of seconds?)" if values.max() >= 1000 * 0.5 * tr else ""
        return _skip(f"SliceTiming values must lie in [0, TR={tr} s); they span "
                     f"{values.min():g}-{values.max():g}{hint}", axis, log=log)
    if np.ptp(values) == 0:
        return _skip("every slice has the same acquisition time, so there is nothing to "
                     "correct", axis, log=log)
    if direction.endswith("-"):
        # BIDS: with a negative direction the first entry is the slice of largest index.
        values = values[::-1]
    first, last = float(values.min()), float(values.max())
    start_time = round(first + float(slice_time_ref) * (last - first), 6)
    return SliceTimingPlan(tuple(float(t) for t in values), start_time, axis, None)


def fourier_shift(series: np.ndarray, shift: float, axis: int = -1) -> np.ndarray:
    """Return ``series`` advanced by ``shift`` samples along ``axis`` (sinc interpolation).

    ``out[n] = series(n + shift)``.  The series is mirrored before the transform, so both
    ends join smoothly and no wrap-around ringing reaches the data.

    Parameters
    ----------
    series : numpy.ndarray
        Real samples, any shape.
    shift : float
        Fraction of a sample, usually within (-1, 1); positive looks later in time.
    axis : int, optional
        The time axis.

    Returns
    -------
    numpy.ndarray
        Same shape; float32 for float32 or integer input, float64 otherwise.
    """
    data = np.asarray(series)
    if not np.issubdtype(data.dtype, np.floating):
        data = data.astype(np.float32)
    n = data.shape[axis]
    extended = np.concatenate([data, np.flip(data, axis=axis)], axis=axis)
    spectrum = fft.rfft(extended, axis=axis, overwrite_x=True)
    del extended
    freqs = fft.rfftfreq(2 * n)
    ramp = np.exp(2j * np.pi * freqs * shift).astype(spectrum.dtype)
    shape = [1] * data.ndim
    shape[axis] = ramp.size
    # In place: at study size every temporary is a 50 MB slice.
    spectrum *= ramp.reshape(shape)
    shifted = fft.irfft(spectrum, n=2 * n, axis=axis, overwrite_x=True)
    first_half = [slice(None)] * data.ndim
    first_half[axis] = slice(0, n)
    return shifted[tuple(first_half)].astype(data.dtype)


def slice_time_correct(data: np.ndarray, plan: SliceTimingPlan, tr: float) -> np.ndarray:
    """Shift every slice's time series to the plan's ``start_time``.

    Parameters
    ----------
    data : numpy.ndarray or array proxy
        4D series (x, y, z, t); read one slice at a time, so a nibabel ``dataobj`` keeps
        memory to one copy of the output.
    plan : SliceTimingPlan
        From :func:`plan_slice_timing`; when it skips, the data are returned as float32.
    tr : float
        Repetition time in seconds.

    Returns
    -------
    numpy.ndarray
        float32 series of the same shape, every voxel sampled at ``n * TR + start_time``,
        in Fortran order (NIfTI's), so that writing it is a straight copy.
    """
    # A C-ordered 1.6 GB series takes nibabel 20 s to write, a Fortran-ordered one 1 s.
    out = np.empty(data.shape, dtype=np.float32, order="F")
    axis = plan.slice_axis
    index: list[Any] = [slice(None)] * 4
    for z in range(data.shape[axis]):
        index[axis] = z
        where = tuple(index)
        series = np.asarray(data[where], dtype=np.float32)
        if plan.corrected:
            shift = (plan.start_time - plan.slice_times[z]) / tr
            series = fourier_shift(series, shift, axis=-1)
        out[where] = series
    return out


def slice_time_correct_img(img, plan: SliceTimingPlan, tr: float):
    """Apply :func:`slice_time_correct` to a nibabel image and keep its header.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        The 4D BOLD series.
    plan : SliceTimingPlan
        From :func:`plan_slice_timing`.
    tr : float
        Repetition time in seconds (the sidecar's, which the header must agree with).

    Returns
    -------
    nibabel.Nifti1Image
        The corrected float32 series with the input's affine and zooms.
    """
    corrected = slice_time_correct(img.dataobj, plan, tr)
    header = img.header.copy()
    header.set_data_dtype(np.float32)
    out = nb.Nifti1Image(corrected, img.affine, header)
    out.header.set_slope_inter(1.0, 0.0)
    return out
