"""fMRIPrep derivatives as input: find a run's preprocessed series, mask and confounds.

With ``--derivatives fmriprep=/path`` the app skips its own preprocessing and reads, for
every raw BOLD run, fMRIPrep's ``space-<tpl>[_res-<r>]_desc-preproc_bold``, the matching
``desc-brain_mask`` and the run's ``desc-confounds_timeseries.tsv``.  The files are found
with pybids by the raw run's entities, so any fMRIPrep version that follows BIDS
derivatives naming works.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nb
import numpy as np
from bids import BIDSLayout

from bidsapp.errors import BadDataError, MissingInputError

LOGGER = logging.getLogger("bidsapp.preproc")

_RUN_ENTITIES = ("subject", "session", "task", "acquisition", "ceagent", "reconstruction",
                 "direction", "run", "echo", "part")


@dataclass(frozen=True)
class FmriprepRun:
    """fMRIPrep's outputs for one raw BOLD run.

    Attributes
    ----------
    bold : Path
        ``space-<tpl>_desc-preproc_bold.nii.gz``.
    mask : Path
        The brain mask on the same grid.
    confounds : Path
        ``desc-confounds_timeseries.tsv`` (holds ``trans_x`` ... ``framewise_displacement``).
    metadata : dict
        The preprocessed series' sidecar (``RepetitionTime``, ``StartTime``, ...).
    """

    bold: Path
    mask: Path
    confounds: Path
    metadata: dict[str, Any]

    @property
    def start_time(self) -> float:
        """``StartTime`` when fMRIPrep corrected slice timing, else 0."""
        if self.metadata.get("SliceTimingCorrected") and "StartTime" in self.metadata:
            return float(self.metadata["StartTime"])
        return 0.0


def open_fmriprep_layout(fmriprep_dir: str | Path, database_path: Path | None = None):
    """Index an fMRIPrep derivatives folder with pybids.

    Parameters
    ----------
    fmriprep_dir : str or Path
        fMRIPrep's output folder (holding ``dataset_description.json`` and ``sub-*``).
    database_path : Path, optional
        Where pybids may cache its index.

    Returns
    -------
    bids.BIDSLayout
        The derivatives layout.

    Raises
    ------
    MissingInputError
        If the folder or its ``dataset_description.json`` is missing.
    """
    root = Path(fmriprep_dir)
    if not (root / "dataset_description.json").is_file():
        raise MissingInputError(
            "The fMRIPrep derivatives folder has no dataset_description.json",
            path=root / "dataset_description.json",
            fix="give --derivatives fmriprep=<fMRIPrep output folder>, the folder holding "
                "dataset_description.json and sub-*",
        )
    return BIDSLayout(root, validate=False, config=["bids", "derivatives"],
                      database_path=database_path)


def _one(layout, what: str, where: Path, **query) -> Path:
    found = layout.get(return_type="file", **query)
    if not found:
        raise MissingInputError(f"fMRIPrep's {what} for this run is missing", path=where,
                                fix="run fMRIPrep with --output-spaces including this space, "
                                    "or choose the space fMRIPrep wrote with --output-space")
    if len(found) > 1:
        LOGGER.warning("Several fMRIPrep %s files match; using %s", what, sorted(found)[0])
    return Path(sorted(found)[0])


def find_fmriprep_run(layout, bold_run, space: str) -> FmriprepRun:
    """Return fMRIPrep's preprocessed series, mask and confounds of one raw run.

    Parameters
    ----------
    layout : bids.BIDSLayout
        From :func:`open_fmriprep_layout`.
    bold_run : bidsapp.bids.collect.BoldRun
        The raw run; its entities (subject, session, task, acq, run, ...) select the files.
    space : str
        Template space of the preprocessed series (``--output-space``).

    Returns
    -------
    FmriprepRun
        The three files and the series' sidecar.

    Raises
    ------
    MissingInputError
        If a file is missing; the message lists the spaces fMRIPrep wrote.
    BadDataError
        If the series and its mask are on different grids.
    """
    query = {k: bold_run.entities[k] for k in _RUN_ENTITIES if k in bold_run.entities}
    where = Path(layout.root) / f"sub-{query['subject']}"
    spaces = sorted(set(layout.get_spaces(**query, suffix="bold", desc="preproc")))
    if space not in spaces:
        raise MissingInputError(
            f"fMRIPrep has no {space} series for {bold_run.path.name} "
            f"(spaces found: {', '.join(spaces) or 'none'})", path=where,
            fix=f"give --output-space as one of {', '.join(spaces)}" if spaces else
                "run fMRIPrep on this run first, or leave out --derivatives fmriprep")
    images = dict(extension=[".nii.gz", ".nii"], space=space)
    bold = _one(layout, "preprocessed BOLD", where, **query, **images, desc="preproc",
                suffix="bold")
    resolution = layout.get_file(str(bold)).entities.get("resolution")
    mask_query = {**query, **images, "desc": "brain", "suffix": "mask", "datatype": "func"}
    if resolution is not None:
        mask_query["resolution"] = resolution
    mask = _one(layout, "BOLD brain mask", where, **mask_query)
    confounds = _one(layout, "confounds table", where, **query, desc="confounds",
                     suffix=["timeseries", "regressors"], extension=".tsv")
    bold_img, mask_img = nb.load(bold), nb.load(mask)
    if bold_img.shape[:3] != mask_img.shape[:3] or not np.allclose(bold_img.affine,
                                                                    mask_img.affine,
                                                                    atol=1e-3):
        raise BadDataError("fMRIPrep's BOLD series and brain mask are on different grids",
                           path=mask, fix="check that both come from the same fMRIPrep run")
    sidecar = bold.with_name(bold.name.split(".", 1)[0] + ".json")
    metadata = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    return FmriprepRun(bold, mask, confounds, metadata)
