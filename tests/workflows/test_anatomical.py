"""The anatomical workflow: its graph, early template errors, and normalization accuracy."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import nibabel as nb
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "preproc"))
from preproc_synthetic import run_and_collect, seed_templateflow  # noqa: E402

from bidsapp.config import Config  # noqa: E402
from bidsapp.errors import MissingInputError  # noqa: E402
from bidsapp.templates import NILEARN_SPACE  # noqa: E402
from bidsapp.workflows.anatomical import ANAT_OUTPUTS, init_anat_wf  # noqa: E402


@pytest.fixture
def templateflow_env(tmp_path_factory, monkeypatch):
    home = seed_templateflow(tmp_path_factory)
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(home))
    return home


def make_config(tmp_path, **changes) -> Config:
    values = dict(bids_dir=tmp_path / "bids", output_dir=tmp_path / "out",
                  analysis_level="participant", output_space=NILEARN_SPACE, output_res=4.0,
                  omp_nthreads=2, random_seed=0)
    values.update(changes)
    return Config(**values)


def test_graph_outputs_and_methods_text(tmp_path, templateflow_env):
    workflow = init_anat_wf(config=make_config(tmp_path), normalization_quality="fast")
    names = set(workflow.list_node_names())
    assert {"normalize", "template_masks", "norm_rpt", "outputnode",
            "ds_t1w2std_xfm", "ds_gm_mask", "ds_std_t1w", "ds_std_t1w_mask"} <= names
    outputs = workflow.get_node("outputnode").inputs.copyable_trait_names()
    assert set(outputs) == set(ANAT_OUTPUTS)
    desc = " ".join(workflow.visit_desc().split())
    assert NILEARN_SPACE in desc and "registered at 2 mm" in desc
    assert workflow.get_node("normalize").n_procs == 2
    # N4 runs inside the normalization job, so that nothing holds the registration back.
    assert "n4" not in names
    assert workflow.get_node("normalize").inputs.bias_correct is True


def test_a_template_missing_from_the_cache_fails_while_building(tmp_path, templateflow_env):
    with pytest.raises(MissingInputError) as info:
        init_anat_wf(config=make_config(tmp_path, output_space="MNI152NLin2009cAsym"))
    assert info.value.exit_code == 66


@pytest.fixture(scope="module")
def anat_run(tmp_path_factory):
    """Simulate one tiny subject and run the anatomical workflow on it (fast quality)."""
    from bidsapp.simulate import simulate

    base = tmp_path_factory.mktemp("anat")
    home = seed_templateflow(tmp_path_factory)
    saved = os.environ.get("TEMPLATEFLOW_HOME")
    os.environ["TEMPLATEFLOW_HOME"] = str(home)
    try:
        bids = simulate(base / "bids", preset="tiny", seed=0, subjects=1, runs=1)
        config = make_config(base, bids_dir=bids, work_dir=base / "work")
        workflow = init_anat_wf(config=config, normalization_quality="fast")
        workflow.inputs.inputnode.t1w = str(bids / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
        outputs = SimpleNamespace(**run_and_collect(workflow, ANAT_OUTPUTS, base / "work"))
    finally:
        if saved is None:
            os.environ.pop("TEMPLATEFLOW_HOME", None)
        else:
            os.environ["TEMPLATEFLOW_HOME"] = saved
    return bids, config, outputs, home


@pytest.mark.slow
def test_normalization_recovers_the_planted_grey_matter(anat_run):
    from bidsapp.preproc.masks import brain_mask_on_grid
    from bidsapp.preproc.resample import template_grid, template_to_t1w_points
    from bidsapp.preproc.validation import gm_dice
    from bidsapp.simulate import truth

    bids, config, outputs, home = anat_run
    folder = home / f"tpl-{NILEARN_SPACE}"
    gm = nb.load(folder / f"tpl-{NILEARN_SPACE}_res-1_label-GM_probseg.nii.gz")
    brain = nb.load(folder / f"tpl-{NILEARN_SPACE}_res-1_desc-brain_mask.nii.gz")
    grid = template_grid(gm, 2.0)
    inside = np.asarray(brain_mask_on_grid(brain, 2.0).dataobj) > 0
    points = template_to_t1w_points(grid, nb.load(outputs.t1w_preproc), outputs.t1w2std_xfm)
    grid_points = (np.indices(grid.shape).transpose(1, 2, 3, 0) @ grid.affine[:3, :3].T
                   + grid.affine[:3, 3])
    planted = truth.load_transform(bids, "01")
    score = gm_dice(gm, grid_points[inside], points[inside], planted.to_template_fast)
    print(f"GM Dice (fast normalization, 2 mm grid): {score:.3f}")
    assert score >= 0.9


@pytest.mark.slow
def test_outputs_are_written_with_bids_names(anat_run):
    bids, config, outputs, home = anat_run
    anat = config.output_dir / "sub-01" / "anat"
    names = sorted(p.name for p in anat.iterdir())
    assert names == sorted([
        "sub-01_desc-brain_mask.nii.gz", "sub-01_desc-preproc_T1w.json",
        "sub-01_desc-preproc_T1w.nii.gz",
        f"sub-01_from-T1w_to-{NILEARN_SPACE}_mode-image_xfm.h5",
        f"sub-01_from-{NILEARN_SPACE}_to-T1w_mode-image_xfm.h5",
        f"sub-01_space-{NILEARN_SPACE}_desc-brain_mask.nii.gz",
        f"sub-01_space-{NILEARN_SPACE}_desc-preproc_T1w.json",
        f"sub-01_space-{NILEARN_SPACE}_desc-preproc_T1w.nii.gz",
        f"sub-01_space-{NILEARN_SPACE}_res-4_label-GM_mask.json",
        f"sub-01_space-{NILEARN_SPACE}_res-4_label-GM_mask.nii.gz"])
    # As fMRIPrep: the T1w in the template and its mask share the template's grid.
    std_t1w = nb.load(anat / f"sub-01_space-{NILEARN_SPACE}_desc-preproc_T1w.nii.gz")
    std_mask = nb.load(anat / f"sub-01_space-{NILEARN_SPACE}_desc-brain_mask.nii.gz")
    assert std_mask.shape == std_t1w.shape and np.allclose(std_mask.affine, std_t1w.affine)
    assert std_mask.get_data_dtype() == np.uint8 and 0 < np.asarray(std_mask.dataobj).mean() < 1
    figure = config.output_dir / "sub-01" / "figures" / f"sub-01_space-{NILEARN_SPACE}_T1w.svg"
    assert "<svg" in figure.read_text()[:2000]
    mask = nb.load(anat / "sub-01_desc-brain_mask.nii.gz")
    assert mask.get_data_dtype() == np.uint8
    assert mask.shape == nb.load(bids / "sub-01" / "anat" / "sub-01_T1w.nii.gz").shape


def test_sink_names_gm_masks_and_copies_gzip_as_is(tmp_path):
    from bidsapp.interfaces.bids import PreprocDataSink

    source = tmp_path / "bids" / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"")
    mask = tmp_path / "gm.nii.gz"
    nb.Nifti1Image(np.ones((3, 3, 3), np.uint8), np.eye(4)).to_filename(mask)
    sink = PreprocDataSink(base_directory=str(tmp_path / "out"), check_hdr=False,
                           space=NILEARN_SPACE, resolution="2p4", label="GM", suffix="mask",
                           compress=True)
    sink.inputs.in_file = str(mask)
    sink.inputs.source_file = str(source)
    sink.inputs.Resolution = "2.4 mm"
    out = Path(sink.run(cwd=str(tmp_path)).outputs.out_file)
    assert out.name == f"sub-01_space-{NILEARN_SPACE}_res-2p4_label-GM_mask.nii.gz"
    assert out.read_bytes() == mask.read_bytes()
    sidecar = out.with_name(out.name.replace(".nii.gz", ".json"))
    assert '"Resolution": "2.4 mm"' in sidecar.read_text()
