"""Atomic writes: a final name never holds a partial file."""

from __future__ import annotations

import errno
import traceback

import pytest

from bidsapp.errors import CannotWriteError
from bidsapp.io import atomic_write, write_json
from bidsapp.levels.runner import disk_full_error


def test_atomic_write_renames_on_success(tmp_path):
    target = tmp_path / "a" / "b.nii.gz"
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".nii.gz")
        assert tmp.name.startswith(".")
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    assert [p.name for p in target.parent.iterdir()] == ["b.nii.gz"]


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "c.json"
    with pytest.raises(ValueError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise ValueError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    target = write_json(tmp_path / "d.json", {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("{broken")
            raise RuntimeError
    assert target.read_text().strip() == '{\n  "v": 1\n}'


def test_disk_full_becomes_exit_73(tmp_path):
    with pytest.raises(CannotWriteError) as exc:
        with atomic_write(tmp_path / "e.txt") as tmp:
            tmp.write_text("x")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert exc.value.exit_code == 73 and "e.txt" in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_through_a_stream_names_the_file_for_the_run_message(tmp_path):
    # np.savez into an open stream raises OSError without a file name; a worker's
    # traceback is all the runner sees, so it must name the file (the feature cache).
    target = tmp_path / "features" / "clip_features.npz"
    with pytest.raises(CannotWriteError) as exc:
        with atomic_write(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    text = "".join(traceback.format_exception(exc.value))
    error = disk_full_error(text, tmp_path / "work")
    assert error is not None and error.path == target and error.exit_code == 73


def test_uncreatable_folder_becomes_exit_73(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CannotWriteError) as exc:
        with atomic_write(blocker / "sub" / "f.txt"):
            pass
    assert exc.value.exit_code == 73


def test_file_size_limit_becomes_exit_73(tmp_path):
    with pytest.raises(CannotWriteError) as exc:
        with atomic_write(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
            raise OSError(errno.EFBIG, "File too large")
    assert exc.value.exit_code == 73 and "ulimit -f" in str(exc.value)
    assert list(tmp_path.iterdir()) == []
