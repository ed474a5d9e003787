"""Representational dissimilarity matrices between TRs: 1 - Spearman correlation."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

from .stacking import DROP_SECONDS, stack_trials


def rdm(features: np.ndarray) -> np.ndarray:
    """Return the RDM between the columns (TRs) of a features x TRs array.

    Dissimilarity is ``1 - rho`` with rho the Spearman correlation of two columns across
    features (ties get average ranks, as in :func:`scipy.stats.spearmanr`).  Computed as
    the Pearson correlation of the column ranks, in one matrix product.

    Parameters
    ----------
    features : numpy.ndarray
        Shape (p, T): p units or voxels by T TRs.

    Returns
    -------
    numpy.ndarray
        Shape (T, T), float64, symmetric with a zero diagonal.  Rows and columns of a
        constant TR pattern are NaN, as Spearman's correlation is undefined for them.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (p x T), not of shape {features.shape}")
    ranks = rankdata(features, axis=0)
    ranks -= ranks.mean(axis=0)
    norms = np.linalg.norm(ranks, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ranks /= np.where(norms > 0, norms, np.nan)
    dissimilarity = 1.0 - ranks.T @ ranks
    # Rounding can leave -1e-16 on the diagonal or put a value just outside [0, 2].
    np.clip(dissimilarity, 0.0, 2.0, out=dissimilarity)
    finite = np.isfinite(np.diag(dissimilarity))
    dissimilarity[np.flatnonzero(finite), np.flatnonzero(finite)] = 0.0
    return dissimilarity


def candidate_rdms(
    features_by_layer: Mapping[str, Mapping[Hashable, np.ndarray]],
    order: Sequence[Hashable],
    tr: float,
    *,
    drop_seconds: float = DROP_SECONDS,
    dtype: type = np.float64,
) -> np.ndarray:
    """Return one candidate RDM per layer from per-trial features.

    Parameters
    ----------
    features_by_layer : mapping of str to mapping of hashable to numpy.ndarray
        Layer name to (stimulus id to (width, n_tr) array), layers in the wanted order
        (:data:`bidsapp.audio.resnet.LAYER_NAMES`).
    order : sequence of hashable
        Trial order, :func:`~bidsapp.rsa.stacking.canonical_stimulus_order` of the stimuli.
    tr : float
        Repetition time in seconds.
    drop_seconds : float, optional
        Seconds dropped from each trial's start (6 in the study).
    dtype : numpy dtype, optional
        Output dtype; float32 halves the memory of many long RDMs.

    Returns
    -------
    numpy.ndarray
        Shape (L, T, T): the RDM of each layer's stacked features, in mapping order.
    """
    rdms = [
        rdm(stack_trials(per_trial, order, tr, drop_seconds)).astype(dtype, copy=False)
        for per_trial in features_by_layer.values()
    ]
    return np.stack(rdms)


def features_by_layer(
    features_by_stimulus: Mapping[Hashable, Mapping[str, np.ndarray]],
) -> dict[str, dict[Hashable, np.ndarray]]:
    """Turn stimulus -> layer -> array (the output of feature extraction) into layer-first.

    Parameters
    ----------
    features_by_stimulus : mapping of hashable to mapping of str to numpy.ndarray
        E.g. :func:`bidsapp.audio.compute_features_many` re-keyed by stimulus id.

    Returns
    -------
    dict of str to dict of hashable to numpy.ndarray
        Layers in the order of the first stimulus's mapping.
    """
    layers: dict[str, dict[Hashable, np.ndarray]] = {}
    for stim, per_layer in features_by_stimulus.items():
        for layer, values in per_layer.items():
            layers.setdefault(layer, {})[stim] = values
    return layers
