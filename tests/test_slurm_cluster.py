"""The HPC examples on a real one-node SLURM: Debian's slurm-wlm and munge on this machine.

``scripts/slurm_local.sh`` starts munged, slurmctld and slurmd with a configuration written
for this machine (its hostname, CPUs and memory), in a folder of their own, and stops them
at the end.  On that cluster:

1. ``examples/hpc/slurm_array.sh`` runs the tiny preset's two participants as an array job
   (the installed app: no container runtime here), then the group level runs as a job that
   waits for the array (``--dependency=afterok``);
2. ``examples/hpc/slurm_graph.yml`` (nipype's SLURMGraph) runs one participant, one SLURM
   job per step; one running step is killed with ``scancel``, and the next invocation, the
   one the app tells the user to run, redoes it and nothing that had finished;
3. both give the same participant outputs as a local run (the resume test's comparison);
   so does the graph plugin with ``--searchlight-jobs 3``, whose three searchlight shards
   are three SLURM jobs, at least two of them running at the same time (SLURM's start and
   end times, kept for an hour by ``MinJobAge``; this config has no accounting for sacct);
4. a scheduler that cannot take jobs (slurmctld down, munged down) stops the app at once,
   with exit 69 and the fix, before anything is submitted.

Slow (a local, two array and one graph participant run: 35 min on 2 busy cores): run with
``pytest -m slow tests/test_slurm_cluster.py``.  Needs root (slurmd starts jobs as their
owner) and the packages slurm-wlm and munge, installed with apt-get when missing; skipped,
with the reason, where that cannot be done.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_end_to_end import output_list, same_outputs

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "hpc"
SLURM_LOCAL = REPO / "scripts" / "slurm_local.sh"
EXPECTED = (REPO / "tests" / "data" / "expected_outputs.txt").read_text().split()
SPACE = "MNI152NLin2009aSym"  # ships with nilearn: runs offline
COMMON = ["--output-space", SPACE, "--normalization-quality", "fast", "--omp-nthreads", "1",
          "--n-permutations", "20"]
BIDSAPP = shutil.which("bidsapp") or str(Path(sys.executable).parent / "bidsapp")

pytestmark = pytest.mark.slow


def _cannot_run() -> str | None:
    """Why a SLURM cannot be set up here, or None when it can."""
    if os.geteuid() != 0:
        return "a one-node SLURM needs root: slurmd starts every job as the user who submitted it"
    if shutil.which("slurmctld") and shutil.which("munged"):
        return None
    if not shutil.which("apt-get"):
        return "slurm-wlm and munge are not installed, and there is no apt-get to install them"
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if done.returncode != 0 or not shutil.which("slurmctld"):
        return f"slurm-wlm and munge could not be installed: {done.stderr.strip()[-300:]}"
    return None


def _free_port_pair() -> int:
    for port in range(6917, 7017, 2):
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no free pair of ports in 6917-7017 for slurmctld and slurmd")


class Cluster:
    """The running one-node cluster: its folder, environment and a few commands."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.env = {**os.environ, "SLURM_LOCAL_DIR": str(folder),
                    "SLURM_LOCAL_PORT": str(_free_port_pair())}

    def script(self, action: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(SLURM_LOCAL), action], env=self.env,
                              capture_output=True, text=True, timeout=600, check=False)

    def stop(self, daemon: str) -> None:
        pid = int((self.folder / f"{daemon}.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        raise AssertionError(f"{daemon} (pid {pid}) did not stop")

    def run(self, *args: str, **kwargs) -> str:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=120,
                              check=False, **kwargs)
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
        return done.stdout

    def jobs(self, job_id: str | None = None) -> list[dict[str, str]]:
        """``scontrol show job`` as one dict per job (array tasks each their own)."""
        text = self.run("scontrol", "-o", "show", "job", *([job_id] if job_id else []))
        return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in text.splitlines()
                if line.startswith("JobId=")]

    def wait_idle(self, timeout: float) -> None:
        """Wait until no job is pending or running."""
        deadline = time.monotonic() + timeout
        while self.run("squeue", "-h", "-o", "%i").strip():
            assert time.monotonic() < deadline, self.run("squeue")
            time.sleep(2)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = _cannot_run()
    if reason:
        pytest.skip(reason)
    cluster = Cluster(tmp_path_factory.mktemp("slurm"))
    started = time.monotonic()
    up = cluster.script("up")
    assert up.returncode == 0, up.stderr
    print(f"\nslurm_local.sh up: {time.monotonic() - started:.1f} s; {up.stderr.strip()}")
    conf = up.stdout.strip().removeprefix("export SLURM_CONF=")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", conf)
        cluster.env["SLURM_CONF"] = conf
        # The node is this machine, as the config says.
        node = cluster.run("scontrol", "show", "node")
        assert f"NodeName={socket.gethostname().split('.')[0]}" in node
        assert f"CPUTot={os.cpu_count()}" in node
        yield cluster
        down = cluster.script("down")
    assert down.returncode == 0, down.stderr
    for daemon in ("munged", "slurmctld", "slurmd"):
        assert not (cluster.folder / f"{daemon}.pid").exists(), f"{daemon} still runs"


def _app(*args, cwd: Path, timeout: float = 3000) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "run.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    proc = _app("simulate", root / "bids", "--preset", "tiny", "--seed", "0", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "bids"


@pytest.fixture(scope="module")
def local_run(tiny, tmp_path_factory) -> Path:
    """sub-01 run on this machine with the app's own process pool: the reference."""
    root = tmp_path_factory.mktemp("local")
    started = time.monotonic()
    proc = _app(tiny, root / "out", "participant", "--participant-label", "01",
                "-w", root / "work", "--nprocs", "2", *COMMON, cwd=root)
    assert proc.returncode == 0, proc.stderr[-5000:]
    print(f"\nlocal run of sub-01: {time.monotonic() - started:.0f} s")
    return root / "out"


def _seconds(job: dict[str, str]) -> int:
    h, m, s = (int(x) for x in job["RunTime"].split(":")[-3:])
    return 3600 * h + 60 * m + s


def test_array_job_then_group_level(slurm, tiny, local_run, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**slurm.env, "BIDS": str(tiny), "OUT": str(out), "WORK": str(work),
           "IMAGE": str(tmp_path / "no-image.sif"), "BIDSAPP": BIDSAPP,
           "BIDSAPP_ARGS": " ".join(COMMON)}
    # One CPU and 6 GB a participant: both fit on the 2-CPU node at once.
    array = slurm.run("sbatch", "--parsable", "--array=1-2", "--cpus-per-task=1", "--mem=6G",
                      f"--output={tmp_path}/array-%a.log", str(EXAMPLES / "slurm_array.sh"),
                      env=env, cwd=tmp_path).strip()
    group = slurm.run("sbatch", "--parsable", f"--dependency=afterok:{array}",
                      f"--output={tmp_path}/group.log", "--mem=4G", "--wrap",
                      f"{BIDSAPP} {tiny} {out} group --output-space {SPACE}",
                      env=env, cwd=tmp_path).strip()
    slurm.wait_idle(timeout=3000)

    logs = "\n".join(p.read_text()[-3000:] for p in sorted(tmp_path.glob("*.log")))
    tasks = slurm.jobs(array)
    assert [t["JobState"] for t in tasks] == ["COMPLETED", "COMPLETED"], logs
    (group_job,) = slurm.jobs(group)
    assert group_job["JobState"] == "COMPLETED", logs
    assert "no container runtime" in (tmp_path / "array-1.log").read_text()
    # The participants ran side by side; the group level waited for both.
    assert max(t["StartTime"] for t in tasks) < min(t["EndTime"] for t in tasks)
    assert group_job["StartTime"] >= max(t["EndTime"] for t in tasks)
    print(f"\narray tasks {[_seconds(t) for t in tasks]} s, group job {_seconds(group_job)} s")

    assert output_list(out) == EXPECTED
    same_outputs(local_run / "sub-01", out / "sub-01")


def _graph_jobs(slurm: Cluster, work: Path) -> list[dict[str, str]]:
    """The jobs nipype's SLURMGraph submitted for this work folder, in submission order."""
    jobs = [j for j in slurm.jobs() if j.get("StdOut", "").startswith(str(work))]
    return sorted(jobs, key=lambda j: int(j["JobId"]))


def test_graph_plugin_runs_one_participant_and_a_cancelled_step_is_redone(
        slurm, tiny, local_run, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    args = [tiny, out, "participant", "--participant-label", "01", "-w", work, *COMMON]
    started = time.monotonic()
    proc = _app(*args, "--use-plugin", EXAMPLES / "slurm_graph.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "run the same command without --use-plugin" in proc.stderr
    submitted = _graph_jobs(slurm, work)
    assert len(submitted) > 20
    assert sum("afterok" in j.get("Dependency", "") for j in submitted) > len(submitted) // 2

    # scancel one step while it runs, after a few have finished; SLURM then cancels the
    # steps waiting on it (kill_invalid_depend).
    deadline = time.monotonic() + 1800
    while True:
        running = [j for j in _graph_jobs(slurm, work) if j["JobState"] == "RUNNING"]
        done = [j for j in _graph_jobs(slurm, work) if j["JobState"] == "COMPLETED"]
        if running and len(done) >= 3:
            victim = running[0]
            break
        assert time.monotonic() < deadline, slurm.run("squeue")
        time.sleep(0.5)
    slurm.run("scancel", victim["JobId"])
    cancelled_at = time.time()
    slurm.wait_idle(timeout=3000)
    states = {j["JobName"]: j["JobState"] for j in _graph_jobs(slurm, work)}
    assert states[victim["JobName"]] == "CANCELLED"
    finished = [name for name, state in states.items() if state == "COMPLETED"]
    assert len(finished) >= 3 and "FAILED" not in states.values(), states
    print(f"\ngraph: {len(states)} jobs, {len(finished)} completed before the rerun, "
          f"cancelled {victim['JobName']}; {time.monotonic() - started:.0f} s")

    # The next invocation, as the app said: the same command without --use-plugin.
    results = {p: p.stat().st_mtime_ns for p in work.rglob("result_*.pklz")
               if "ds_" not in p.name}
    proc = _app(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert results == {p: p.stat().st_mtime_ns for p in results}, "finished steps were rerun"
    node = victim["JobName"].split("_", 1)[1]
    redone = list(work.rglob(f"result_{node}.pklz"))
    assert redone and all(p.stat().st_mtime > cancelled_at for p in redone), node
    same_outputs(local_run / "sub-01", out / "sub-01")


def _overlap(a: dict[str, str], b: dict[str, str]) -> bool:
    """Whether two finished jobs ran at the same time (SLURM's times, to the second)."""
    return a["StartTime"] < b["EndTime"] and b["StartTime"] < a["EndTime"]


def test_graph_plugin_runs_the_searchlight_shards_as_parallel_jobs(
        slurm, tiny, local_run, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    # The example with one CPU and 6 GB a step, so that two steps fit the 2-CPU node at once.
    plugin = tmp_path / "slurm_graph.yml"
    plugin.write_text((EXAMPLES / "slurm_graph.yml").read_text()
                      .replace("--cpus-per-task=2", "--cpus-per-task=1")
                      .replace("--mem=8G", "--mem=6G"))
    args = [tiny, out, "participant", "--participant-label", "01", "-w", work, *COMMON,
            "--searchlight-jobs", "3"]
    started = time.monotonic()
    proc = _app(*args, "--use-plugin", plugin, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-5000:]
    slurm.wait_idle(timeout=3000)
    elapsed = time.monotonic() - started

    jobs = _graph_jobs(slurm, work)
    assert {j["JobState"] for j in jobs} == {"COMPLETED"}, [
        (j["JobName"], j["JobState"]) for j in jobs if j["JobState"] != "COMPLETED"]
    shards = [j for j in jobs if re.fullmatch(r"j\d+_searchlight_shard\d", j["JobName"])]
    # Three SLURM jobs, one a shard, and at least two of them ran at the same time.
    assert len(shards) == 3 and len({j["JobId"] for j in shards}) == 3, shards
    overlapping = [(a["JobName"], b["JobName"]) for i, a in enumerate(shards)
                   for b in shards[i + 1:] if _overlap(a, b)]
    assert overlapping, [(j["JobName"], j["StartTime"], j["EndTime"]) for j in shards]
    print(f"\ngraph with --searchlight-jobs 3: {len(jobs)} jobs, {elapsed:.0f} s from "
          f"submission until the queue was empty; overlapping shards {overlapping}")
    for job in shards:
        # Each chunk's correlations are named after its first centre.
        (folder,) = work.rglob(job["JobName"].split("_", 1)[1])
        firsts = sorted(p.name for p in folder.rglob("correlations_*.npy"))
        assert firsts, folder
        print(f"  job {job['JobId']} {job['JobName']}: {job['StartTime']} - {job['EndTime']} "
              f"({_seconds(job)} s) on {job['NodeList']}, chunks {firsts}")

    # The next invocation without the plugin reruns no shard and writes the reports.
    results = {p: p.stat().st_mtime_ns for p in work.rglob("result_*.pklz")
               if "ds_" not in p.name}
    proc = _app(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert results == {p: p.stat().st_mtime_ns for p in results}, "finished steps were rerun"
    same_outputs(local_run / "sub-01", out / "sub-01")


def test_a_cancelled_job_cancels_the_jobs_waiting_on_it(slurm, tmp_path):
    # DependencyParameters=kill_invalid_depend: nothing is left pending for ever.
    first = slurm.run("sbatch", "--parsable", "--wrap", "sleep 120", cwd=tmp_path).strip()
    second = slurm.run("sbatch", "--parsable", f"--dependency=afterok:{first}", "--wrap",
                       "true", cwd=tmp_path).strip()
    slurm.run("scancel", first)
    slurm.wait_idle(timeout=120)
    assert [j["JobState"] for j in slurm.jobs(second)] == ["CANCELLED"]


def test_scheduler_down_stops_the_app_at_once(slurm, tiny, tmp_path):
    args = [tiny, tmp_path / "out", "participant", "--participant-label", "01",
            "-w", tmp_path / "work", "--use-plugin", EXAMPLES / "slurm_graph.yml", *COMMON]
    for daemon, named in (("slurmctld", "slurmctld"), ("munged", "munge")):
        slurm.stop(daemon)
        try:
            started = time.monotonic()
            proc = _app(*args, cwd=tmp_path, timeout=300)
            assert proc.returncode == 69, proc.stderr[-3000:]
            assert named in proc.stderr and "Fix:" in proc.stderr, proc.stderr[-3000:]
            assert time.monotonic() - started < 120
            assert not list((tmp_path / "work").rglob("batchscript_*.sh")), "jobs were written"
        finally:
            up = slurm.script("up")
            assert up.returncode == 0, up.stderr
