"""Right-sided one-sample t-test across participants, vectorised over voxels."""

from __future__ import annotations

import numpy as np
from scipy import stats


def one_sample_ttest(
    samples: np.ndarray, popmean: float = 0.0, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    r"""Test, per voxel, whether the mean over participants exceeds ``popmean``.

    The statistic is Student's :math:`t = (\bar x - \mu_0) / (s / \sqrt n)` with the
    sample standard deviation :math:`s` (``ddof=1``), and the p-value is the upper tail
    of Student's t distribution with :math:`n - 1` degrees of freedom, as in
    ``scipy.stats.ttest_1samp(..., alternative='greater')`` [1]_.  The study tests the
    maximum correlation over layers against zero this way, one voxel at a time (its
    section "Statistical Analysis").

    Parameters
    ----------
    samples : numpy.ndarray
        Values of the participants along ``axis`` (e.g. shape (n_participants, n_voxels)).
    popmean : float, optional
        The mean under the null hypothesis.
    axis : int, optional
        The participants' axis.

    Returns
    -------
    t : numpy.ndarray
        The t statistic, float64, with ``axis`` removed.  ``+inf`` where all values are
        equal and above ``popmean``, NaN where they equal it or where a value is NaN.
    p : numpy.ndarray
        The right-sided p-value; NaN where ``t`` is NaN.

    Raises
    ------
    ValueError
        If fewer than 2 participants are given.

    References
    ----------
    .. [1] Student (1908). The probable error of a mean. Biometrika 6(1), 1-25.
       https://doi.org/10.2307/2331554
    """
    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[axis]
    if n < 2:
        raise ValueError(f"a t-test needs at least 2 samples along axis {axis}, not {n}")
    mean = x.mean(axis=axis)
    sd = x.std(axis=axis, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (mean - popmean) / (sd / np.sqrt(n))
    p = stats.t.sf(t, df=n - 1)
    return t, p
