"""Representational similarity analysis on arrays (no BIDS, no nipype).

Trial stacking (:mod:`.stacking`) is shared by the target (fMRI) and candidate (model)
side; :mod:`.rdm` turns stacked features into TR x TR dissimilarity matrices.
"""

from .rdm import candidate_rdms, features_by_layer, rdm
from .stacking import DROP_SECONDS, canonical_stimulus_order, n_dropped, stack_trials

__all__ = [
    "DROP_SECONDS",
    "candidate_rdms",
    "canonical_stimulus_order",
    "features_by_layer",
    "n_dropped",
    "rdm",
    "stack_trials",
]
