"""Representational similarity analysis on arrays (no BIDS, no nipype).

Trial stacking (:mod:`.stacking`) is shared by the target (fMRI) and candidate (model)
side; :mod:`.rdm` turns stacked features into TR x TR dissimilarity matrices;
:func:`neighbors` and :func:`searchlight` are the batched searchlight engine, usable as::

    from bidsapp.rsa import neighbors, searchlight
    r = searchlight(patterns, neighbors(mask, 100), candidate_rdms)  # (n_centers, n_layers)
"""

from .neighbors import PAD, neighbors
from .rdm import candidate_rdms, features_by_layer, rdm
from .searchlight import searchlight
from .stacking import DROP_SECONDS, canonical_stimulus_order, n_dropped, stack_trials

__all__ = [
    "DROP_SECONDS",
    "PAD",
    "candidate_rdms",
    "canonical_stimulus_order",
    "features_by_layer",
    "n_dropped",
    "neighbors",
    "rdm",
    "searchlight",
    "stack_trials",
]
