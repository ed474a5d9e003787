"""Print a checksum per output file, to show that a change leaves a run's outputs as they were.

Usage: ``python scripts/output_checksums.py OUTPUT_DIR > before.txt``, then the same after the
change, and ``diff before.txt after.txt``.  NIfTI files are hashed by affine, shape, dtype and
data; HDF5 transforms by their datasets (HDF5 stamps times into its headers); SVG and HTML by
name only (matplotlib stamps a date into every SVG); ``logs/`` is left out; everything else
by its bytes.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import nibabel as nb
import numpy as np

_HASH = re.compile(r"_[0-9a-f]{16}_features\.npz$")


def _nifti(path: Path) -> str:
    img = nb.load(path)
    data = np.asanyarray(img.dataobj)
    digest = hashlib.sha256()
    for part in (img.affine.tobytes(), str(data.shape).encode(), str(data.dtype).encode(),
                 np.ascontiguousarray(data).tobytes()):
        digest.update(part)
    return digest.hexdigest()


def _hdf5(path: Path) -> str:
    import h5py

    digest = hashlib.sha256()
    with h5py.File(path, "r") as f:
        items = []
        f.visititems(lambda key, obj: items.append((key, np.asarray(obj[()])))
                     if isinstance(obj, h5py.Dataset) else None)
    for key, value in sorted(items, key=lambda kv: kv[0]):
        digest.update(key.encode())
        # Strings are object arrays, whose bytes would be pointers: hash their text.
        digest.update(repr(value.tolist()).encode() if value.dtype.kind == "O"
                      else np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def checksum(path: Path) -> str:
    """Return the checksum of one output file (see the module docstring).

    Parameters
    ----------
    path : Path
        An output file.

    Returns
    -------
    str
        A hex digest, or ``-`` for files compared by name only.
    """
    name = path.name
    if name.endswith((".svg", ".html")):
        return "-"
    if name.endswith((".nii", ".nii.gz")):
        return _nifti(path)
    if name.endswith(".h5"):
        return _hdf5(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str]) -> int:
    """Print ``<checksum>  <relative path>`` for every output file, sorted by path."""
    root = Path(argv[1])
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("logs/"):
            continue
        print(f"{checksum(path)}  {_HASH.sub('_<hash>_features.npz', rel)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
