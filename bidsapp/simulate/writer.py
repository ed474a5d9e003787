"""Files of the simulated dataset: NIfTI, TSV, JSON and text, all written atomically.

Every writer returns the path it wrote, so the simulation can list its files in the truth
folder and remove what an earlier simulation left behind.  Nothing written carries a
date, a host name or an absolute path, so the same seed gives byte-identical files
(nibabel writes gzip streams with mtime 0 and no file name; JSON keys are sorted).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nb
import numpy as np

from bidsapp import __version__
from bidsapp.errors import CannotWriteError, UsageError
from bidsapp.io import atomic_write, write_json, write_text

from .anatomy import TEMPLATE_SPACE

GENERATOR = "bidsapp simulate"
"""``GeneratedBy[0].Name`` of the truth folder: how a previous simulation is recognised."""

BIDS_VERSION = "1.9.0"

TRUTH_DIR = Path("derivatives") / "truth"
MANIFEST = TRUTH_DIR / "truth_simulation.json"

_NIFTI_CODES = {"scanner": 1, "mni": 4}


def save_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray, *,
               tr: float | None = None, space: str = "scanner",
               intent: str | None = None) -> Path:
    """Write a NIfTI-1 image with full header units, atomically.

    Parameters
    ----------
    path : str or Path
        ``.nii.gz`` file name.
    data : numpy.ndarray
        3D or 4D array; its dtype is stored as is (no scaling).
    affine : numpy.ndarray
        Voxel-to-world affine, stored as both qform and sform.
    tr : float, optional
        For 4D series: stored in ``pixdim[4]`` with seconds as the time unit.
    space : {'scanner', 'mni'}, optional
        The qform/sform code: 1 (scanner anatomical) or 4 (MNI 152).
    intent : str, optional
        NIfTI intent, e.g. ``'vector'`` for displacement fields.

    Returns
    -------
    Path
        ``path``.
    """
    img = nb.Nifti1Image(data, affine)
    header = img.header
    header.set_data_dtype(data.dtype)
    code = _NIFTI_CODES[space]
    img.set_qform(affine, code=code)
    img.set_sform(affine, code=code)
    zooms = [float(abs(z)) for z in np.linalg.norm(affine[:3, :3], axis=0)]
    if data.ndim == 4 and tr is not None:
        header.set_zooms((*zooms, float(tr)))
    elif data.ndim >= 4:
        header.set_zooms((*zooms, *[1.0] * (data.ndim - 3)))
    else:
        header.set_zooms(zooms)
    header.set_xyzt_units("mm", "sec")
    if data.ndim == 4 and tr is not None:
        header.set_dim_info(slice=2)
    if intent:
        header.set_intent(intent)
    with atomic_write(path) as tmp:
        img.to_filename(tmp)
    return Path(path)


def save_tsv(path: str | Path, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Write a tab-separated table atomically.

    Parameters
    ----------
    path : str or Path
        The ``.tsv`` file.
    columns : sequence of str
        Header.
    rows : sequence of sequence
        Cells; floats are written with ``repr`` (shortest exact form).

    Returns
    -------
    Path
        ``path``.
    """
    def cell(value: Any) -> str:
        if isinstance(value, float | np.floating):
            return repr(float(value))
        return str(value)

    lines = ["\t".join(columns)] + ["\t".join(cell(v) for v in row) for row in rows]
    return write_text(path, "\n".join(lines) + "\n")


def save_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically, with sorted keys, after turning numpy values into plain ones.

    Parameters
    ----------
    path : str or Path
        The ``.json`` file.
    obj : object
        Dicts, lists, numbers, strings, numpy arrays and scalars, paths.

    Returns
    -------
    Path
        ``path``.
    """
    return write_json(path, _plain(obj))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, Path):
        return obj.as_posix()
    return obj


def generated_by() -> list[dict[str, str]]:
    """Return the ``GeneratedBy`` entry naming this program and version."""
    return [{"Name": GENERATOR, "Version": __version__,
             "Description": "Synthetic BIDS dataset with planted layer signals"}]


def previous_files(root: Path) -> list[str] | None:
    """Return the files an earlier simulation in ``root`` wrote, or ``None`` if it is none.

    A folder is an earlier simulation when its truth folder's description names
    :data:`GENERATOR`; an interrupted one has no manifest yet and returns an empty list.

    Parameters
    ----------
    root : Path
        The folder to look at.

    Returns
    -------
    list of str or None
        Relative paths from the earlier simulation's manifest.
    """
    description = root / TRUTH_DIR / "dataset_description.json"
    try:
        generator = json.loads(description.read_text())["GeneratedBy"][0]["Name"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    if generator != GENERATOR:
        return None
    try:
        return list(json.loads((root / MANIFEST).read_text()).get("Files", []))
    except (OSError, ValueError, AttributeError):
        return []


def prepare_output(root: Path, overwrite: bool) -> list[str]:
    """Check and create the output folder; return the files of an earlier simulation there.

    Parameters
    ----------
    root : Path
        The dataset folder to write.
    overwrite : bool
        Allow writing into a non-empty folder that is not an earlier simulation.

    Returns
    -------
    list of str
        Relative paths an earlier simulation wrote (to remove those not rewritten).

    Raises
    ------
    UsageError
        If ``root`` is a file, or a non-empty folder that is not an earlier simulation and
        ``overwrite`` is false.
    CannotWriteError
        If the folder cannot be created.
    """
    if root.exists() and not root.is_dir():
        raise UsageError("The output path exists and is not a folder", path=root,
                         fix="give a new or empty folder")
    old: list[str] = []
    if root.is_dir() and any(root.iterdir()):
        found = previous_files(root)
        if found is None and not overwrite:
            raise UsageError(
                "The output folder is not empty and does not hold an earlier simulation",
                path=root, fix="give a new or empty folder, or add --overwrite to write into it")
        old = found or []
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CannotWriteError(f"Cannot create the output folder ({exc.strerror})", path=root,
                               fix="choose a folder you can write to") from exc
    return old


def remove_stale(root: Path, old: Sequence[str], new: Sequence[str]) -> list[str]:
    """Delete files an earlier simulation wrote that this one did not, and empty folders.

    Only paths listed in the earlier manifest are touched, and only inside ``root``.

    Parameters
    ----------
    root : Path
        The dataset root.
    old : sequence of str
        Relative paths the earlier simulation wrote.
    new : sequence of str
        Relative paths this simulation wrote.

    Returns
    -------
    list of str
        The removed paths.
    """
    keep = set(new)
    removed = []
    base = root.resolve()
    for rel in sorted(set(old) - keep):
        path = (root / rel).resolve()
        if base not in path.parents or not path.is_file():
            continue
        path.unlink()
        removed.append(rel)
        for parent in path.parents:
            if parent == base or any(parent.iterdir()):
                break
            parent.rmdir()
    return removed


def _seconds(params: dict[str, Any]) -> str:
    """Clip length for the README: one value, or the range of the pieces' lengths."""
    scale = params.get("duration_scale", 1.0)
    lengths = [d * scale for d in params.get("clip_durations") or [params["clip_seconds"]]]
    if min(lengths) == max(lengths):
        return f"{lengths[0]:g} s"
    return f"{min(lengths):g}-{max(lengths):g} s"


def readme_text(params: dict[str, Any], seed: int, preset: str, weights: dict[str, Any]) -> str:
    """Return the dataset's README: what it is, how it was made, its licence.

    Parameters
    ----------
    params : dict
        :meth:`SimulationParams.to_dict` of the simulation.
    seed : int
        Its seed.
    preset : str
        Its preset.
    weights : dict
        ``name``, ``sha256`` and ``status`` of the network weights.

    Returns
    -------
    str
        The README text.
    """
    return f"""bidsapp simulated music-listening fMRI dataset
=============================================

Written by `bidsapp simulate` (bidsapp {__version__}), preset `{preset}`, seed {seed}.
Everything in this dataset is synthetic: no person was scanned.

Contents
--------
- sub-*/anat: a T1w image: the MNI152NLin2009aSym template (nilearn's copy of the ICBM
  2009a nonlinear symmetric template, skull-stripped) moved by a known random affine,
  warped by a known smooth displacement field, with an intensity bias field and noise.
- sub-*/func: BOLD runs of {params['clips']} clips of {_seconds(params)} each, TR
  {params['tr']} s, {params['voxel_size']} mm voxels, {params['slices']} slices, multiband
  {params['multiband']}, {params['slice_order']} slice order.  Each slice is sampled at its
  acquisition time (SliceTiming); the head moves rigidly between volumes (up to
  {params['max_motion_mm']} mm and {params['max_rotation_deg']} degrees); AR(1) noise, slow
  drift, coil sensitivity and susceptibility dropout are added.
- stimuli/: the clips that were "played": synthetic music (scales, chords, bass, noise-burst
  drums) generated by bidsapp from the seed.  No recording was used.
- derivatives/truth: everything planted: the layer map in MNI152NLin2009aSym space
  (truth_layers.nii.gz), one mask per sphere, the template-to-subject transforms, the
  head motion of every run, and all parameters (truth_simulation.json).

Planted signal
--------------
Spheres of radius {params['radius_mm']} mm at MNI {params['centers']} carry layers
{params['layers']} (1 = conv1 ... 10 = fc) of the study's 1D ResNet-18, weights
{weights.get('name')} (status: {weights.get('status')}), signal model
'{params.get('signal_model', 'mixture')}': 'geometry' plants voxel patterns whose correlations
follow the layer's representational geometry (the Spearman correlations of its HRF-convolved
features between time points, as bidsapp measures them), 'mixture' makes each voxel a random
linear mixture of the layer's features.  SNR {params['snr']} (signal sd over noise sd).  See
bidsapp's docs/simulate.md.

Licence
-------
CC0 1.0: the images, the stimuli and the tables are generated and dedicated to the public
domain.  The template they derive from is the ICBM 2009a template (Copyright (C) 1993-2009
Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological Institute, McGill
University), distributed with nilearn under its permissive licence.
"""


def dataset_description(name: str, dataset_type: str = "raw") -> dict[str, Any]:
    """Return a ``dataset_description.json`` body for the raw dataset or the truth folder.

    Parameters
    ----------
    name : str
        The dataset's ``Name``.
    dataset_type : {'raw', 'derivative'}, optional
        ``DatasetType``; a derivative points at the raw dataset two folders up.

    Returns
    -------
    dict
        The description.
    """
    description: dict[str, Any] = {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": dataset_type,
        "License": "CC0",
        "Authors": ["bidsapp developers", "bidsapp simulate (generator)"],
        "GeneratedBy": generated_by(),
    }
    if dataset_type == "derivative":
        description["SourceDatasets"] = [{"URL": "../../"}]
    return description


def truth_layers_sidecar(spheres: list[dict[str, Any]], params: dict[str, Any],
                         layer_names: Sequence[str], weights: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON sidecar of ``truth_layers.nii.gz``.

    Parameters
    ----------
    spheres : list of dict
        Per sphere: index, MNI centre, radius, layer and its name, voxel count, mask file.
    params : dict
        :meth:`SimulationParams.to_dict` of the simulation.
    layer_names : sequence of str
        The network's layer names in order.
    weights : dict
        ``name``, ``sha256`` and ``status`` of the network weights.

    Returns
    -------
    dict
        Space, resolution, levels, spheres, SNR and its definition, weights.
    """
    return {
        "Space": TEMPLATE_SPACE,
        "Resolution": params["voxel_size"],
        "Description": "Planted layer per voxel: 0 no signal, k the network layer k "
                       "(1 = conv1 ... 10 = fc) mixed into the voxel's BOLD signal.",
        "Levels": {"0": "null", **{str(k): layer_names[k - 1]
                                   for k in sorted(set(params["layers"]))}},
        "Spheres": spheres,
        "SNR": params["snr"],
        "tSNR": params["tsnr"],
        "SNRDefinition": "standard deviation of the planted signal within trials over the "
                         "stationary standard deviation of the AR(1) noise, at coil gain 1",
        "Weights": weights,
    }
