"""The group report, ``group.html``: figures of the study, cluster tables and parameters."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from . import figures
from .html import escape, figure_html, mapping_table, table_html, warnings_html, write_page

if TYPE_CHECKING:
    import pandas as pd
import pandas as pd
from nilearn.reporting import get_clusters_table

MAX_CLUSTER_ROWS = 60
"""Peaks listed per test; the maps hold the rest."""


@dataclass
class InferenceMaps:
    """The thresholded maps of one group test, as shown in the report.

    Attributes
    ----------
    title : str
        Heading, e.g. "Study: t-test of the maximum, FDR q/L".
    description : str
        One paragraph on what was tested.
    activation : nibabel image
        Mean maximum correlation in significant voxels, 0 elsewhere.
    layer_dseg : nibabel image
        Modal layer 1..L in significant voxels, 0 elsewhere.
    peak_stat : nibabel image
        A positive statistic in significant voxels, 0 elsewhere; clusters and peaks are
        taken from it.
    peak_stat_name : str
        What ``peak_stat`` is, e.g. "t".
    n_significant : int
        Number of significant voxels.
    files : list of str
        Names of the output files of this test.
    """

    title: str
    description: str
    activation: nib.spatialimages.SpatialImage
    layer_dseg: nib.spatialimages.SpatialImage
    peak_stat: nib.spatialimages.SpatialImage
    peak_stat_name: str
    n_significant: int
    files: list[str] = field(default_factory=list)


@dataclass
class UnthresholdedMaps:
    """The group maps shown whatever the tests found, labelled as unthresholded.

    Attributes
    ----------
    mean_max_r : nibabel image
        Mean over participants of the maximum r over layers, every voxel analysed.
    layer : nibabel image
        Modal layer 1..L over participants, every voxel analysed.
    effect : nibabel image
        An effect size per voxel, e.g. the debiased mean maximum r.
    effect_name : str
        What ``effect`` is, shown as its title.
    """

    mean_max_r: nib.spatialimages.SpatialImage
    layer: nib.spatialimages.SpatialImage
    effect: nib.spatialimages.SpatialImage
    effect_name: str


@dataclass
class GroupSection:
    """Everything the report shows about one task.

    Attributes
    ----------
    title : str
        Heading, e.g. "task-music, space-MNI152NLin2009cAsym, res-2".
    space : str
        The template; coordinates are called MNI when it is an MNI space.
    layer_names : list of str
        One name per layer.
    r_by_layer : list of numpy.ndarray
        Per layer, correlations of all participants in the group mask (Fig. 6).
    parameters : dict
        Shown as a table.
    tests : list of InferenceMaps
        The study's test and, when available, the permutation test.
    warnings : list of str
        Shown highlighted.
    unthresholded : UnthresholdedMaps, optional
        Shown before the tests, whether or not any voxel is significant.
    """

    title: str
    space: str
    layer_names: list[str]
    r_by_layer: list[np.ndarray]
    parameters: dict
    tests: list[InferenceMaps]
    warnings: list[str] = field(default_factory=list)
    unthresholded: UnthresholdedMaps | None = None


def cluster_table(peak_stat: nib.spatialimages.SpatialImage,
                  layer_dseg: nib.spatialimages.SpatialImage,
                  activation: nib.spatialimages.SpatialImage,
                  layer_names: Sequence[str], stat_name: str = "stat") -> pd.DataFrame:
    """Return the significant clusters with their peaks, peak layer and peak correlation.

    Clusters are face-, edge- or corner-connected significant voxels; peaks and sub-peaks
    (8 mm apart) come from :func:`nilearn.reporting.get_clusters_table` on
    ``peak_stat``.

    Parameters
    ----------
    peak_stat : nibabel image
        Positive in significant voxels, 0 elsewhere.
    layer_dseg : nibabel image
        Layer index per voxel.
    activation : nibabel image
        Mean maximum correlation per voxel.
    layer_names : sequence of str
        One name per layer.
    stat_name : str, optional
        Name of ``peak_stat`` in the column "peak <stat_name>".

    Returns
    -------
    pandas.DataFrame
        Columns: cluster, x, y, z (mm, template world coordinates), peak statistic,
        cluster size (mm3), peak layer, mean max r at the peak.  Empty when nothing is
        significant.
    """
    peak = f"peak {stat_name}"
    columns = ["cluster", "x", "y", "z", peak, "size (mm3)", "peak layer", "mean max r"]
    if not np.any(np.asarray(peak_stat.dataobj) > 0):
        return pd.DataFrame(columns=columns)
    with warnings.catch_warnings():
        # A sub-peak off the cluster body is moved to the nearest voxel in it; fine here.
        warnings.filterwarnings("ignore", message=".*falls outside of the cluster body")
        table = get_clusters_table(peak_stat, stat_threshold=0.0)
    xyz = table[["X", "Y", "Z"]].to_numpy(dtype=float)
    ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(peak_stat.affine), xyz)).astype(int)
    ijk = np.clip(ijk, 0, np.array(peak_stat.shape[:3]) - 1)
    layers = np.asarray(layer_dseg.dataobj)[tuple(ijk.T)].astype(int)
    r = np.asarray(activation.dataobj)[tuple(ijk.T)]
    names = [f"{k} {layer_names[k - 1]}" if 0 < k <= len(layer_names) else "-" for k in layers]
    return pd.DataFrame({
        "cluster": table["Cluster ID"].astype(str), "x": xyz[:, 0], "y": xyz[:, 1],
        "z": xyz[:, 2], peak: table["Peak Stat"].astype(float),
        "size (mm3)": table["Cluster Size (mm3)"], "peak layer": names, "mean max r": r,
    }, columns=columns)


def _cluster_html(clusters: pd.DataFrame, space: str) -> str:
    if clusters.empty:
        return '<p class="note">No significant voxels, hence no clusters.</p>'
    where = "MNI coordinates" if space.upper().startswith("MNI") else f"{space} coordinates"
    rows = []
    for row in clusters.head(MAX_CLUSTER_ROWS).itertuples(index=False):
        size = "" if row[5] in ("", None) or row[5] != row[5] else f"{float(row[5]):.0f}"
        rows.append((row[0], f"{row[1]:.1f}", f"{row[2]:.1f}", f"{row[3]:.1f}",
                     f"{row[4]:.2f}", size, row[6], f"{row[7]:.3f}"))
    note = (f'<p class="note">{where} in mm; {len(clusters)} peaks'
            + (f", first {MAX_CLUSTER_ROWS} shown" if len(clusters) > MAX_CLUSTER_ROWS else "")
            + "; sub-peaks (1a, 1b, ...) have no size of their own.</p>")
    return note + table_html(rows, header=list(clusters.columns))


def _test_html(test: InferenceMaps, section: GroupSection) -> list[str]:
    names = section.layer_names
    out = [f"<h3>{escape(test.title)}</h3>", f"<p>{escape(test.description)}</p>",
           f"<p><b>{test.n_significant}</b> significant voxels.</p>"]
    if test.files:
        out.append('<p class="note">Files of this test (in <code>group/</code>):</p>'
                   '<ul class="files">' + "".join(f"<li>{escape(Path(f).name)}</li>"
                                                  for f in test.files) + "</ul>")
    if test.n_significant:
        out.append(figure_html(figures.plot_layer_histograms(test.layer_dseg, names),
                               "Layer assignments of significant voxels per hemisphere "
                               "(modal layer over participants; cf. the study's Fig. 7)."))
        out.append(figure_html(
            figures.plot_surface_maps(test.activation, test.layer_dseg, names),
            "Activation map (mean maximum r) and layer map (modal layer) on the inflated "
            "fsaverage5 surface (cf. the study's Fig. 8)."))
        out.append(figure_html(
            figures.plot_glass_brains(test.activation, test.layer_dseg, len(names)),
            "Glass brain of the activation map and of the layer map."))
    clusters = cluster_table(test.peak_stat, test.layer_dseg, test.activation, names,
                             test.peak_stat_name)
    out += ["<h4>Significant clusters</h4>", _cluster_html(clusters, section.space)]
    return out


def _unthresholded_html(maps: UnthresholdedMaps, section: GroupSection) -> list[str]:
    """Return the unthresholded maps: always shown, never to be read as significant."""
    return [
        "<h3>Unthresholded maps</h3>",
        '<p class="warning">UNTHRESHOLDED: every voxel analysed is shown, significant or '
        "not. These maps say where the values are largest, not where they exceed chance; "
        "the tests below say that.</p>",
        figure_html(figures.plot_glass_brain_rows([
            ("mean maximum r (unthresholded)", maps.mean_max_r),
            (f"{maps.effect_name} (unthresholded)", maps.effect)]),
            f"Glass brains, unthresholded: the mean over participants of the maximum r over "
            f"layers, and the effect size ({maps.effect_name})."),
        figure_html(figures.plot_best_layer_map(maps.layer, section.layer_names, section.space,
                                                title="modal layer (unthresholded)"),
                    "Layer map, unthresholded: the layer most participants had at each voxel "
                    "analysed, significant or not. Green shallow, red deep."),
    ]


def write_group_report(output_dir: str | Path, sections: Sequence[GroupSection], *,
                       methods: Sequence[str] = (),
                       summary: Mapping[str, object] | None = None) -> Path:
    """Write ``<output_dir>/group.html``, a self-contained group report.

    Parameters
    ----------
    output_dir : str or Path
        The derivatives root.
    sections : sequence of GroupSection
        One per task.
    methods : sequence of str, optional
        Methods paragraphs shown at the end.
    summary : mapping, optional
        Rows of a table at the top (participants, versions, ...).

    Returns
    -------
    Path
        The report's path.
    """
    body = []
    if summary:
        body += ["<h2>Summary</h2>", mapping_table(summary)]
    for section in sections:
        body += [f"<h2>{escape(section.title)}</h2>", "<h3>Parameters</h3>",
                 mapping_table(section.parameters), "<h3>Warnings</h3>",
                 warnings_html(section.warnings)]
        body.append(figure_html(
            figures.plot_layer_distributions(section.r_by_layer, section.layer_names),
            "Distributions of the Spearman correlations between each candidate RDM and all "
            "searchlight target RDMs, all participants, uncorrected, with a Gaussian fit "
            "(red; cf. the study's Fig. 6)."))
        if section.unthresholded is not None:
            body += _unthresholded_html(section.unthresholded, section)
        for test in section.tests:
            body += _test_html(test, section)
    if methods:
        body.append("<h2>Methods</h2>")
        body += [f"<p>{escape(' '.join(m.split()))}</p>" for m in methods]
    return write_page(Path(output_dir) / "group.html", "bidsapp group report", body)
