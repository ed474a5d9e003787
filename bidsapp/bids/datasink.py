"""An entity-named, atomic data sink for the derivatives folder (niworkflows-based).

Kept apart from :mod:`bidsapp.bids.derivatives` because importing niworkflows indexes
TemplateFlow's cache; only the workflows need this module.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from niworkflows.interfaces.bids import BIDS_DERIV_PATTERNS
from niworkflows.interfaces.bids import DerivativesDataSink as _NiwDerivativesDataSink

#: niworkflows' path patterns plus ours: statistical maps (BEP012 draft) and RDMs.
PATH_PATTERNS = (
    "sub-{subject}[/ses-{session}]/{datatype<func>|func}/sub-{subject}[_ses-{session}]"
    "[_task-{task}][_acq-{acquisition}][_run-{run}][_space-{space}][_res-{resolution}]"
    "[_desc-{desc}]_{suffix<statmap|rdm|dseg>}{extension<.nii|.nii.gz|.json|.tsv|.npy|.png|.svg>"
    "|.nii.gz}",
    "sub-{subject}[/ses-{session}]/{datatype<figures>}/sub-{subject}[_ses-{session}]"
    "[_task-{task}][_desc-{desc}]_{suffix<rdm>}{extension<.svg|.png>|.svg}",
    *BIDS_DERIV_PATTERNS,
)


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
