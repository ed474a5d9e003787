"""Group statistics over participants: the study's t-test and the permutation test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .fdr import fdr_mask, fdr_threshold
from .layers import max_over_layers, mean_layer, modal_layer
from .permutation import DEFAULT_N_DRAWS, group_permutation_pvalues
from .ttest import one_sample_ttest


@dataclass(frozen=True)
class StudyResult:
    """The study's group statistics, unthresholded unless named otherwise.

    Attributes
    ----------
    max_r, best_layer : numpy.ndarray
        (n_participants, n_voxels): each participant's maximum over layers and its
        1-based layer.
    mean_max_r : numpy.ndarray
        (n_voxels,): the mean of ``max_r`` over participants (the activity map).
    t, p : numpy.ndarray
        (n_voxels,): the right-sided one-sample t-test of ``max_r`` against 0.
    q, q_per_layer : float
        The requested FDR level and the level used, q / n_layers.
    p_threshold : float
        The Benjamini-Hochberg threshold at ``q_per_layer`` (0.0 when none survives).
    significant : numpy.ndarray
        (n_voxels,) bool: ``p <= p_threshold``.
    mean_layer, modal_layer : numpy.ndarray
        (n_voxels,): the mean layer index over participants (the study's layer map) and
        the layer most participants had (ties to the higher group-mean r).
    """

    max_r: np.ndarray
    best_layer: np.ndarray
    mean_max_r: np.ndarray
    t: np.ndarray
    p: np.ndarray
    q: float
    q_per_layer: float
    p_threshold: float
    significant: np.ndarray
    mean_layer: np.ndarray
    modal_layer: np.ndarray


@dataclass(frozen=True)
class PermutationResult:
    """The permutation test of the group-mean maximum correlation.

    Attributes
    ----------
    p : numpy.ndarray
        (n_voxels,): Monte Carlo p-values of the mean maximum against its null.
    q, p_threshold : float
        The FDR level (not divided by the layers: the null is of the maximum) and the
        Benjamini-Hochberg threshold (0.0 when none survives).
    significant : numpy.ndarray
        (n_voxels,) bool.
    null_mean : numpy.ndarray
        (n_participants, n_voxels): each participant's mean null maximum, the bias.
    debiased_max_r : numpy.ndarray
        (n_voxels,): mean over participants of ``max_r - null_mean``, an effect size with
        the bias of the maximum removed.
    n_draws : int
        Group-level draws used.
    exhaustive : bool
        True when every combination of the participants' null maps was used.
    """

    p: np.ndarray
    q: float
    p_threshold: float
    significant: np.ndarray
    null_mean: np.ndarray
    debiased_max_r: np.ndarray
    n_draws: int
    exhaustive: bool


def study_statistics(r: np.ndarray, q: float = 0.05) -> StudyResult:
    """Run the study's statistics on the participants' per-layer searchlight maps.

    Per voxel and participant the maximum correlation over layers and its layer
    (:func:`~bidsapp.stats.layers.max_over_layers`); a right-sided one-sample t-test of
    the maxima over participants (:func:`~bidsapp.stats.ttest.one_sample_ttest`);
    Benjamini-Hochberg FDR at q / n_layers over voxels
    (:func:`~bidsapp.stats.fdr.fdr_mask`), "to account for multiple comparisons, both
    due to multiple voxels as well as multiple layers" (the study's section "Statistical
    Analysis").  The test is biased upward: see :func:`permutation_statistics`.

    Parameters
    ----------
    r : numpy.ndarray
        Shape (n_participants, n_layers, n_voxels): Spearman correlations.
    q : float, optional
        The FDR level before the division by the number of layers.

    Returns
    -------
    StudyResult
        All maps, unthresholded, and the significance mask.
    """
    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 3:
        raise ValueError(f"r must be (n_participants, n_layers, n_voxels), not {r.shape}")
    n_layers = r.shape[1]
    max_r, best_layer = max_over_layers(r, axis=1)
    t, p = one_sample_ttest(max_r, axis=0)
    q_per_layer = q / n_layers
    with np.errstate(invalid="ignore"):
        group_mean_r = np.nanmean(r, axis=0) if np.isnan(r).any() else r.mean(axis=0)
    return StudyResult(
        max_r=max_r,
        best_layer=best_layer,
        mean_max_r=max_r.mean(axis=0),
        t=t,
        p=p,
        q=q,
        q_per_layer=q_per_layer,
        p_threshold=fdr_threshold(p, q_per_layer),
        significant=fdr_mask(p, q_per_layer),
        mean_layer=mean_layer(best_layer, axis=0),
        modal_layer=modal_layer(best_layer, n_layers, mean_r=group_mean_r),
    )


def permutation_statistics(
    max_r: np.ndarray,
    null_max_r: Sequence[np.ndarray],
    q: float = 0.05,
    n_draws: int = DEFAULT_N_DRAWS,
    seed: int | np.random.Generator = 0,
) -> PermutationResult:
    """Test the group-mean maximum correlation against its permutation null, with FDR.

    The p-values come from :func:`~bidsapp.stats.permutation.group_permutation_pvalues`;
    Benjamini-Hochberg runs over voxels at ``q`` itself.  Dividing by the number of
    layers, as the study does, is not needed: the null is that of the maximum over the
    layers, so the choice of the best layer is already paid for in every p-value.

    Parameters
    ----------
    max_r : numpy.ndarray
        (n_participants, n_voxels): observed maxima over layers.
    null_max_r : sequence of numpy.ndarray
        Per participant, (K_s, n_voxels): maxima over layers under block permutations.
    q : float, optional
        The FDR level.
    n_draws : int, optional
        Group-level Monte Carlo draws.
    seed : int or numpy.random.Generator, optional
        Seed of the draws.

    Returns
    -------
    PermutationResult
        p-values, the significance mask and the debiased effect size.
    """
    max_r = np.asarray(max_r, dtype=np.float64)
    p, used, exhaustive = group_permutation_pvalues(max_r, null_max_r, n_draws, seed)
    null_mean = np.stack([np.asarray(a, dtype=np.float64).mean(axis=0) for a in null_max_r])
    return PermutationResult(
        p=p,
        q=q,
        p_threshold=fdr_threshold(p, q),
        significant=fdr_mask(p, q),
        null_mean=null_mean,
        debiased_max_r=(max_r - null_mean).mean(axis=0),
        n_draws=used,
        exhaustive=exhaustive,
    )
