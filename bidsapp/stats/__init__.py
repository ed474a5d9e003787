"""Group statistics on arrays (no files): t-test, FDR, layer maps and permutation inference.

The study's test (:func:`study_statistics`) takes each voxel's maximum correlation over
the layers, tests it against zero with a right-sided one-sample t-test and keeps voxels
that survive Benjamini-Hochberg FDR at q / n_layers.  :func:`permutation_statistics`
tests the same maximum against its null from block permutations of the candidate RDMs
(:func:`participant_null`), which removes the upward bias of the maximum.
"""

from .fdr import fdr_mask, fdr_threshold
from .group import PermutationResult, StudyResult, permutation_statistics, study_statistics
from .layers import max_over_layers, mean_layer, modal_layer
from .participant import ParticipantTest, participant_permutation_test
from .permutation import (
    DEFAULT_N_DRAWS,
    DEFAULT_N_PERMUTATIONS,
    EXACT,
    FITTED,
    ParticipantNull,
    block_index,
    block_permutations,
    draw_orders,
    fitted_index,
    group_permutation_pvalues,
    n_distinct_block_orders,
    participant_null,
    participant_seed,
    permutation_scheme,
)
from .ttest import one_sample_ttest

__all__ = [
    "DEFAULT_N_DRAWS",
    "DEFAULT_N_PERMUTATIONS",
    "EXACT",
    "FITTED",
    "ParticipantNull",
    "ParticipantTest",
    "PermutationResult",
    "StudyResult",
    "block_index",
    "block_permutations",
    "fdr_mask",
    "fdr_threshold",
    "group_permutation_pvalues",
    "max_over_layers",
    "mean_layer",
    "modal_layer",
    "draw_orders",
    "fitted_index",
    "n_distinct_block_orders",
    "one_sample_ttest",
    "participant_null",
    "participant_permutation_test",
    "participant_seed",
    "permutation_scheme",
    "permutation_statistics",
    "study_statistics",
]
