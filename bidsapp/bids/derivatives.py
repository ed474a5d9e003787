"""The derivatives folder: its dataset description, ``.bidsignore`` and file names.

The participant level's files are written by the data sinks of
:mod:`bidsapp.interfaces.bids`; the group level's and the reports' names come from
:func:`derivative_name`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from bidsapp import __version__
from bidsapp.io import write_json, write_text

BIDS_VERSION = "1.9.0"
#: Draft entities and suffixes our outputs use (BEP012 functional derivatives: statmap, stat-,
#: boldref, timeseries; BEP014 transforms: xfm), our RDMs, and folders outside the standard
#: (reports' figures/ as in fMRIPrep, features/, group/).  Folders are named without a
#: trailing slash: the schema-based validator (3.x) matches "figures/" to no folder.
BIDSIGNORE = """\
# Entities and suffixes that are still BIDS drafts, and folders outside the standard.
*_statmap.nii.gz
*_statmap.json
*stat-*
*_rdm.*
*_xfm.*
*_boldref.*
*_timeseries.*
features
figures
group
logs
*.html
*.toml
"""


def container_info() -> dict[str, str] | None:
    """Describe bidsapp's own container image, if this process runs in it, for ``GeneratedBy``.

    Only the image's marker counts: the Dockerfile sets ``BIDSAPP_CONTAINER``, which
    Docker keeps and Singularity/Apptainer carry over from the image (also with
    ``--cleanenv``).  ``/.dockerenv`` and ``SINGULARITY_NAME`` exist in many containers that
    are not this image (CI sandboxes, a lab's own image with bidsapp installed), so they
    only tell Docker from Singularity once the marker is there.

    Returns
    -------
    dict or None
        ``{"Type": "docker"|"singularity", "Tag": ...}``, or ``None`` outside bidsapp's
        image.
    """
    marker = os.environ.get("BIDSAPP_CONTAINER", "").strip()
    if not marker:
        return None
    tag = marker if ":" in marker else f"{marker}:{__version__}"
    if os.environ.get("SINGULARITY_NAME") or os.environ.get("APPTAINER_NAME"):
        return {"Type": "singularity", "Tag": tag}
    return {"Type": "docker", "Tag": tag}


def write_dataset_description(output_dir: Path, bids_dir: Path) -> Path:
    """Write ``dataset_description.json`` and ``.bidsignore`` of the derivatives folder.

    Parameters
    ----------
    output_dir : Path
        The derivatives root.
    bids_dir : Path
        The raw dataset; its name and DOI (when present) are cited in ``SourceDatasets``.

    Returns
    -------
    Path
        The path of ``dataset_description.json``.
    """
    output_dir = Path(output_dir)
    source: dict[str, str] = {"URL": Path(bids_dir).absolute().as_uri()}
    raw_desc = Path(bids_dir) / "dataset_description.json"
    raw_name = Path(bids_dir).name
    if raw_desc.is_file():
        try:
            raw = json.loads(raw_desc.read_text())
        except json.JSONDecodeError:
            raw = {}
        raw_name = raw.get("Name", raw_name)
        if raw.get("DatasetDOI"):
            source["DOI"] = raw["DatasetDOI"]
        if raw.get("BIDSVersion"):
            source["Version"] = str(raw["BIDSVersion"])
    generated_by = {
        "Name": "bidsapp",
        "Version": __version__,
        "Description": "Searchlight RSA of 1D ResNet-18 layers against music-listening fMRI",
        "CodeURL": "https://github.com/bidsapp/bidsapp",
    }
    container = container_info()
    if container:
        generated_by["Container"] = container
    description = {
        "Name": f"bidsapp derivatives of {raw_name}",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by],
        "SourceDatasets": [source],
        "HowToAcknowledge": "Cite bidsapp and the methods in logs/CITATION.md.",
    }
    write_text(output_dir / ".bidsignore", BIDSIGNORE)
    return write_json(output_dir / "dataset_description.json", description)


def resolution_text(space: str, resolution: float) -> str:
    """Return the ``Resolution`` sidecar text of a ``res-`` label (see ``docs``)."""
    return (f"{resolution:g} mm isotropic: the {space} template's 1 mm bounding box "
            f"resampled from its first voxel centre")


def derivative_name(entities: Sequence[tuple[str, str]], suffix: str,
                    extension: str = ".nii.gz") -> str:
    """Return a BIDS file name from its entities, in the order given.

    Parameters
    ----------
    entities : sequence of (str, str)
        ``(key, value)`` pairs such as ``("task", "music")``; the caller keeps BIDS'
        entity order.
    suffix : str
        The suffix, e.g. ``"statmap"``.
    extension : str
        With its leading dot.

    Returns
    -------
    str
        ``key-value_key-value_suffix.ext``.
    """
    return "_".join(f"{key}-{value}" for key, value in entities) + f"_{suffix}{extension}"
