"""The flags fMRIPrep users reach for: boilerplate, reports only, graph, monitor, clean work."""

from __future__ import annotations

import pytest

from bidsapp.cli.parser import parse_args
from bidsapp.errors import UsageError
from bidsapp.levels.participant import clean_work_dir


def _args(bids_root, tmp_path, *extra):
    return [bids_root, tmp_path / "out", "participant", "--participant-label", "01",
            "--skip-bids-validation", "-w", tmp_path / "work", "--output-spaces",
            "MNI152NLin2009aSym", *extra]


def test_flags_reach_the_config(bids_root, tmp_path):
    config = parse_args([str(a) for a in _args(
        bids_root, tmp_path, "--boilerplate-only", "--reports-only", "--write-graph",
        "--resource-monitor", "--clean-workdir")])
    assert config.output_space == "MNI152NLin2009aSym"
    assert (config.boilerplate_only, config.reports_only, config.write_graph,
            config.resource_monitor, config.clean_workdir) == (True,) * 5
    plain = parse_args([str(a) for a in _args(bids_root, tmp_path)])
    assert not (plain.boilerplate_only or plain.reports_only or plain.clean_workdir)


def test_boilerplate_only_writes_the_methods_and_runs_nothing(bids_root, tmp_path, run_app):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "stale.txt").write_text("from an earlier run")
    proc = run_app(*_args(bids_root, tmp_path, "--boilerplate-only", "--write-graph",
                          "--clean-workdir"))
    assert proc.returncode == 0, proc.stderr
    citation = (tmp_path / "out" / "logs" / "CITATION.md").read_text()
    assert "ResNet-18" in citation and "head motion" in citation
    assert not list((tmp_path / "out").glob("sub-01/func/*statmap*"))
    assert not (tmp_path / "work" / "stale.txt").exists()
    assert "digraph" in (tmp_path / "work" / "bidsapp_participant_wf" / "graph.dot").read_text()


def test_reports_only_needs_outputs(bids_root, tmp_path, run_app):
    proc = run_app(*_args(bids_root, tmp_path, "--reports-only"))
    assert proc.returncode == 66, proc.stderr
    assert "no outputs to report on" in proc.stderr and "Traceback" not in proc.stderr


def test_clean_workdir_refuses_a_folder_holding_data(tmp_path):
    (tmp_path / "bids").mkdir()
    config = parse_args([str(tmp_path / "bids"), str(tmp_path / "w" / "out"), "participant",
                         "-w", str(tmp_path / "w")])
    with pytest.raises(UsageError, match="would delete"):
        clean_work_dir(config)
