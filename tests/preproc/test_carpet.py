"""Carpet-plot rows: the voxels niworkflows would draw, read one volume at a time."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pytest

from bidsapp.preproc.carpet import carpet_step, carpet_timeseries


@pytest.fixture
def series_and_dseg(tmp_path):
    rng = np.random.default_rng(0)
    shape = (30, 31, 32)
    labels = rng.choice([0, 1, 3], size=shape, p=[0.3, 0.3, 0.4]).astype(np.uint8)
    data = rng.normal(100, 10, (*shape, 7)).astype(np.float32)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nb.Nifti1Image(data, affine).to_filename(tmp_path / "bold.nii.gz")
    nb.Nifti1Image(labels, affine).to_filename(tmp_path / "dseg.nii.gz")
    return tmp_path / "bold.nii.gz", tmp_path / "dseg.nii.gz", data, labels


def test_rows_are_the_ones_niworkflows_would_draw(series_and_dseg):
    from niworkflows.utils.timeseries import _nifti_timeseries

    bold, dseg, data, labels = series_and_dseg
    rows, segments = carpet_timeseries(bold, dseg, {1: "grey matter", 3: "other brain"})
    full, full_segments = _nifti_timeseries(str(bold), str(dseg),
                                            labels=("grey matter", "", "other brain"))
    # plot_carpet keeps every n-th voxel of each segment, n from all voxels.
    step = carpet_step(full.shape[0])
    assert step > 1
    assert list(segments) == ["grey matter", "other brain"]
    for name, index in segments.items():
        np.testing.assert_array_equal(rows[index], full[full_segments[name][::step]])
    assert rows.dtype == np.float32 and rows.shape[1] == data.shape[3]
    # No further decimation is left for plot_carpet to do.
    assert carpet_step(rows.shape[0]) == 1


def test_a_segmentation_on_another_grid_is_refused(series_and_dseg, tmp_path):
    bold, _, _, labels = series_and_dseg
    nb.Nifti1Image(labels[:-1], np.eye(4)).to_filename(tmp_path / "other.nii.gz")
    with pytest.raises(ValueError, match="not on the grid"):
        carpet_timeseries(bold, tmp_path / "other.nii.gz", {1: "grey matter"})


def test_rows_outside_the_field_of_view_are_dropped():
    from bidsapp.preproc.carpet import drop_flat_rows

    rng = np.random.default_rng(0)
    data = rng.random((6, 10)).astype(np.float32)
    data[1] = 0.0  # grey matter outside the field of view
    data[4] = 7.0  # constant
    data[5, 3] = np.nan
    kept, segments = drop_flat_rows(data, {"grey matter": np.array([0, 1, 2]),
                                           "other brain": np.array([3, 4, 5])})
    np.testing.assert_array_equal(kept, data[[0, 2, 3]])
    assert {k: v.tolist() for k, v in segments.items()} == {"grey matter": [0, 1],
                                                            "other brain": [2]}
    _, only_gm = drop_flat_rows(data, {"grey matter": np.array([0]),
                                       "other brain": np.array([1])})
    assert list(only_gm) == ["grey matter"]
