"""The participant RSA workflow on template-space data, from patterns to named maps."""

from __future__ import annotations

import dataclasses
import json
from functools import partial

import nibabel as nb
import numpy as np

from bidsapp.audio import weights_info
from bidsapp.bids import collect_participants, open_layout
from bidsapp.cli.parser import parse_args
from bidsapp.design import subject_designs
from bidsapp.interfaces.features import CandidateRDMs
from bidsapp.rsa import searchlight
from bidsapp.stats import participant_null, participant_seed
from bidsapp.workflows.rsa import init_rsa_wf


def test_rsa_workflow_writes_named_maps(bids_root, tmp_path):
    out = tmp_path / "out"
    config = parse_args([str(bids_root), str(out), "participant", "--participant-label", "01",
                         "--searchlight-size", "27", "--device", "cpu",
                         "--n-permutations", "5", "--random-seed", "3"])
    subject = collect_participants(open_layout(bids_root), config)[0]
    design = subject_designs(subject, config)["music"]
    design = dataclasses.replace(design, runs=tuple(dataclasses.replace(run, start_time=1.0)
                                                    for run in design.runs))
    rdms = CandidateRDMs(design=design.to_dict(), cache_dir=str(out / "features"),
                         device="cpu")
    rdms_result = rdms.run(cwd=str(tmp_path))
    # The raw runs stand in for template-space data: same grid for every run and the mask.
    first = nb.load(subject.bold[0].path)
    mask = tmp_path / "mask.nii.gz"
    nb.Nifti1Image(np.ones(first.shape[:3], np.uint8), first.affine).to_filename(mask)

    wf = init_rsa_wf(config=config, design=design.to_dict(), source_file=subject.bold[0].path,
                     subject="01", space_entities={"space": "MNI152NLin2009aSym"},
                     chunk_centers=200)
    wf.base_dir = str(tmp_path / "work")
    wf.config["execution"]["crashdump_dir"] = str(tmp_path / "crash")
    wf.inputs.inputnode.bold_files = [str(r.path) for r in subject.bold]
    wf.inputs.inputnode.mask_file = str(mask)
    wf.inputs.inputnode.candidate_rdms = rdms_result.outputs.candidate_rdms
    wf.inputs.inputnode.candidate_info = rdms_result.outputs.info
    wf.run(plugin="Linear")

    func = out / "sub-01" / "func"
    prefix = "sub-01_task-music_space-MNI152NLin2009aSym"
    layers = sorted(func.glob(f"{prefix}_desc-layer*_stat-r_statmap.nii.gz"))
    assert [p.name.split("desc-")[1][:7] for p in layers] == [f"layer{k:02d}"
                                                               for k in range(1, 11)]
    meta = json.loads((func / f"{prefix}_desc-layer03_stat-r_statmap.json").read_text())
    assert meta["Layer"] == "conv2_2" and meta["LayerIndex"] == 3
    weights = weights_info()
    assert meta["WeightsStatus"] == weights["status"] and meta["SearchlightSize"] == 27
    assert meta["WeightsTrainingData"] == weights["training_data"]
    r = np.stack([np.asanyarray(nb.load(p).dataobj) for p in layers], axis=-1)
    assert r.shape == (8, 8, 8, 10)
    assert np.nanmax(np.abs(r)) <= 1.0 and np.isfinite(r).mean() > 0.9
    best = np.asanyarray(nb.load(func / f"{prefix}_desc-bestlayer_dseg.nii.gz").dataobj)
    maxr = np.asanyarray(nb.load(func / f"{prefix}_desc-maxcorr_stat-r_statmap.nii.gz").dataobj)
    finite = np.isfinite(maxr)
    np.testing.assert_allclose(maxr[finite], np.nanmax(r, axis=-1)[finite])
    np.testing.assert_array_equal(best[finite], np.nanargmax(r, axis=-1)[finite] + 1)
    lookup = (func / f"{prefix}_desc-bestlayer_dseg.tsv").read_text().splitlines()
    assert lookup[0] == "index\tname" and lookup[1] == "1\tconv1" and len(lookup) == 11

    # The permutation null, computed chunk by chunk (200 centers each), is the null of
    # the whole mask at once: every chunk drew the same trial orders.
    null_file = func / f"{prefix}_desc-maxnull_stat-r_statmap.nii.gz"
    null_meta = json.loads(null_file.with_name(null_file.name[:-7] + ".json").read_text())
    null = np.asanyarray(nb.load(null_file).dataobj)
    assert null.shape == (8, 8, 8, 5) and null.dtype == np.float32
    assert null_meta["NumberOfPermutations"] == 5
    assert null_meta["RandomSeed"] == participant_seed(3, "01")
    prepared = tmp_path / "work" / "rsa_wf" / "prepare_patterns"
    patterns = np.load(prepared / "patterns.npy")
    nbrs = np.load(prepared / "neighbors.npy")
    assert sum(null_meta["TrialLengths"]) == patterns.shape[0] == design.n_trs
    assert null_meta["TrialLengths"] == design.trial_lengths
    direct = participant_null(patterns, nbrs, np.load(rdms_result.outputs.candidate_rdms),
                              design.trial_lengths, 5, participant_seed(3, "01"),
                              partial(searchlight, device="cpu"))
    np.testing.assert_array_equal(direct.block_orders, null_meta["BlockOrders"])
    np.testing.assert_allclose(null.reshape(-1, 5), direct.max_r.T, atol=1e-6)
    # The maps came with the null's first batch: they are the plain searchlight's.
    np.testing.assert_array_equal(
        r.reshape(-1, 10), searchlight(patterns, nbrs, np.load(rdms_result.outputs.candidate_rdms),
                                       device="cpu"))
    assert np.all(np.abs(null) <= 1.0)
    assert (out / "sub-01" / "figures" / "sub-01_task-music_desc-candidates_rdm.svg").is_file()
