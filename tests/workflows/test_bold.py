"""The BOLD workflow: its graph and outputs, the fMRIPrep adapter, and the planted truth."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import nibabel as nb
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "preproc"))
from preproc_synthetic import (  # noqa: E402
    run_and_collect,
    seed_templateflow,
    write_fmriprep_folder,
)

from bidsapp.bids.collect import BoldRun, Trial  # noqa: E402
from bidsapp.config import Config  # noqa: E402
from bidsapp.design import run_volume_time  # noqa: E402
from bidsapp.preproc.fmriprep import open_fmriprep_layout  # noqa: E402
from bidsapp.templates import NILEARN_SPACE  # noqa: E402
from bidsapp.workflows.bold import (  # noqa: E402
    BOLD_INPUTS,
    BOLD_OUTPUTS,
    init_bold_wf,
    name_runs_in_methods,
)

TIMES = [0.0, 1.0, 0.25, 1.25, 0.5, 1.5, 0.75, 1.75]


@pytest.fixture
def templateflow_env(tmp_path_factory, monkeypatch):
    home = seed_templateflow(tmp_path_factory)
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(home))
    return home


def make_config(tmp_path, **changes) -> Config:
    values = dict(bids_dir=tmp_path / "bids", output_dir=tmp_path / "out",
                  analysis_level="participant", output_space=NILEARN_SPACE, output_res=4.0,
                  omp_nthreads=1, random_seed=0)
    values.update(changes)
    return Config(**values)


def synthetic_run(tmp_path, metadata) -> BoldRun:
    path = tmp_path / "sub-01_task-music_run-1_bold.nii.gz"
    img = nb.Nifti1Image(np.zeros((6, 6, len(TIMES), 10), np.int16), np.eye(4))
    img.to_filename(path)
    return BoldRun(path=path, events=tmp_path / "events.tsv", repetition_time=2.0,
                   n_volumes=10, trials=(Trial(4.0, 6.0, "a.wav"), Trial(12.0, 6.0, "b.wav")),
                   metadata=metadata, entities={"subject": "01", "task": "music", "run": 1})


def test_graph_and_slice_timed_onsets(tmp_path):
    run = synthetic_run(tmp_path, {"RepetitionTime": 2.0, "SliceTiming": TIMES})
    workflow = init_bold_wf(bold_run=run, config=make_config(tmp_path))
    assert workflow.name == "bold_task_music_run_1_wf"
    assert {"hmc", "stc", "coreg", "resample", "coreg_rpt", "motion_rpt", "carpet_rpt",
            "ds_bold_std", "ds_confounds"} <= set(workflow.list_node_names())
    assert set(workflow.get_node("inputnode").inputs.copyable_trait_names()) == set(BOLD_INPUTS)
    out = workflow.get_node("outputnode").inputs
    assert set(out.copyable_trait_names()) == set(BOLD_OUTPUTS)
    assert out.start_time == pytest.approx(0.875)  # middle of 0-1.75 s
    assert run_volume_time(run, make_config(tmp_path)) == pytest.approx(0.875)
    assert out.slice_timing_corrected is True and out.warnings == []
    assert "slice-time corrected to 0.875 s" in workflow.visit_desc()
    sink = workflow.get_node("ds_bold_std").inputs
    assert sink.meta_dict["StartTime"] == pytest.approx(0.875)
    assert sink.meta_dict["SliceTimingCorrected"] is True
    assert sink.resolution == "4" and sink.space == NILEARN_SPACE


def test_memory_estimates_and_interpolation(tmp_path):
    run = synthetic_run(tmp_path, {"RepetitionTime": 2.0, "SliceTiming": TIMES})
    workflow = init_bold_wf(bold_run=run, config=make_config(tmp_path))
    series_gb = 4 * 6 * 6 * len(TIMES) * 10 / 1e9
    # Slice timing holds the raw run and its float32 result; resampling and the carpet
    # plot hold a few volumes whatever the run's length.
    assert workflow.get_node("stc").mem_gb == pytest.approx(0.3 + 2 * series_gb)
    assert workflow.get_node("hmc").mem_gb == pytest.approx(0.3 + series_gb)
    assert workflow.get_node("resample").mem_gb == 0.5
    assert workflow.get_node("carpet_rpt").mem_gb == 0.3
    assert workflow.get_node("resample").inputs.order == 3
    assert "cubic B-splines" in workflow.visit_desc()
    trilinear = init_bold_wf(bold_run=run, config=make_config(tmp_path),
                             interpolation="trilinear")
    assert trilinear.get_node("resample").inputs.order == 1
    assert "trilinear interpolation" in trilinear.visit_desc()
    with pytest.raises(ValueError, match="interpolation"):
        init_bold_wf(bold_run=run, config=make_config(tmp_path), interpolation="sinc")


def test_missing_slice_timing_warns_and_keeps_onsets(tmp_path):
    run = synthetic_run(tmp_path, {"RepetitionTime": 2.0})
    workflow = init_bold_wf(bold_run=run, config=make_config(tmp_path))
    out = workflow.get_node("outputnode").inputs
    assert out.start_time == 0.0
    # Without correction a volume mixes the whole TR: the analysis places it at TR / 2.
    assert run_volume_time(run, make_config(tmp_path)) == pytest.approx(1.0)
    assert out.slice_timing_corrected is False
    assert "no SliceTiming" in out.warnings[0]
    assert workflow.get_node("ds_bold_std").inputs.meta_dict["SliceTimingCorrected"] is False
    methods = workflow.visit_desc()
    assert "Slice timing was not corrected (the BOLD sidecar has no SliceTiming)" in methods
    assert "slice-timing corrected" not in methods and "slice-time corrected" not in methods


def test_methods_name_runs_only_when_they_were_preprocessed_differently(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    corrected = synthetic_run(tmp_path / "a", {"RepetitionTime": 2.0, "SliceTiming": TIMES})
    skipped = synthetic_run(tmp_path / "b", {"RepetitionTime": 2.0})
    config = make_config(tmp_path)
    alike = [init_bold_wf(bold_run=corrected, config=config, name=f"bold_{i}_wf")
             for i in range(2)]
    name_runs_in_methods(alike)
    assert all(wf.__desc__.startswith("For each BOLD run,") for wf in alike)
    mixed = [init_bold_wf(bold_run=run, config=config, name=f"bold_{i}_wf")
             for i, run in enumerate((corrected, skipped))]
    name_runs_in_methods(mixed)
    name = "sub-01_task-music_run-1_bold.nii.gz"
    assert [wf.__desc__.split(",", 1)[0] for wf in mixed] == [f"For {name}"] * 2
    assert "from the slice-timing corrected native series" in mixed[0].__desc__
    assert "slice-timing corrected native" not in mixed[1].__desc__


def test_missing_slice_timing_is_not_warned_again_when_the_workflow_is_built(tmp_path,
                                                                               caplog):
    run = synthetic_run(tmp_path, {"RepetitionTime": 2.0})
    with caplog.at_level("WARNING"):
        init_bold_wf(bold_run=run, config=make_config(tmp_path))
    assert "SliceTiming" not in caplog.text


def test_fmriprep_derivatives_replace_our_preprocessing(tmp_path, templateflow_env):
    root, run = write_fmriprep_folder(tmp_path / "fmriprep")
    config = make_config(tmp_path, derivatives={"fmriprep": root})
    workflow = init_bold_wf(bold_run=run, config=config)
    assert "hmc" not in workflow.list_node_names()
    out = SimpleNamespace(**run_and_collect(workflow, BOLD_OUTPUTS, tmp_path / "work"))
    assert out.bold_std.endswith("space-MNI152NLin2009aSym_res-2_desc-preproc_bold.nii.gz")
    assert out.confounds.endswith("desc-confounds_timeseries.tsv")
    assert out.start_time == pytest.approx(0.95)
    assert run_volume_time(run, config, open_fmriprep_layout(root)) == pytest.approx(0.95)
    gm = np.asarray(nb.load(out.gm_mask).dataobj)
    assert gm.shape == (50, 59, 48) and gm.any()
    assert not gm[np.asarray(nb.load(out.bold_mask_std).dataobj) == 0].any()
    assert len(out.reportlets) == 1 and Path(out.reportlets[0]).suffix == ".svg"
    assert not (config.output_dir / "sub-01").exists()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Simulate one tiny subject and run anatomical + BOLD preprocessing on its run."""
    from nipype.pipeline import engine as pe

    from bidsapp.bids import collect_participants, open_layout
    from bidsapp.simulate import simulate
    from bidsapp.workflows.anatomical import init_anat_wf

    base = tmp_path_factory.mktemp("bold")
    home = seed_templateflow(tmp_path_factory)
    saved = os.environ.get("TEMPLATEFLOW_HOME")
    os.environ["TEMPLATEFLOW_HOME"] = str(home)
    try:
        bids = simulate(base / "bids", preset="tiny", seed=0, subjects=1, runs=1)
        config = make_config(base, bids_dir=bids, omp_nthreads=2,
                             participant_label=("01",))
        subject = collect_participants(open_layout(bids), config)[0]
        anat = init_anat_wf(config=config, normalization_quality="fast")
        anat.inputs.inputnode.t1w = str(subject.t1w)
        bold = init_bold_wf(bold_run=subject.bold[0], config=config)
        workflow = pe.Workflow(name="sub_01_wf")
        workflow.connect([(anat, bold, [(f"outputnode.{f}", f"inputnode.{f}")
                                        for f in BOLD_INPUTS if f != "bold_file"])])
        fields = {f"anat_{f}": f"anat_wf.outputnode.{f}" for f in ("t1w_preproc", "t1w2std_xfm",
                                                                   "ref_file")}
        fields.update({f: f"{bold.name}.outputnode.{f}" for f in BOLD_OUTPUTS})
        values = run_and_collect(workflow, fields, base / "work")
    finally:
        if saved is None:
            os.environ.pop("TEMPLATEFLOW_HOME", None)
        else:
            os.environ["TEMPLATEFLOW_HOME"] = saved
    anat_out = SimpleNamespace(**{k[5:]: v for k, v in values.items() if k.startswith("anat_")})
    bold_out = SimpleNamespace(**{k: v for k, v in values.items() if not k.startswith("anat_")})
    return bids, config, subject, anat_out, bold_out


@pytest.mark.slow
def test_planted_motion_is_recovered(pipeline):
    from bidsapp.preproc._ants import read_itk_affines
    from bidsapp.preproc.validation import brain_points, motion_error
    from bidsapp.simulate import truth

    bids, config, subject, anat_out, out = pipeline
    score = motion_error(read_itk_affines(out.hmc_xforms), truth.load_motion(bids, "01", 1),
                         brain_points(nb.load(out.boldref)))
    print("motion error:", {k: round(v, 4) for k, v in score.items()})
    assert score["rms_mm"] < 0.1


@pytest.mark.slow
def test_planted_sphere_centres_land_within_one_voxel(pipeline):
    from bidsapp.preproc._ants import read_itk_affines
    from bidsapp.preproc.resample import template_to_t1w_points
    from bidsapp.preproc.validation import chain_error, field_at
    from bidsapp.simulate import truth

    bids, config, subject, anat_out, out = pipeline
    spheres = truth.load(bids)["Spheres"]
    centres = np.array([s["center_mni"] for s in spheres], dtype=float)
    grid = nb.load(anat_out.ref_file)
    t1w_points = field_at(grid, template_to_t1w_points(grid, nb.load(anat_out.t1w_preproc),
                                                       anat_out.t1w2std_xfm), centres)
    errors = chain_error(centres, t1w_points, read_itk_affines(out.coreg_xfm)[0],
                         read_itk_affines(out.hmc_xforms), truth.load_transform(bids, "01")
                         .to_native, truth.load_motion(bids, "01", 1))
    print("sphere centre errors (mm, worst volume):", np.round(errors, 2))
    assert np.all(errors < config.output_res)


@pytest.mark.slow
def test_outputs_sidecars_and_reportlets(pipeline):
    bids, config, subject, anat_out, out = pipeline
    func = config.output_dir / "sub-01" / "func"
    stem = f"sub-01_task-music_run-1_space-{NILEARN_SPACE}_res-4"
    assert Path(out.bold_std).is_file()
    bold = nb.load(func / f"{stem}_desc-preproc_bold.nii.gz")
    assert bold.shape[:3] == nb.load(anat_out.ref_file).shape
    assert bold.shape[3] == subject.bold[0].n_volumes
    assert bold.header.get_zooms()[3] == pytest.approx(2.0)
    meta = json.loads((func / f"{stem}_desc-preproc_bold.json").read_text())
    assert meta["RepetitionTime"] == 2.0 and meta["SliceTimingCorrected"] is True
    assert meta["StartTime"] == pytest.approx(out.start_time)
    assert meta["Resolution"].startswith("4 mm isotropic")
    assert (func / f"{stem}_desc-brain_mask.nii.gz").is_file()
    header = (func / "sub-01_task-music_run-1_desc-confounds_timeseries.tsv"
              ).read_text().splitlines()[0].split("\t")
    assert header == ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
                      "framewise_displacement"]
    for name in ("from-orig_to-boldref_mode-image_desc-hmc_xfm.txt",
                 "from-boldref_to-T1w_mode-image_desc-coreg_xfm.txt", "desc-hmc_boldref.nii.gz"):
        assert (func / f"sub-01_task-music_run-1_{name}").is_file()
    assert len(out.reportlets) == 3
    for svg in out.reportlets:
        assert "<svg" in Path(svg).read_text()[:3000]
    gm = np.asarray(nb.load(out.gm_mask).dataobj) > 0
    assert gm.sum() > 1000
    assert np.asarray(nb.load(out.bold_std).dataobj)[gm].std(axis=-1).min() > 0
