"""The rows of a carpet plot: a regular subsample of voxel time series, read in one pass.

A carpet plot (Power, 2017) draws one row per voxel, but only a few hundred rows fit in
the figure: niworkflows' ``plot_carpet`` keeps every ``n``-th voxel of each segment, with
``n = int(1.8 * n_voxels // 900)``.  Taking those voxels here, while the series is read
volume by volume, gives the same rows without ever holding the whole series (2 GB in
float32 for a study run, and twice that in the float64 detrending) in memory.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nb
import numpy as np

CARPET_HEIGHT = 900
"""The row budget of niworkflows' ``plot_carpet`` (its default ``size[0]``)."""


def carpet_step(n_voxels: int, height: int = CARPET_HEIGHT) -> int:
    """Return the voxel decimation of niworkflows' ``plot_carpet`` for ``n_voxels`` rows.

    Parameters
    ----------
    n_voxels : int
        Number of voxels (rows) before decimation.
    height : int, optional
        The plot's row budget (``size[0]`` of ``plot_carpet``).

    Returns
    -------
    int
        Keep every this-many-th voxel of each segment (at least 1).
    """
    return max(1, int((1.8 * n_voxels) // height))


def carpet_timeseries(bold: str | Path, segmentation: str | Path,
                      labels: dict[int, str], *, height: int = CARPET_HEIGHT
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read the voxel time series a carpet plot draws, volume by volume.

    The voxels are those of niworkflows' ``_nifti_timeseries`` followed by the decimation
    of ``plot_carpet`` (see :func:`carpet_step`), in the same order, so the plot drawn from
    them shows the same rows.

    Parameters
    ----------
    bold : str or Path
        4D series (``.nii`` or ``.nii.gz``), read once from start to end.
    segmentation : str or Path
        Integer labels on the series' grid; 0 is left out.
    labels : dict
        Name of each label value drawn (e.g. ``{1: 'grey matter', 3: 'other brain'}``);
        labels not named are left out.
    height : int, optional
        Row budget of the plot.

    Returns
    -------
    tuple
        float32 array (rows, volumes), and for each label name the row indices of its
        voxels, as ``plot_carpet`` takes them as ``segments``.
    """
    seg_img = nb.load(segmentation)
    seg = np.asarray(seg_img.dataobj).astype(int, copy=False).reshape(-1)
    named = np.isin(seg, list(labels))
    step = carpet_step(int(named.sum()), height)
    voxels, segments, start = [], {}, 0
    for value in sorted(labels):
        chosen = np.flatnonzero(seg == value)[::step]
        if not chosen.size:
            continue
        voxels.append(chosen)
        segments[labels[value]] = np.arange(start, start + chosen.size)
        start += chosen.size
    rows = np.concatenate(voxels) if voxels else np.zeros(0, dtype=int)
    # One open file handle read forwards: a gzipped series is decompressed once, not once
    # per volume as a fresh handle per slice would.
    img = nb.load(bold, keep_file_open=True)
    if tuple(img.shape[:3]) != tuple(seg_img.shape[:3]):
        raise ValueError(f"{segmentation} is not on the grid of {bold}")
    data = np.empty((rows.size, img.shape[3]), dtype=np.float32)
    for k in range(img.shape[3]):
        data[:, k] = np.asarray(img.dataobj[..., k], dtype=np.float32).reshape(-1)[rows]
    return data, segments


def drop_flat_rows(data: np.ndarray, segments: dict[str, np.ndarray]
                   ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Remove the rows without signal (constant or not finite) from a carpet plot's rows.

    A voxel of the segmentation that lies outside the BOLD field of view is 0 at every
    volume; detrended and scaled it draws as a flat grey band that looks like data.

    Parameters
    ----------
    data : numpy.ndarray
        (rows, volumes), as :func:`carpet_timeseries` returns it.
    segments : dict of str to numpy.ndarray
        Row indices per segment.

    Returns
    -------
    tuple
        The rows that vary over time, and each segment's indices into them (a segment
        left without rows is dropped).
    """
    data = np.asarray(data)
    finite = np.isfinite(data).all(axis=1)
    varies = finite & (np.ptp(np.where(finite[:, None], data, 0.0), axis=1) > 0)
    new_index = np.cumsum(varies) - 1
    kept = {name: new_index[rows[varies[rows]]] for name, rows in segments.items()}
    return data[varies], {name: rows for name, rows in kept.items() if rows.size}
