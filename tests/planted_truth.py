"""The simulator's planted truth checked on a run's maps, shared by the end-to-end tests."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np

from bidsapp.simulate.truth import far_from_spheres


def map_data(path: Path) -> np.ndarray:
    """Return an image's data array."""
    return np.asanyarray(nb.load(path).dataobj)


def check_planted_truth(bids: Path, func: list[Path], prefix: str, near_mm: float,
                        min_null_voxels: int = 500, conservative_null: bool = False) -> None:
    """Assert the planted layers peak at their spheres and the null is calibrated far away.

    Parameters
    ----------
    bids : Path
        The simulated dataset (its ``derivatives/truth/truth_layers.json``).
    func : list of Path
        Each participant's ``func`` output folder.
    prefix : str
        ``task-<t>_space-<s>_res-<r>``, the maps' entities.
    near_mm : float
        Radius around each planted centre over which the layers' r is averaged.
    min_null_voxels : int
        Fewest voxels far from every sphere that the null check needs.
    conservative_null : bool
        Accept a null above the data far from the spheres (the fitted null of unequal
        trials is conservative, docs/statistics.md); by default it must be centred.
    """
    truth = json.loads((bids / "derivatives" / "truth" / "truth_layers.json").read_text())
    layer_files = [sorted(f.glob(f"sub-*_{prefix}_desc-layer[0-9][0-9]_stat-r_statmap.nii.gz"))
                   for f in func]
    reference = nb.load(layer_files[0][0])
    r = np.mean([np.stack([map_data(p) for p in files], axis=-1) for files in layer_files],
                axis=0)
    ijk = np.indices(reference.shape).reshape(3, -1).T
    xyz = nb.affines.apply_affine(reference.affine, ijk).reshape(*reference.shape, 3)
    for sphere in truth["Spheres"]:
        near = np.linalg.norm(xyz - np.asarray(sphere["center_mni"]), axis=-1) <= near_mm
        mean_r = np.nanmean(r[near], axis=0)
        assert int(np.nanargmax(mean_r)) + 1 == sphere["layer"], (sphere, mean_r)

    # Null voxels (over 30 mm from every planted center): the observed maximum minus the
    # mean of the participant's permutation null is centered at 0; the maximum itself is not.
    far = far_from_spheres(reference, truth["Spheres"])
    debiased, raw = [], []
    for f in func:
        max_r = map_data(next(f.glob(f"sub-*_{prefix}_desc-maxcorr_stat-r_statmap.nii.gz")))
        null = map_data(next(f.glob(f"sub-*_{prefix}_desc-maxnull_stat-r_statmap.nii.gz")))
        keep = far & np.isfinite(max_r)
        raw.append(max_r[keep])
        debiased.append(max_r[keep] - null[keep].mean(axis=-1))
    debiased, raw = np.concatenate(debiased), np.concatenate(raw)
    assert debiased.size > min_null_voxels
    centre = np.median(debiased) if conservative_null else abs(np.median(debiased))
    assert centre < 0.25 * np.std(debiased), np.median(debiased)
    assert np.median(raw) > np.median(debiased) + 0.02
