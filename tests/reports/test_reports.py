import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from bidsapp.reports import (
    GroupSection,
    InferenceMaps,
    cluster_table,
    figures,
    write_citation,
    write_group_report,
    write_participant_report,
)
from bidsapp.reports.html import inline_svg

NAMES = [f"conv{k}" for k in range(1, 11)]
AFFINE = np.array([[6.0, 0, 0, -90], [0, 6, 0, -126], [0, 0, 6, -72], [0, 0, 0, 1]])


def assert_self_contained(html: str) -> None:
    """Every src/href is inline data, an in-page anchor or a web address."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html)
    local = [r for r in refs if not r.startswith(("data:", "#", "https://", "http://"))]
    assert not local, local
    assert "<link" not in html and "<script src" not in html


def _maps(shape=(31, 37, 31), seed=0):
    """An activation and a layer map in MNI space: two blobs, one per hemisphere."""
    rng = np.random.default_rng(seed)
    ijk = np.indices(shape).transpose(1, 2, 3, 0)
    world = nib.affines.apply_affine(AFFINE, ijk)
    activation = np.zeros(shape, np.float32)
    layers = np.zeros(shape, np.int16)
    for center, layer in (((-50, -20, 5), 3), ((50, -20, 5), 8)):
        blob = np.linalg.norm(world - center, axis=-1) < 14
        activation[blob] = 0.1 + 0.05 * rng.random(blob.sum())
        layers[blob] = layer
    return nib.Nifti1Image(activation, AFFINE), nib.Nifti1Image(layers, AFFINE)


def test_figures_render():
    activation, layers = _maps()
    rng = np.random.default_rng(0)
    checks = [
        (figures.plot_layer_distributions(list(rng.normal(0.05, 0.03, (10, 500))), NAMES), 10),
        (figures.plot_layer_histograms(layers, NAMES), 2),
        (figures.plot_candidate_rdms(rng.random((10, 12, 12)), NAMES), 10),
        (figures.plot_motion(pd.DataFrame({"trans_x": rng.random(20),
                                           "framewise_displacement": rng.random(20)}), 2.0), 3),
    ]
    for fig, n_axes in checks:
        assert isinstance(fig, Figure)
        assert len([ax for ax in fig.axes if ax.get_visible()]) >= n_axes


def test_surface_and_glass_brain_offline():
    activation, layers = _maps()
    surface = figures.plot_surface_maps(activation, layers, NAMES)
    assert len([ax for ax in surface.axes if ax.name == "3d"]) == 4
    glass = figures.plot_glass_brains(activation, layers, 10)
    assert isinstance(glass, Figure)


def test_hemisphere_split_and_layer_histogram_counts():
    activation, layers = _maps()
    side = figures.hemisphere_of_voxels(layers)
    data = np.asarray(layers.dataobj)
    assert set(np.unique(data[side < 0])) == {0, 3}
    assert set(np.unique(data[side > 0])) == {0, 8}


def test_cluster_table_finds_both_blobs_with_their_layer():
    activation, layers = _maps()
    table = cluster_table(activation, layers, activation, NAMES, "r")
    main = table[~table["cluster"].str.contains("[a-z]")]
    assert len(main) == 2
    assert sorted(main["peak layer"]) == ["3 conv3", "8 conv8"]
    assert (np.sign(main["x"]) == np.where(main["peak layer"] == "3 conv3", -1, 1)).all()
    empty = cluster_table(nib.Nifti1Image(np.zeros((4, 4, 4)), AFFINE),
                          nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), AFFINE),
                          nib.Nifti1Image(np.zeros((4, 4, 4)), AFFINE), NAMES)
    assert empty.empty


def test_inline_svg(tmp_path):
    plain = tmp_path / "a.svg"
    plain.write_text('<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg xmlns="http://www.w3.org/2000/'
                     'svg"><rect id="r" width="1" height="1"/><use href="#r"/></svg>')
    assert inline_svg(plain).startswith("<svg")
    web = tmp_path / "web.svg"
    web.write_text('<svg xmlns="http://www.w3.org/2000/svg"><a href="https://nipreps.org">'
                   "x</a></svg>")
    assert inline_svg(web).startswith("<svg")
    linked = tmp_path / "b.svg"
    linked.write_text('<svg xmlns="http://www.w3.org/2000/svg" '
                      'xmlns:xlink="http://www.w3.org/1999/xlink"><image xlink:href="bg.png"/>'
                      "</svg>")
    assert inline_svg(linked).startswith('<img src="data:image/svg+xml;base64,')
    assert 'class="warning"' in inline_svg(tmp_path / "missing.svg")


def _participant_outputs(root: Path):
    func = root / "sub-01" / "func"
    func.mkdir(parents=True)
    activation, _ = _maps()
    paths = []
    for k, name in enumerate(NAMES, start=1):
        path = func / f"sub-01_task-music_space-MNI152NLin2009cAsym_res-6_desc-layer{k:02d}" \
                      "_stat-r_statmap.nii.gz"
        nib.save(activation, path)
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps({
            "Layer": name, "LayerIndex": k, "SearchlightSize": 100, "NumberOfTRs": 40,
            "WeightsSHA256": "0" * 64, "WeightsStatus": "untrained"}))
        paths.append(path)
    mask = func / "sub-01_task-music_space-MNI152NLin2009cAsym_res-6_desc-brain_mask.nii.gz"
    nib.save(nib.Nifti1Image((np.asarray(activation.dataobj) > 0).astype(np.uint8), AFFINE),
             mask)
    confounds = func / "sub-01_task-music_run-1_desc-confounds_timeseries.tsv"
    rng = np.random.default_rng(1)
    pd.DataFrame({c: rng.normal(0, 0.1, 30) for c in
                  ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")}
                 ).assign(framewise_displacement=rng.random(30)).to_csv(confounds, sep="\t",
                                                                         index=False)
    reportlet = root / "reportlet.svg"
    reportlet.write_text('<svg xmlns="http://www.w3.org/2000/svg"><text>REGISTRATION</text></svg>')
    return list(reversed(paths)), mask, confounds, reportlet


def test_participant_report(tmp_path):
    paths, mask, confounds, reportlet = _participant_outputs(tmp_path)
    rdms = tmp_path / "rdms.npy"
    np.save(rdms, np.random.default_rng(0).random((10, 16, 16)))
    out = write_participant_report(tmp_path, "sub-01", layer_maps=paths, mask=mask,
                                   reportlets=[reportlet], confounds=[confounds],
                                   candidate_rdms=rdms, summary={"runs": 2},
                                   warnings=["slice timing skipped"], tr=2.0)
    assert out == tmp_path / "sub-01.html"
    html = out.read_text()
    assert_self_contained(html)
    assert "UNTRAINED" in html and "slice timing skipped" in html
    assert "REGISTRATION" in html  # the reportlet is inlined
    # motion (no motion reportlet, so drawn here, once), RDMs, layer maps, best layer, maximum
    assert html.count("data:image/png;base64,") == 5
    assert html.count("<figcaption>task-music, run-1: head motion") == 1
    assert '<h3 id="prep-task-music-run-1" class="run">task-music, run-1</h3>' in html
    assert "Best layer (task-music)" in html
    assert "No permutation null was written" in html
    assert html.index("conv1") < html.index("conv10")  # layers in LayerIndex order
    assert not list(tmp_path.glob(".tmp-*"))


def test_group_report(tmp_path):
    activation, layers = _maps()
    test = InferenceMaps("A test", "What it tests.", activation, layers, activation, "r", 123,
                    ["x.nii.gz"])
    section = GroupSection("task-music", "MNI152NLin2009cAsym", NAMES,
                           list(np.random.default_rng(0).normal(0.05, 0.02, (10, 300))),
                           {"FDR q": 0.05}, [test], ["a warning"])
    html = write_group_report(tmp_path, [section], methods=["Methods paragraph."]).read_text()
    assert_self_contained(html)
    assert html.count("data:image/png;base64,") == 4  # Fig. 6, 7, 8 and the glass brain
    assert "MNI coordinates" in html and "8 conv8" in html and "a warning" in html


def test_citation_keeps_each_level(tmp_path):
    write_citation(tmp_path, ["Participant text one.", "Participant text one.", "Two."])
    write_citation(tmp_path, ["Group text."], section="group")
    text = (tmp_path / "logs" / "CITATION.md").read_text()
    assert text.count("Participant text one.") == 1
    assert text.index("Participant text one.") < text.index("Two.") < text.index("Group text.")
    assert re.search(r"- nilearn \d", text) and re.search(r"- NumPy \d", text)
    assert "Benjamini, Y., Hochberg, Y. (1995)" in text
    write_citation(tmp_path, ["New participant text."])
    text = (tmp_path / "logs" / "CITATION.md").read_text()
    assert "Participant text one." not in text and "Group text." in text


@pytest.mark.parametrize("status, expected", [("trained", 0), ("untrained", 1)])
def test_weights_warnings(status, expected):
    from bidsapp.reports.participant import weights_warnings

    assert len(weights_warnings([{"WeightsStatus": status, "WeightsSHA256": "a"}])) == expected
    assert len(weights_warnings([{"WeightsSHA256": "a"}, {"WeightsSHA256": "b"}])) == 1


def test_weights_warnings_name_what_the_network_was_trained_on():
    from bidsapp.reports.participant import weights_warnings

    def warn(source):
        return weights_warnings([{"WeightsStatus": "trained", "WeightsSHA256": "a",
                                  "WeightsTrainingData": source}])

    assert warn("MagnaTagATune (Law et al., 2009)") == []
    rendered = warn("music21 corpus rendered with FluidSynth and FluidR3_GM (bidsapp.training)")
    assert len(rendered) == 1 and "no vocals" in rendered[0]
    # Distilled weights mention MagnaTagATune (the teacher's data) but were not trained on it.
    distilled = warn("music21 corpus rendered ..., and real recordings from Debian packages "
                     "warzone2100-music 4.3.3-3 tagged by a teacher (musicnn MTT_musicnn, "
                     "trained on MagnaTagATune)")
    assert len(distilled) == 1 and "teacher model" in distilled[0]
    assert "not on MagnaTagATune as in the study" in distilled[0]
