"""Group level: the study's max-over-layers statistics across participants, and a permutation test.

The participants' maps are found with pybids, checked for a common space, grid and set of
layers, and reduced to arrays over the voxels analysed in every participant; the numbers
come from :mod:`bidsapp.stats`, the figures and ``group.html`` from :mod:`bidsapp.reports`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from bidsapp import stats
from bidsapp.config import Config
from bidsapp.errors import BadDataError, MissingInputError, NothingSelected
from bidsapp.io import atomic_write, write_json, write_text

if TYPE_CHECKING:
    from bids import BIDSLayout

    from bidsapp.reports import GroupSection

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
    from bids import BIDSLayout
    from bids.layout import BIDSLayoutIndexer

    # Only sub-*/ holds participant maps; pybids always skips dotfiles (temporary names).
    ignore = [re.compile(r"^/(code|sourcedata|stimuli|models|features|logs|group|work)(/|$)")]
    return BIDSLayout(output_dir, is_derivative=True,
                      indexer=BIDSLayoutIndexer(validate=False, ignore=ignore),
                      config=["bids", "derivatives", STAT_ENTITY_CONFIG])


def _gather(layout: BIDSLayout, subjects: list[str], required: set[str]) -> dict[str, dict]:
    by_task: dict[str, dict[str, ParticipantInputs]] = {}
    for subject in subjects:
        label = subject.removeprefix("sub-")
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
    required_labels = {r.removeprefix("sub-") for r in required}
    absent = sorted(required_labels - {s.removeprefix("sub-") for s in subjects})
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
        If a grid differs or the masks do not overlap.
    """
    warnings: list[str] = []
    layer_ids = sorted(inputs.participants[0].layers)
    ref_path = inputs.participants[0].layers[layer_ids[0]]
    reference = nib.load(ref_path)
    mask = np.ones(reference.shape[:3], dtype=bool)
    for p in inputs.participants:
        for path in [*p.layers.values(), *[x for x in (p.null, p.mask) if x is not None]]:
            _check_grid(nib.load(path), path, reference, ref_path)
        if p.mask is not None:
            mask &= np.asarray(nib.load(p.mask).dataobj) > 0
        else:
            first = np.asarray(nib.load(p.layers[layer_ids[0]]).dataobj, dtype=np.float32)
            mask &= np.isfinite(first) & (first != 0)
            warnings.append(f"sub-{p.subject} has no desc-brain mask; its mask was taken as "
                            "the voxels with a finite, non-zero layer-1 map.")
    r = np.stack([np.stack([np.asarray(nib.load(p.layers[i]).dataobj, dtype=np.float32)[mask]
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
            data = np.asarray(nib.load(p.null).dataobj, dtype=np.float32)
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


def _name(entities: list[tuple[str, str]], desc: str, suffix: str, stat: str | None = None,
          extension: str = ".nii.gz") -> str:
    pairs = [*entities, ("desc", desc)] + ([("stat", stat)] if stat else [])
    return "_".join(f"{key}-{value}" for key, value in pairs) + f"_{suffix}{extension}"


def group_methods_text(n_layers: int, q: float, permutation: bool) -> str:
    """Return the group level's methods paragraph (its ``__desc__``).

    Parameters
    ----------
    n_layers : int
        Number of layers L.
    q : float
        The FDR level.
    permutation : bool
        Whether the permutation test ran.

    Returns
    -------
    str
        One paragraph for ``logs/CITATION.md``.
    """
    text = (
        f"At the group level, for every voxel and participant the maximum Spearman "
        f"correlation over the {n_layers} layers and the layer that gave it were taken. A "
        "right-sided one-sample t-test across participants tested the maxima against zero, "
        "and the Benjamini-Hochberg procedure (Benjamini and Hochberg, 1995) controlled the "
        f"false discovery rate over voxels at q/{n_layers} = {q / n_layers:g}. The mean "
        "maximum correlation and the layer maps (mean layer index and modal layer) were "
        "computed over participants in significant voxels."
    )
    if permutation:
        text += (
            " Because the maximum of several correlations is biased upward under the null "
            "hypothesis, the maximum was also tested against a permutation null: for every "
            "participant, the searchlight was repeated with the trials of the candidate "
            "RDMs reordered as whole blocks (Winkler et al., 2014), and the group-mean "
            "maximum was compared with the means of randomly drawn null maps, one per "
            "participant (Stelzer et al., 2013), giving p-values (Phipson and Smyth, 2010) "
            f"that were corrected with the Benjamini-Hochberg procedure at q = {q:g}."
        )
    return text


class _Writer:
    """Writes one task's group maps (image + JSON sidecar, atomically) into ``group/``."""

    def __init__(self, config: Config, arrays: GroupArrays):
        self.arrays, self.dir = arrays, config.output_dir / "group"
        inputs = arrays.inputs
        self.common = {
            "Participants": ["sub-" + p.subject for p in inputs.participants],
            "Layers": inputs.layer_names, "Space": inputs.space,
            "Sources": [str(path.relative_to(config.output_dir))
                        for p in inputs.participants for path in p.layers.values()]}
        self.written: list[str] = []

    def image(self, values: np.ndarray, fill: float = 0.0) -> nib.Nifti1Image:
        volume = np.full(self.arrays.mask.shape, fill, dtype=values.dtype)
        volume[self.arrays.mask] = values
        img = nib.Nifti1Image(volume, self.arrays.reference.affine)
        img.header.set_zooms(self.arrays.reference.header.get_zooms()[:3])
        img.header.set_xyzt_units("mm")
        return img

    def save(self, values: np.ndarray, desc: str, suffix: str, stat: str | None = None,
             fill: float = 0.0, **meta: object) -> nib.Nifti1Image:
        path = self.dir / _name(self.arrays.inputs.entities, desc, suffix, stat)
        img = self.image(values, fill)
        with atomic_write(path) as tmp:
            nib.save(img, tmp)
        write_json(path.with_name(path.name.replace(".nii.gz", ".json")),
                   {**meta, **self.common})
        self.written.append(path.name)
        return img

    def layer_maps(self, prefix: str, significant: np.ndarray, study: stats.StudyResult,
                   **meta: object) -> nib.Nifti1Image:
        """Write the mean layer (statmap) and the modal layer (dseg + lookup TSV)."""
        self.save(np.where(significant, study.mean_layer, 0).astype(np.float32),
                  f"{prefix}meanlayer", "statmap", Description="Mean layer index (1-based) "
                  "over participants, as in the study; significant voxels only", **meta)
        dseg = self.save(np.where(significant, study.modal_layer, 0).astype(np.int16),
                         f"{prefix}bestlayer", "dseg", Description="Modal layer over "
                         "participants (ties: higher group-mean r); significant voxels only",
                         **meta)
        from bidsapp.reports.figures import layer_colors

        names = self.arrays.inputs.layer_names
        rows = ["index\tname\tcolor"] + [
            f"{i}\t{name}\t{color}" for i, (name, color)
            in enumerate(zip(names, layer_colors(len(names)), strict=True), start=1)]
        path = self.dir / _name(self.arrays.inputs.entities, f"{prefix}bestlayer", "dseg",
                                extension=".tsv")
        write_text(path, "\n".join(rows) + "\n")
        self.written.append(path.name)
        return dseg


def _positive(values: np.ndarray, significant: np.ndarray) -> np.ndarray:
    # Clusters are the voxels > 0, so a significant voxel must stay above 0.
    return np.where(significant, np.maximum(values, 1e-6), 0.0).astype(np.float32)


def test_and_write(config: Config, arrays: GroupArrays) -> GroupSection:
    """Run both tests on one task, write its maps to ``group/`` and describe them.

    Parameters
    ----------
    config : Config
        ``fdr_q`` and ``random_seed`` are used.
    arrays : GroupArrays
        From :func:`load_group_arrays`.

    Returns
    -------
    bidsapp.reports.GroupSection
        The task's part of the group report.
    """
    from bidsapp.reports import GroupSection, InferenceMaps
    from bidsapp.reports.participant import weights_warnings

    inputs, q, out = arrays.inputs, config.fdr_q, _Writer(config, arrays)
    names = inputs.layer_names
    study = stats.study_statistics(arrays.r, q)
    sig = study.significant
    meta = {"Test": "right-sided one-sample t-test of the max over layers against 0",
            "FDRLevel": q, "FDRLevelPerLayer": study.q_per_layer,
            "PThreshold": study.p_threshold}
    out.save(np.ones(sig.size, np.uint8), "brain", "mask",
             Description="Voxels analysed in every participant")
    first = len(out.written)
    activation = out.save(np.where(sig, study.mean_max_r, 0).astype(np.float32), "maxcorr",
                          "statmap", "r", Description="Mean max-over-layers r, significant "
                          "voxels of the study's test (0 elsewhere)", **meta)
    out.save(study.t.astype(np.float32), "maxcorr", "statmap", "t",
             Description="t statistic (0 outside the mask)", **meta)
    out.save(study.p.astype(np.float32), "maxcorr", "statmap", "p", fill=1.0,
             Description="right-sided p-value (1 outside the mask)", **meta)
    out.save(sig.astype(np.uint8), "fdr", "mask", **meta)
    tests = [InferenceMaps(
        f"Study's test: t-test of the maximum, FDR at q/{len(names)}",
        f"Right-sided one-sample t-test of each voxel's maximum r over layers against 0, "
        f"Benjamini-Hochberg at q/L = {study.q_per_layer:g} (p <= {study.p_threshold:.3g}). "
        "Biased upward: the maximum of L noisy correlations exceeds 0 without any effect.",
        activation, out.layer_maps("", sig, study, **meta),
        out.image(_positive(study.t, sig)), "t", int(sig.sum()), out.written[first:])]
    parameters = {"participants": ", ".join(out.common["Participants"]),
                  "layers": ", ".join(names), "voxels analysed": int(arrays.mask.sum()),
                  "FDR q": q, "study: q / n_layers": study.q_per_layer,
                  "study: p threshold": f"{study.p_threshold:.4g}"}
    if arrays.nulls is not None:
        first = len(out.written)
        perm = stats.permutation_statistics(study.max_r, arrays.nulls, q,
                                            seed=config.random_seed)
        psig = perm.significant
        meta = {"Test": "permutation test of the group-mean max over layers", "FDRLevel": q,
                "PThreshold": perm.p_threshold, "NumberOfDraws": perm.n_draws,
                "Exhaustive": perm.exhaustive,
                "PermutationsPerParticipant": [int(n.shape[0]) for n in arrays.nulls]}
        out.save(perm.p.astype(np.float32), "maxcorrperm", "statmap", "p", fill=1.0,
                 Description="permutation p-value (1 outside the mask)", **meta)
        out.save(psig.astype(np.uint8), "permfdr", "mask", **meta)
        out.save(np.where(psig, perm.debiased_max_r, 0).astype(np.float32), "maxcorrdebiased",
                 "statmap", "r", Description="Mean over participants of max r minus the mean "
                 "of its permutation null; significant voxels only", **meta)
        perm_activation = out.save(np.where(psig, study.mean_max_r, 0).astype(np.float32),
                                   "maxcorrperm", "statmap", "r", Description="Mean max r, "
                                   "significant voxels of the permutation test", **meta)
        tests.append(InferenceMaps(
            f"Permutation test of the maximum, FDR at q = {q:g}",
            "Group-mean maximum r against the means of null maps drawn one per participant "
            f"from block permutations of the trials ({perm.n_draws} draws"
            f"{', exhaustive' if perm.exhaustive else ''}), Benjamini-Hochberg at q "
            f"(p <= {perm.p_threshold:.3g}). Unbiased: the null has the same maximum.",
            perm_activation, out.layer_maps("perm", psig, study, **meta),
            out.image(_positive(perm.debiased_max_r, psig)), "debiased r",
            int(psig.sum()), out.written[first:]))
        parameters.update({
            "permutations per participant": ", ".join(str(n.shape[0]) for n in arrays.nulls),
            "group draws": perm.n_draws, "permutation: p threshold": f"{perm.p_threshold:.4g}",
            "random seed": config.random_seed})
    sidecars = [m for p in inputs.participants for m in p.metadata.values()]
    for key in ("SearchlightSize", "NumberOfTRs", "WeightsStatus", "WeightsSHA256",
                "WeightsTrainingData"):
        values = sorted({str(m[key]) for m in sidecars if m.get(key) is not None})
        if values:
            parameters[key] = ", ".join(values)
    # Fig. 6 needs the shape of each distribution, not every voxel of every participant.
    sample = np.random.default_rng(config.random_seed).permutation(arrays.r.shape[2])[:20000]
    return GroupSection(
        title=" ".join(f"{k}-{v}" for k, v in inputs.entities), space=inputs.space or "",
        layer_names=names, r_by_layer=[arrays.r[:, k, sample] for k in range(len(names))],
        parameters=parameters, tests=tests,
        warnings=arrays.warnings + weights_warnings(sidecars))


def run_group_level(config: Config, subjects: list[str]) -> int:
    """Run the group statistics over the participants' searchlight maps.

    For every task: the study's test (maximum over layers, right-sided one-sample t-test,
    Benjamini-Hochberg FDR at q / n_layers) and, when the participant level wrote
    permutation nulls, the permutation test of the maximum (FDR at q); the maps go to
    ``output_dir/group/``, the report to ``output_dir/group.html`` and the methods to
    ``output_dir/logs/CITATION.md``.

    Parameters
    ----------
    config : Config
        The options of this run (``fdr_q``, ``random_seed``, ``participant_label``).
    subjects : list of str
        The ``sub-<label>`` folders found in the output directory.

    Returns
    -------
    int
        0 on success.

    Raises
    ------
    NothingSelected
        Fewer than 2 participants with maps (exit 18).
    BadDataError
        Spaces, grids, layers or weights do not match (exit 65).
    MissingInputError
        A participant named in ``--participant-label`` has no maps (exit 66).
    """
    from bidsapp.reports import write_citation, write_group_report

    tasks = collect_group_inputs(config.output_dir, subjects, config.participant_label)
    sections, methods = [], []
    for inputs in tasks:
        LOGGER.info("Group statistics for task-%s over %d participants (%s)", inputs.task,
                    len(inputs.participants),
                    ", ".join("sub-" + p.subject for p in inputs.participants))
        arrays = load_group_arrays(inputs)
        for warning in arrays.warnings:
            LOGGER.warning(warning)
        sections.append(test_and_write(config, arrays))
        methods.append(group_methods_text(len(inputs.layer_names), config.fdr_q,
                                          arrays.nulls is not None))
    methods = list(dict.fromkeys(methods))
    report = write_group_report(config.output_dir, sections, methods=methods)
    citation = write_citation(config.output_dir, methods, section="group")
    LOGGER.info("Group maps in %s; report %s; methods %s", config.output_dir / "group",
                report, citation)
    return 0
