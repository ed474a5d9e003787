"""From per-center searchlight values to maps on the mask's grid."""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nb
import numpy as np


def best_layer(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return each center's maximum correlation over layers and the 1-based winning layer.

    Parameters
    ----------
    values : numpy.ndarray
        Shape (n_centers, L), NaN where undefined.

    Returns
    -------
    max_r : numpy.ndarray
        float32 (n_centers,), NaN where every layer is NaN.
    layer : numpy.ndarray
        int16 (n_centers,), 1..L, or 0 where every layer is NaN.
    """
    values = np.asarray(values, dtype=np.float32)
    defined = ~np.all(np.isnan(values), axis=1)
    max_r = np.full(values.shape[0], np.nan, dtype=np.float32)
    layer = np.zeros(values.shape[0], dtype=np.int16)
    if defined.any():
        # Ties go to the shallower layer (argmax takes the first), a fixed, documented rule.
        filled = np.where(np.isnan(values[defined]), -np.inf, values[defined])
        winner = np.argmax(filled, axis=1)
        max_r[defined] = filled[np.arange(winner.size), winner]
        layer[defined] = winner + 1
    return max_r, layer


def to_volume(values: np.ndarray, mask: np.ndarray, reference, *, dtype=np.float32):
    """Scatter per-center values into a NIfTI image on the mask's grid.

    Parameters
    ----------
    values : numpy.ndarray
        One value per in-mask voxel, in C order.
    mask : numpy.ndarray
        Boolean 3-D mask.
    reference : nibabel.Nifti1Image
        Supplies the affine and header.
    dtype : numpy dtype
        Output type; float maps get NaN outside the mask, integer maps 0.

    Returns
    -------
    nibabel.Nifti1Image
    """
    fill = np.nan if np.issubdtype(dtype, np.floating) else 0
    volume = np.full(mask.shape, fill, dtype=dtype)
    volume[mask] = values
    header = reference.header.copy()
    header.set_data_dtype(dtype)
    img = nb.Nifti1Image(volume, reference.affine, header)
    img.header.set_xyzt_units("mm")
    return img


def layer_lookup_tsv(layers: Sequence[str]) -> str:
    """Return the BIDS dseg lookup table (``index``, ``name``) for the best-layer map."""
    rows = ["index\tname"] + [f"{k}\t{name}" for k, name in enumerate(layers, start=1)]
    return "\n".join(rows) + "\n"
