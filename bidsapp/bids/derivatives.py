"""The derivatives folder: its dataset description and ``.bidsignore``.

The entity-named data sink lives in :mod:`bidsapp.bids.datasink` and is re-exported here
lazily: importing niworkflows indexes TemplateFlow's whole cache (about 15 s), which a run
that stops at the input checks must not pay.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bidsapp import __version__
from bidsapp.io import write_json, write_text

BIDS_VERSION = "1.9.0"
#: Draft entities and suffixes our outputs use (BEP012 functional derivatives: statmap, stat-,
#: boldref, timeseries; BEP014 transforms: xfm), our RDMs, and folders outside the standard
#: (reports' figures/ as in fMRIPrep, features/, group/).
BIDSIGNORE = """\
# Entities and suffixes that are still BIDS drafts, and folders outside the standard.
*_statmap.nii.gz
*_statmap.json
*stat-*
*_rdm.*
*_xfm.*
*_boldref.*
*_timeseries.*
features/
figures/
group/
logs/
*.html
*.toml
"""


def container_info() -> dict[str, str] | None:
    """Describe the container this process runs in, if any, for ``GeneratedBy``.

    Returns
    -------
    dict or None
        ``{"Type": "docker"|"singularity", "Tag": ...}``, or ``None`` outside a container.
    """
    if os.environ.get("SINGULARITY_NAME") or os.environ.get("APPTAINER_NAME"):
        name = os.environ.get("APPTAINER_NAME") or os.environ.get("SINGULARITY_NAME")
        return {"Type": "singularity", "Tag": str(name)}
    if os.environ.get("BIDSAPP_CONTAINER") or Path("/.dockerenv").exists():
        return {"Type": "docker",
                "Tag": os.environ.get("BIDSAPP_CONTAINER", f"bidsapp:{__version__}")}
    return None


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


def __getattr__(name: str) -> object:
    """Import the data sink and its path patterns on first use."""
    if name in ("PATH_PATTERNS", "DerivativesDataSink"):
        from bidsapp.bids import datasink

        return getattr(datasink, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
