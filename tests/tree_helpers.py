"""File-tree helpers shared by the tests: read-only datasets and a seeded TemplateFlow cache."""

from __future__ import annotations

import os
from pathlib import Path


def seed_templateflow_home(home: str | Path) -> None:
    """Seed nilearn's MNI152NLin2009aSym into the TemplateFlow cache ``home``, offline.

    ``TEMPLATEFLOW_HOME`` is set only while seeding and restored afterwards, so the tests
    that use the folder pass it on explicitly.
    """
    from bidsapp.templates import NILEARN_SPACE, get_template

    saved = os.environ.get("TEMPLATEFLOW_HOME")
    os.environ["TEMPLATEFLOW_HOME"] = str(home)
    try:
        get_template(NILEARN_SPACE)
    finally:
        if saved is None:
            os.environ.pop("TEMPLATEFLOW_HOME", None)
        else:
            os.environ["TEMPLATEFLOW_HOME"] = saved


def set_read_only(root: Path, read_only: bool) -> None:
    """Make a folder tree read-only, or writable again (for clean-up)."""
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555 if read_only else 0o755)
        else:
            path.chmod(0o444 if read_only else 0o644)
