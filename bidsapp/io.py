"""Atomic file output: nothing half-written ever carries a final derivative name."""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bidsapp.errors import CannotWriteError

#: A full disk, a quota, a read-only or forbidden folder, and a file-size limit
#: (``ulimit -f``; EFBIG once the app ignores SIGXFSZ) are the user's to fix.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EPERM, errno.EDQUOT,
                 errno.EFBIG}


def temporary_name(path: Path) -> Path:
    """Return a hidden sibling of ``path`` that keeps its extension.

    The extension is kept so that writers which dispatch on it (nibabel's ``.nii.gz``)
    still produce the right format; the leading dot hides the file from pybids and the
    BIDS validator while it is incomplete.
    """
    path = Path(path)
    return path.with_name(f".tmp-{os.getpid()}-{secrets.token_hex(4)}-{path.name}")


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path; rename it to ``path`` only if the block succeeds.

    Parameters
    ----------
    path : str or Path
        The final file name.  Its parent folder is created.

    Yields
    ------
    Path
        Where the caller must write.  It is removed if the block raises.

    Raises
    ------
    CannotWriteError
        If the folder cannot be created or the disk is full or read-only.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CannotWriteError(
            f"Cannot create the output folder ({exc.strerror})",
            path=path.parent,
            fix="choose an output or work directory you can write to, with free space",
        ) from exc
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None:
            # A write through an open stream names no file; the traceback a worker sends
            # back must, so that the run's exit-73 message names this file, not a folder.
            exc.filename = str(path)
        if exc.errno in _WRITE_ERRNOS:
            fix = ("raise the file-size limit (ulimit -f) or choose another output directory"
                   if exc.errno == errno.EFBIG else
                   "free disk space or choose an output directory you can write to")
            raise CannotWriteError(
                f"Cannot write the output file ({exc.strerror})", path=path, fix=fix,
            ) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Atomically write ``text`` to ``path`` and return the path."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj: object) -> Path:
    """Atomically write ``obj`` as indented, key-sorted JSON and return the path."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
