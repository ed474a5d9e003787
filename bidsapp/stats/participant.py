"""One participant's maximum over layers against its own permutation null.

The group level tests the group mean; a participant's report needs the same question asked
of one participant, so that a raw map that is positive everywhere (the maximum of L
correlations, and temporal autocorrelation, bias it upward: ``docs/statistics.md``) is
never shown without the answer.  The null is the participant level's
``desc-maxnull_stat-r_statmap``: K whole-brain permutations of the candidates' trials.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ParticipantTest:
    """The participant's maximum r tested against its permutation null.

    Attributes
    ----------
    debiased : numpy.ndarray
        (V,): maximum r minus the mean of the null at that voxel.
    p_voxel : numpy.ndarray
        (V,): uncorrected permutation p-value per voxel, (1 + #{null >= observed}) / (K + 1).
    p_max : float
        Whole-brain p of the largest maximum r: the fraction of permutations (the observed
        order counted as one) whose largest value over voxels reaches it.
    fwe_threshold : float
        The (1 - alpha) quantile of the permutations' largest values: a voxel above it is
        beyond the null, family-wise error controlled at ``alpha``.
    beyond_null : numpy.ndarray
        (V,) bool: ``observed > fwe_threshold``.
    n_null_reaching_max : int
        Permutations whose largest value over voxels reaches the observed largest value.
    n_permutations : int
        K.
    alpha : float
        The family-wise error level.
    """

    debiased: np.ndarray
    p_voxel: np.ndarray
    p_max: float
    fwe_threshold: float
    beyond_null: np.ndarray
    n_null_reaching_max: int
    n_permutations: int
    alpha: float

    @property
    def n_beyond(self) -> int:
        """Voxels beyond the null (family-wise corrected)."""
        return int(np.count_nonzero(self.beyond_null))

    @property
    def n_uncorrected(self) -> int:
        """Voxels with an uncorrected p-value at or below ``alpha``."""
        return int(np.count_nonzero(self.p_voxel <= self.alpha))


def participant_permutation_test(observed: np.ndarray, null: np.ndarray,
                                 alpha: float = 0.05) -> ParticipantTest:
    """Test one participant's maximum r against its permutation null, per voxel and overall.

    The whole-brain test uses the largest value over voxels of each permutation (Nichols
    and Holmes, 2002), so it controls the family-wise error over voxels without any
    assumption about their dependence; p-values count the observed order as one of the
    permutations (Phipson and Smyth, 2010) and are never 0.

    Parameters
    ----------
    observed : numpy.ndarray
        (V,): the maximum over layers at each voxel of the analysis mask.
    null : numpy.ndarray
        (K, V): the same maximum for each of K permutations of the candidates' trials.
    alpha : float, optional
        Family-wise error level of ``beyond_null`` and level of the uncorrected count.

    Returns
    -------
    ParticipantTest
        The debiased map, the p-values and the voxels beyond the null.

    Raises
    ------
    ValueError
        When the shapes disagree, K is 0 or ``alpha`` is not in (0, 1).

    References
    ----------
    Nichols, T. E., Holmes, A. P. (2002). Nonparametric permutation tests for functional
    neuroimaging. Human Brain Mapping 15, 1-25.
    Phipson, B., Smyth, G. K. (2010). Permutation p-values should never be zero. SAGMB 9, 39.
    """
    observed = np.asarray(observed, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64)
    if null.ndim != 2 or observed.ndim != 1 or null.shape[1] != observed.shape[0]:
        raise ValueError(f"null must be (K, V) for observed (V,); got {null.shape} and "
                         f"{observed.shape}")
    if null.shape[0] == 0:
        raise ValueError("the null has no permutations")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    n_perm = null.shape[0]
    debiased = observed - null.mean(axis=0)
    p_voxel = (1.0 + np.sum(null >= observed, axis=0)) / (n_perm + 1.0)
    null_max = null.max(axis=1)
    observed_max = float(observed.max()) if observed.size else -np.inf
    reaching = int(np.sum(null_max >= observed_max))
    p_max = (1.0 + reaching) / (n_perm + 1.0)
    threshold = float(np.quantile(null_max, 1.0 - alpha, method="higher"))
    return ParticipantTest(debiased=debiased, p_voxel=p_voxel, p_max=p_max,
                           fwe_threshold=threshold, beyond_null=observed > threshold,
                           n_null_reaching_max=reaching, n_permutations=n_perm, alpha=alpha)
