"""Run the BIDS validator (npm ``bids-validator``, offline) and turn its errors into exit 16."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bidsapp.errors import ValidationError

LOGGER = logging.getLogger("bidsapp.bids")


def find_validator() -> str | None:
    """Return the ``bids-validator`` executable, or ``None`` when it is not installed.

    Looks at ``$BIDSAPP_VALIDATOR``, then the copy ``scripts/install.sh`` links into the
    virtual environment's ``bin/``, then ``PATH``.
    """
    candidates = [os.environ.get("BIDSAPP_VALIDATOR"),
                  str(Path(sys.executable).parent / "bids-validator"),
                  shutil.which("bids-validator")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def run_validator(dataset: Path, *, ignore_warnings: bool = True) -> dict:
    """Validate a dataset and return the validator's JSON report.

    Parameters
    ----------
    dataset : Path
        A raw BIDS dataset or a derivatives folder.
    ignore_warnings : bool
        Skip non-critical issues (they are logged by the caller otherwise).

    Returns
    -------
    dict
        The parsed ``--json`` output, with ``issues.errors`` and ``issues.warnings``.

    Raises
    ------
    FileNotFoundError
        If no validator is installed.
    """
    exe = find_validator()
    if exe is None:
        raise FileNotFoundError("bids-validator is not installed")
    cmd = [exe, str(dataset), "--json", "--ignoreSubjectConsistency"]
    if ignore_warnings:
        cmd.append("--ignoreWarnings")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"issues": {"errors": [{"key": "VALIDATOR_FAILED", "reason": proc.stderr.strip()
                                       or proc.stdout.strip(), "files": []}], "warnings": []}}


def _describe(issue: dict) -> str:
    files = [f.get("file", {}).get("relativePath") or f.get("file", {}).get("path", "")
             for f in issue.get("files", []) if f and f.get("file")]
    where = f" ({', '.join(files[:3])}{' ...' if len(files) > 3 else ''})" if files else ""
    return f"{issue.get('key', '?')}: {issue.get('reason', '').strip()}{where}"


def validate_bids(dataset: Path) -> None:
    """Validate the input dataset; raise exit 16 on errors, warn when no validator exists.

    Parameters
    ----------
    dataset : Path
        The raw BIDS dataset.

    Raises
    ------
    ValidationError
        If the validator reports errors.
    """
    try:
        report = run_validator(dataset)
    except FileNotFoundError:
        LOGGER.warning("bids-validator is not installed; skipping validation "
                       "(install it with scripts/install.sh, or pass --skip-bids-validation)")
        return
    errors = report.get("issues", {}).get("errors", [])
    if errors:
        listed = "; ".join(_describe(e) for e in errors[:5])
        raise ValidationError(
            f"The BIDS validator found {len(errors)} error(s): {listed}", path=dataset,
            fix="fix the dataset (see https://bids-validator.readthedocs.io), or pass "
                "--skip-bids-validation if you are sure the app can read it",
        )
    LOGGER.info("BIDS validation passed: %s", dataset)
