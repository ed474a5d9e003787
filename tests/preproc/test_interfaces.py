"""The nipype interfaces over the preprocessing library, and the reportlets.

(bidsapp/interfaces/preproc.py and reports.py; kept with the preprocessing tests.)
"""

from __future__ import annotations

import json

import nibabel as nb
import numpy as np
import pytest

from bidsapp.interfaces.preproc import SliceTimingCorrection, TemplateMasks
from bidsapp.interfaces.reports import CarpetPlot, MotionPlot, registration_overlay
from bidsapp.preproc.motion import HeadMotion, parameters_to_matrices, write_confounds


def test_slice_timing_interface_reports_what_it_did(tmp_path):
    img = nb.Nifti1Image(np.random.default_rng(0).random((4, 4, 4, 10)).astype(np.float32),
                         np.eye(4))
    img.to_filename(tmp_path / "bold.nii.gz")
    node = SliceTimingCorrection(in_file=str(tmp_path / "bold.nii.gz"), repetition_time=2.0,
                                 metadata={"SliceTiming": [0.0, 1.0, 0.5, 1.5]})
    result = node.run(cwd=str(tmp_path))
    assert result.outputs.slice_timing_corrected
    assert result.outputs.start_time == 0.75 and result.outputs.warning == ""
    assert result.outputs.out_file.endswith(".nii")
    skipped = SliceTimingCorrection(in_file=str(tmp_path / "bold.nii.gz"), repetition_time=2.0,
                                    metadata={}).run(cwd=str(tmp_path))
    assert not skipped.outputs.slice_timing_corrected
    assert "no SliceTiming" in skipped.outputs.warning
    assert json.dumps(skipped.outputs.sidecar) == '{"SliceTimingCorrected": false}'


def test_nan_in_the_series_is_bad_data(tmp_path):
    import pytest

    from bidsapp.errors import BadDataError

    data = np.ones((4, 4, 4, 5), np.float32)
    data[1, 1, 1, 2] = np.nan
    nb.Nifti1Image(data, np.eye(4)).to_filename(tmp_path / "bold.nii.gz")
    with pytest.raises(BadDataError, match="NaN"):
        SliceTimingCorrection(in_file=str(tmp_path / "bold.nii.gz"), repetition_time=2.0,
                              metadata={}).run(cwd=str(tmp_path))


def test_template_masks_and_reportlets(tmp_path):
    from nilearn.datasets import (
        load_mni152_brain_mask,
        load_mni152_gm_template,
        load_mni152_template,
    )

    files = {}
    for name, img in (("t1w", load_mni152_template(resolution=1)),
                      ("mask", load_mni152_brain_mask(resolution=1)),
                      ("gm", load_mni152_gm_template(resolution=1))):
        files[name] = str(tmp_path / f"{name}.nii.gz")
        img.to_filename(files[name])
    masks = TemplateMasks(template_file=files["t1w"], brain_mask=files["mask"],
                          gm_probseg=files["gm"], resolution=6.0).run(cwd=str(tmp_path))
    grid = nb.load(masks.outputs.ref_file)
    dseg = np.asarray(nb.load(masks.outputs.dseg).dataobj)
    assert set(np.unique(dseg)) == {0, 1, 3}
    assert dseg.shape == grid.shape
    gm = np.asarray(nb.load(masks.outputs.gm_mask).dataobj) > 0
    assert gm.any() and not (gm & (dseg == 0)).any()

    n = 20
    rng = np.random.default_rng(1)
    params = np.c_[rng.normal(0, 0.3, (n, 3)), rng.normal(0, 0.005, (n, 3))]
    confounds = write_confounds(tmp_path / "confounds.tsv",
                                HeadMotion(parameters_to_matrices(params), grid))
    motion = MotionPlot(confounds_file=str(confounds), repetition_time=2.0).run(
        cwd=str(tmp_path))
    assert "<svg" in open(motion.outputs.out_report).read()[:3000]
    series = nb.Nifti1Image(rng.random((*grid.shape, n)).astype(np.float32) * 100, grid.affine)
    series.to_filename(tmp_path / "bold.nii.gz")
    carpet = CarpetPlot(in_file=str(tmp_path / "bold.nii.gz"), dseg=masks.outputs.dseg,
                        confounds_file=str(confounds), repetition_time=2.0).run(
        cwd=str(tmp_path))
    assert "<svg" in open(carpet.outputs.out_report).read()[:3000]


def _oblique(data: np.ndarray, degrees: float) -> np.ndarray:
    angle = np.deg2rad(degrees)
    affine = np.eye(4)
    affine[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    affine[:3, 3] = -np.array(data.shape) / 2
    return affine


def test_registration_overlay_draws_oblique_images_from_one_ras_grid(tmp_path):
    # A tilted acquisition, as most T1w images are: nilearn would resample every view.
    rng = np.random.default_rng(0)
    shape = (40, 44, 36)
    head = np.zeros(shape, np.float32)
    head[8:32, 8:36, 6:30] = 100 + rng.normal(0, 5, (24, 28, 24))
    affine = _oblique(head, 15)
    files = {}
    for name, data in (("after", head), ("before", 0.5 * head[::-1]),
                       ("mask", (head > 0).astype(np.uint8))):
        files[name] = tmp_path / f"{name}.nii.gz"
        nb.Nifti1Image(data, affine).to_filename(files[name])
    # The interface itself: a node would delete the intermediate images after the run.
    overlay = registration_overlay(after=str(files["after"]), contour=str(files["mask"]),
                                   name="overlay").interface
    overlay.inputs.before = str(files["before"])
    (tmp_path / "work").mkdir()
    result = overlay.run(cwd=str(tmp_path / "work"))
    assert "<svg" in open(result.outputs.out_report).read()[:3000]
    folder = tmp_path / "work"
    drawn = nb.load(folder / "overlay_after.nii")
    # Axis-aligned (diagonal affine), so nilearn draws it without resampling it again ...
    assert np.allclose(drawn.affine[:3, :3], np.diag(np.diag(drawn.affine[:3, :3])))
    # ... and it covers the whole tilted head: the same mean intensity over the head.
    contour = np.asarray(nb.load(folder / "overlay_contour.nii").dataobj) > 0
    assert contour.sum() == pytest.approx((head > 0).sum(), rel=0.05)
    assert np.asarray(drawn.dataobj)[contour].mean() == pytest.approx(100, abs=3)
