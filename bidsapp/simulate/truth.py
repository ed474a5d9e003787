"""Read a simulation's ground truth back: parameters, layer map, transforms, motion.

Tests, benchmarks and power analyses use these to compare what an analysis found with
what was planted, e.g.::

    from bidsapp.simulate import truth
    info = truth.load(dataset)                      # truth_layers.json + parameters
    native = truth.template_to_native(dataset, "01", [[-44, -22, 8]])
    motion = truth.load_motion(dataset, "01", run=1)  # (n_volumes, 6), mm and radians
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nb
import numpy as np
from nilearn.image import resample_to_img

from bidsapp.errors import MissingInputError
from bidsapp.labels import strip_prefix

from .anatomy import TEMPLATE_SPACE
from .transform import SubjectTransform
from .writer import MANIFEST, TRUTH_DIR


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise MissingInputError("A ground-truth file of the simulation is missing", path=path,
                                fix="simulate the dataset again with 'bidsapp simulate'")
    return json.loads(path.read_text())


def load(dataset: str | Path) -> dict[str, Any]:
    """Return the truth sidecar (spheres, SNR, space) merged with the simulation record.

    Parameters
    ----------
    dataset : str or Path
        The simulated dataset's root.

    Returns
    -------
    dict
        ``truth_layers.json`` with the keys of ``truth_simulation.json`` added
        (``Parameters``, ``Seed``, ``Preset``, ``Files``, ...).
    """
    root = Path(dataset) / TRUTH_DIR
    layers = _read_json(root / "truth_layers.json")
    record = _read_json(Path(dataset) / MANIFEST)
    return {**record, **layers}


def load_layer_map(dataset: str | Path) -> nb.Nifti1Image:
    """Return the truth layer map.

    Parameters
    ----------
    dataset : str or Path
        The simulated dataset's root.

    Returns
    -------
    nibabel.Nifti1Image
        ``truth_layers.nii.gz``: 0 null, ``k`` for planted layer ``k``, in
        MNI152NLin2009aSym at the BOLD voxel size.
    """
    path = Path(dataset) / TRUTH_DIR / "truth_layers.nii.gz"
    if not path.is_file():
        raise MissingInputError("The truth layer map is missing", path=path)
    return nb.load(path)


def load_transform(dataset: str | Path, subject: str) -> SubjectTransform:
    """Return a subject's template-to-native transform ``y = A @ (x + u(x))``.

    Parameters
    ----------
    dataset : str or Path
        The simulated dataset's root.
    subject : str
        Label with or without ``sub-``.

    Returns
    -------
    SubjectTransform
        Its ``to_native`` and ``to_template`` methods map points (N, 3) in mm.
    """
    sub = f"sub-{strip_prefix(subject)}"
    folder = Path(dataset) / TRUTH_DIR / sub / "anat"
    stem = f"{sub}_from-{TEMPLATE_SPACE}_to-T1w"
    affine = np.asarray(_read_json(folder / f"{stem}_desc-affine_xfm.json")["TemplateToNative"])
    warp_path = folder / f"{stem}_desc-warp_xfm.nii.gz"
    if not warp_path.is_file():
        raise MissingInputError("The subject's displacement field is missing", path=warp_path)
    warp = nb.load(warp_path)
    return SubjectTransform(affine, np.asarray(warp.dataobj, dtype=np.float32), warp.affine)


def template_to_native(dataset: str | Path, subject: str, points) -> np.ndarray:
    """Map template (MNI) points in mm to the subject's native space in mm.

    Parameters
    ----------
    dataset : str or Path
        The simulated dataset's root.
    subject : str
        Label with or without ``sub-``.
    points : array-like
        Shape (N, 3) or (3,).

    Returns
    -------
    numpy.ndarray
        Shape (N, 3).
    """
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    return load_transform(dataset, subject).to_native(pts)


def load_motion(dataset: str | Path, subject: str, run: int, task: str = "music") -> np.ndarray:
    """Return the planted motion of one run.

    Parameters
    ----------
    dataset : str or Path
        The simulated dataset's root.
    subject : str
        Label with or without ``sub-``.
    run : int
        Run number (1-based).
    task : str, optional
        Task label.

    Returns
    -------
    numpy.ndarray
        Shape (n_volumes, 6): ``trans_x, trans_y, trans_z`` in mm, ``rot_x, rot_y, rot_z``
        in radians; see :mod:`bidsapp.simulate.motion` for the convention.
    """
    sub = f"sub-{strip_prefix(subject)}"
    path = Path(dataset) / TRUTH_DIR / sub / "func" / f"{sub}_task-{task}_run-{run}_motion.tsv"
    if not path.is_file():
        raise MissingInputError("The run's motion file is missing", path=path)
    return np.loadtxt(path, delimiter="\t", skiprows=1, ndmin=2)


def sphere_layer_profiles(dataset: str | Path, output_dir: str | Path,
                          subjects: list[str] | None = None) -> list[dict[str, Any]]:
    """Return, per planted sphere, each layer's searchlight r averaged over its voxels.

    The average runs over the sphere's voxels on the app's grid and over every participant
    with per-layer maps in ``output_dir``.  Unlike the group's layer maps it needs no
    significance, so it shows which layer a sphere prefers even with two participants.

    Parameters
    ----------
    dataset : str or Path
        The simulated dataset's root.
    output_dir : str or Path
        The app's output folder (``sub-*/func/*_desc-layerNN_stat-r_statmap.nii.gz``).
    subjects : list of str, optional
        Only these participants (labels without ``sub-``); default: every one found.

    Returns
    -------
    list of dict
        One per sphere: ``index``, ``center_mni``, ``planted_layer`` (1-based),
        ``mean_r`` (one value per layer; NaN without values), ``best_layer`` (1-based, the
        highest mean r; None when the sphere has no values) and ``n_participants``.  Empty
        when no participant has per-layer maps.
    """
    root = Path(dataset)
    spheres = _read_json(root / TRUTH_DIR / "truth_layers.json")["Spheres"]
    by_subject: dict[str, list[Path]] = {}
    pattern = "sub-*/func/sub-*_desc-layer*_stat-r_statmap.nii.gz"
    keep = None if subjects is None else {f"sub-{strip_prefix(s)}" for s in subjects}
    for path in sorted(Path(output_dir).glob(pattern)):
        subject = path.name.split("_")[0]
        if keep is None or subject in keep:
            by_subject.setdefault(subject, []).append(path)
    if not by_subject:
        return []
    maps = [np.stack([np.asanyarray(nb.load(p).dataobj) for p in paths], axis=-1)
            for paths in by_subject.values()]
    reference = nb.load(next(iter(by_subject.values()))[0])
    profiles = []
    for sphere in spheres:
        mask_img = resample_to_img(nb.load(root / TRUTH_DIR / sphere["mask"]), reference,
                                   interpolation="nearest", force_resample=True,
                                   copy_header=True)
        values = np.concatenate([m[np.asanyarray(mask_img.dataobj) > 0] for m in maps])
        finite = np.isfinite(values).any(axis=0)
        mean_r = np.full(values.shape[1], np.nan)
        if finite.any():  # a sphere outside the maps' grid or mask has no profile
            mean_r[finite] = np.nanmean(values[:, finite], axis=0)
        profiles.append({
            "index": sphere["index"], "center_mni": sphere["center_mni"],
            "planted_layer": sphere["layer"], "mean_r": [round(float(r), 4) for r in mean_r],
            "best_layer": int(np.nanargmax(mean_r)) + 1 if finite.any() else None,
            "n_participants": len(maps),
        })
    return profiles


#: Voxels farther than this from every planted center count as null voxels.
NULL_DISTANCE_MM = 30.0


def far_from_spheres(img: nb.Nifti1Image, spheres: list[dict[str, Any]],
                     distance_mm: float = NULL_DISTANCE_MM) -> np.ndarray:
    """Return the voxels of ``img``'s grid farther than ``distance_mm`` from every sphere.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        Any image on the grid (its shape's first three axes and its affine are used).
    spheres : list of dict
        The ``Spheres`` of ``truth_layers.json`` (their ``center_mni``).
    distance_mm : float, optional
        The distance beyond which a voxel is a null voxel.

    Returns
    -------
    numpy.ndarray
        Boolean, the grid's 3D shape.
    """
    shape = img.shape[:3]
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = nb.affines.apply_affine(img.affine, ijk).reshape(*shape, 3)
    far = np.ones(shape, bool)
    for sphere in spheres:
        far &= np.linalg.norm(xyz - np.asarray(sphere["center_mni"]), axis=-1) > distance_mm
    return far

#: Group tests and their (significance mask, layer map) descriptors in ``group/``.
GROUP_TESTS = {"permutation": ("permfdr", "permbestlayer"), "study": ("fdr", "bestlayer")}


def group_layer_agreement(dataset: str | Path, output_dir: str | Path,
                          null_distance_mm: float = NULL_DISTANCE_MM) -> dict[str, Any]:
    """Compare the group level's significant voxels and layer maps with the planted truth.

    The truth layer map is resampled (nearest neighbour) to the group's grid.  A planted
    voxel counts when the truth names a layer there; null voxels are those of the group
    mask farther than ``null_distance_mm`` from every planted center, so that the spatial
    spread of a sphere's signal (smoothing, the searchlight's radius) is not scored as a
    false positive.

    Parameters
    ----------
    dataset : str or Path
        The simulated dataset's root.
    output_dir : str or Path
        The app's output folder, after the group level (``group/*desc-brain_mask``,
        ``*desc-{fdr,permfdr}_mask`` and ``*desc-{bestlayer,permbestlayer}_dseg``; the first
        task in name order when there are several).
    null_distance_mm : float, optional
        Distance from every planted center beyond which a voxel is a null voxel.

    Returns
    -------
    dict
        ``planted_voxels`` (on the group grid), ``planted_voxels_in_mask``, ``null_voxels``,
        ``null_distance_mm`` and, per test found (``permutation``, ``study``):
        ``significant_voxels``, ``significant_planted``, ``layer_match`` (fraction of the
        significant planted voxels whose layer map names the planted layer; None without
        any), ``false_positive_fraction`` (significant fraction of the null voxels) and
        ``per_planted_layer``.

    Raises
    ------
    bidsapp.errors.MissingInputError
        When the group level's brain mask or the truth is missing.
    """
    group = Path(output_dir) / "group"
    masks = sorted(group.glob("*desc-brain_mask.nii.gz"))
    if not masks:
        raise MissingInputError("The group level's brain mask is missing", path=group,
                                fix="run the group level first")
    mask_img = nb.load(masks[0])
    mask = np.asanyarray(mask_img.dataobj) > 0

    truth = np.asanyarray(resample_to_img(
        load_layer_map(dataset), mask_img, interpolation="nearest", force_resample=True,
        copy_header=True).dataobj).astype(int)
    spheres = _read_json(Path(dataset) / TRUTH_DIR / "truth_layers.json")["Spheres"]
    far = mask & far_from_spheres(mask_img, spheres, null_distance_mm)
    planted = mask & (truth > 0)
    result: dict[str, Any] = {
        "planted_voxels": int((truth > 0).sum()), "planted_voxels_in_mask": int(planted.sum()),
        "null_voxels": int(far.sum()), "null_distance_mm": null_distance_mm}
    for test, (significance, layers) in GROUP_TESTS.items():
        sig_files = sorted(group.glob(f"*desc-{significance}_mask.nii.gz"))
        layer_files = sorted(group.glob(f"*desc-{layers}_dseg.nii.gz"))
        if not sig_files or not layer_files:
            continue
        significant = np.asanyarray(nb.load(sig_files[0]).dataobj) > 0
        found = np.asanyarray(nb.load(layer_files[0]).dataobj).astype(int)
        hit = planted & significant
        per_layer = {}
        for layer in sorted(set(truth[planted].tolist())):
            these = hit & (truth == layer)
            values, counts = np.unique(found[these], return_counts=True)
            per_layer[str(layer)] = {
                "planted": int((planted & (truth == layer)).sum()),
                "significant": int(these.sum()),
                "layer_match": round(float((found[these] == layer).mean()), 4)
                if these.any() else None,
                "found_layers": {str(k): int(v) for k, v in zip(values, counts, strict=True)},
            }
        result[test] = {
            "significant_voxels": int((significant & mask).sum()),
            "significant_planted": int(hit.sum()),
            "layer_match": round(float((found[hit] == truth[hit]).mean()), 4)
            if hit.any() else None,
            "false_positive_fraction": round(float(significant[far].mean()), 5)
            if far.any() else None,
            "per_planted_layer": per_layer,
        }
    return result
