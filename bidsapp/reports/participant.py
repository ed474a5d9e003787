"""The participant report, ``sub-<label>.html``: what went in, how it looked, what came out."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from bidsapp.labels import strip_prefix

from . import figures
from .html import (
    escape,
    figure_html,
    inline_svg,
    mapping_table,
    table_html,
    warnings_html,
    write_page,
)

_ENTITY = re.compile(r"(?:^|_)([a-zA-Z]+)-([a-zA-Z0-9+]+)")


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
    if "trained" in statuses and any("MagnaTagATune" not in src for src in sources):
        out.append(
            "The network was trained on " + "; ".join(sorted(sources)) + ", not on "
            "MagnaTagATune as in the study (models/README.md): it knows instruments, drums, "
            "tempo and loudness, but no vocals or genres beyond classical and folk."
        )
    hashes = {m.get("WeightsSHA256") for m in metadata if m.get("WeightsSHA256")}
    if len(hashes) > 1:
        out.append(f"The maps were computed with {len(hashes)} different weight files.")
    return out


def _layer_order(layer_maps: Sequence[Path], metadata: Sequence[Mapping]) -> list[int]:
    def key(i: int) -> tuple:
        index = metadata[i].get("LayerIndex")
        return (0, int(index)) if index is not None else (1, layer_maps[i].name)

    return sorted(range(len(layer_maps)), key=key)


def _motion_sections(confounds: Sequence[Path], tr: float | None) -> list[str]:
    out = []
    for path in confounds:
        path = Path(path)
        try:
            table = pd.read_csv(path, sep="\t")
        except (OSError, ValueError) as exc:
            out.append(f'<p class="warning">Cannot read {escape(path.name)} ({exc}).</p>')
            continue
        fd = table.get("framewise_displacement")
        if fd is not None:
            fd = np.asarray(fd, dtype=float)
            out.append(f'<p class="note">{escape(path.name)}: mean FD '
                       f"{np.nanmean(fd):.3f} mm, max FD {np.nanmax(fd):.3f} mm, "
                       f"{int(np.sum(fd > 0.5))} volumes with FD &gt; 0.5 mm.</p>")
        out.append(figure_html(figures.plot_motion(table, tr), f"Head motion, {path.name}"))
    return out


def write_participant_report(
    output_dir: str | Path,
    subject: str,
    *,
    layer_maps: Sequence[str | Path],
    mask: str | Path | None = None,
    reportlets: Sequence[str | Path] = (),
    confounds: Sequence[str | Path] = (),
    candidate_rdms: np.ndarray | str | Path | None = None,
    summary: Mapping[str, object] | None = None,
    warnings: Sequence[str] = (),
    tr: float | None = None,
) -> Path:
    """Write ``<output_dir>/sub-<label>.html``, a self-contained participant report.

    Sections: data summary, warnings, preprocessing reportlets (inline SVG), head
    motion, candidate RDMs and the per-layer searchlight maps.

    Parameters
    ----------
    output_dir : str or Path
        The derivatives root.
    subject : str
        The participant label, with or without ``sub-``.
    layer_maps : sequence of str or Path
        The ``desc-layer<NN>_stat-r_statmap`` files; their sidecars give the layer names
        (``Layer``, ``LayerIndex``), ``NumberOfTRs``, ``SearchlightSize`` and the weights.
    mask : str or Path, optional
        The analysis mask, to report its size.
    reportlets : sequence of str or Path, optional
        SVG reportlets of preprocessing (registration, masks, ...), in display order.
    confounds : sequence of str or Path, optional
        ``desc-confounds_timeseries.tsv`` files, one per run.
    candidate_rdms : numpy.ndarray or str or Path, optional
        (L, T, T) candidate RDMs, a ``.npy`` file holding them, or their figure as an
        ``.svg`` file (the participant workflow's ``desc-candidates_rdm.svg``).
    summary : mapping, optional
        More rows for the data summary (runs, TR, tasks, ...), shown as given.
    warnings : sequence of str, optional
        Warnings raised while processing this participant; weights warnings are added.
    tr : float, optional
        Repetition time, for the motion plots' time axis.

    Returns
    -------
    Path
        The report's path.
    """
    output_dir = Path(output_dir)
    label = strip_prefix(subject)
    paths = [Path(p) for p in layer_maps]
    metadata = [read_sidecar(p) for p in paths]
    order = _layer_order(paths, metadata)
    paths = [paths[i] for i in order]
    metadata = [metadata[i] for i in order]
    names = [str(m.get("Layer", f"layer {k + 1}")) for k, m in enumerate(metadata)]

    first = metadata[0] if metadata else {}
    rows: dict[str, object] = {"participant": f"sub-{label}", "layers": len(paths)}
    if paths:
        entities = dict(_ENTITY.findall(paths[0].name))
        for key in ("task", "space", "res"):
            if key in entities:
                rows[key] = entities[key]
    for key in ("NumberOfTRs", "SearchlightSize", "WeightsStatus", "WeightsSHA256"):
        if key in first:
            rows[key] = first[key]
    if mask is not None and Path(mask).is_file():
        rows["voxels in the analysis mask"] = int(np.count_nonzero(nib.load(mask).dataobj))
    rows.update(summary or {})
    all_warnings = [*warnings, *weights_warnings(metadata)]

    body = ["<h2>Data summary</h2>", mapping_table(rows),
            "<h2>Warnings</h2>", warnings_html(all_warnings),
            "<h2>Preprocessing</h2>"]
    body += [inline_svg(p) for p in reportlets] or ['<p class="note">No reportlets.</p>']
    body.append("<h2>Head motion</h2>")
    body += _motion_sections([Path(p) for p in confounds], tr) or [
        '<p class="note">No confounds files.</p>']
    body.append("<h2>Candidate RDMs</h2>")
    if isinstance(candidate_rdms, str | Path) and str(candidate_rdms).endswith(".svg"):
        body.append(inline_svg(candidate_rdms))
    elif candidate_rdms is not None:
        rdms = (np.load(candidate_rdms) if isinstance(candidate_rdms, str | Path)
                else np.asarray(candidate_rdms))
        rdm_names = names if len(names) == len(rdms) else [f"layer {k + 1}"
                                                          for k in range(len(rdms))]
        body.append(figure_html(figures.plot_candidate_rdms(rdms, rdm_names),
                                "Candidate RDMs (1 - Spearman between TRs), one per layer; "
                                "squares along the diagonal are trials."))
    else:
        body.append('<p class="note">Candidate RDMs not given.</p>')
    body.append("<h2>Searchlight maps per layer</h2>")
    if paths:
        images = [nib.load(p) for p in paths]
        body.append(figure_html(figures.plot_layer_maps(images, names),
                                "Spearman r between each layer's candidate RDM and the "
                                "searchlight target RDMs (axial maximum projections)."))
        body.append(table_html(
            [(k + 1, n, p.name) for k, (n, p) in enumerate(zip(names, paths, strict=True))],
            header=("index", "layer", "file")))
    else:
        body.append('<p class="note">No layer maps.</p>')
    return write_page(output_dir / f"sub-{label}.html", f"bidsapp report: sub-{label}", body)
