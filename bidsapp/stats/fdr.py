"""Benjamini-Hochberg false discovery rate control over voxels."""

from __future__ import annotations

import numpy as np


def _check_q(q: float) -> None:
    if not 0.0 < q < 1.0:
        raise ValueError(f"the FDR level q must lie strictly between 0 and 1, not {q}")


def fdr_threshold(p_values: np.ndarray, q: float) -> float:
    r"""Return the Benjamini-Hochberg p-value threshold at level ``q``.

    With the m finite p-values sorted, :math:`p_{(1)} \le \dots \le p_{(m)}`, the
    threshold is :math:`p_{(k)}` for the largest k with :math:`p_{(k)} \le k q / m` [1]_;
    every p-value at or below it is a discovery.  The procedure controls the false
    discovery rate at ``q`` for independent or positively dependent tests (PRDS) [2]_,
    which covers overlapping searchlights.

    Parameters
    ----------
    p_values : numpy.ndarray
        p-values of any shape.  NaN marks an untested voxel: it is neither counted in m
        nor ever a discovery.
    q : float
        The false discovery rate, in (0, 1).  The study uses q / n_layers, see
        :func:`bidsapp.stats.group.study_statistics`.

    Returns
    -------
    float
        The threshold; 0.0 when there is no discovery (then every finite p-value exceeds
        it, as they all exceed q / m > 0).

    References
    ----------
    .. [1] Benjamini, Y., Hochberg, Y. (1995). Controlling the false discovery rate: a
       practical and powerful approach to multiple testing. Journal of the Royal
       Statistical Society B 57(1), 289-300.
       https://doi.org/10.1111/j.2517-6161.1995.tb02031.x
    .. [2] Benjamini, Y., Yekutieli, D. (2001). The control of the false discovery rate in
       multiple testing under dependency. Annals of Statistics 29(4), 1165-1188.
       https://doi.org/10.1214/aos/1013699998
    """
    threshold, _ = _step_up(p_values, q)
    return threshold


def _step_up(p_values: np.ndarray, q: float) -> tuple[float, int]:
    """Return the BH threshold and the number of discoveries (0 when none)."""
    _check_q(q)
    p = np.asarray(p_values, dtype=np.float64).ravel()
    p = np.sort(p[np.isfinite(p)])
    m = p.size
    below = np.flatnonzero(p <= q * np.arange(1, m + 1) / m) if m else np.array([], int)
    if not below.size:
        return 0.0, 0
    return float(p[below[-1]]), int(below[-1] + 1)


def fdr_mask(p_values: np.ndarray, q: float) -> np.ndarray:
    """Return which p-values are Benjamini-Hochberg discoveries at level ``q``.

    Parameters
    ----------
    p_values : numpy.ndarray
        p-values of any shape; NaN marks an untested voxel.
    q : float
        The false discovery rate, in (0, 1).

    Returns
    -------
    numpy.ndarray
        Boolean, the shape of ``p_values``: True where ``p <= fdr_threshold(p, q)``, all
        False when there is no discovery.

    See Also
    --------
    fdr_threshold : the threshold and the references.
    """
    p = np.asarray(p_values, dtype=np.float64)
    threshold, n_discoveries = _step_up(p, q)
    if n_discoveries == 0:
        return np.zeros(p.shape, dtype=bool)
    # Comparing NaN is False, so untested voxels never become discoveries.
    with np.errstate(invalid="ignore"):
        return p <= threshold
