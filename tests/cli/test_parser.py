"""The BIDS-Apps parser: every flag, both label spellings, each error's exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bidsapp.cli.parser import build_parser, parse_args, parse_memory
from bidsapp.config import Config
from bidsapp.errors import MissingInputError, UsageError


@pytest.fixture
def dirs(tmp_path):
    bids = tmp_path / "bids"
    bids.mkdir()
    return bids, tmp_path / "out"


def test_defaults(dirs):
    bids, out = dirs
    config = parse_args([str(bids), str(out), "participant"])
    assert config.bids_dir == bids and config.output_dir == out
    assert config.analysis_level == "participant"
    assert config.output_space == "MNI152NLin2009cAsym"
    assert config.output_res == pytest.approx(2.4)
    assert config.device == "auto" and config.random_seed == 0
    assert config.participant_label == () and config.task == ()
    assert config.skip_bids_validation is False and config.stop_on_first_crash is False
    assert config.searchlight_jobs == 1


@pytest.mark.parametrize("flag", ["--participant-label", "--participant_label"])
@pytest.mark.parametrize("labels", [["01", "02"], ["sub-01", "02"], ["sub-01", "sub-02"]])
def test_participant_label_spellings(dirs, flag, labels):
    bids, out = dirs
    config = parse_args([str(bids), str(out), "participant", flag, *labels])
    assert config.participant_label == ("01", "02")


def test_every_flag(dirs, tmp_path):
    bids, out = dirs
    filt = tmp_path / "filter.json"
    filt.write_text(json.dumps({"bold": {"acquisition": "mb"}}))
    plugin = tmp_path / "plugin.yml"
    plugin.write_text("plugin: SLURMGraph\nplugin_args:\n  dont_resubmit_completed_jobs: true\n")
    deriv = tmp_path / "fmriprep"
    deriv.mkdir()
    config = parse_args([
        str(bids), str(out), "group",
        "--participant-label", "01", "--session-label", "ses-a", "b", "--task", "task-music",
        "--bids-filter-file", str(filt), "-w", str(tmp_path / "work"), "--nprocs", "3",
        "--omp-nthreads", "2", "--mem", "8GB", "--use-plugin", str(plugin),
        "--skip-bids-validation", "--stop-on-first-crash", "--random-seed", "42",
        "--device", "cpu", "-d", f"fmriprep={deriv}", "--output-space", "MNI152NLin2009aSym",
        "--output-res", "2", "--searchlight-size", "50", "--slice-time-ref", "0",
        "--fdr-q", "0.01", "--normalization-quality", "fast", "--interpolation", "trilinear",
        "--searchlight-jobs", "4", "-vv",
    ])
    assert config.analysis_level == "group"
    assert config.session_label == ("a", "b") and config.task == ("music",)
    assert config.bids_filters == {"bold": {"acquisition": "mb"}}
    assert config.work_dir == tmp_path / "work"
    assert (config.nprocs, config.omp_nthreads, config.mem_gb) == (3, 2, 8.0)
    assert config.use_plugin == plugin
    assert config.skip_bids_validation and config.stop_on_first_crash
    assert config.random_seed == 42 and config.device == "cpu"
    assert config.derivatives == {"fmriprep": deriv}
    assert config.output_space == "MNI152NLin2009aSym" and config.output_res == 2.0
    assert config.searchlight_size == 50 and config.slice_time_ref == 0.0
    assert config.fdr_q == 0.01 and config.verbose == 2
    assert config.normalization_quality == "fast" and config.interpolation == "trilinear"
    assert config.searchlight_jobs == 4


@pytest.mark.parametrize("text,gb", [("16000", 15.625), ("8G", 8.0), ("8gb", 8.0),
                                     ("512MB", 0.5), ("512", 0.5), ("1.5T", 1536.0)])
def test_parse_memory(text, gb):
    assert parse_memory(text) == pytest.approx(gb)


def test_version_reads_version_file(capsys):
    version = (Path(__file__).resolve().parents[2] / "version").read_text().strip()
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--version"])
    assert exc.value.code == 0
    assert version in capsys.readouterr().out


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("extra,error,code", [
    (["--nprocs", "0"], UsageError, 64),
    (["--nprocs", "two"], UsageError, 64),
    (["--searchlight-jobs", "0"], UsageError, 64),
    (["--searchlight-jobs", "-2"], UsageError, 64),
    (["--config-file", "ZERO_JOBS_TOML"], UsageError, 64),
    (["--mem", "lots"], UsageError, 64),
    (["--mem", "100MB"], UsageError, 64),
    (["--device", "tpu"], UsageError, 64),
    (["--output-res", "-1"], UsageError, 64),
    (["--slice-time-ref", "1.5"], UsageError, 64),
    (["--no-such-flag"], UsageError, 64),
    (["--bids-filter-file", "missing.json"], MissingInputError, 66),
    (["--bids-filter-file", "BAD_JSON"], UsageError, 64),
    (["--use-plugin", "missing.yml"], MissingInputError, 66),
    (["--use-plugin", "BAD_YAML"], UsageError, 64),
    (["-d", "fmriprep=/nonexistent/fmriprep"], MissingInputError, 66),
    (["--config-file", "missing.toml"], MissingInputError, 66),
    (["--config-file", "BAD_TOML"], UsageError, 64),
])
def test_option_errors(dirs, tmp_path, extra, error, code):
    bids, out = dirs
    bad = {"BAD_JSON": _write(tmp_path / "f.json", "{not json"),
           "BAD_YAML": _write(tmp_path / "p.yml", "plugin_args: {}\n"),
           "BAD_TOML": _write(tmp_path / "c.toml", "= nope"),
           "ZERO_JOBS_TOML": _write(tmp_path / "z.toml", "[bidsapp]\nsearchlight_jobs = 0\n")}
    extra = [str(bad.get(e, tmp_path / e if e.endswith((".json", ".yml", ".toml")) else e))
             for e in extra]
    with pytest.raises(error) as exc:
        parse_args([str(bids), str(out), "participant", *extra])
    assert exc.value.exit_code == code
    assert "Fix:" in str(exc.value) or "--help" in str(exc.value)


@pytest.mark.parametrize("argv,code", [
    ([], 64),
    (["BIDS"], 64),
    (["BIDS", "OUT", "subject"], 64),
    (["/nonexistent/bids", "OUT", "participant"], 66),
    (["BIDS", "BIDS", "participant"], 64),
    (["BIDS", "OUT", "participant", "-w", "BIDS/work"], 64),
])
def test_positional_errors(dirs, argv, code):
    bids, out = dirs
    argv = [a.replace("BIDS", str(bids)).replace("OUT", str(out)) for a in argv]
    with pytest.raises((UsageError, MissingInputError)) as exc:
        parse_args(argv)
    assert exc.value.exit_code == code


def test_config_roundtrip_and_file(dirs, tmp_path):
    bids, out = dirs
    config = parse_args([str(bids), str(out), "participant", "--participant-label", "01",
                         "--random-seed", "7", "--output-res", "3"])
    saved = config.save(tmp_path / "logs" / "config.toml")
    again = parse_args([str(bids), str(out), "participant", "--config-file", str(saved)])
    assert again.replace(verbose=config.verbose) == config
    # The command line overrides the file.
    third = parse_args([str(bids), str(out), "participant", "--config-file", str(saved),
                        "--random-seed", "9"])
    assert third.random_seed == 9 and third.participant_label == ("01",)


def test_config_is_frozen(dirs):
    bids, out = dirs
    config = parse_args([str(bids), str(out), "participant"])
    with pytest.raises(AttributeError):
        config.random_seed = 3  # type: ignore[misc]


def test_config_rejects_unknown_keys():
    with pytest.raises(UsageError) as exc:
        Config.from_dict({"bids_dir": "/a", "output_dir": "/b", "analysis_level": "group",
                          "colour": "red"})
    assert exc.value.exit_code == 64 and "colour" in str(exc.value)


def test_drop_seconds_and_mem_as_fmriprep_users_expect(tmp_path):
    bids = tmp_path / "bids"
    bids.mkdir()
    config = parse_args([str(bids), str(tmp_path / "out"), "participant", "--drop-seconds",
                         "4.5", "--mem", "16000"])
    assert config.drop_seconds == 4.5 and config.mem_gb == pytest.approx(16000 / 1024)
    assert parse_args([str(bids), str(tmp_path / "out"), "participant"]).drop_seconds == 6.0


def test_help_states_each_default_once(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text
    assert "(default: all cores)" in text and "(default: all cores) (default" not in text
    assert "0.28" in text  # the permutation cost agrees with docs/usage.md


@pytest.mark.parametrize(("argv", "cpus", "threads", "at_once"), [
    ([], 2, 2, 1),                                  # the machine's cores, up to 8
    ([], 32, 8, 4),
    (["--nprocs", "2"], 32, 2, 1),                  # min(nprocs, 8), as --help says
    (["--nprocs", "12"], 32, 8, 1),
    (["--nprocs", "2", "--omp-nthreads", "1"], 32, 1, 2),
    (["--nprocs", "16", "--omp-nthreads", "4"], 32, 4, 4),
])
def test_threads_per_step_default_to_min_nprocs_8(dirs, monkeypatch, argv, cpus, threads,
                                                  at_once):
    # The searchlight often runs alone (one chunk at a 4 mm grid): with one thread by
    # default it left every other core idle.
    bids, out = dirs
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    config = parse_args([str(bids), str(out), "participant", *argv])
    assert (config.threads, config.jobs_at_once) == (threads, at_once)
