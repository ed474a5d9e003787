"""Before a cluster plugin submits anything, check that its scheduler is there and answers.

nipype's SLURM and SGE plugins call ``sbatch``/``qsub`` once per step and read job ids from
their output; when the controller is down or munge cannot sign a request, every submission
fails and nipype's error names none of that.  :func:`check_scheduler` asks the scheduler
once, with a time limit, and ends the run with :class:`~bidsapp.errors.NotAvailableError`
(exit 69) and the fix before a single job is submitted.
"""

from __future__ import annotations

import shutil
import subprocess

from bidsapp.errors import NotAvailableError

#: Seconds the scheduler has to answer.  ``scontrol ping`` answers at once, up or down.
TIMEOUT_S = 60

_PROBES = {
    # plugin name prefix: (the submit command, the probe command)
    "SLURM": ("sbatch", ["scontrol", "ping"]),
    "SGE": ("qsub", ["qstat"]),
}


def check_scheduler(plugin: str, *, timeout: float = TIMEOUT_S) -> None:
    """Raise a clear error when ``plugin``'s scheduler cannot take jobs now.

    Parameters
    ----------
    plugin : str
        The nipype plugin name (``SLURMGraph``, ``SLURM``, ``SGEGraph``, ``SGE``); other
        plugins need no scheduler and pass.
    timeout : float
        Seconds to wait for the scheduler's answer.

    Raises
    ------
    NotAvailableError
        If the submit command is not installed, or the scheduler does not answer (exit 69).
    """
    kind = next((k for k in _PROBES if plugin.upper().startswith(k)), None)
    if kind is None:
        return
    submit, probe = _PROBES[kind]
    if shutil.which(submit) is None:
        raise NotAvailableError(
            f"The {plugin} plugin submits jobs with {submit}, which is not on PATH",
            fix=f"run on a {kind} login node, or without --use-plugin")
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise NotAvailableError(
            f"{kind} did not answer '{' '.join(probe)}' within {timeout:.0f} s",
            fix=f"check that the {kind} controller runs and can be reached, "
                "or run without --use-plugin") from exc
    text = (done.stdout + done.stderr).strip()
    if done.returncode == 0 and "DOWN" not in text:
        return
    said = " / ".join(line.strip() for line in text.splitlines()
                      if line.strip() and not line.startswith("*"))[:400]
    if "munge" in text.lower():
        fix = ("start munged on this machine (as root: 'systemctl start munge'; it needs the "
               "cluster's key in /etc/munge/munge.key, readable by the munge user only), then "
               "check with 'munge -n | unmunge'")
    elif kind == "SLURM":
        fix = ("start slurmctld (as root: 'systemctl start slurmctld'), or ask the cluster's "
               "administrators; 'scontrol ping' must say UP; or run without --use-plugin")
    else:
        fix = "start the SGE master (qmaster), or run without --use-plugin"
    raise NotAvailableError(f"{kind} cannot take jobs now ('{' '.join(probe)}': {said})",
                            fix=fix)
