"""The participant-level outputs, read back: pybids queries and checked arrays.

The group level finds each participant's searchlight maps, analysis mask and permutation
null with pybids (:func:`collect_group_inputs`), checks that they share a space, grid,
layers and network weights, and loads them as arrays over the voxels analysed in every
participant (:func:`load_group_arrays`); the statistics on those arrays are
:mod:`bidsapp.stats`'.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from bids import BIDSLayout
from bids.layout import BIDSLayoutIndexer

from bidsapp.errors import BadDataError, MissingInputError, NothingSelected
from bidsapp.labels import strip_prefix

LOGGER = logging.getLogger("bidsapp")

STAT_ENTITY_CONFIG = {
    "name": "bidsapp_statmaps",
    "entities": [{"name": "stat", "pattern": r"[_/\\]+stat-([a-zA-Z0-9]+)"}],
}
"""pybids configuration of the draft ``stat-`` entity (BEP012), on top of bids+derivatives."""

_LAYER_DESC = re.compile(r"^layer(\d+)$")
NULL_DESC = "maxnull"
MASK_DESCS = ("searchlight", "brain")
"""Mask ``desc`` values accepted for a participant, in order of preference."""
_AFFINE_TOLERANCE_MM = 1e-3


@dataclass
class ParticipantInputs:
    """One participant's files for one task: per-layer maps, mask and permutation null."""

    subject: str
    files: dict[tuple, list[Path]] = field(default_factory=dict)  # (space, res) -> maps
    layers: dict[int, Path] = field(default_factory=dict)
    metadata: dict[int, dict] = field(default_factory=dict)
    null: Path | None = None
    mask: Path | None = None


@dataclass
class TaskInputs:
    """The participants' files of one task, checked to share space, grid and layers."""

    task: str
    space: str | None
    res: str | None
    participants: list[ParticipantInputs]
    layer_names: list[str]

    @property
    def entities(self) -> list[tuple[str, str]]:
        """The (entity, value) pairs that name this task's group outputs."""
        pairs = [("task", self.task), ("space", self.space), ("res", self.res)]
        return [(k, v) for k, v in pairs if v]


def open_output_layout(output_dir: Path) -> BIDSLayout:
    """Index the derivatives folder with pybids, ``stat-`` and ``statmap`` included.

    Parameters
    ----------
    output_dir : Path
        The derivatives root.

    Returns
    -------
    bids.BIDSLayout
        A layout of the participants' outputs (``group/``, ``logs/`` and ``features/``
        are not indexed; hidden, half-written files never are).
    """
    # Only sub-*/ holds participant maps; pybids always skips dotfiles (temporary names).
    ignore = [re.compile(r"^/(code|sourcedata|stimuli|models|features|logs|group|work)(/|$)")]
    return BIDSLayout(output_dir, is_derivative=True,
                      indexer=BIDSLayoutIndexer(validate=False, ignore=ignore),
                      config=["bids", "derivatives", STAT_ENTITY_CONFIG])


def _gather(layout: BIDSLayout, subjects: list[str], required: set[str]) -> dict[str, dict]:
    by_task: dict[str, dict[str, ParticipantInputs]] = {}
    for subject in subjects:
        label = strip_prefix(subject)
        found = layout.get(subject=label, suffix="statmap", stat="r",
                           extension=[".nii", ".nii.gz"])
        if not found:
            if label in required:
                raise MissingInputError(
                    f"sub-{label} was selected but has no searchlight maps (*_stat-r_statmap)",
                    path=Path(layout.root) / f"sub-{label}",
                    fix="run the participant level for it, or drop it from --participant-label")
            LOGGER.warning("sub-%s has no searchlight maps; left out of the group", label)
            continue
        for bids_file in found:
            entities = bids_file.get_entities()
            task = entities.get("task")
            desc = str(entities.get("desc", ""))
            if task is None or not (_LAYER_DESC.match(desc) or desc == NULL_DESC):
                continue
            inputs = by_task.setdefault(task, {}).setdefault(label, ParticipantInputs(label))
            key = (entities.get("space"), entities.get("res"))
            inputs.files.setdefault(key, []).append(Path(bids_file.path))
            if desc == NULL_DESC:
                inputs.null = Path(bids_file.path)
            else:
                index = int(_LAYER_DESC.match(desc).group(1))
                inputs.layers[index] = Path(bids_file.path)
                inputs.metadata[index] = bids_file.get_metadata()
    return by_task


def _find_mask(layout: BIDSLayout, subject: str, task: str, space: str | None,
               res: str | None) -> Path | None:
    """Return the participant's analysis mask on the maps' grid, if there is one."""
    filters = {"subject": subject, "suffix": "mask", "extension": [".nii", ".nii.gz"],
               "space": space or None, "res": res or None}
    # The searchlight centers' mask first, then a brain mask; the task's own before one
    # without a task entity, never another task's.
    for desc in MASK_DESCS:
        for task_filter in (task, None):
            masks = layout.get(task=task_filter, desc=desc, **filters)
            if masks:
                return Path(masks[0].path)
    return None


def _check_task(layout: BIDSLayout, task: str,
                participants: dict[str, ParticipantInputs]) -> TaskInputs:
    if len(participants) < 2:
        raise NothingSelected(
            f"The group level needs at least 2 participants with task-{task} maps; found "
            f"{len(participants)} ({', '.join('sub-' + s for s in participants) or 'none'})",
            path=layout.root, fix="run the participant level for more participants first")
    reference = next(iter(participants.values()))
    ref_file = min(next(iter(reference.files.values())))
    for inputs in participants.values():
        a_file = min(next(iter(inputs.files.values())))
        if len(inputs.files) > 1:
            names = sorted(min(paths).name for paths in inputs.files.values())
            raise BadDataError(
                f"sub-{inputs.subject} has task-{task} maps in {len(inputs.files)} "
                f"spaces/resolutions ({', '.join(names)})", path=a_file.parent,
                fix="keep one output space and resolution per output folder")
        if inputs.files.keys() != reference.files.keys():
            raise BadDataError(
                f"sub-{inputs.subject} and sub-{reference.subject} have task-{task} maps in "
                f"different spaces/resolutions: {a_file.name} vs {ref_file.name}",
                path=a_file,
                fix="run every participant with the same --output-space and --output-res")
        if set(inputs.layers) != set(reference.layers):
            missing = sorted(set(reference.layers) - set(inputs.layers))
            extra = sorted(set(inputs.layers) - set(reference.layers))
            raise BadDataError(
                f"sub-{inputs.subject} does not have the same layer maps as "
                f"sub-{reference.subject} for task-{task} (missing layers {missing}, extra "
                f"layers {extra})", path=next(iter(inputs.files.values()))[0].parent,
                fix="rerun the participant level for this participant")
    space, res = next(iter(reference.files))
    names = {}
    hashes = {}
    for inputs in participants.values():
        for index, meta in inputs.metadata.items():
            name = str(meta.get("Layer", f"layer{index:02d}"))
            if names.setdefault(index, name) != name:
                raise BadDataError(
                    f"Layer {index} is {name!r} for sub-{inputs.subject} but "
                    f"{names[index]!r} for others", path=inputs.layers[index],
                    fix="rerun all participants with the same version of bidsapp")
            if meta.get("WeightsSHA256"):
                hashes.setdefault(meta["WeightsSHA256"], inputs.layers[index])
        inputs.mask = _find_mask(layout, inputs.subject, task, space, res)
    if len(hashes) > 1:
        raise BadDataError(
            f"The task-{task} maps were computed with {len(hashes)} different network "
            f"weights ({', '.join(str(p.name) for p in hashes.values())})",
            path=next(iter(hashes.values())),
            fix="rerun every participant with the same --weights")
    ordered = [names[i] for i in sorted(names)]
    return TaskInputs(task, space, res, list(participants.values()), ordered)


def collect_group_inputs(output_dir: Path, subjects: list[str],
                         required: tuple[str, ...] = ()) -> list[TaskInputs]:
    """Find and check every participant's maps, one :class:`TaskInputs` per task.

    Parameters
    ----------
    output_dir : Path
        The derivatives root.
    subjects : list of str
        The ``sub-<label>`` folders to include.
    required : tuple of str, optional
        Labels the user asked for; each must have maps.

    Returns
    -------
    list of TaskInputs
        Sorted by task.

    Raises
    ------
    NothingSelected
        If no maps are found, or fewer than 2 participants have a task.
    MissingInputError
        If a required participant has no maps.
    BadDataError
        If spaces, resolutions, layers, layer names or weights differ.
    """
    required_labels = {strip_prefix(r) for r in required}
    absent = sorted(required_labels - {strip_prefix(s) for s in subjects})
    if absent:
        raise MissingInputError(
            f"No participant-level outputs for {', '.join('sub-' + a for a in absent)}",
            path=Path(output_dir) / f"sub-{absent[0]}",
            fix="run the participant level for them, or drop them from --participant-label")
    layout = open_output_layout(Path(output_dir))
    by_task = _gather(layout, subjects, required_labels)
    if not by_task:
        raise NothingSelected(
            f"No searchlight maps (*_desc-layerNN_stat-r_statmap.nii.gz) were found for "
            f"{', '.join(subjects) or 'any participant'}", path=output_dir,
            fix="run the participant level first")
    return [_check_task(layout, task, by_task[task]) for task in sorted(by_task)]


def _check_grid(img, path: Path, reference, reference_path: Path) -> None:
    same = (img.shape[:3] == reference.shape[:3]
            and np.allclose(img.affine, reference.affine, atol=_AFFINE_TOLERANCE_MM))
    if not same:
        raise BadDataError(
            f"{path.name} is on a different grid (shape {img.shape[:3]}, voxel size "
            f"{np.round(img.header.get_zooms()[:3], 3).tolist()}) than {reference_path.name} "
            f"(shape {reference.shape[:3]})", path=path,
            fix="write every participant in the same template space and resolution")


@dataclass
class GroupArrays:
    """The inputs of one task as arrays over the voxels analysed in every participant."""

    inputs: TaskInputs
    reference: nib.Nifti1Image
    mask: np.ndarray  # 3D bool
    r: np.ndarray  # (n_participants, n_layers, n_voxels)
    nulls: list[np.ndarray] | None  # per participant (K, n_voxels)
    warnings: list[str]


def _unreadable(path: Path, subject: str, exc: Exception, why: str = "") -> BadDataError:
    return BadDataError(
        f"{path.name} cannot be read ({type(exc).__name__}: {exc}){why}", path=path,
        fix=f"rerun the participant level for sub-{subject} with the same output folder, "
            "then the group level")


def _read(path: Path, subject: str, dtype=None) -> np.ndarray:
    """Return an image's data, or stop with the file and the fix when it cannot be read."""
    try:
        return np.asarray(nib.load(path).dataobj, dtype=dtype)
    except Exception as exc:  # truncated gzip, bad header: nibabel and zlib raise several
        raise _unreadable(path, subject, exc, "; the participant level did not finish "
                          "writing it, or it was damaged since") from exc


def _header(path: Path, subject: str):
    try:
        return nib.load(path)
    except Exception as exc:  # noqa: BLE001 - see _read
        raise _unreadable(path, subject, exc) from exc


def load_group_arrays(inputs: TaskInputs) -> GroupArrays:
    """Load and intersect the participants' maps of one task.

    The group mask is the intersection of the participants' analysis masks (without a
    mask file: voxels with a finite, non-zero first layer), less voxels where any map or
    null value is not finite.

    Parameters
    ----------
    inputs : TaskInputs
        From :func:`collect_group_inputs`.

    Returns
    -------
    GroupArrays
        Arrays and warnings.

    Raises
    ------
    BadDataError
        If a file cannot be read (exit 65, naming the participant to rerun), a grid
        differs or the masks do not overlap.
    """
    warnings: list[str] = []
    layer_ids = sorted(inputs.participants[0].layers)
    ref_path = inputs.participants[0].layers[layer_ids[0]]
    reference = _header(ref_path, inputs.participants[0].subject)
    mask = np.ones(reference.shape[:3], dtype=bool)
    for p in inputs.participants:
        for path in [*p.layers.values(), *[x for x in (p.null, p.mask) if x is not None]]:
            _check_grid(_header(path, p.subject), path, reference, ref_path)
        if p.mask is not None:
            mask &= _read(p.mask, p.subject) > 0
        else:
            first = _read(p.layers[layer_ids[0]], p.subject, np.float32)
            mask &= np.isfinite(first) & (first != 0)
            warnings.append(f"sub-{p.subject} has no desc-brain mask; its mask was taken as "
                            "the voxels with a finite, non-zero layer-1 map.")
    r = np.stack([np.stack([_read(p.layers[i], p.subject, np.float32)[mask]
                            for i in layer_ids]) for p in inputs.participants])
    keep = np.isfinite(r).all(axis=(0, 1))
    nulls = None
    without = [p.subject for p in inputs.participants if p.null is None]
    if without:
        warnings.append(
            "No permutation null (desc-maxnull_stat-r_statmap) for "
            f"{', '.join('sub-' + s for s in without)}: the permutation test was skipped "
            "and only the study's test, which is biased upward, is reported.")
    else:
        nulls = []
        for p in inputs.participants:
            data = _read(p.null, p.subject, np.float32)
            nulls.append(np.atleast_2d(data.reshape(*data.shape[:3], -1)[mask].T))
            keep &= np.isfinite(nulls[-1]).all(axis=0)
    if not keep.any():
        raise BadDataError(f"The participants' task-{inputs.task} masks do not overlap",
                           path=inputs.participants[0].mask or ref_path,
                           fix="check the participants' normalisation to the template")
    if not keep.all():
        warnings.append(f"{int((~keep).sum())} voxels inside every mask had a non-finite "
                        "value in some map and were left out.")
    mask[mask] = keep
    nulls = [n[:, keep] for n in nulls] if nulls is not None else None
    return GroupArrays(inputs, reference, mask, r[:, :, keep], nulls, warnings)
