"""One exception hierarchy with the exit codes of the BIDS-Apps contract.

Every error a user can cause is a subclass of :class:`BidsAppError`.  The command line
catches it, prints its one-paragraph message (no traceback unless ``-v``) and exits with
its code.  The codes follow BEP027 and ``sysexits.h``:

====  ==========================  ==============================================
code  class                       meaning
====  ==========================  ==============================================
16    :class:`ValidationError`    the BIDS validator rejected the input dataset
18    :class:`NothingSelected`    the filters (labels, tasks, ...) selected nothing
64    :class:`UsageError`         the command line or config file is wrong
65    :class:`BadDataError`       an input exists but its content is unusable
66    :class:`MissingInputError`  an input file or folder is missing
69    :class:`NotAvailableError`  a step is not available in this version
71    :class:`WorkerDiedError`    a worker process was killed (memory, a crash)
73    :class:`CannotWriteError`   an output or work directory cannot be written
130   :class:`Terminated`         SIGINT (Ctrl-C); not an error class
143   :class:`Terminated`         SIGTERM (``kill``, ``docker stop``, a scheduler)
====  ==========================  ==============================================
"""

from __future__ import annotations

import signal
from pathlib import Path


class BidsAppError(Exception):
    """Base class of every user-facing error.

    Parameters
    ----------
    message : str
        What went wrong, in one sentence.
    path : str or Path, optional
        The file or folder at fault; named in the message.
    fix : str, optional
        What the user should do about it.
    """

    exit_code = 1

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None):
        self.message = message
        self.path = Path(path) if path is not None else None
        self.fix = fix
        super().__init__(self.paragraph())

    def paragraph(self) -> str:
        """Return the message, the file and the fix as one paragraph."""
        parts = [self.message.rstrip(".") + "."]
        if self.path is not None:
            parts.append(f"File: {self.path}.")
        if self.fix:
            parts.append(f"Fix: {self.fix.rstrip('.')}.")
        return " ".join(parts)


class ValidationError(BidsAppError):
    """The BIDS validator found errors in the input dataset (exit 16)."""

    exit_code = 16


class NothingSelected(BidsAppError):
    """Participant, session or task filters selected no data (exit 18)."""

    exit_code = 18


class UsageError(BidsAppError, ValueError):
    """Wrong command-line arguments or configuration (exit 64)."""

    exit_code = 64


class BadDataError(BidsAppError):
    """An input exists but cannot be used: corrupt, inconsistent or out of range (exit 65)."""

    exit_code = 65


class MissingInputError(BidsAppError):
    """A required input file or folder does not exist (exit 66)."""

    exit_code = 66


class NotAvailableError(BidsAppError, RuntimeError):
    """A step of the method is not available in this version of bidsapp (exit 69)."""

    exit_code = 69


class WorkerDiedError(BidsAppError):
    """A worker process running a step died without a result: a signal or a crash (exit 71).

    Most often the out-of-memory killer (SIGKILL).  ``sysexits.h`` calls 71 an operating
    system error.
    """

    exit_code = 71


class CannotWriteError(BidsAppError):
    """An output or working directory cannot be created or written (exit 73)."""

    exit_code = 73


class Terminated(BaseException):
    """The run was asked to stop by a signal: SIGTERM (exit 143) or SIGINT (exit 130).

    A ``BaseException``, like :class:`KeyboardInterrupt`, so that no ``except Exception``
    on the way (nipype's among them) swallows it.

    Parameters
    ----------
    signum : int
        The signal received.
    """

    def __init__(self, signum: int):
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        super().__init__(signal.Signals(self.signum).name)


EXIT_CODES = {
    cls.__name__: cls.exit_code
    for cls in (
        ValidationError,
        NothingSelected,
        UsageError,
        BadDataError,
        MissingInputError,
        NotAvailableError,
        WorkerDiedError,
        CannotWriteError,
    )
}
