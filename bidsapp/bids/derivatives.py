"""The derivatives folder: its dataset description, ``.bidsignore`` and an atomic data sink."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

from niworkflows.interfaces.bids import BIDS_DERIV_PATTERNS
from niworkflows.interfaces.bids import DerivativesDataSink as _NiwDerivativesDataSink

from bidsapp import __version__
from bidsapp.io import write_json, write_text

BIDS_VERSION = "1.9.0"
#: niworkflows' path patterns plus ours: statistical maps (BEP012 draft) and RDMs.
PATH_PATTERNS = (
    "sub-{subject}[/ses-{session}]/{datatype<func>|func}/sub-{subject}[_ses-{session}]"
    "[_task-{task}][_acq-{acquisition}][_run-{run}][_space-{space}][_res-{resolution}]"
    "[_desc-{desc}]_{suffix<statmap|rdm|dseg>}{extension<.nii|.nii.gz|.json|.tsv|.npy|.png|.svg>"
    "|.nii.gz}",
    *BIDS_DERIV_PATTERNS,
)
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


class DerivativesDataSink(_NiwDerivativesDataSink):
    """niworkflows' data sink, naming files by BIDS entities, writing them atomically.

    Files are first written into a hidden staging folder beside the outputs and then
    renamed into place one by one, so an interrupted run never leaves a truncated file
    under a final derivative name.  Outputs go straight under ``base_directory`` (no
    pipeline sub-folder), as the output directory is already the derivatives root.
    """

    out_path_base = ""
    _file_patterns = PATH_PATTERNS
    # niworkflows describes the ``res`` entity of a standard space by asking TemplateFlow,
    # which indexes (or downloads) its cache in every sink; our sidecars carry their own
    # ``Resolution`` text instead.
    _standard_spaces = ()

    def _run_interface(self, runtime):
        final_base = Path(self.inputs.base_directory).absolute()
        staging = final_base / f".staging-{os.getpid()}-{secrets.token_hex(4)}"
        self.inputs.base_directory = str(staging)
        try:
            runtime = super()._run_interface(runtime)
            moved = []
            for key in ("out_file", "out_meta"):
                files = self._results.get(key)
                if not files:
                    continue
                single = isinstance(files, str)
                finals = []
                for staged in [files] if single else files:
                    final = final_base / Path(staged).relative_to(staging)
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staged, final)
                    moved.append(final)
                    finals.append(str(final))
                self._results[key] = finals[0] if single else finals
        finally:
            self.inputs.base_directory = str(final_base)
            shutil.rmtree(staging, ignore_errors=True)
        return runtime
