"""Which layer explains a voxel best: the maximum over layers and the layer maps."""

from __future__ import annotations

import numpy as np


def max_over_layers(r: np.ndarray, axis: int = -2) -> tuple[np.ndarray, np.ndarray]:
    """Return the maximum correlation over layers and the layer that gave it.

    This is the first step of the study's statistics (section "Statistical Analysis"):
    per voxel and participant, the value and the index of the candidate RDM with the
    highest Spearman correlation to the target RDM.

    Parameters
    ----------
    r : numpy.ndarray
        Correlations with the layers along ``axis``, e.g. (n_participants, n_layers,
        n_voxels).  A NaN layer (undefined correlation) is skipped.
    axis : int, optional
        The layers' axis.

    Returns
    -------
    max_r : numpy.ndarray
        The maximum over the layers, ``axis`` removed; NaN where every layer is NaN.
    best_layer : numpy.ndarray
        The 1-based index of that layer (int16, layer 1 is the first along ``axis``); 0
        where every layer is NaN.  Exact ties go to the shallower layer.
    """
    r = np.asarray(r)
    finite = np.isfinite(r)
    any_finite = finite.any(axis=axis)
    filled = np.where(finite, r, -np.inf)
    best = np.argmax(filled, axis=axis)
    max_r = np.take_along_axis(filled, np.expand_dims(best, axis), axis=axis).squeeze(axis)
    max_r = np.where(any_finite, max_r, np.nan)
    best_layer = np.where(any_finite, best + 1, 0).astype(np.int16)
    return max_r, best_layer


def mean_layer(best_layer: np.ndarray, axis: int = 0) -> np.ndarray:
    """Return the mean layer index over participants, the study's layer map.

    The study averages the index of the best layer over participants (its Fig. 8).  The
    mean of indices is a summary of depth, not a layer: 5.5 may come from layers 1 and 10.
    :func:`modal_layer` gives a layer that a voxel was actually assigned to.

    Parameters
    ----------
    best_layer : numpy.ndarray
        1-based layer indices from :func:`max_over_layers`, 0 for "no layer".
    axis : int, optional
        The participants' axis.

    Returns
    -------
    numpy.ndarray
        float64 mean of the non-zero indices; 0.0 where every participant has 0.
    """
    best_layer = np.asarray(best_layer)
    assigned = best_layer > 0
    count = assigned.sum(axis=axis)
    total = np.where(assigned, best_layer, 0).sum(axis=axis, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, 0.0)


def modal_layer(
    best_layer: np.ndarray,
    n_layers: int,
    mean_r: np.ndarray | None = None,
) -> np.ndarray:
    """Return the layer most participants were assigned to, per voxel.

    Parameters
    ----------
    best_layer : numpy.ndarray
        Shape (n_participants, n_voxels): 1-based layer indices, 0 for "no layer".
    n_layers : int
        The number of layers L; indices run 1..L.
    mean_r : numpy.ndarray, optional
        Shape (n_layers, n_voxels): the group-mean correlation of each layer.  Among layers
        tied for the most participants, the one with the highest mean correlation wins;
        without it the shallower layer wins.  Ties are common with few participants and
        ten layers, and the correlation is the better-founded tie-break.

    Returns
    -------
    numpy.ndarray
        int16 layer index 1..L per voxel, 0 where no participant has a layer.
    """
    best_layer = np.asarray(best_layer)
    if best_layer.ndim != 2:
        raise ValueError(f"best_layer must be (n_participants, n_voxels), not {best_layer.shape}")
    counts = np.stack([(best_layer == layer).sum(axis=0) for layer in range(1, n_layers + 1)])
    tied = counts == counts.max(axis=0)
    if mean_r is not None:
        mean_r = np.asarray(mean_r, dtype=np.float64)
        if mean_r.shape != counts.shape:
            raise ValueError(f"mean_r must have shape {counts.shape}, not {mean_r.shape}")
        key = np.where(tied, np.nan_to_num(mean_r, nan=-np.inf), -np.inf)
        # A tied layer with a NaN mean must still beat the untied ones.
        key = np.where(tied & ~np.isfinite(key), np.finfo(np.float64).min, key)
        winner = np.argmax(key, axis=0)
    else:
        winner = np.argmax(tied, axis=0)
    return np.where(counts.max(axis=0) > 0, winner + 1, 0).astype(np.int16)
