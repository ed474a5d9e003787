"""Interfaces of the participant-level RSA: patterns, searchlight chunks, merged maps."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import nibabel as nb
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from bidsapp.design import TrialDesign
from bidsapp.device import resolve_device_name
from bidsapp.errors import BadDataError
from bidsapp.progress import Progress
from bidsapp.rsa import neighbors, searchlight
from bidsapp.rsa.maps import best_layer, layer_lookup_tsv, to_volume
from bidsapp.rsa.searchlight import estimate_memory, null_engine_memory, null_stack_rows
from bidsapp.rsa.timeseries import RunTrials, masked_volumes, stacked_patterns
from bidsapp.stats import participant_null, permutation_scheme


class _PreparePatternsInputSpec(BaseInterfaceInputSpec):
    bold_files = InputMultiObject(File(exists=True), mandatory=True,
                                  desc="template-space BOLD runs of one task")
    mask_file = File(exists=True, mandatory=True, desc="analysis (grey-matter) mask, same grid")
    design = traits.Dict(mandatory=True, desc="the task's TrialDesign (TrialDesign.to_dict), "
                                              "runs in the order of bold_files")
    searchlight_size = traits.Int(100, usedefault=True)
    chunk_centers = traits.Int(20000, usedefault=True, desc="centers per searchlight job")


class _PreparePatternsOutputSpec(TraitedSpec):
    patterns = File(exists=True, desc="T x V float32 (.npy)")
    neighbors = File(exists=True, desc="n_centers x n int32 (.npy)")
    chunks = traits.List(traits.Tuple(traits.Int, traits.Int), desc="[start, stop) of centers")


class PreparePatterns(SimpleInterface):
    """Build the study's stacked TR patterns inside the mask, and the neighbourhoods."""

    input_spec = _PreparePatternsInputSpec
    output_spec = _PreparePatternsOutputSpec

    def _run_interface(self, runtime):
        design = TrialDesign.from_dict(self.inputs.design)
        mask_img = nb.load(self.inputs.mask_file)
        mask = np.asanyarray(mask_img.dataobj) > 0
        runs = []
        for bold, run in zip(self.inputs.bold_files, design.runs, strict=True):
            img = nb.load(bold)
            _check_grid(img, mask_img, bold, self.inputs.mask_file)
            data = masked_volumes(bold, mask)  # volumes x in-mask voxels
            runs.append(RunTrials(data, list(run.onsets), list(run.stimuli), run.start_time,
                                  Path(bold).name))
        patterns, _ = stacked_patterns(runs, design.trs_by_stimulus, design.repetition_time,
                                       drop_seconds=design.drop_seconds,
                                       order=list(design.order))
        cwd = Path(runtime.cwd)
        np.save(cwd / "patterns.npy", np.ascontiguousarray(patterns.T))
        nbrs = neighbors(mask, self.inputs.searchlight_size,
                         affine=mask_img.affine).astype(np.int32)
        np.save(cwd / "neighbors.npy", nbrs)
        step = max(1, self.inputs.chunk_centers)
        self._results.update(
            patterns=str(cwd / "patterns.npy"), neighbors=str(cwd / "neighbors.npy"),
            chunks=[(start, min(start + step, len(nbrs))) for start in range(0, len(nbrs), step)],
        )
        return runtime


def _check_grid(img, mask_img, bold, mask_file) -> None:
    if img.shape[:3] != mask_img.shape[:3] or not np.allclose(img.affine, mask_img.affine,
                                                              atol=1e-3):
        raise BadDataError(
            f"The BOLD run's grid {img.shape[:3]} does not match the mask's "
            f"{mask_img.shape[:3]} ({mask_file})", path=bold,
            fix="give BOLD runs and mask resampled to the same template grid",
        )


class _SearchlightChunkInputSpec(BaseInterfaceInputSpec):
    patterns = File(exists=True, mandatory=True)
    neighbors = File(exists=True, mandatory=True)
    candidate_rdms = File(exists=True, mandatory=True)
    chunk = traits.Tuple(traits.Int, traits.Int, mandatory=True)
    device = traits.Enum("auto", "cpu", "cuda", usedefault=True)
    n_jobs = traits.Int(1, usedefault=True, desc="threads for the CPU engine")
    n_permutations = traits.Int(0, usedefault=True,
                                desc="trial-block permutations of the null; 0: no null")
    seed = traits.Int(0, usedefault=True, desc="seed of the permutations, same for every chunk")
    design = traits.Dict(desc="the task's TrialDesign (TrialDesign.to_dict): the trial "
                              "lengths the null permutes; needed for the null")
    mem_gb = traits.Float(desc="memory this job may hold (its node's mem_gb); sizes the "
                               "null's stack of target RDMs")
    # Not hashed: it names the chunk in the log and changes no value.
    shard = traits.Str(nohash=True, desc="the searchlight shard the chunk belongs to, as "
                                         "'2/3' (--searchlight-jobs), for the log")


class _SearchlightChunkOutputSpec(TraitedSpec):
    correlations = File(exists=True, desc="n_chunk_centers x L float32 (.npy)")
    null = File(desc="permutation null of the chunk (.npz: max_r K x n, block_orders)")


class SearchlightChunk(SimpleInterface):
    """Run the searchlight engine on one contiguous chunk of centers."""

    input_spec = _SearchlightChunkInputSpec
    output_spec = _SearchlightChunkOutputSpec

    def _run_interface(self, runtime):
        start, stop = self.inputs.chunk
        if start == stop:
            # More shards than centres: the engines return empty results, which merge as
            # nothing; the null still records the participant's trial orders.
            logging.getLogger("bidsapp").info("%s: no centres (more searchlight jobs than "
                                              "centres), nothing to compute", self._label())
        patterns = np.load(self.inputs.patterns, mmap_mode="r")
        nbrs = np.load(self.inputs.neighbors, mmap_mode="r")[start:stop]
        rdms = np.load(self.inputs.candidate_rdms)
        if self.inputs.n_permutations > 0:
            # The maps come with the null's first batch: one build of the target RDMs.
            result, self._results["null"] = self._null(patterns, np.asarray(nbrs), rdms, start,
                                                       Path(runtime.cwd))
        else:
            progress = self._progress(patterns.shape, nbrs.shape, rdms.shape[0], 0)
            result = searchlight(patterns, np.asarray(nbrs), rdms, device=self.inputs.device,
                                 n_jobs=self.inputs.n_jobs, progress=progress.advance)
        out = Path(runtime.cwd) / f"correlations_{start:07d}.npy"
        np.save(out, result)
        self._results["correlations"] = str(out)
        return runtime

    def _progress(self, patterns_shape, nbrs_shape, n_layers, n_permutations):
        """Log what the chunk will compute and its memory; return its progress counter."""
        start, stop = self.inputs.chunk
        n_trs, n_voxels = patterns_shape
        n_centers, sphere = nbrs_shape
        on_cpu = resolve_device_name(self.inputs.device) == "cpu"
        if n_permutations and on_cpu:
            rows = null_stack_rows(n_trs, n_voxels, n_centers, sphere, n_layers,
                                   n_permutations + 1, n_jobs=self.inputs.n_jobs,
                                   memory=self._memory())
            memory = null_engine_memory(n_trs, n_voxels, n_centers, sphere, n_layers,
                                        n_permutations + 1, stack_rows=rows,
                                        n_jobs=self.inputs.n_jobs)
            what = (f"{n_permutations} permutations and the observed maps in one pass, "
                    f"{rows} target RDMs at a time")
        else:
            columns = n_layers * (1 + n_permutations)
            memory = estimate_memory(n_trs, n_voxels, n_centers, sphere, columns,
                                     n_jobs=self.inputs.n_jobs, device=self.inputs.device)
            what = (f"{n_permutations} permutations and the observed maps" if n_permutations
                    else "the observed maps")
        label = self._label()
        logging.getLogger("bidsapp").info(
            "%s: T = %d TRs, %d layers, spheres of %d voxels; %s; on %s; engine memory about "
            "%.0f MB", label, n_trs, n_layers, sphere, what,
            f"CPU, {self.inputs.n_jobs} thread(s)" if on_cpu else "the GPU", memory / 2**20)
        return Progress(
            label, n_centers, "centres",
            warn_after=LONG_STEP_SECONDS if on_cpu else None,
            advice="To shorten it: a GPU (--device cuda), a cluster that runs the searchlight "
                   "as parallel jobs (--use-plugin with --searchlight-jobs, docs/hpc.md), "
                   "fewer permutations (--n-permutations), or a coarser output grid "
                   "(--output-res 4).")

    def _label(self) -> str:
        """Name the chunk in the log: its shard, if any, and its centres."""
        start, stop = self.inputs.chunk
        shard = f" shard {self.inputs.shard}" if isdefined(self.inputs.shard) else ""
        return f"Searchlight{shard}, centres {start}-{stop}"

    def _memory(self) -> int | None:
        """Bytes the engine may hold: the node's ``mem_gb`` (from ``--mem``), if set."""
        return int(self.inputs.mem_gb * 2**30) if isdefined(self.inputs.mem_gb) else None

    def _null(self, patterns, nbrs, rdms, start, cwd):
        """Return the chunk's maps and the path of its permutation null."""
        if not isdefined(self.inputs.design):
            raise ValueError("design is needed to compute the permutation null")
        lengths = TrialDesign.from_dict(self.inputs.design).trial_lengths
        n_perm = self.inputs.n_permutations
        logging.getLogger("bidsapp").info(
            "Permutation null: %d permutations (%s) of %d trials for %d centers",
            n_perm, permutation_scheme(lengths), len(lengths), len(nbrs))
        progress = self._progress(patterns.shape, nbrs.shape, rdms.shape[0], n_perm)
        null = participant_null(
            patterns, nbrs, rdms, lengths, n_perm, self.inputs.seed,
            functools.partial(searchlight, device=self.inputs.device, n_jobs=self.inputs.n_jobs,
                              memory=self._memory()),
            with_observed=True, progress=progress.advance)
        out = cwd / f"null_{start:07d}.npz"
        np.savez(out, max_r=null.max_r, block_orders=null.block_orders)
        return null.observed, str(out)


#: A step estimated to run longer than this on CPU gets a warning naming what shortens it.
LONG_STEP_SECONDS = 3 * 3600


class _MergeMapsInputSpec(BaseInterfaceInputSpec):
    correlations = InputMultiObject(File(exists=True), mandatory=True, desc="chunks, in order")
    mask_file = File(exists=True, mandatory=True)
    candidate_info = File(exists=True, mandatory=True,
                          desc="JSON from CandidateRDMs: layer names and weights")
    design = traits.Dict(mandatory=True, desc="the task's TrialDesign (TrialDesign.to_dict)")
    searchlight_size = traits.Int(100, usedefault=True)
    nulls = InputMultiObject(File(exists=True), desc="the chunks' permutation nulls, in order")
    seed = traits.Int(desc="seed the nulls were drawn with (for the sidecar)")


class _MergeMapsOutputSpec(TraitedSpec):
    layer_maps = OutputMultiObject(File(exists=True), desc="one r map per layer")
    layer_descs = traits.List(traits.Str, desc="desc entity of each layer map")
    layer_meta = traits.List(traits.Dict, desc="sidecar of each layer map")
    maxcorr_map = File(exists=True, desc="maximum r over layers")
    bestlayer_map = File(exists=True, desc="1-based index of the layer with maximum r")
    bestlayer_tsv = File(exists=True, desc="dseg lookup table")
    meta = traits.Dict(desc="common sidecar: parameters and weights")
    null_map = File(desc="4-D permutation null of the maximum r, one volume per permutation")
    null_meta = traits.Dict(desc="sidecar of the null")


class MergeMaps(SimpleInterface):
    """Put the chunks' correlations back on the mask's grid, one map per layer."""

    input_spec = _MergeMapsInputSpec
    output_spec = _MergeMapsOutputSpec

    def _run_interface(self, runtime):
        info = json.loads(Path(self.inputs.candidate_info).read_text())
        design = TrialDesign.from_dict(self.inputs.design)
        mask_img = nb.load(self.inputs.mask_file)
        mask = np.asanyarray(mask_img.dataobj) > 0
        values = np.concatenate([np.load(f) for f in self.inputs.correlations], axis=0)
        cwd = Path(runtime.cwd)
        meta = {"SearchlightSize": self.inputs.searchlight_size,
                "NumberOfTRs": design.n_trs, "StimulusOrder": list(design.order),
                "DropSeconds": design.drop_seconds, "WeightsSHA256": info["WeightsSHA256"],
                "WeightsStatus": info["WeightsStatus"],
                "WeightsTrainingData": info.get("WeightsTrainingData"),
                "Statistic": "Spearman r between target and candidate RDM upper triangles"}
        maps, descs, metas = [], [], []
        for k, layer in enumerate(info["Layers"]):
            path = cwd / f"layer{k + 1:02d}_r.nii.gz"
            to_volume(values[:, k], mask, mask_img).to_filename(path)
            maps.append(str(path))
            descs.append(f"layer{k + 1:02d}")
            metas.append({**meta, "Layer": layer, "LayerIndex": k + 1})
        max_r, best = best_layer(values)
        to_volume(max_r, mask, mask_img).to_filename(cwd / "maxcorr_r.nii.gz")
        to_volume(best, mask, mask_img, dtype=np.int16).to_filename(cwd / "bestlayer.nii.gz")
        (cwd / "bestlayer.tsv").write_text(layer_lookup_tsv(info["Layers"]))
        self._results.update(
            layer_maps=maps, layer_descs=descs, layer_meta=metas,
            maxcorr_map=str(cwd / "maxcorr_r.nii.gz"), bestlayer_map=str(cwd / "bestlayer.nii.gz"),
            bestlayer_tsv=str(cwd / "bestlayer.tsv"), meta=meta,
        )
        if isdefined(self.inputs.nulls) and self.inputs.nulls:
            self._merge_nulls(mask, mask_img, design, meta, cwd)
        return runtime

    def _merge_nulls(self, mask, mask_img, design, meta, cwd):
        chunks = [np.load(f) for f in self.inputs.nulls]
        orders = chunks[0]["block_orders"]
        if any(not np.array_equal(c["block_orders"], orders) for c in chunks[1:]):
            # Each null volume must be one whole-brain permutation (docs/statistics.md).
            raise RuntimeError("The searchlight chunks drew different permutations")
        max_r = np.concatenate([c["max_r"] for c in chunks], axis=1)  # K x n_centers
        volume = np.zeros((*mask.shape, max_r.shape[0]), dtype=np.float32)
        volume[mask] = max_r.T
        header = mask_img.header.copy()
        header.set_data_dtype(np.float32)
        path = cwd / "maxnull_r.nii.gz"
        nb.Nifti1Image(volume, mask_img.affine, header).to_filename(path)
        null_meta = {
            **meta, "Statistic": "maximum over layers of the Spearman r with candidate RDMs "
                                 "whose trials were permuted (one volume per permutation)",
            "NumberOfPermutations": int(max_r.shape[0]),
            "PermutationScheme": permutation_scheme(design.trial_lengths),
            "TrialLengths": design.trial_lengths, "BlockOrders": orders.tolist(),
        }
        if isdefined(self.inputs.seed):
            null_meta["RandomSeed"] = int(self.inputs.seed)
        self._results.update(null_map=str(path), null_meta=null_meta)
