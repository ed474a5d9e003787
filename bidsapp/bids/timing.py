"""A BOLD run's TR from every source that states or implies it; stop when they disagree.

DICOM converters do not always write the true volume TR into ``RepetitionTime``.  dcm2niix,
for example, writes ``RepetitionTime: 1.79355`` (and the same in ``pixdim[4]``) for some
Philips scans whose true TR is 2.0 s, while the same sidecar holds the scanner's own
``RepetitionTimeExcitation: 2`` and ``AcquisitionDuration: 325.9`` for 156 volumes.  A wrong
TR shifts every late trial by tens of seconds without any error, so the run stops here,
before any computing, unless every source agrees within its tolerance:

- ``pixdim[4]`` of the NIfTI header (milliseconds converted), within
  :data:`HEADER_TOLERANCE`;
- ``RepetitionTimeExcitation`` plus ``DelayTime`` (0 when absent), within
  :data:`EXCITATION_TOLERANCE`;
- ``AcquisitionDuration`` over the number of volumes, within :data:`DURATION_TOLERANCE`;
- the spacing of ``VolumeTiming``, within :data:`HEADER_TOLERANCE`.

``RepetitionTimeExcitation`` below half of ``RepetitionTime`` is the interval between the
excitations within one volume (3D and multi-shot sequences) and says nothing about the
volume TR; it is not compared.  ``AcquisitionDuration`` no longer than ``RepetitionTime``
is the BIDS per-volume acquisition time, not the series' duration; it is not compared
either.  The series' duration of some scanners includes preparation and dummy scans, hence
the wider tolerance.

BIDS makes ``RepetitionTime`` and ``VolumeTiming`` mutually exclusive, and ``DelayTime``
belongs with ``RepetitionTime`` only.  A run with ``VolumeTiming`` alone is analysed when its
volumes are evenly spaced from 0 s and acquired without a silent gap (the spacing is then the
TR); sparse or clustered acquisitions stop with a message, because the analysis averages the
network's features over each TR of a continuous acquisition.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bidsapp.errors import BadDataError

LOGGER = logging.getLogger("bidsapp.bids")

#: Relative tolerance of the header's ``pixdim[4]`` and of ``VolumeTiming``'s spacing.
HEADER_TOLERANCE = 1e-3
#: Relative tolerance of ``RepetitionTimeExcitation`` + ``DelayTime``: the DICOM TR is
#: rounded to the millisecond, and 1 % still tells 1.79 s from 2 s.
EXCITATION_TOLERANCE = 0.01
#: Relative tolerance of ``AcquisitionDuration`` / volumes: a series' duration may include
#: preparation and dummy scans (325.9 s for 156 volumes of 2 s is 4.5 % over).
DURATION_TOLERANCE = 0.10
#: Fix of every disagreement: the sidecar and header, or the override.
_FIX = ("correct RepetitionTime in the run's JSON sidecar and pixdim[4] in its NIfTI header "
        "to the true volume TR (dcm2niix writes some Philips scans' DICOM TR as "
        "RepetitionTimeExcitation, and a different value as RepetitionTime), or, if you know "
        "the true TR, pass --repetition-time <seconds> to use it for every selected run")


@dataclass(frozen=True)
class TrSource:
    """One value that states or implies a run's volume TR."""

    #: Where it comes from, as the message names it.
    name: str
    #: The volume TR it implies, in seconds.
    implied: float
    #: How the implied value was computed, when it is not the field itself.
    detail: str = ""
    #: Relative tolerance against the TR that is used.
    tolerance: float = HEADER_TOLERANCE

    def describe(self) -> str:
        """Return ``name = value s`` with how the value was derived."""
        text = f"{self.name} {self.implied:.6g} s"
        return f"{text} ({self.detail})" if self.detail else text

    def agrees(self, tr: float) -> bool:
        """Whether the implied TR is within tolerance of ``tr``."""
        return abs(self.implied - tr) <= self.tolerance * tr


def _number(metadata: Mapping[str, Any], key: str) -> float | None:
    value = metadata.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def header_tr(img) -> float | None:
    """Return the TR in the NIfTI header's ``pixdim[4]``, in seconds, or None if unset.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        A 4D image (header only is read).

    Returns
    -------
    float or None
        ``pixdim[4]``, converted from milliseconds when the header's time unit says so;
        None when it is 0 (unset).
    """
    value = float(img.header.get_zooms()[3])
    if img.header.get_xyzt_units()[1] == "msec":
        value /= 1000.0
    return value if value > 0 else None


def _volume_timing_spacing(path: Path, timing: Any, n_volumes: int) -> float:
    """Return the even spacing of a valid ``VolumeTiming``, or stop with why it is not one."""
    if (not isinstance(timing, list) or not timing
            or not all(isinstance(t, int | float) and not isinstance(t, bool) for t in timing)):
        raise BadDataError("VolumeTiming in the BOLD sidecar is not a list of numbers",
                           path=path, fix="give one onset in seconds per volume")
    if len(timing) != n_volumes:
        raise BadDataError(
            f"VolumeTiming has {len(timing)} entries but the BOLD image has {n_volumes} "
            "volumes", path=path,
            fix="give one onset in seconds per volume, or check that the image is complete")
    steps = [b - a for a, b in zip(timing, timing[1:], strict=False)]
    if min(steps) <= 0:
        raise BadDataError("VolumeTiming is not strictly increasing", path=path,
                           fix="give each volume's onset in seconds, in acquisition order")
    spacing = (timing[-1] - timing[0]) / (n_volumes - 1)
    if max(abs(s - spacing) for s in steps) > HEADER_TOLERANCE * spacing:
        raise BadDataError(
            f"VolumeTiming spaces the volumes unevenly (from {min(steps):.4g} to "
            f"{max(steps):.4g} s apart): bidsapp does not support clustered or jittered "
            "acquisitions, because it averages the network's features over each TR of a "
            "continuous acquisition", path=path,
            fix="analyse only runs acquired at one fixed TR (leave this run out with "
                "--bids-filter-file)")
    return spacing


def _from_volume_timing(path: Path, metadata: Mapping[str, Any], n_volumes: int) -> float:
    """Return the TR of a run described by ``VolumeTiming`` alone, or stop clearly."""
    timing = metadata["VolumeTiming"]
    if "DelayTime" in metadata:
        raise BadDataError(
            "The BOLD sidecar has both VolumeTiming and DelayTime, which BIDS makes mutually "
            "exclusive", path=path,
            fix="describe the acquisition either with RepetitionTime (and DelayTime) or with "
                "VolumeTiming (and AcquisitionDuration)")
    spacing = _volume_timing_spacing(path, timing, n_volumes)
    if abs(float(timing[0])) > HEADER_TOLERANCE * spacing:
        raise BadDataError(
            f"VolumeTiming starts at {timing[0]:g} s, not 0: bidsapp reads onsets in "
            "events.tsv from the first volume, which this sidecar places elsewhere",
            path=path,
            fix="give VolumeTiming from 0 s and the onsets from the first volume")
    duration = _number(metadata, "AcquisitionDuration")
    if duration is not None and duration < spacing * (1 - HEADER_TOLERANCE):
        raise BadDataError(
            f"VolumeTiming and AcquisitionDuration describe a sparse acquisition (each volume "
            f"acquired in {duration:g} s, one every {spacing:.6g} s): bidsapp does not "
            "support sparse acquisitions, because it averages the network's features over "
            "each TR of a continuous acquisition", path=path,
            fix="analyse only continuously acquired runs (leave this run out with "
                "--bids-filter-file)")
    return spacing


def _sources(metadata: Mapping[str, Any], img, n_volumes: int, sidecar_tr: float | None
             ) -> list[TrSource]:
    """Return every value besides ``RepetitionTime`` that implies the volume TR."""
    sources = []
    header = header_tr(img)
    if header is not None:
        sources.append(TrSource("pixdim[4] of the NIfTI header", header))
    excitation = _number(metadata, "RepetitionTimeExcitation")
    delay = _number(metadata, "DelayTime") or 0.0
    reference = sidecar_tr or header
    if excitation is not None and excitation > 0 and (
            reference is None or excitation + delay >= 0.5 * reference):
        detail = f"RepetitionTimeExcitation {excitation:g} s + DelayTime {delay:g} s" \
            if delay else ""
        sources.append(TrSource("RepetitionTimeExcitation" + (" + DelayTime" if delay else ""),
                                excitation + delay, detail, EXCITATION_TOLERANCE))
    duration = _number(metadata, "AcquisitionDuration")
    if duration is not None and reference is not None and duration > reference:
        sources.append(TrSource("AcquisitionDuration / volumes", duration / n_volumes,
                                f"{duration:g} s over {n_volumes} volumes",
                                DURATION_TOLERANCE))
    return sources


def _disagreement(path: Path, used: TrSource, others: list[TrSource], n_volumes: int
                  ) -> BadDataError:
    """Build the one-paragraph error naming every value and what would have been used."""
    wrong = [s for s in others if not s.agrees(used.implied)]
    # The most trusted source (the tightest tolerance) that disagrees sizes the error.
    worst = min(wrong, key=lambda s: (s.tolerance, -abs(s.implied - used.implied)))
    shift = n_volumes * abs(worst.implied - used.implied)
    tolerances = "; ".join(f"{s.name} within {s.tolerance:.1%}" for s in wrong)
    return BadDataError(
        f"The TR of {path.name} is uncertain: its sources disagree: "
        f"{'; '.join(s.describe() for s in [used, *others])}. bidsapp would have used "
        f"{used.name} ({used.implied:.6g} s); if {worst.name} is right instead, the last "
        f"volume would be placed {shift:.1f} s off and every trial read at the wrong time "
        f"(tolerances: {tolerances})", path=path, fix=_FIX)


def resolve_repetition_time(path: Path, metadata: Mapping[str, Any], img, n_volumes: int,
                            override: float | None = None) -> float:
    """Return the volume TR of a BOLD run, checked against everything that implies it.

    Parameters
    ----------
    path : Path
        The BOLD image, named in messages.
    metadata : mapping
        Its sidecar metadata (BIDS inheritance applied).
    img : nibabel.Nifti1Image
        The image (header only is read).
    n_volumes : int
        Its number of volumes.
    override : float, optional
        ``--repetition-time``: used instead of the sidecar, with a warning naming every
        value it replaces.

    Returns
    -------
    float
        The TR in seconds.

    Raises
    ------
    BadDataError
        If there is no usable TR, if the sources disagree beyond their tolerance, if the
        sidecar breaks the BIDS rules on ``RepetitionTime``, ``VolumeTiming`` and
        ``DelayTime``, or if ``VolumeTiming`` describes an acquisition that bidsapp does not
        support (sparse, clustered, jittered).
    """
    sidecar_tr = _number(metadata, "RepetitionTime")
    has_timing = "VolumeTiming" in metadata
    if override is not None:
        replaced = [TrSource("RepetitionTime", sidecar_tr)] if sidecar_tr else []
        replaced += _sources(metadata, img, n_volumes, sidecar_tr or override)
        if any(not s.agrees(override) for s in replaced):
            LOGGER.warning("%s: --repetition-time %g s is used instead of %s", path.name,
                           override, "; ".join(s.describe() for s in replaced))
        return float(override)
    if has_timing and sidecar_tr is not None:
        raise BadDataError(
            f"The BOLD sidecar has both RepetitionTime ({sidecar_tr:g} s) and VolumeTiming, "
            "which BIDS makes mutually exclusive", path=path,
            fix="keep RepetitionTime for a continuous acquisition at a fixed TR, or "
                "VolumeTiming (with AcquisitionDuration) for a sparse one")
    if has_timing:
        used = TrSource("the spacing of VolumeTiming",
                        _from_volume_timing(path, metadata, n_volumes))
    elif sidecar_tr is None or sidecar_tr <= 0:
        raise BadDataError(
            "The BOLD sidecar has no valid RepetitionTime", path=path.with_name(
                path.name.replace(".nii.gz", ".json").replace(".nii", ".json")),
            fix="add \"RepetitionTime\": <seconds> to the sidecar JSON")
    else:
        used = TrSource("RepetitionTime", sidecar_tr)
    others = _sources(metadata, img, n_volumes, used.implied)
    if has_timing:
        # AcquisitionDuration is the per-volume time there, checked above.
        others = [s for s in others if not s.name.startswith("AcquisitionDuration")]
    if any(not s.agrees(used.implied) for s in others):
        raise _disagreement(path, used, others, n_volumes)
    return used.implied
