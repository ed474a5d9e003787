"""File-tree helpers shared by the tests that run the app on a read-only dataset."""

from __future__ import annotations

from pathlib import Path


def set_read_only(root: Path, read_only: bool) -> None:
    """Make a folder tree read-only, or writable again (for clean-up)."""
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555 if read_only else 0o755)
        else:
            path.chmod(0o444 if read_only else 0o644)
