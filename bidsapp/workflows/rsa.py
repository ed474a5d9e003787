"""The participant-level searchlight RSA workflow for one task."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bidsapp.config import Config
from bidsapp.design import TrialDesign
from bidsapp.interfaces.bids import DerivativesDataSink
from bidsapp.interfaces.reports import CandidateRDMPlot
from bidsapp.interfaces.rsa import MergeMaps, PreparePatterns, SearchlightChunk
from bidsapp.rsa.searchlight import CHUNK_CENTERS
from bidsapp.stats import FITTED, participant_seed, permutation_scheme


def init_rsa_wf(*, config: Config, design: dict, source_file: str | Path, subject: str,
                space_entities: dict, chunk_centers: int = CHUNK_CENTERS,
                name: str = "rsa_wf") -> pe.Workflow:
    """Build the searchlight RSA of one participant's task against the network's layers.

    Parameters
    ----------
    config : Config
        Searchlight size, device, output folder.
    design : dict
        The task's :class:`~bidsapp.design.TrialDesign` as :meth:`~.TrialDesign.to_dict`
        gives it; its runs are in the order their preprocessed files arrive.
    source_file : str or Path
        A raw BOLD run of the task, which names the outputs (``run`` is dismissed).
    subject : str
        The participant label, which seeds the permutation null.
    space_entities : dict
        Entities of the output grid, e.g. ``{"space": "MNI152NLin2009cAsym",
        "resolution": "2p4"}``, and optionally ``Resolution``, the sidecar text that BIDS
        asks for with a ``res`` entity.
    chunk_centers : int
        Searchlight centers per job; fixed sizes keep chunk boundaries, and so the cached
        results of a rerun, independent of the number of processes.
    name : str
        Workflow name.

    Inputs
    ------
    bold_files
        Template-space preprocessed BOLD runs (same order as ``runs``).
    mask_file
        Template-space grey-matter mask on the same grid.
    candidate_rdms, candidate_info
        From :class:`bidsapp.interfaces.features.CandidateRDMs`.

    Outputs
    -------
    layer_maps
        One Spearman r map per layer.
    maxcorr_map, bestlayer_map
        Maximum r over layers and the winning layer.

    With ``config.n_permutations`` > 0 each chunk also computes its part of the
    participant's permutation null (the same trial orders in every chunk, from
    :func:`bidsapp.stats.participant_seed`), written as ``desc-maxnull_stat-r_statmap``.

    With ``config.searchlight_jobs`` N > 1 the searchlight is N MapNodes,
    ``searchlight_shard1`` to ``searchlight_shardN``, each over its contiguous share of the
    centres (:func:`bidsapp.rsa.searchlight.shard_chunks`), merged in order: a graph plugin
    submits each as its own job.  With N = 1 it is one MapNode, ``searchlight``, over all
    chunks.  The outputs are the same for any N.
    """
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = (
        "Within the grey-matter mask, each run's voxel time courses were linearly detrended "
        "and z-scored; repetitions of each stimulus were averaged over runs, the first "
        f"{config.drop_seconds:g} s of each trial were dropped and the trials were stacked. "
        f"For each voxel, the {config.searchlight_size} nearest in-mask voxels formed a "
        "searchlight whose target RDM was 1 - Spearman correlation between TR patterns; the "
        "map value was the Spearman correlation between the upper triangles of the target "
        "RDM and of each layer's candidate RDM."
    )
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["bold_files", "mask_file", "candidate_rdms", "candidate_info"]),
        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(
        fields=["layer_maps", "maxcorr_map", "bestlayer_map"]), name="outputnode")

    prepare = pe.Node(PreparePatterns(design=design, searchlight_size=config.searchlight_size,
                                      chunk_centers=chunk_centers),
                      name="prepare_patterns", mem_gb=4)
    seed = participant_seed(config.random_seed, subject)
    n_perm = config.n_permutations
    if n_perm:
        workflow.__desc__ += (
            f" To test the maximum over layers without bias, a null was built for each "
            f"participant from {n_perm} permutations of whole trials of the candidate RDMs "
            "(rows and columns reordered together, the target RDMs unchanged), keeping the "
            "maximum over layers of each permutation's searchlight correlations."
        )
        if permutation_scheme(TrialDesign.from_dict(design).trial_lengths) == FITTED:
            workflow.__desc__ += (
                " Because the trials differ in length, any trial could fill any trial's "
                "place, cut to its length or extended by running it backwards from its end, "
                "so that trial boundaries stayed in place."
            )
    # Each of the jobs that can run at once gets its share of --mem (else of the machine's
    # memory); the null's engine sizes its stack of target RDMs from it.
    threads = config.threads
    chunk_args = {}
    mem_gb = chunk_args["mem_gb"] = config.job_memory_gb
    if n_perm:
        chunk_args["design"] = design
    merge = pe.Node(MergeMaps(design=design, searchlight_size=config.searchlight_size,
                              seed=seed),
                    name="merge_maps")
    n_shards = config.searchlight_jobs
    if n_shards == 1:
        chunk = pe.MapNode(SearchlightChunk(device=config.device, n_permutations=n_perm,
                                            seed=seed, n_jobs=threads, **chunk_args),
                           iterfield=["chunk"], name="searchlight", mem_gb=mem_gb,
                           n_procs=threads)
        workflow.connect([
            (prepare, chunk, [("patterns", "patterns"), ("neighbors", "neighbors"),
                              ("chunks", "chunk")]),
            (inputnode, chunk, [("candidate_rdms", "candidate_rdms")]),
            (chunk, merge, [("correlations", "correlations")]),
        ])
        if n_perm:
            workflow.connect(chunk, "null", merge, "nulls")
    else:
        # A graph plugin submits a MapNode as one job that runs its chunks one after the
        # other, and needs every node before the chunk count (from the mask) is known: so
        # a fixed number of MapNodes, each taking its share of the centres at run time.
        # Locally each MapNode's chunks still run side by side, as with one shard.
        width = len(str(n_shards))
        merge_shards = pe.Node(niu.Merge(n_shards, ravel_inputs=True), name="merge_shards",
                               run_without_submitting=True)
        workflow.connect(merge_shards, "out", merge, "correlations")
        if n_perm:
            merge_nulls = pe.Node(niu.Merge(n_shards, ravel_inputs=True),
                                  name="merge_shard_nulls", run_without_submitting=True)
            workflow.connect(merge_nulls, "out", merge, "nulls")
        for shard in range(n_shards):
            chunk = pe.MapNode(SearchlightChunk(device=config.device, n_permutations=n_perm,
                                                seed=seed, n_jobs=threads,
                                                shard=f"{shard + 1}/{n_shards}", **chunk_args),
                               iterfield=["chunk"], name=f"searchlight_shard{shard + 1:0{width}d}",
                               mem_gb=mem_gb, n_procs=threads)
            workflow.connect([
                (prepare, chunk, [("patterns", "patterns"), ("neighbors", "neighbors"),
                                  (("chunks", _shard_of, shard, n_shards, chunk_centers),
                                   "chunk")]),
                (inputnode, chunk, [("candidate_rdms", "candidate_rdms")]),
                (chunk, merge_shards, [("correlations", f"in{shard + 1}")]),
            ])
            if n_perm:
                workflow.connect(chunk, "null", merge_nulls, f"in{shard + 1}")

    source = str(source_file)
    base = {"base_directory": str(config.output_dir), "source_file": source,
            "dismiss_entities": ("run", "echo"), **space_entities}
    nifti = {**base, "compress": True, "check_hdr": False}
    ds_layers = pe.MapNode(DerivativesDataSink(suffix="statmap", allowed_entities=("stat",),
                                               stat="r", **nifti),
                           iterfield=["in_file", "desc", "meta_dict"], name="ds_layer_maps",
                           run_without_submitting=True)
    ds_max = pe.Node(DerivativesDataSink(suffix="statmap", allowed_entities=("stat",),
                                         stat="r", desc="maxcorr", **nifti),
                     name="ds_maxcorr", run_without_submitting=True)
    ds_best = pe.Node(DerivativesDataSink(suffix="dseg", desc="bestlayer", **nifti),
                      name="ds_bestlayer", run_without_submitting=True)
    ds_best_tsv = pe.Node(DerivativesDataSink(suffix="dseg", desc="bestlayer", **base),
                          name="ds_bestlayer_tsv", run_without_submitting=True)
    ds_mask = pe.Node(DerivativesDataSink(suffix="mask", desc="searchlight", **nifti),
                      name="ds_mask", run_without_submitting=True)
    rdm_plot = pe.Node(CandidateRDMPlot(), name="candidate_rdm_plot", mem_gb=1)
    ds_rdm_plot = pe.Node(DerivativesDataSink(
        base_directory=str(config.output_dir), source_file=source,
        dismiss_entities=("run", "echo"), desc="candidates", suffix="rdm", datatype="figures"),
        name="ds_candidate_rdm_plot", run_without_submitting=True)

    if n_perm:
        ds_null = pe.Node(DerivativesDataSink(suffix="statmap", allowed_entities=("stat",),
                                              stat="r", desc="maxnull", **nifti),
                          name="ds_maxnull", run_without_submitting=True)
        workflow.connect([
            (merge, ds_null, [("null_map", "in_file"), ("null_meta", "meta_dict")]),
        ])
    workflow.connect([
        (inputnode, prepare, [("bold_files", "bold_files"), ("mask_file", "mask_file")]),
        (inputnode, merge, [("mask_file", "mask_file"), ("candidate_info", "candidate_info")]),
        (merge, ds_layers, [("layer_maps", "in_file"), ("layer_descs", "desc"),
                            ("layer_meta", "meta_dict")]),
        (merge, ds_max, [("maxcorr_map", "in_file"), ("meta", "meta_dict")]),
        (merge, ds_best, [("bestlayer_map", "in_file")]),
        (merge, ds_best_tsv, [("bestlayer_tsv", "in_file")]),
        (inputnode, ds_mask, [("mask_file", "in_file")]),
        (inputnode, rdm_plot, [("candidate_rdms", "candidate_rdms"),
                               ("candidate_info", "candidate_info")]),
        (rdm_plot, ds_rdm_plot, [("out_report", "in_file")]),
        (merge, outputnode, [("layer_maps", "layer_maps"), ("maxcorr_map", "maxcorr_map"),
                             ("bestlayer_map", "bestlayer_map")]),
    ])
    return workflow


def _shard_of(chunks: list, shard: int, n_shards: int, chunk_centers: int) -> list:
    """Return shard ``shard``'s chunks, given every chunk of the participant.

    A connection function: nipype runs it from its source text when the shard's job reads
    :class:`~bidsapp.interfaces.rsa.PreparePatterns`' ``chunks``, which cover the centres
    ``0 .. n`` in order.

    Parameters
    ----------
    chunks : list of (int, int)
        ``[start, stop)`` of every chunk, in order.
    shard, n_shards : int
        Which share of how many (0-based).
    chunk_centers : int
        Most centres per chunk.

    Returns
    -------
    list of (int, int)
        What :func:`bidsapp.rsa.searchlight.shard_chunks` gives for the ``n`` centres.
    """
    # Run from its source text, outside this module: it imports what it uses.
    from bidsapp.rsa.searchlight import shard_chunks

    n_centers = chunks[-1][1] if chunks else 0
    return shard_chunks(n_centers, shard, n_shards, chunk_centers)
