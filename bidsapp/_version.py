"""The package version, read from the repository's ``version`` file."""

from importlib import metadata
from pathlib import Path


def _read_version() -> str:
    # The `version` file is the single source of truth; an installed (non-editable)
    # copy has no repository around it, so fall back to the installed metadata.
    version_file = Path(__file__).resolve().parents[1] / "version"
    if version_file.is_file():
        return version_file.read_text().strip()
    try:
        return metadata.version("bidsapp")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _read_version()
