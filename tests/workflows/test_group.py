"""The group level on participant outputs written by the tests themselves.

The planted data come from ``tests/stats/synthetic.py``: a small searchlight (scipy) over
simulated patterns with temporal autocorrelation, three spheres that carry the features
of layers 2, 6 and 9, and per-participant block-permutation nulls.
"""

import importlib.util
import json
import re
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import stats

from bidsapp.config import Config
from bidsapp.errors import BadDataError, MissingInputError, NothingSelected
from bidsapp.levels.group import run_group_level
from bidsapp.stats import max_over_layers

AFFINE = np.array([[8.0, 0, 0, -44], [0, 8, 0, -60], [0, 0, 8, -20], [0, 0, 0, 1]])
PREFIX = "task-music_space-MNI152NLin2009cAsym_res-8"
Q = 0.05


def _synthetic():
    name = "bidsapp_tests_stats_synthetic"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "stats" / "synthetic.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def write_participant(out, label, r, mask, *, null=None, affine=AFFINE,
                      space="MNI152NLin2009cAsym", res="8", names=None, sha="ab" * 32,
                      status="trained", layers=None, mask_desc="searchlight"):
    """Write one participant's outputs as the participant level does (see docs/statistics.md)."""
    func = Path(out) / f"sub-{label}" / "func"
    func.mkdir(parents=True, exist_ok=True)
    prefix = f"sub-{label}_task-music_space-{space}_res-{res}"
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine),
             func / f"{prefix}_desc-{mask_desc}_mask.nii.gz")
    names = names or [f"conv{k}" for k in range(1, r.shape[0] + 1)]
    for k in layers or range(1, r.shape[0] + 1):
        volume = np.full(mask.shape, np.nan, np.float32)
        volume[mask] = r[k - 1]
        stem = func / f"{prefix}_desc-layer{k:02d}_stat-r_statmap"
        nib.save(nib.Nifti1Image(volume, affine), f"{stem}.nii.gz")
        Path(f"{stem}.json").write_text(json.dumps({
            "Layer": names[k - 1], "LayerIndex": k, "SearchlightSize": 19, "NumberOfTRs": 96,
            "WeightsSHA256": sha, "WeightsStatus": status}))
    if null is not None:
        volume = np.zeros(mask.shape + (null.shape[0],), np.float32)
        volume[mask] = null.T
        nib.save(nib.Nifti1Image(volume, affine),
                 func / f"{prefix}_desc-maxnull_stat-r_statmap.nii.gz")


def output_dir(root):
    out = Path(root) / "out"
    out.mkdir(parents=True)
    (out / "dataset_description.json").write_text(json.dumps({
        "Name": "test", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "bidsapp"}]}))
    return out


def config_for(out, **kwargs):
    return Config(bids_dir=out.parent / "bids", output_dir=out, analysis_level="group", **kwargs)


def assert_self_contained(html):
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html)
    assert not [r for r in refs if not r.startswith(("data:", "#", "https://", "http://"))]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    synthetic = _synthetic()
    design = synthetic.Design(
        planted={2: ((3, 4, 6), 2.5), 6: ((8, 8, 4), 2.5), 9: ((6, 8, 9), 2.5)}, gain=0.6)
    data = synthetic.simulate_group(design, n_subjects=5, n_permutations=20, seed=5)
    out = output_dir(tmp_path_factory.mktemp("planted"))
    for s in range(5):
        write_participant(out, f"{s + 1:02d}", data["r"][s], data["mask"], null=data["null"][s],
                          status="untrained")
    assert run_group_level(config_for(out), [f"sub-{s:02d}" for s in range(1, 6)]) == 0
    neighbors = synthetic.nearest_neighbors(design.mask(), design.n_neighbors)
    data["null_voxels"] = ~(data["truth"][neighbors] > 0).any(axis=1)
    data["out"] = out
    return data


def _read(out, name):
    return np.asarray(nib.load(out / "group" / f"{PREFIX}_{name}.nii.gz").dataobj)


def test_outputs_are_written(planted):
    group = planted["out"] / "group"
    for name in ("desc-brain_mask", "desc-maxcorr_stat-r_statmap", "desc-maxcorr_stat-t_statmap",
                 "desc-maxcorr_stat-p_statmap", "desc-fdr_mask", "desc-meanlayer_statmap",
                 "desc-bestlayer_dseg", "desc-maxcorrperm_stat-p_statmap", "desc-permfdr_mask",
                 "desc-maxcorrdebiased_stat-r_statmap", "desc-maxcorrperm_stat-r_statmap",
                 "desc-permmeanlayer_statmap", "desc-permbestlayer_dseg"):
        assert (group / f"{PREFIX}_{name}.nii.gz").is_file(), name
        sidecar = json.loads((group / f"{PREFIX}_{name}.json").read_text())
        assert sidecar["Resolution"].startswith(f"{AFFINE[0, 0]:g} mm isotropic"), sidecar
    lookup = (group / f"{PREFIX}_desc-bestlayer_dseg.tsv").read_text().splitlines()
    assert lookup[0] == "index\tname\tcolor" and lookup[1].startswith("1\tconv1\t#")
    assert len(lookup) == 11
    assert not list(planted["out"].rglob(".tmp-*"))
    html = (planted["out"] / "group.html").read_text()
    assert_self_contained(html)
    assert "UNTRAINED" in html and "Permutation test" in html
    citation = (planted["out"] / "logs" / "CITATION.md").read_text()
    assert "q/10 = 0.005" in citation and "Stelzer" in citation


def test_t_p_and_fdr_match_references(planted):
    mask = planted["mask"]
    max_r, _ = max_over_layers(planted["r"], axis=1)
    reference = stats.ttest_1samp(max_r, 0.0, axis=0, alternative="greater")
    out = planted["out"]
    np.testing.assert_allclose(_read(out, "desc-maxcorr_stat-t_statmap")[mask],
                               reference.statistic, rtol=1e-5)
    np.testing.assert_allclose(_read(out, "desc-maxcorr_stat-p_statmap")[mask],
                               reference.pvalue, rtol=1e-5, atol=1e-30)
    significant = stats.false_discovery_control(reference.pvalue) <= Q / 10
    np.testing.assert_array_equal(_read(out, "desc-fdr_mask")[mask] > 0, significant)
    activation = _read(out, "desc-maxcorr_stat-r_statmap")[mask]
    np.testing.assert_allclose(activation, np.where(significant, max_r.mean(axis=0), 0),
                               rtol=1e-5)
    assert _read(out, "desc-maxcorr_stat-p_statmap")[~mask].min() == 1.0


def test_layer_map_and_false_positives(planted):
    mask, truth, out = planted["mask"], planted["truth"], planted["out"]
    significant = _read(out, "desc-permfdr_mask")[mask] > 0
    dseg = _read(out, "desc-permbestlayer_dseg")[mask]
    hits = significant & (truth > 0)
    assert hits.sum() >= 0.5 * (truth > 0).sum()
    assert (dseg[hits] == truth[hits]).mean() >= 0.9
    assert significant[planted["null_voxels"]].mean() <= Q
    np.testing.assert_array_equal(dseg > 0, significant)
    # The study's test keeps the null voxels too (its bias, documented in statistics.md),
    # while its layer map is right where the planted voxels are.
    study = _read(out, "desc-fdr_mask")[mask] > 0
    assert study[planted["null_voxels"]].mean() > Q
    study_hits = study & (truth > 0)
    assert (_read(out, "desc-bestlayer_dseg")[mask][study_hits] == truth[study_hits]).mean() >= 0.9


def _random_outputs(tmp_path, n=2, **kwargs):
    rng = np.random.default_rng(0)
    mask = np.zeros((6, 6, 6), bool)
    mask[1:5, 1:5, 1:5] = True
    out = output_dir(tmp_path)
    for s in range(n):
        # The first participant's mask has the other accepted name.
        write_participant(out, f"{s + 1:02d}", rng.normal(0.05, 0.05, (10, mask.sum())), mask,
                          mask_desc="brain" if s == 0 else "searchlight", **kwargs)
    return out, mask, rng


def test_without_nulls_only_the_study_test_runs(tmp_path):
    out, *_ = _random_outputs(tmp_path, n=3)
    assert run_group_level(config_for(out), ["sub-01", "sub-02", "sub-03"]) == 0
    assert (out / "group" / f"{PREFIX}_desc-fdr_mask.nii.gz").is_file()
    assert not list((out / "group").glob("*perm*"))
    assert "permutation test was skipped" in (out / "group.html").read_text()


def test_two_participants_are_flagged_and_an_empty_result_is_said_in_words(tmp_path):
    rng = np.random.default_rng(1)
    mask = np.zeros((6, 6, 6), bool)
    mask[1:5, 1:5, 1:5] = True
    out = output_dir(tmp_path)
    for label in ("01", "02"):  # pure noise around 0: nothing survives
        write_participant(out, label, rng.normal(0, 0.05, (10, mask.sum())), mask)
    assert run_group_level(config_for(out), ["sub-01", "sub-02"]) == 0
    html = " ".join((out / "group.html").read_text().split())
    assert "Only 2 participants" in html and "1 degree(s) of freedom" in html
    assert "p threshold none: no voxel survives" in html
    assert "p threshold</th><td>0<" not in html.replace(" ", "")


def _expect(error, match, out, subjects, **kwargs):
    with pytest.raises(error, match=match) as info:
        run_group_level(config_for(out, **kwargs), subjects)
    return info.value


def test_fewer_than_two_participants(tmp_path):
    out, *_ = _random_outputs(tmp_path, n=1)
    (out / "sub-02").mkdir()
    error = _expect(NothingSelected, "at least 2 participants", out, ["sub-01", "sub-02"])
    assert error.exit_code == 18
    error = _expect(MissingInputError, "sub-02 was selected", out, ["sub-01", "sub-02"],
                    participant_label=("01", "02"))
    assert error.exit_code == 66
    error = _expect(MissingInputError, "No participant-level outputs for sub-07", out,
                    ["sub-01"], participant_label=("01", "07"))
    assert error.exit_code == 66


@pytest.mark.parametrize("case, match", [
    ("affine", "different grid"),
    ("shape", "different grid"),
    ("space", "different spaces"),
    ("layers", "same layer maps"),
    ("names", "Layer 1 is"),
    ("weights", "different network weights"),
])
def test_mismatches_are_bad_data(tmp_path, case, match):
    out, mask, rng = _random_outputs(tmp_path, n=2)
    r = rng.normal(0.05, 0.05, (10, mask.sum()))
    if case == "affine":
        shifted = AFFINE.copy()
        shifted[0, 3] += 4
        write_participant(out, "03", r, mask, affine=shifted)
    elif case == "shape":
        big = np.zeros((7, 6, 6), bool)
        big[1:5, 1:5, 1:5] = True
        write_participant(out, "03", r, big)
    elif case == "space":
        write_participant(out, "03", r, mask, space="MNI152NLin6Asym")
    elif case == "layers":
        write_participant(out, "03", r, mask, layers=range(1, 10))
    elif case == "names":
        write_participant(out, "03", r, mask, names=[f"other{k}" for k in range(10)])
    elif case == "weights":
        write_participant(out, "03", r, mask, sha="cd" * 32)
    error = _expect(BadDataError, match, out, ["sub-01", "sub-02", "sub-03"])
    assert error.exit_code == 65
    assert error.path is not None and ("sub-03" in str(error.path) or "sub-03" in str(error))


def test_command_line_exit_code(tmp_path, run_app):
    out, mask, rng = _random_outputs(tmp_path, n=2)
    write_participant(out, "03", rng.normal(0, 0.05, (10, mask.sum())), mask, layers=range(1, 10))
    (tmp_path / "bids").mkdir()
    proc = run_app(tmp_path / "bids", out, "group")
    assert proc.returncode == 65, proc.stderr
    assert "sub-03" in proc.stderr and "Traceback" not in proc.stderr


def test_truncated_participant_map_names_the_file_and_the_participant(tmp_path, run_app):
    out, mask, rng = _random_outputs(tmp_path, n=3)
    layer = next((out / "sub-02").rglob("*_desc-layer04_stat-r_statmap.nii.gz"))
    layer.write_bytes(layer.read_bytes()[: len(layer.read_bytes()) // 2])
    (tmp_path / "bids").mkdir()
    proc = run_app(tmp_path / "bids", out, "group")
    assert proc.returncode == 65, proc.stderr
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("bidsapp: error:") and layer.name in message
    assert "rerun the participant level for sub-02" in message
    assert not (out / "group").exists() or not list((out / "group").glob("*.nii.gz"))
