"""The tiny dataset end to end: BIDS validity, the truth against the data, determinism."""

from __future__ import annotations

import json
import shutil
import subprocess

import nibabel as nb
import numpy as np
import pytest
from conftest import SMALL, file_hashes

from bidsapp.bids.validate import find_validator
from bidsapp.simulate import make_params, simulate
from bidsapp.simulate import truth as sim_truth
from bidsapp.simulate.acquisition import slice_timing

TINY = make_params("tiny")


def test_passes_the_bids_validator(tiny_dataset):
    exe = find_validator()
    if exe is None:
        pytest.skip("bids-validator is not installed")
    proc = subprocess.run([exe, str(tiny_dataset), "--json", "--ignoreWarnings"],
                          capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(proc.stdout)
    assert report["issues"]["errors"] == [], report["issues"]["errors"]
    assert report["summary"]["subjects"] == ["01", "02"]


def test_layout_and_metadata(tiny_dataset):
    root = tiny_dataset
    assert (root / "participants.tsv").read_text().split() == ["participant_id", "sub-01",
                                                               "sub-02"]
    assert "CC0" in (root / "README").read_text()
    description = json.loads((root / "derivatives/truth/dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    stimuli = {p.name for p in (root / "stimuli").iterdir()}
    assert len(stimuli) == TINY.clips
    for sub in ("01", "02"):
        t1w = nb.load(root / f"sub-{sub}/anat/sub-{sub}_T1w.nii.gz")
        assert np.allclose(t1w.header.get_zooms(), TINY.t1w_voxel_size)
        for run in (1, 2):
            stem = root / f"sub-{sub}/func/sub-{sub}_task-music_run-{run}"
            meta = json.loads(stem.with_name(stem.name + "_bold.json").read_text())
            assert meta["TaskName"] == "music" and meta["RepetitionTime"] == TINY.tr
            np.testing.assert_allclose(meta["SliceTiming"], slice_timing(TINY.slices, TINY.tr))
            assert meta["SliceTiming"][1] == TINY.tr / 2  # interleaved: slice 1 after evens
            bold = nb.load(stem.with_name(stem.name + "_bold.nii.gz"))
            assert bold.header.get_zooms() == (4.0, 4.0, 4.0, 2.0)
            assert bold.header.get_xyzt_units() == ("mm", "sec")
            assert bold.shape[:3] == (TINY.matrix, TINY.matrix, TINY.slices)
            events = np.genfromtxt(stem.with_name(stem.name + "_events.tsv"), dtype=None,
                                   names=True, delimiter="\t", encoding="utf-8")
            assert set(events["stim_file"]) == stimuli
            assert (events["onset"] + events["duration"]).max() <= bold.shape[3] * TINY.tr


def test_truth_layer_map_has_the_planted_layers_at_the_centres(tiny_dataset):
    info = sim_truth.load(tiny_dataset)
    assert info["Space"] == "MNI152NLin2009aSym" and info["SNR"] == TINY.snr
    layer_map = sim_truth.load_layer_map(tiny_dataset)
    data = np.asarray(layer_map.dataobj)
    inv = np.linalg.inv(layer_map.affine)
    for sphere in info["Spheres"]:
        ijk = np.round(inv[:3, :3] @ sphere["center_mni"] + inv[:3, 3]).astype(int)
        assert data[tuple(ijk)] == sphere["layer"]
        mask = np.asarray(nb.load(tiny_dataset / "derivatives/truth" / sphere["mask"]).dataobj)
        assert mask.sum() == sphere["n_voxels"] == (data == sphere["layer"]).sum()
    assert sorted(s["layer"] for s in info["Spheres"]) == sorted(TINY.layers)


def test_motion_stays_within_the_limits(tiny_dataset):
    for sub in ("01", "02"):
        for run in (1, 2):
            motion = sim_truth.load_motion(tiny_dataset, sub, run)
            n_volumes = nb.load(tiny_dataset / f"sub-{sub}/func/sub-{sub}_task-music_run-{run}"
                                "_bold.nii.gz").shape[3]
            assert motion.shape == (n_volumes, 6)
            assert np.abs(motion[:, :3]).max() <= TINY.max_motion_mm
            assert np.abs(motion[:, 3:]).max() <= np.deg2rad(TINY.max_rotation_deg)
            assert np.abs(motion).max() > 0


def _design(root, sub, run, layer, n_volumes):
    """The layer's features per TR (first 5 principal components) placed at the onsets."""
    from bidsapp.audio import LAYER_NAMES, compute_features_many

    stem = root / f"sub-{sub}/func/sub-{sub}_task-music_run-{run}"
    events = np.genfromtxt(stem.with_name(stem.name + "_events.tsv"), dtype=None, names=True,
                           delimiter="\t", encoding="utf-8")
    paths = [root / "stimuli" / s for s in events["stim_file"]]
    features = compute_features_many(paths, TINY.tr, device="cpu")
    name = LAYER_NAMES[layer - 1]
    stacked = np.concatenate([features[p][name] for p in paths], axis=1).T
    _, _, components = np.linalg.svd(stacked - stacked.mean(0), full_matrices=False)
    design = np.zeros((n_volumes, 5))
    outside = np.ones(n_volumes)
    for path, onset in zip(paths, events["onset"], strict=True):
        scores = features[path][name].T @ components[:5].T
        start = int(round(onset / TINY.tr))
        design[start:start + len(scores)] = scores
        outside[start:start + len(scores)] = 0
    t = np.arange(n_volumes)
    # The geometry model fills the time outside the clips with a + b t per voxel (the
    # balancing that leaves nothing for the analysis's detrending to remove).
    return np.c_[design, np.ones(n_volumes), t, t**2, outside, outside * t]


def _r2(y, design):
    beta = np.linalg.lstsq(design, y, rcond=None)[0]
    residual = y - design @ beta
    y0 = y - np.polyval(np.polyfit(np.arange(len(y)), y, 2), np.arange(len(y)))
    return 1 - residual.var() / y0.var()


def test_voxels_in_spheres_follow_their_layer_and_others_do_not(tiny_dataset):
    """Truth transforms + BOLD: the sphere centre, mapped to native space, carries the layer."""
    info = sim_truth.load(tiny_dataset)
    bold = nb.load(tiny_dataset / "sub-01/func/sub-01_task-music_run-1_bold.nii.gz")
    data = np.asarray(bold.dataobj, dtype=float)
    inv = np.linalg.inv(bold.affine)
    null_centres = [(-30.0, 40.0, 30.0), (30.0, -60.0, 50.0)]
    for sphere in info["Spheres"]:
        design = _design(tiny_dataset, "01", 1, sphere["layer"], data.shape[3])

        def mean_r2(centre, design=design):
            native = sim_truth.template_to_native(tiny_dataset, "01", centre)[0]
            ijk = np.round(inv[:3, :3] @ native + inv[:3, 3]).astype(int)
            block = data[ijk[0] - 1:ijk[0] + 2, ijk[1] - 1:ijk[1] + 2, ijk[2] - 1:ijk[2] + 2]
            return np.mean([_r2(v, design) for v in block.reshape(-1, data.shape[3])])

        inside = mean_r2(sphere["center_mni"])
        outside = max(mean_r2(c) for c in null_centres)
        assert inside > 0.3 and inside > outside + 0.12, (sphere, inside, outside)


def test_same_seed_gives_identical_bytes(tiny_dataset, tmp_path):
    # Two processes, one per subject, against the fixture's one: the same bytes.
    again = simulate(tmp_path / "again", preset="tiny", seed=0, n_procs=2)
    assert file_hashes(again) == file_hashes(tiny_dataset)


def test_other_seed_differs(small_dataset, tmp_path):
    other = simulate(tmp_path / "seed4", preset="tiny", seed=4, **SMALL)
    hashes, reference = file_hashes(other), file_hashes(small_dataset)
    for rel in ("stimuli/synth-001.wav", "sub-01/anat/sub-01_T1w.nii.gz",
                "sub-01/func/sub-01_task-music_run-1_bold.nii.gz",
                "derivatives/truth/sub-01/func/sub-01_task-music_run-1_motion.tsv",
                "derivatives/truth/sub-01/anat/"
                "sub-01_from-MNI152NLin2009aSym_to-T1w_desc-affine_xfm.json"):
        assert hashes[rel] != reference[rel], rel


def test_rerun_into_a_simulation_replaces_it(small_dataset, tmp_path):
    root = tmp_path / "sim"
    shutil.copytree(small_dataset, root)
    before = file_hashes(root)
    simulate(root, preset="tiny", seed=3, **SMALL)
    after = file_hashes(root)
    assert not any("sub-02" in rel for rel in after)
    assert not (root / "sub-02").exists() and not (root / "derivatives/truth/sub-02").exists()
    # Random streams are keyed by subject, so sub-01 is unchanged by dropping sub-02.
    for rel in ("sub-01/anat/sub-01_T1w.nii.gz",
                "sub-01/func/sub-01_task-music_run-1_bold.nii.gz", "stimuli/synth-002.wav"):
        assert after[rel] == before[rel]


def test_overwrite_writes_into_a_foreign_folder_and_keeps_its_files(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    simulate(folder, preset="tiny", seed=3, overwrite=True, **SMALL)
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "sub-01/func/sub-01_task-music_run-1_bold.nii.gz").is_file()


def _truth_on_grid(dataset, voxel_mm):
    """An empty 40 x 48 x 40 image at ``voxel_mm`` over the truth's field, and the truth on it."""
    from nilearn.image import resample_to_img

    layer_map = sim_truth.load_layer_map(dataset)
    target = nb.Nifti1Image(np.zeros((40, 48, 40), np.float32),
                            nb.affines.rescale_affine(layer_map.affine, layer_map.shape,
                                                      (voxel_mm,) * 3, (40, 48, 40)))
    truth = np.asanyarray(resample_to_img(layer_map, target, interpolation="nearest",
                                          force_resample=True, copy_header=True).dataobj)
    return target, truth


def test_sphere_layer_profiles_find_the_planted_layer(small_dataset, tmp_path):
    # Maps on a coarser grid than the truth (as the app's can be): 0.1 everywhere, 0.6 in
    # the spheres planted with that layer, 0.3 for the layer after it.  Each sphere's mean
    # profile must peak at its planted layer, through the resampling of its mask.
    target, truth = _truth_on_grid(small_dataset, 8.0)
    for sub in ("01", "02"):
        func = tmp_path / "out" / f"sub-{sub}" / "func"
        func.mkdir(parents=True)
        for layer in range(1, 11):
            data = 0.1 + 0.5 * (truth == layer) + 0.2 * (truth == layer - 1)
            nb.Nifti1Image(data.astype(np.float32), target.affine).to_filename(
                func / f"sub-{sub}_task-music_desc-layer{layer:02d}_stat-r_statmap.nii.gz")
    profiles = sim_truth.sphere_layer_profiles(small_dataset, tmp_path / "out")
    spheres = sim_truth.load(small_dataset)["Spheres"]
    assert [p["planted_layer"] for p in profiles] == [s["layer"] for s in spheres]
    for p in profiles:
        assert p["best_layer"] == p["planted_layer"] and p["n_participants"] == 2
        assert p["mean_r"][p["planted_layer"] - 1] > 0.5
    assert sim_truth.sphere_layer_profiles(small_dataset, tmp_path / "empty") == []
    # One participant alone, named with or without its prefix; an absent one has no maps.
    for label in ("02", "sub-02"):
        alone = sim_truth.sphere_layer_profiles(small_dataset, tmp_path / "out", [label])
        assert [p["n_participants"] for p in alone] == [1] * len(spheres)
    assert sim_truth.sphere_layer_profiles(small_dataset, tmp_path / "out", ["03"]) == []


def test_group_layer_agreement_counts_matches_and_false_positives(small_dataset, tmp_path):
    # Group maps on a coarser grid than the truth: every planted voxel significant, the
    # layer map right except in a known set of planted voxels, and a known number of
    # significant voxels far from every planted center.
    target, truth = _truth_on_grid(small_dataset, 4.0)
    mask = np.zeros(target.shape, bool)
    mask[2:-2, 2:-2, 2:-2] = True
    planted = mask & (truth > 0)
    found = np.where(planted, truth, 0).astype(np.int16)
    wrong = np.flatnonzero(planted)[::4]  # every fourth planted voxel names another layer
    found.flat[wrong] = found.flat[wrong] % 10 + 1
    spheres = sim_truth.load(small_dataset)["Spheres"]
    xyz = nb.affines.apply_affine(target.affine, np.indices(target.shape).reshape(3, -1).T)
    distance = np.min([np.linalg.norm(xyz - s["center_mni"], axis=1) for s in spheres], axis=0)
    far = mask & (distance.reshape(target.shape) > sim_truth.NULL_DISTANCE_MM)
    false_positives = np.flatnonzero(far)[:50]
    significant = planted.copy()
    significant.flat[false_positives] = True
    found.flat[false_positives] = 1
    group = tmp_path / "out" / "group"
    group.mkdir(parents=True)
    for name, data in (("desc-brain_mask", mask), ("desc-fdr_mask", significant),
                       ("desc-bestlayer_dseg", found)):
        nb.Nifti1Image(data.astype(np.int16), target.affine).to_filename(
            group / f"task-music_space-MNI152NLin2009aSym_{name}.nii.gz")

    result = sim_truth.group_layer_agreement(small_dataset, tmp_path / "out")
    assert "permutation" not in result  # its maps were not written
    assert result["planted_voxels_in_mask"] == planted.sum() > 20
    assert result["null_voxels"] == far.sum()
    study = result["study"]
    assert study["significant_planted"] == planted.sum()
    assert study["significant_voxels"] == planted.sum() + 50
    assert study["layer_match"] == round(1 - len(wrong) / planted.sum(), 4)
    assert study["false_positive_fraction"] == round(50 / far.sum(), 5)
    for layer, row in study["per_planted_layer"].items():
        assert row["significant"] == row["planted"] == (planted & (truth == int(layer))).sum()
        assert sum(row["found_layers"].values()) == row["significant"]
    with pytest.raises(sim_truth.MissingInputError, match="brain mask"):
        sim_truth.group_layer_agreement(small_dataset, tmp_path / "nothing")
