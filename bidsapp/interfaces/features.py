"""Interfaces around the stimulus features and candidate RDMs (:mod:`bidsapp.audio`)."""

from __future__ import annotations

import json
from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)


class _CandidateRDMsInputSpec(BaseInterfaceInputSpec):
    stimuli = traits.Dict(traits.Str, File(exists=True), mandatory=True,
                          desc="stim_file id -> audio path, for every trial of the task")
    repetition_time = traits.Float(mandatory=True, desc="BOLD repetition time (s)")
    cache_dir = traits.Str(mandatory=True, desc="shared feature cache (<output_dir>/features)")
    drop_seconds = traits.Float(6.0, usedefault=True, desc="seconds dropped per trial")
    device = traits.Enum("auto", "cpu", "cuda", usedefault=True)


class _CandidateRDMsOutputSpec(TraitedSpec):
    candidate_rdms = File(exists=True, desc="L x T x T float32 array (.npy)")
    stimulus_order = traits.List(traits.Str, desc="the canonical trial order")
    trial_trs = traits.Dict(traits.Str, traits.Int, desc="TRs per trial before dropping")
    info = File(exists=True, desc="JSON: layers, order, TRs, weights sha256 and status")


class CandidateRDMs(SimpleInterface):
    """Compute (or read from the cache) every stimulus's features, then one RDM per layer."""

    input_spec = _CandidateRDMsInputSpec
    output_spec = _CandidateRDMsOutputSpec

    def _run_interface(self, runtime):
        import numpy as np

        from bidsapp.audio import LAYER_NAMES, compute_features_many, weights_info
        from bidsapp.rsa import candidate_rdms, canonical_stimulus_order, features_by_layer

        stimuli = {stim: Path(path) for stim, path in self.inputs.stimuli.items()}
        tr = self.inputs.repetition_time
        computed = compute_features_many(list(stimuli.values()), tr,
                                         cache_dir=self.inputs.cache_dir,
                                         device=self.inputs.device)
        by_stim = {stim: computed[path] for stim, path in stimuli.items()}
        order = canonical_stimulus_order(by_stim)
        rdms = candidate_rdms(features_by_layer(by_stim), order, tr,
                              drop_seconds=self.inputs.drop_seconds, dtype=np.float32)
        out = Path(runtime.cwd) / "candidate_rdms.npy"
        np.save(out, rdms)
        trial_trs = {stim: int(by_stim[stim][LAYER_NAMES[0]].shape[1]) for stim in order}
        weights = weights_info()
        info = {"Layers": list(LAYER_NAMES), "StimulusOrder": order, "TrialTRs": trial_trs,
                "RepetitionTime": tr, "DropSeconds": self.inputs.drop_seconds,
                "NumberOfTRs": int(rdms.shape[1]), "WeightsSHA256": weights["sha256"],
                "WeightsStatus": weights["status"],
                "WeightsTrainingData": weights["training_data"]}
        info_file = Path(runtime.cwd) / "candidate_rdms.json"
        info_file.write_text(json.dumps(info, indent=2))
        self._results.update(candidate_rdms=str(out), stimulus_order=order,
                             trial_trs=trial_trs, info=str(info_file))
        return runtime
