"""Interfaces around the stimulus features and candidate RDMs (:mod:`bidsapp.audio`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from bidsapp.audio import LAYER_NAMES, compute_features_many, weights_info
from bidsapp.design import TrialDesign
from bidsapp.rsa import candidate_rdms, features_by_layer


class _CandidateRDMsInputSpec(BaseInterfaceInputSpec):
    design = traits.Dict(mandatory=True, desc="the task's TrialDesign (TrialDesign.to_dict)")
    cache_dir = traits.Str(mandatory=True, desc="shared feature cache (<output_dir>/features)")
    device = traits.Enum("auto", "cpu", "cuda", usedefault=True)


class _CandidateRDMsOutputSpec(TraitedSpec):
    candidate_rdms = File(exists=True, desc="L x T x T float32 array (.npy)")
    info = File(exists=True, desc="JSON: layers, weights sha256, status and training data")


class CandidateRDMs(SimpleInterface):
    """Compute (or read from the cache) every stimulus's features, then one RDM per layer."""

    input_spec = _CandidateRDMsInputSpec
    output_spec = _CandidateRDMsOutputSpec

    def _run_interface(self, runtime):
        design = TrialDesign.from_dict(self.inputs.design)
        stimuli = design.audio_by_stimulus
        tr = design.repetition_time
        computed = compute_features_many(list(stimuli.values()), tr,
                                         cache_dir=self.inputs.cache_dir,
                                         device=self.inputs.device)
        by_stim = {stim: computed[path] for stim, path in stimuli.items()}
        for stim, n_tr in design.trs_by_stimulus.items():
            found = by_stim[stim][LAYER_NAMES[0]].shape[1]
            if found != n_tr:  # both come from the decoded length: a bug if they differ
                raise RuntimeError(f"The features of {stim} span {found} TRs, the trial "
                                   f"design {n_tr}")
        rdms = candidate_rdms(features_by_layer(by_stim), design.order, tr,
                              drop_seconds=design.drop_seconds, dtype=np.float32)
        out = Path(runtime.cwd) / "candidate_rdms.npy"
        np.save(out, rdms)
        weights = weights_info()
        info = {"Layers": list(LAYER_NAMES), "WeightsSHA256": weights["sha256"],
                "WeightsStatus": weights["status"],
                "WeightsTrainingData": weights["training_data"]}
        info_file = Path(runtime.cwd) / "candidate_rdms.json"
        info_file.write_text(json.dumps(info, indent=2))
        self._results.update(candidate_rdms=str(out), info=str(info_file))
        return runtime
