"""The cluster plugin files in ``examples/hpc`` parse and drive nipype's graph plugins.

No scheduler runs here, so ``sbatch``/``qsub`` are small scripts on ``PATH`` that record
their arguments and answer like the real ones: what is tested is that our participant
workflow builds with the plugin settings from the YAML, and that nipype writes one batch
script per step carrying the YAML's scheduler arguments, submitted in dependency order.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bidsapp.bids import collect_participants, open_layout
from bidsapp.cli.parser import parse_args
from bidsapp.design import subject_designs
from bidsapp.levels.common import plugin_settings
from bidsapp.workflows.participant import init_participant_wf

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "hpc"

FAKE = {
    "sbatch": 'echo "$@" >> "{log}"\nn=$(wc -l < "{log}")\necho "Submitted batch job $n"\n',
    "qsub": 'echo "$@" >> "{log}"\nn=$(wc -l < "{log}")\n'
            'echo "Your job $n (\\"x\\") has been submitted"\n',
}


def _participant_wf(config, bids_root: Path):
    subjects = collect_participants(open_layout(bids_root), config)
    return init_participant_wf(config, subjects,
                               {s.subject: subject_designs(s, config) for s in subjects})


def _fake_scheduler(tmp_path: Path, command: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / f"{command}.log"
    script = bin_dir / command
    script.write_text("#!/bin/sh\n" + FAKE[command].format(log=log))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log


@pytest.mark.parametrize(("example", "command", "args_key"), [
    ("slurm_graph.yml", "sbatch", "sbatch_args"),
    ("sge_graph.yml", "qsub", "qsub_args"),
])
def test_graph_plugin_example_submits_every_step(bids_root, tmp_path, monkeypatch,
                                                  example, command, args_key):
    log = _fake_scheduler(tmp_path, command)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    config = parse_args([str(bids_root), str(tmp_path / "out"), "participant",
                         "--participant-label", "01", "--use-plugin",
                         str(EXAMPLES / example), "-w", str(tmp_path / "work"),
                         "--output-space", "MNI152NLin2009aSym"])
    settings = plugin_settings(config)
    assert settings["plugin"] == example.split("_")[0].upper() + "Graph"
    assert settings["plugin_args"]["dont_resubmit_completed_jobs"] is True

    workflow = _participant_wf(config, bids_root)
    workflow.base_dir = str(tmp_path / "work")
    workflow.run(**settings)

    submissions = log.read_text().splitlines()
    scripts = list((tmp_path / "work").rglob("batchscript_*.sh"))
    assert len(submissions) == len(scripts) > 20
    assert all(settings["plugin_args"][args_key] in line for line in submissions)
    # Steps that need others wait for them: SLURM's afterok, SGE's hold_jid.
    waits = "--dependency=afterok:" if command == "sbatch" else "-hold_jid"
    assert sum(waits in line for line in submissions) > len(submissions) // 2


def test_array_script_is_valid_bash():
    import subprocess

    script = EXAMPLES / "slurm_array.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    text = script.read_text()
    assert "--cleanenv" in text and "--nv" in text and "participants.tsv" in text


@pytest.mark.parametrize(("flag", "order"), [([], 3), (["--interpolation", "trilinear"], 1)])
def test_interpolation_option_reaches_every_resampling(bids_root, tmp_path, flag, order):
    config = parse_args([str(bids_root), str(tmp_path / "out"), "participant",
                         "--participant-label", "01", "-w", str(tmp_path / "work"),
                         "--output-space", "MNI152NLin2009aSym", *flag])
    workflow = _participant_wf(config, bids_root)
    orders = [workflow.get_node(name).inputs.order for name in workflow.list_node_names()
              if name.endswith(".resample")]
    assert orders and set(orders) == {order}


def test_searchlight_jobs_are_submitted_as_parallel_cluster_jobs(bids_root, tmp_path,
                                                                  monkeypatch):
    """``--searchlight-jobs 3`` with SLURMGraph: three searchlight jobs, none waits on another."""
    log = _fake_scheduler(tmp_path, "sbatch")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    config = parse_args([str(bids_root), str(tmp_path / "out"), "participant",
                         "--participant-label", "01", "--use-plugin",
                         str(EXAMPLES / "slurm_graph.yml"), "-w", str(tmp_path / "work"),
                         "--output-space", "MNI152NLin2009aSym", "--searchlight-jobs", "3"])
    workflow = _participant_wf(config, bids_root)
    workflow.base_dir = str(tmp_path / "work")
    workflow.run(**plugin_settings(config))

    # The fake sbatch numbers the jobs by line; -J names them j<index>_<node>.
    jobs, waits = {}, {}
    for number, line in enumerate(log.read_text().splitlines(), start=1):
        args = line.split()
        name = args[args.index("-J") + 1]
        jobs[str(number)] = name
        deps = next((a.split(":", 1)[1] for a in args if a.startswith("--dependency=")), "")
        waits[name] = {d for d in deps.split(":") if d}
    by_node = {name.split("_", 1)[1]: name for name in jobs.values()}
    shards = [by_node[n] for n in sorted(by_node) if n.startswith("searchlight")]
    assert [n.split("_", 1)[1] for n in shards] == [f"searchlight_shard{k}" for k in (1, 2, 3)]
    for shard in shards:
        after = {jobs[d] for d in waits[shard]}
        assert any("prepare_patterns" in n for n in after), after
        assert not any("searchlight" in n for n in after), after
    for merge in ("merge_shards", "merge_shard_nulls"):
        assert set(shards) <= {jobs[d] for d in waits[by_node[merge]]}
