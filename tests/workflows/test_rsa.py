"""The participant RSA workflow on template-space data, from patterns to named maps."""

from __future__ import annotations

import dataclasses
import json
import logging
from functools import partial

import nibabel as nb
import numpy as np
import pytest
from nipype.pipeline.engine.utils import generate_expanded_graph

from bidsapp.audio import weights_info
from bidsapp.bids import collect_participants, open_layout
from bidsapp.cli.parser import parse_args
from bidsapp.design import subject_designs
from bidsapp.interfaces.features import CandidateRDMs
from bidsapp.rsa import searchlight
from bidsapp.stats import participant_null, participant_seed
from bidsapp.workflows.rsa import init_rsa_wf


def _rsa_setup(bids_root, tmp_path, *args):
    """Config, subject, design and candidate RDMs of sub-01's task for the RSA workflow."""
    out = tmp_path / "out"
    config = parse_args([str(bids_root), str(out), "participant", "--participant-label", "01",
                         "--searchlight-size", "27", "--device", "cpu",
                         "--n-permutations", "5", "--random-seed", "3", *args])
    subject = collect_participants(open_layout(bids_root), config)[0]
    design = subject_designs(subject, config)["music"]
    design = dataclasses.replace(design, runs=tuple(dataclasses.replace(run, start_time=1.0)
                                                    for run in design.runs))
    rdms = CandidateRDMs(design=design.to_dict(), cache_dir=str(out / "features"),
                         device="cpu")
    rdms_result = rdms.run(cwd=str(tmp_path))
    return config, subject, design, rdms_result


def _write_mask(subject, path, mask=None):
    """Write a mask on the runs' grid: the whole grid unless ``mask`` (booleans) is given.

    The raw runs stand in for template-space data: same grid for every run and the mask.
    """
    first = nb.load(subject.bold[0].path)
    mask = np.ones(first.shape[:3], bool) if mask is None else mask
    nb.Nifti1Image(mask.astype(np.uint8), first.affine).to_filename(path)
    return path


def _rsa_wf(config, subject, design, rdms_result, work, mask_file, chunk_centers=200):
    """The RSA workflow on sub-01's raw runs and ``mask_file``, ready to run in ``work``."""
    wf = init_rsa_wf(config=config, design=design.to_dict(), source_file=subject.bold[0].path,
                     subject="01", space_entities={"space": "MNI152NLin2009aSym"},
                     chunk_centers=chunk_centers)
    wf.base_dir = str(work)
    wf.config["execution"]["crashdump_dir"] = str(work.parent / "crash")
    wf.inputs.inputnode.bold_files = [str(r.path) for r in subject.bold]
    wf.inputs.inputnode.mask_file = str(mask_file)
    wf.inputs.inputnode.candidate_rdms = rdms_result.outputs.candidate_rdms
    wf.inputs.inputnode.candidate_info = rdms_result.outputs.info
    return wf


def test_rsa_workflow_writes_named_maps(bids_root, tmp_path):
    out = tmp_path / "out"
    config, subject, design, rdms_result = _rsa_setup(bids_root, tmp_path)
    wf = _rsa_wf(config, subject, design, rdms_result, tmp_path / "work",
                 _write_mask(subject, tmp_path / "mask.nii.gz"))
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


def _searchlight_nodes(wf) -> list[str]:
    """Names of the searchlight nodes in the graph a plugin runs (iterables expanded)."""
    graph = generate_expanded_graph(wf._create_flat_graph())
    return sorted(node.name for node in graph.nodes if node.name.startswith("searchlight"))


def test_searchlight_jobs_are_separate_nodes_of_the_graph(bids_root, tmp_path):
    config, subject, design, rdms_result = _rsa_setup(bids_root, tmp_path)
    mask = _write_mask(subject, tmp_path / "mask.nii.gz")
    one = _rsa_wf(config, subject, design, rdms_result, tmp_path / "one", mask)
    assert _searchlight_nodes(one) == ["searchlight"]
    three = _rsa_wf(config.replace(searchlight_jobs=3), subject, design, rdms_result,
                    tmp_path / "three", mask)
    assert _searchlight_nodes(three) == [f"searchlight_shard{k}" for k in (1, 2, 3)]
    graph = generate_expanded_graph(three._create_flat_graph())
    by_name = {node.name: node for node in graph.nodes}
    # Each shard waits only for the patterns; the merges wait for every shard.
    for k in (1, 2, 3):
        shard = by_name[f"searchlight_shard{k}"]
        assert {p.name for p in graph.predecessors(shard)} == {"prepare_patterns"}
    for merge in ("merge_shards", "merge_shard_nulls"):
        assert {p.name for p in graph.predecessors(by_name[merge])} == {
            f"searchlight_shard{k}" for k in (1, 2, 3)}
    twelve = _rsa_wf(config.replace(searchlight_jobs=12), subject, design, rdms_result,
                     tmp_path / "twelve", mask)
    assert _searchlight_nodes(twelve)[:2] == ["searchlight_shard01", "searchlight_shard02"]


def _outputs(out) -> dict[str, np.ndarray]:
    """Every image and sidecar of sub-01's maps, by file name."""
    func = out / "sub-01" / "func"
    values = {p.name: np.asanyarray(nb.load(p).dataobj) for p in func.glob("*.nii.gz")}
    values.update({p.name: json.loads(p.read_text()) for p in func.glob("*.json")})
    return values


@pytest.mark.parametrize(("n_jobs", "chunk_centers", "n_mask"), [
    (3, 100, None),  # three shards of 170 centres, each in two chunks
    (7, 200, 5),  # more shards than the 5 centres: two shards have none
])
def test_searchlight_jobs_give_the_same_maps_and_null(bids_root, tmp_path, caplog, n_jobs,
                                                      chunk_centers, n_mask):
    caplog.set_level(logging.INFO, logger="bidsapp")
    config, subject, design, rdms_result = _rsa_setup(bids_root, tmp_path)
    mask = None
    if n_mask:
        shape = nb.load(subject.bold[0].path).shape[:3]
        mask = np.zeros(shape, bool)
        mask.flat[np.linspace(0, mask.size - 1, n_mask).astype(int)] = True
        config = config.replace(searchlight_size=3)
    mask = _write_mask(subject, tmp_path / "mask.nii.gz", mask)
    ref_out, out = tmp_path / "ref_out", tmp_path / "out"
    _rsa_wf(config.replace(output_dir=ref_out), subject, design, rdms_result,
            tmp_path / "ref_work", mask).run(plugin="Linear")
    caplog.clear()
    sharded = config.replace(output_dir=out, searchlight_jobs=n_jobs)
    work = tmp_path / "work"
    _rsa_wf(sharded, subject, design, rdms_result, work, mask,
            chunk_centers=chunk_centers).run(plugin="Linear")

    expected, got = _outputs(ref_out), _outputs(out)
    assert sorted(got) == sorted(expected) and any("maxnull" in name for name in got)
    for name, value in expected.items():
        if isinstance(value, dict):
            assert got[name] == value, name
        else:
            np.testing.assert_array_equal(got[name], value, err_msg=name)
    # The log names each shard with its centres.
    lines = [r.getMessage() for r in caplog.records]
    for k in range(1, n_jobs + 1):
        assert any(line.startswith(f"Searchlight shard {k}/{n_jobs}, centres")
                   for line in lines), (k, lines)
    if n_mask:
        assert sum("no centres (more searchlight jobs than centres)" in line
                   for line in lines) == 2

    # A rerun with the same inputs reuses every finished step.
    results = {p: p.stat().st_mtime_ns for p in work.rglob("result_*.pklz")
               if "ds_" not in p.name}
    assert any("searchlight_shard" in str(p) for p in results)
    _rsa_wf(sharded, subject, design, rdms_result, work, mask,
            chunk_centers=chunk_centers).run(plugin="Linear")
    assert results == {p: p.stat().st_mtime_ns for p in results}, "finished steps were rerun"
