"""Group level: the study's max-over-layers statistics across participants, and a permutation test.

The participants' maps are found and loaded by :mod:`bidsapp.bids.outputs`, the numbers
come from :mod:`bidsapp.stats`, the figures and ``group.html`` from :mod:`bidsapp.reports`;
this module runs them in order and writes the group maps into ``group/``.
"""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np

from bidsapp import stats
from bidsapp.bids.derivatives import derivative_name, resolution_text
from bidsapp.bids.outputs import GroupArrays, collect_group_inputs, load_group_arrays
from bidsapp.config import Config
from bidsapp.errors import MissingInputError, NothingSelected
from bidsapp.io import atomic_write, write_json, write_text
from bidsapp.labels import strip_prefix
from bidsapp.reports import (
    GroupSection,
    InferenceMaps,
    UnthresholdedMaps,
    write_citation,
    write_group_report,
)
from bidsapp.reports.figures import layer_colors
from bidsapp.reports.participant import weights_warnings

from .common import prepare_dir, save_config

LOGGER = logging.getLogger("bidsapp")


def _name(entities: list[tuple[str, str]], desc: str, suffix: str, stat: str | None = None,
          extension: str = ".nii.gz") -> str:
    pairs = [*entities, ("desc", desc)] + ([("stat", stat)] if stat else [])
    return derivative_name(pairs, suffix, extension)


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
            # BIDS asks for a Resolution text with every res- entity; the grid is the
            # participants' (checked to be one), so its voxel size is the resolution.
            **({"Resolution": resolution_text(
                inputs.space, float(arrays.reference.header.get_zooms()[0]))}
               if inputs.res and inputs.space else {}),
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
        names = self.arrays.inputs.layer_names
        rows = ["index\tname\tcolor"] + [
            f"{i}\t{name}\t{color}" for i, (name, color)
            in enumerate(zip(names, layer_colors(len(names)), strict=True), start=1)]
        path = self.dir / _name(self.arrays.inputs.entities, f"{prefix}bestlayer", "dseg",
                                extension=".tsv")
        write_text(path, "\n".join(rows) + "\n")
        self.written.append(path.name)
        return dseg


def _few_participants(n: int) -> list[str]:
    """Warn when the t-test across participants has too few degrees of freedom to trust."""
    if n >= 4:
        return []
    return [f"Only {n} participants: the study's t-test across participants has {n - 1} "
            "degree(s) of freedom, so its p-values rest on almost no estimate of the "
            "between-participant variance; the permutation test's smallest p-value is "
            "limited by the number of null maps. Treat the maps as descriptive."]


def _threshold(p_threshold: float) -> str:
    """Return the p threshold in words: a number, or that no voxel survives (BH gives 0)."""
    return f"{p_threshold:.4g}" if p_threshold > 0 else "none: no voxel survives"


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
        f"Benjamini-Hochberg at q/L = {study.q_per_layer:g} (p threshold "
        f"{_threshold(study.p_threshold)}). "
        "Biased upward: the maximum of L noisy correlations exceeds 0 without any effect.",
        activation, out.layer_maps("", sig, study, **meta),
        out.image(_positive(study.t, sig)), "t", int(sig.sum()), out.written[first:])]
    parameters = {"participants": ", ".join(out.common["Participants"]),
                  "layers": ", ".join(names), "voxels analysed": int(arrays.mask.sum()),
                  "FDR q": q, "study: q / n_layers": study.q_per_layer,
                  "study: p threshold": _threshold(study.p_threshold)}
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
            f"(p threshold {_threshold(perm.p_threshold)}). Unbiased: the null has the same "
            "maximum.",
            perm_activation, out.layer_maps("perm", psig, study, **meta),
            out.image(_positive(perm.debiased_max_r, psig)), "debiased r",
            int(psig.sum()), out.written[first:]))
        parameters.update({
            "permutations per participant": ", ".join(str(n.shape[0]) for n in arrays.nulls),
            "group draws": perm.n_draws, "permutation: p threshold": _threshold(perm.p_threshold),
            "random seed": config.random_seed})
    if arrays.nulls is not None:
        effect, effect_name = perm.debiased_max_r, "mean max r minus the null mean (debiased)"
    else:
        # Cohen's d of the maximum: without a null the bias cannot be removed.
        effect = study.t / np.sqrt(study.max_r.shape[0])
        effect_name = "Cohen's d of the maximum (biased upward)"
    unthresholded = UnthresholdedMaps(
        out.image(study.mean_max_r.astype(np.float32)),
        out.image(study.modal_layer.astype(np.int16)),
        out.image(np.nan_to_num(effect).astype(np.float32)), effect_name)
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
        parameters=parameters, tests=tests, unthresholded=unthresholded,
        warnings=arrays.warnings + _few_participants(len(inputs.participants))
        + weights_warnings(sidecars))


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


def run_group(config: Config) -> int:
    """Group level: needs the participant level's outputs in ``output_dir``.

    Parameters
    ----------
    config : Config
        The options of this run.

    Returns
    -------
    int
        0 on success.
    """
    if not (config.output_dir / "dataset_description.json").is_file():
        raise MissingInputError(
            "No participant-level outputs were found in the output folder", path=config.output_dir,
            fix="run the participant level first (same bids_dir and output_dir)",
        )
    subjects = sorted(p.name for p in config.output_dir.glob("sub-*") if p.is_dir())
    if config.participant_label:
        subjects = [s for s in subjects if strip_prefix(s) in config.participant_label]
    if len(subjects) < 2:
        raise NothingSelected(
            f"The group level needs at least 2 participants with outputs; found "
            f"{len(subjects)} ({', '.join(subjects) or 'none'})", path=config.output_dir,
            fix="run the participant level for more participants first",
        )
    prepare_dir(config.output_dir, "output folder")
    save_config(config)
    return run_group_level(config, subjects)
