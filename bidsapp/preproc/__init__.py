"""Preprocessing numerics: slice timing, head motion, registration and resampling.

Plain functions on arrays and images (nibabel in, nibabel or numpy out), usable without
nipype::

    from bidsapp.preproc import plan_slice_timing, slice_time_correct, estimate_head_motion

Registration and motion estimation run antspyx (ANTs); slice timing and the final
resampling are numpy/scipy.  The nipype interfaces in :mod:`bidsapp.interfaces.preproc`
wrap these functions one to one.
"""

from __future__ import annotations

from .masks import coverage_mask, dice, gm_mask_from_probseg
from .motion import (
    HeadMotion,
    bold_reference,
    estimate_head_motion,
    framewise_displacement,
    matrices_to_parameters,
    parameters_to_matrices,
)
from .registration import (
    Normalization,
    coregister_bold_to_t1w,
    normalize_t1w,
    warp_template_to_t1w,
)
from .resample import resample_bold_to_template, resolution_label, template_grid
from .slice_timing import SliceTimingPlan, plan_slice_timing, slice_time_correct

__all__ = [
    "HeadMotion",
    "Normalization",
    "SliceTimingPlan",
    "bold_reference",
    "coregister_bold_to_t1w",
    "coverage_mask",
    "dice",
    "estimate_head_motion",
    "framewise_displacement",
    "gm_mask_from_probseg",
    "matrices_to_parameters",
    "normalize_t1w",
    "parameters_to_matrices",
    "plan_slice_timing",
    "resample_bold_to_template",
    "resolution_label",
    "slice_time_correct",
    "template_grid",
    "warp_template_to_t1w",
]
