"""The participant report, ``sub-<label>.html``: what went in, how it looked, what came out."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from bidsapp.labels import strip_prefix
from bidsapp.stats import ParticipantTest, max_over_layers, participant_permutation_test

from . import figures
from .citation import tool_versions
from .html import (
    escape,
    figure_html,
    inline_svg,
    mapping_table,
    table_html,
    warnings_html,
    write_page,
)
from .reportlets import ReportletGroup, group_reportlets, name_entities

FWE_ALPHA = 0.05
"""Family-wise error level of the participant's voxels beyond the null."""


def read_sidecar(path: str | Path) -> dict:
    """Return the JSON sidecar of a NIfTI file, or ``{}`` when it has none.

    Parameters
    ----------
    path : str or Path
        A ``.nii`` or ``.nii.gz`` file.

    Returns
    -------
    dict
        The sidecar's content.
    """
    path = Path(path)
    stem = path.name.removesuffix(".gz").removesuffix(".nii")
    sidecar = path.with_name(stem + ".json")
    if not sidecar.is_file():
        return {}
    try:
        return json.loads(sidecar.read_text())
    except json.JSONDecodeError:
        return {}


def weights_warnings(metadata: Sequence[Mapping]) -> list[str]:
    """Return warnings about the network weights recorded in the maps' sidecars.

    Parameters
    ----------
    metadata : sequence of mapping
        Sidecars with ``WeightsStatus``, ``WeightsSHA256`` and (optionally)
        ``WeightsTrainingData``.

    Returns
    -------
    list of str
        One warning when any map was computed with untrained weights, one when trained
        weights were not trained on MagnaTagATune, one when the maps disagree about the
        weights.
    """
    out = []
    statuses = {str(m.get("WeightsStatus")) for m in metadata if m.get("WeightsStatus")}
    if "untrained" in statuses:
        out.append(
            "The network weights are UNTRAINED (WeightsStatus 'untrained'): the layer maps "
            "show a randomly initialised ResNet-18, not learned music features. Train or "
            "install the weights before interpreting the maps."
        )
    sources = {str(m["WeightsTrainingData"]) for m in metadata if m.get("WeightsTrainingData")}
    # MagnaTagATune weights name it first ("MagnaTagATune (Law et al., 2009)"); distilled
    # weights name it only as the teacher's data, which is not the study's training.
    other = sorted(src for src in sources if not src.startswith("MagnaTagATune"))
    if "trained" in statuses and other:
        if any("teacher" in src for src in other):
            known = ("it learnt MagnaTagATune's 50 tags from a teacher model trained on "
                     "MagnaTagATune, on a few hours of real game music and on rendered "
                     "classical and folk scores.")
        else:
            known = ("it knows instruments, drums, tempo and loudness, but no vocals or "
                     "genres beyond classical and folk.")
        out.append("The network was trained on " + "; ".join(other) + ", not on "
                   "MagnaTagATune as in the study (models/README.md): " + known)
    hashes = {m.get("WeightsSHA256") for m in metadata if m.get("WeightsSHA256")}
    if len(hashes) > 1:
        out.append(f"The maps were computed with {len(hashes)} different weight files.")
    return out


@dataclass
class TaskMaps:
    """One task's searchlight outputs of a participant, as the report shows them.

    Attributes
    ----------
    task : str
        The task label, without ``task-``.
    layer_maps : list of Path
        The ``desc-layer<NN>_stat-r_statmap`` files.
    mask : Path, optional
        The analysis mask (``desc-searchlight_mask``).
    max_r : Path, optional
        ``desc-maxcorr_stat-r_statmap``: maximum r over the layers.
    best_layer : Path, optional
        ``desc-bestlayer_dseg``: the layer of that maximum, 1-based.
    null : Path, optional
        ``desc-maxnull_stat-r_statmap``: the permutation null, one volume per permutation.
    candidate_rdms : numpy.ndarray or Path, optional
        (L, T, T) RDMs, a ``.npy`` file, or their ``.svg`` figure.
    """

    task: str
    layer_maps: list[Path] = field(default_factory=list)
    mask: Path | None = None
    max_r: Path | None = None
    best_layer: Path | None = None
    null: Path | None = None
    candidate_rdms: np.ndarray | Path | None = None


def _layer_order(layer_maps: Sequence[Path], metadata: Sequence[Mapping]) -> list[int]:
    def key(i: int) -> tuple:
        index = metadata[i].get("LayerIndex")
        return (0, int(index)) if index is not None else (1, layer_maps[i].name)

    return sorted(range(len(layer_maps)), key=key)


def _fd_note(path: Path) -> str:
    """One line on a run's framewise displacement, or why it cannot be read."""
    try:
        table = pd.read_csv(path, sep="\t", na_values="n/a")
    except (OSError, ValueError) as exc:
        return f'<p class="warning">Cannot read {escape(path.name)} ({escape(exc)}).</p>'
    fd = table.get("framewise_displacement")
    if fd is None:
        return f'<p class="note">{escape(path.name)} has no framewise displacement.</p>'
    fd = np.asarray(fd, dtype=float)
    return (f'<p class="note">Framewise displacement: mean {np.nanmean(fd):.3f} mm, max '
            f"{np.nanmax(fd):.3f} mm, {int(np.sum(fd > figures.FD_THRESHOLD_MM))} volumes "
            f"with FD &gt; {figures.FD_THRESHOLD_MM:g} mm ({escape(path.name)}).</p>")


def _figure_block(svg: Path, caption: str) -> str:
    return f"<figure>{inline_svg(svg)}<figcaption>{escape(caption)}</figcaption></figure>"


def _preprocessing_html(groups: Sequence[ReportletGroup], tr: float | None) -> list[str]:
    """One sub-section per run: heading, FD summary, each reportlet with its caption.

    The motion plot is the workflow's reportlet; it is drawn here only for a run that has
    confounds but no such reportlet, so that it is never shown twice.
    """
    out = []
    for group in groups:
        out.append(f'<h3 id="{escape(group.anchor)}" class="run">{escape(group.heading)}</h3>')
        if group.confounds is not None:
            out.append(_fd_note(group.confounds))
        out += [_figure_block(p, group.caption(p)) for p in group.reportlets]
        has_motion = any(name_entities(p.name).get("desc") == "motion"
                         for p in group.reportlets)
        if group.confounds is not None and not has_motion:
            try:
                table = pd.read_csv(group.confounds, sep="\t", na_values="n/a")
            except (OSError, ValueError):
                continue
            out.append(figure_html(figures.plot_motion(table, tr),
                                   f"{group.heading}: head motion "
                                   f"({group.confounds.name})."))
    return out or ['<p class="note">No reportlets.</p>']


def _volume(values: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    volume = np.zeros(mask.shape, dtype=np.float32)
    volume[mask] = values
    return nib.Nifti1Image(volume, affine)


def _verdict(test: ParticipantTest, peak: float) -> str:
    """Return the permutation result in plain words."""
    chance = f"{test.n_permutations} shuffles of the trials"
    if test.n_beyond == 0:
        return (
            f"Nothing in these maps exceeds this participant's permutation null. The "
            f"largest maximum r ({peak:.3f}) is reached in {test.n_null_reaching_max} of "
            f"the {chance} (whole-brain p = {test.p_max:.3g}), so no voxel shows "
            f"stimulus-specific information at a family-wise error of {test.alpha:g}. The "
            f"positive r in the raw maps are what the analysis gives without any: the "
            f"maximum of several correlations, and temporal autocorrelation, bias them "
            f"upward.")
    return (
        f"{test.n_beyond} voxels exceed this participant's permutation null: their maximum r "
        f"is above the {1 - test.alpha:.0%} quantile of the brain-wide largest r in the {chance} "
        f"(family-wise error {test.alpha:g}; whole-brain p of the maximum = "
        f"{test.p_max:.3g}).")


def _null_html(maps: TaskMaps, max_img: nib.spatialimages.SpatialImage,
               mask: np.ndarray) -> list[str]:
    """Return the maximum r, its debiased map and the permutation result, as HTML."""
    observed = np.nan_to_num(np.asarray(max_img.dataobj, dtype=np.float64))[mask]
    if maps.null is None or not Path(maps.null).is_file():
        return [
            '<p class="warning">No permutation null was written for this task '
            "(--n-permutations 0), so these maps cannot be compared with chance. The raw "
            "maximum r is biased upward (docs/statistics.md): do not read positive values "
            "as evidence.</p>",
            figure_html(figures.plot_participant_maxima(max_img),
                        "Maximum r over the layers (raw, biased upward)."),
        ]
    null = np.asarray(nib.load(maps.null).dataobj, dtype=np.float32)[mask].T
    test = participant_permutation_test(observed, null, alpha=FWE_ALPHA)
    peak = float(observed.max()) if observed.size else float("nan")
    rows = {
        "permutations": test.n_permutations,
        "largest maximum r": f"{peak:.3f}",
        "whole-brain p of the maximum": f"{test.p_max:.3g}",
        f"null threshold (FWE {test.alpha:g})": f"{test.fwe_threshold:.3f}",
        "voxels beyond the null (FWE corrected)": test.n_beyond,
        f"voxels with uncorrected p ≤ {test.alpha:g}": (
            f"{test.n_uncorrected} of {observed.size} "
            f"(about {test.alpha * observed.size:.0f} expected by chance)"),
        "mean debiased r": f"{float(np.mean(test.debiased)):.4f}",
    }
    debiased = _volume(test.debiased, mask, max_img.affine)
    beyond = (_volume(np.where(test.beyond_null, test.debiased, 0.0), mask, max_img.affine)
              if test.n_beyond else None)
    cls = "verdict null" if test.n_beyond == 0 else "verdict"
    return [
        f'<p class="{cls}">{escape(_verdict(test, peak))}</p>',
        table_html([(k, v) for k, v in rows.items()], header=("permutation test", "value")),
        figure_html(figures.plot_participant_maxima(max_img, debiased, beyond),
                    "Top: maximum r over the layers, as computed (biased upward). Middle: the "
                    "same minus the mean of this participant's permutation null at each "
                    "voxel (debiased)." + (" Bottom: the debiased r in the voxels beyond "
                                           "the null." if beyond is not None else "")),
    ]


def _task_html(maps: TaskMaps, space: str | None) -> tuple[list[str], list[dict]]:
    """Return one task's results (RDMs, layer maps, best layer, null) and sidecars."""
    paths = [Path(p) for p in maps.layer_maps]
    metadata = [read_sidecar(p) for p in paths]
    order = _layer_order(paths, metadata)
    paths = [paths[i] for i in order]
    metadata = [metadata[i] for i in order]
    names = [str(m.get("Layer", f"layer {k + 1}")) for k, m in enumerate(metadata)]
    first = metadata[0] if metadata else {}
    rows: dict[str, object] = {"task": maps.task, "layers": len(paths)}
    for key in ("NumberOfTRs", "SearchlightSize", "WeightsStatus", "WeightsSHA256"):
        if key in first:
            rows[key] = first[key]
    mask = None
    if maps.mask is not None and Path(maps.mask).is_file():
        mask = np.asarray(nib.load(maps.mask).dataobj) > 0
        rows["voxels in the analysis mask"] = int(np.count_nonzero(mask))
    tag = f"task-{maps.task}"
    body = [f'<h2 id="results-{escape(maps.task)}">Results: {escape(tag)}</h2>',
            mapping_table(rows), f"<h3>Candidate RDMs ({escape(tag)})</h3>"]
    rdms = maps.candidate_rdms
    if isinstance(rdms, str | Path) and str(rdms).endswith(".svg"):
        body.append(_figure_block(Path(rdms), f"{tag}: candidate RDMs (1 - Spearman between "
                                  "TRs), one per layer, each on its own color scale; the "
                                  "squares along the diagonal are trials."))
    elif rdms is not None:
        rdms = np.load(rdms) if isinstance(rdms, str | Path) else np.asarray(rdms)
        rdm_names = names if len(names) == len(rdms) else [f"layer {k + 1}"
                                                          for k in range(len(rdms))]
        body.append(figure_html(figures.plot_candidate_rdms(rdms, rdm_names),
                                f"{tag}: candidate RDMs (1 - Spearman between TRs), one per "
                                "layer; squares along the diagonal are trials."))
    else:
        body.append('<p class="note">Candidate RDMs not given.</p>')
    body.append(f"<h3>Searchlight maps per layer ({escape(tag)})</h3>")
    if not paths:
        body.append('<p class="note">No layer maps.</p>')
        return body, metadata
    images = [nib.load(p) for p in paths]
    body.append(figure_html(figures.plot_layer_maps(images, names),
                            f"{tag}: Spearman r between each layer's candidate RDM and the "
                            "searchlight target RDMs (axial maximum projections)."))
    body.append(table_html(
        [(k + 1, n, p.name) for k, (n, p) in enumerate(zip(names, paths, strict=True))],
        header=("index", "layer", "file")))

    if maps.max_r is not None and maps.best_layer is not None:
        max_img, best_img = nib.load(maps.max_r), nib.load(maps.best_layer)
    else:
        # Outputs from before the maximum was written: the same numbers from the layers.
        stack = np.stack([np.asarray(i.dataobj, dtype=np.float32) for i in images])
        max_r, best = max_over_layers(stack, axis=0)
        max_img = nib.Nifti1Image(np.nan_to_num(max_r).astype(np.float32), images[0].affine)
        best_img = nib.Nifti1Image(best.astype(np.int16), images[0].affine)
    if mask is None:
        mask = np.nan_to_num(np.asarray(max_img.dataobj, dtype=np.float64)) != 0
    body.append(f"<h3>Best layer ({escape(tag)})</h3>")
    body.append(figure_html(
        figures.plot_best_layer_map(best_img, names, space),
        f"{tag}: the layer whose candidate RDM correlates best with each voxel's searchlight "
        "(desc-bestlayer_dseg), unthresholded: every voxel of the analysis mask has one, "
        "whether or not its correlation exceeds chance. Green shallow, red deep."))
    body.append(f"<h3>Maximum over layers and the permutation null ({escape(tag)})</h3>")
    body += _null_html(maps, max_img, mask)
    return body, metadata


def _methods_html(methods: Sequence[str]) -> list[str]:
    body = ['<h2 id="methods">Methods</h2>']
    if not methods:
        return [*body, '<p class="note">No methods text was recorded for this run.</p>']
    body += [f'<p class="methods">{escape(" ".join(m.split()))}</p>' for m in methods]
    versions = ", ".join(f"{k} {v}" for k, v in tool_versions().items())
    body.append(f'<p class="note">Software: {escape(versions)}. The same text, with its '
                "references, is in logs/CITATION.md.</p>")
    return body


def write_participant_report(
    output_dir: str | Path,
    subject: str,
    *,
    tasks: Sequence[TaskMaps] = (),
    layer_maps: Sequence[str | Path] = (),
    mask: str | Path | None = None,
    reportlets: Sequence[str | Path] = (),
    confounds: Sequence[str | Path] = (),
    candidate_rdms: np.ndarray | str | Path | None = None,
    summary: Mapping[str, object] | None = None,
    warnings: Sequence[str] = (),
    tr: float | None = None,
    methods: Sequence[str] = (),
) -> Path:
    """Write ``<output_dir>/sub-<label>.html``, a self-contained participant report.

    Sections: data summary, warnings, preprocessing (one heading per run, each reportlet
    with a caption), then per task the candidate RDMs, the per-layer maps, the best-layer
    map and the maximum over layers beside its debiased map and the permutation result,
    and finally the methods text.

    Parameters
    ----------
    output_dir : str or Path
        The derivatives root.
    subject : str
        The participant label, with or without ``sub-``.
    tasks : sequence of TaskMaps, optional
        Each task's maps, in display order.
    layer_maps : sequence of str or Path, optional
        Shorthand for one task: its ``desc-layer<NN>_stat-r_statmap`` files (the task is
        read from their names); their sidecars give the layer names (``Layer``,
        ``LayerIndex``), ``NumberOfTRs``, ``SearchlightSize`` and the weights.
    mask : str or Path, optional
        With ``layer_maps``: the analysis mask, to report its size.
    reportlets : sequence of str or Path, optional
        SVG reportlets of preprocessing named by BIDS entities; grouped by run.
    confounds : sequence of str or Path, optional
        ``desc-confounds_timeseries.tsv`` files, one per run.
    candidate_rdms : numpy.ndarray or str or Path, optional
        With ``layer_maps``: (L, T, T) candidate RDMs, a ``.npy`` file holding them, or
        their figure as an ``.svg`` file.
    summary : mapping, optional
        More rows for the data summary (runs, TR, tasks, ...), shown as given.
    warnings : sequence of str, optional
        Warnings raised while processing this participant; weights warnings are added.
    tr : float, optional
        Repetition time, for a motion plot drawn here.
    methods : sequence of str, optional
        The methods paragraphs of the participant level (as in ``logs/CITATION.md``).

    Returns
    -------
    Path
        The report's path.
    """
    output_dir = Path(output_dir)
    label = strip_prefix(subject)
    tasks = list(tasks)
    if layer_maps:
        paths = [Path(p) for p in layer_maps]
        task = name_entities(paths[0].name).get("task", "unknown")
        tasks.append(TaskMaps(task, paths, mask=Path(mask) if mask else None,
                              candidate_rdms=candidate_rdms))
    rows: dict[str, object] = {"participant": f"sub-{label}"}
    first_map = next((Path(t.layer_maps[0]) for t in tasks if t.layer_maps), None)
    space = None
    if first_map is not None:
        entities = name_entities(first_map.name)
        space = entities.get("space")
        for key in ("space", "res"):
            if key in entities:
                rows[key] = entities[key]
    rows["tasks"] = ", ".join(t.task for t in tasks) or "none"
    rows.update(summary or {})

    results, metadata = [], []
    for maps in tasks:
        body, meta = _task_html(maps, space)
        results += body
        metadata += meta
    contents = [("#preprocessing", "Preprocessing"),
                *((f"#results-{t.task}", f"Results: task-{t.task}") for t in tasks),
                ("#methods", "Methods")]
    body = ['<nav><ul class="toc">' + "".join(
                f'<li><a href="{escape(a)}">{escape(t)}</a></li>' for a, t in contents)
            + "</ul></nav>",
            "<h2>Data summary</h2>", mapping_table(rows),
            "<h2>Warnings</h2>", warnings_html([*warnings, *weights_warnings(metadata)]),
            '<h2 id="preprocessing">Preprocessing</h2>']
    body += _preprocessing_html(group_reportlets(reportlets, confounds), tr)
    body += results or ["<h2>Results</h2>", '<p class="note">No layer maps.</p>']
    body += _methods_html(methods)
    return write_page(output_dir / f"sub-{label}.html", f"bidsapp report: sub-{label}", body)
