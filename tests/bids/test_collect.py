"""BIDS collection on small layouts: valid, and each way the method's inputs can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from bidsapp.bids import collect_participants, open_layout
from bidsapp.cli.parser import parse_args
from bidsapp.errors import BadDataError, MissingInputError, NothingSelected


def _collect(root: Path, *extra: str):
    config = parse_args([str(root), str(root.parent / "out"), "participant", *extra])
    return collect_participants(open_layout(root), config)


def test_valid_layout(bids_root):
    subjects = _collect(bids_root)
    assert [s.subject for s in subjects] == ["01", "02"]
    sub = subjects[0]
    assert sub.t1w.name == "sub-01_T1w.nii.gz"
    assert [r.path.name for r in sub.bold] == ["sub-01_task-music_run-1_bold.nii.gz",
                                               "sub-01_task-music_run-2_bold.nii.gz"]
    run = sub.bold[0]
    assert run.repetition_time == 2.0 and run.n_volumes == 24 and run.task == "music"
    assert len(run.metadata["SliceTiming"]) == 8  # inherited from the top-level sidecar
    assert [t.stim_file for t in run.trials] == ["clip-a.wav", "clip-b.wav"]
    assert [t.stim_file for t in sub.bold[1].trials] == ["clip-b.wav", "clip-a.wav"]
    assert run.trials[1].onset == 26.0 and run.trials[1].duration == 14.0
    assert set(sub.stimuli) == {"clip-a.wav", "clip-b.wav"}
    assert all(p.is_file() for p in sub.stimuli.values())


def test_label_selection(bids_root):
    assert [s.subject for s in _collect(bids_root, "--participant-label", "sub-02")] == ["02"]


def test_unknown_label(bids_root):
    with pytest.raises(NothingSelected) as exc:
        _collect(bids_root, "--participant-label", "07")
    assert exc.value.exit_code == 18 and "07" in str(exc.value) and "01, 02" in str(exc.value)


def test_unknown_task(bids_root):
    with pytest.raises(NothingSelected) as exc:
        _collect(bids_root, "--task", "rest")
    assert exc.value.exit_code == 18 and "music" in str(exc.value)


def test_no_stim_file_column_selects_nothing(bids_root):
    for events in bids_root.rglob("*_events.tsv"):
        lines = events.read_text().replace("stim_file", "sound").splitlines()
        events.write_text("\n".join(lines) + "\n")
    with pytest.raises(NothingSelected) as exc:
        _collect(bids_root)
    assert exc.value.exit_code == 18 and "stim_file" in str(exc.value)


def test_missing_stimulus_file(bids_root):
    (bids_root / "stimuli" / "clip-b.wav").unlink()
    with pytest.raises(MissingInputError) as exc:
        _collect(bids_root)
    assert exc.value.exit_code == 66 and "clip-b.wav" in str(exc.value)


def test_stim_file_outside_stimuli(bids_root):
    events = bids_root / "sub-01/func/sub-01_task-music_run-1_events.tsv"
    events.write_text(events.read_text().replace("clip-a.wav", "../participants.tsv"))
    with pytest.raises(BadDataError) as exc:
        _collect(bids_root)
    assert exc.value.exit_code == 65 and "outside" in str(exc.value)
    assert "sub-01_task-music_run-1_events.tsv" in str(exc.value)


def test_missing_events(bids_root):
    events = bids_root / "sub-02/func/sub-02_task-music_run-2_events.tsv"
    events.unlink()
    with pytest.raises(MissingInputError) as exc:
        _collect(bids_root)
    assert exc.value.exit_code == 66
    assert "sub-02_task-music_run-2_bold.nii.gz" in str(exc.value)
    assert "sub-02_task-music_run-2_events.tsv" in str(exc.value)


def test_tr_mismatch_between_sidecar_and_header(bids_root):
    bold = bids_root / "sub-01/func/sub-01_task-music_run-2_bold.nii.gz"
    img = nb.load(bold)
    img.header.set_zooms((3.0, 3.0, 3.0, 1.5))
    nb.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header).to_filename(bold)
    with pytest.raises(BadDataError) as exc:
        _collect(bids_root)
    assert exc.value.exit_code == 65 and bold.name in str(exc.value)
    assert "RepetitionTime" in str(exc.value) or "TR" in str(exc.value)


def test_tr_mismatch_between_runs(bids_root):
    base = bids_root / "sub-01/func/sub-01_task-music_run-2"
    Path(f"{base}_bold.json").write_text(json.dumps({"RepetitionTime": 2.5}))
    bold = Path(f"{base}_bold.nii.gz")
    img = nb.load(bold)
    img.header.set_zooms((3.0, 3.0, 3.0, 2.5))
    nb.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header).to_filename(bold)
    with pytest.raises(BadDataError) as exc:
        _collect(bids_root)
    assert exc.value.exit_code == 65 and "different TRs" in str(exc.value)


def test_missing_t1w(bids_root):
    (bids_root / "sub-02/anat/sub-02_T1w.nii.gz").unlink()
    with pytest.raises(MissingInputError) as exc:
        _collect(bids_root)
    assert exc.value.exit_code == 66 and "sub-02" in str(exc.value)


def test_3d_bold(bids_root):
    bold = bids_root / "sub-01/func/sub-01_task-music_run-1_bold.nii.gz"
    nb.Nifti1Image(np.zeros((8, 8, 8), np.int16), np.eye(4)).to_filename(bold)
    with pytest.raises(BadDataError) as exc:
        _collect(bids_root)
    assert exc.value.exit_code == 65 and "4D" in str(exc.value)


def test_events_past_end_of_run(bids_root):
    events = bids_root / "sub-01/func/sub-01_task-music_run-1_events.tsv"
    events.write_text(events.read_text().replace("26.0\t", "36.0\t"))
    with pytest.raises(BadDataError) as exc:
        _collect(bids_root)
    assert exc.value.exit_code == 65 and "after the end of the run" in str(exc.value)


def test_empty_events(bids_root):
    events = bids_root / "sub-01/func/sub-01_task-music_run-1_events.tsv"
    events.write_text("onset\tduration\tstim_file\n")
    with pytest.raises(BadDataError) as exc:
        _collect(bids_root)
    assert exc.value.exit_code == 65 and events.name in str(exc.value)


def test_not_a_bids_dataset(tmp_path):
    with pytest.raises(MissingInputError) as exc:
        open_layout(tmp_path)
    assert exc.value.exit_code == 66 and "dataset_description.json" in str(exc.value)


def _uncompressed_bold(bids_root: Path, data_dtype):
    """Replace sub-01's first run by an uncompressed .nii of the given data type."""
    gz = bids_root / "sub-01/func/sub-01_task-music_run-1_bold.nii.gz"
    img = nb.load(gz)
    header = img.header.copy()
    header.set_data_dtype(data_dtype)
    nii = gz.with_name(gz.name.removesuffix(".gz"))
    data = np.asanyarray(img.dataobj).astype(data_dtype)
    gz.unlink()
    return nii, data, img.affine, header


def test_truncated_uncompressed_bold(bids_root):
    nii, data, affine, header = _uncompressed_bold(bids_root, np.int16)
    nb.Nifti1Image(data, affine, header).to_filename(nii)
    nii.write_bytes(nii.read_bytes()[:-100])
    with pytest.raises(BadDataError) as exc:
        _collect(bids_root)
    assert exc.value.exit_code == 65 and "truncated" in str(exc.value)
    assert nii.name in str(exc.value)


def test_infinite_value_in_bold(bids_root):
    nii, data, affine, header = _uncompressed_bold(bids_root, np.float32)
    data[0, 0, 0, 20] = np.inf
    nb.Nifti1Image(data, affine, header).to_filename(nii)
    with pytest.raises(BadDataError) as exc:
        _collect(bids_root)
    assert "1 NaN or infinite value(s), the first in volume 20" in str(exc.value)
