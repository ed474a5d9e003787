"""fMRIPrep derivatives as input: finding a run's series, mask and confounds."""

from __future__ import annotations

import pytest
from preproc_synthetic import write_fmriprep_folder

from bidsapp.errors import MissingInputError
from bidsapp.preproc.fmriprep import find_fmriprep_run, open_fmriprep_layout


def test_finds_the_runs_files_by_entities(tmp_path):
    root, run = write_fmriprep_folder(tmp_path / "fmriprep", extra_space="MNI152NLin6Asym")
    found = find_fmriprep_run(open_fmriprep_layout(root), run, "MNI152NLin2009aSym")
    func = root / "sub-01" / "func"
    stem = "sub-01_task-music_run-1_space-MNI152NLin2009aSym_res-2"
    assert found.bold == func / f"{stem}_desc-preproc_bold.nii.gz"
    assert found.mask == func / f"{stem}_desc-brain_mask.nii.gz"
    assert found.confounds == func / "sub-01_task-music_run-1_desc-confounds_timeseries.tsv"
    assert found.start_time == pytest.approx(0.95)
    assert found.metadata["RepetitionTime"] == 2.0


def test_without_slice_timing_the_start_time_is_zero(tmp_path):
    root, run = write_fmriprep_folder(tmp_path / "fmriprep", start_time=None)
    found = find_fmriprep_run(open_fmriprep_layout(root), run, "MNI152NLin2009aSym")
    assert found.start_time == 0.0


def test_a_missing_space_lists_what_fmriprep_wrote(tmp_path):
    root, run = write_fmriprep_folder(tmp_path / "fmriprep", space="MNI152NLin6Asym")
    with pytest.raises(MissingInputError) as info:
        find_fmriprep_run(open_fmriprep_layout(root), run, "MNI152NLin2009cAsym")
    assert info.value.exit_code == 66
    assert "MNI152NLin6Asym" in info.value.paragraph()


def test_a_folder_that_is_not_derivatives_is_missing_input(tmp_path):
    with pytest.raises(MissingInputError):
        open_fmriprep_layout(tmp_path)
