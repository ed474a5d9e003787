"""Entry point of ``bidsapp`` and ``run.py``: parse, log, run, and map errors to exit codes."""

from __future__ import annotations

import importlib
import logging
import signal
import sys
from collections.abc import Callable

from bidsapp.cli.parser import parse_args
from bidsapp.errors import BidsAppError, Terminated
from bidsapp.logs import setup_logging

LOGGER = logging.getLogger("bidsapp")

#: Tools that are not an analysis level, as ``name: "module:function"``.  Each function takes
#: its own argv and returns an exit code.  Later parts register theirs here; the positional
#: BIDS-Apps form ``bids_dir output_dir level`` is left untouched.
TOOLS: dict[str, str] = {
    "simulate": "bidsapp.simulate.cli:main",
    "templates": "bidsapp.templates:main",
    "train": "bidsapp.training.cli:train_main",
    "evaluate": "bidsapp.training.cli:evaluate_main",
}


def _resolve(target: str) -> Callable[[list[str]], int]:
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


def _run_bids_app(argv: list[str]) -> int:
    config = parse_args(argv)
    setup_logging(config.verbose)
    # Importing the levels brings nipype (seconds): not for --help, --version or the tools.
    from bidsapp.levels import run

    return run(config)


def _ignore_file_size_signal() -> None:
    """Turn a file-size limit (``ulimit -f``) into a write error, which becomes exit 73.

    Past the limit the kernel sends SIGXFSZ, whose default action kills the process
    without a message; ignored, the write fails with EFBIG like a full disk.
    """
    try:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    except (AttributeError, ValueError):  # not POSIX, or not the main thread
        pass


#: The signals that end a run with 128 + their number, after the workers are stopped.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _raise_terminated(signum, frame) -> None:
    """SIGTERM/SIGINT handler: unwind, so the runner stops its workers on the way out.

    Only the first signal raises; later ones (of either kind) are ignored, so that the
    clean-up they interrupt still runs (a scheduler sends SIGKILL after its grace time
    anyway).
    """
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


def _handle_stop_signals() -> dict:
    """Install :func:`_raise_terminated` for SIGTERM and SIGINT; return the handlers replaced.

    Python's default SIGTERM action kills the process at once, leaving its workers behind;
    as a container's PID 1 the default action is no action at all.  SIGINT is installed
    too, whatever the process inherited: a shell that starts a job in the background
    (``bidsapp ... &`` in a batch script) makes it ignore SIGINT, and a ``kill -INT`` then
    went unheard while the run went on to the end.
    """
    previous = {}
    for sig in _STOP_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, _raise_terminated)
        except ValueError:  # not the main thread (an embedding application): leave it alone
            break
    return previous


_RESUME = "rerun the same command with the same --work-dir to resume: finished steps are reused"


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, the error's documented exit code otherwise (see
        :mod:`bidsapp.errors`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    _ignore_file_size_signal()
    # TemplateFlow and niworkflows read their environment once, at import: set it first.
    from bidsapp.templates import configure_templateflow_home

    configure_templateflow_home()
    verbose = any(a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"})
                  for a in argv)
    setup_logging(int(verbose))
    previous = _handle_stop_signals()
    try:
        if argv and argv[0] in TOOLS:
            return int(_resolve(TOOLS[argv[0]])(argv[1:]) or 0)
        return _run_bids_app(argv)
    except BidsAppError as exc:
        if verbose:
            LOGGER.exception("bidsapp stopped with exit code %d", exc.exit_code)
        print(f"bidsapp: error: {exc.paragraph()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"bidsapp: interrupted (SIGINT); {_RESUME}", file=sys.stderr)
        return 130
    except Terminated as exc:
        how = "interrupted" if exc.signum == signal.SIGINT else "terminated"
        print(f"bidsapp: {how} ({exc}); {_RESUME}", file=sys.stderr)
        return exc.exit_code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cli() -> None:
    """Console-script wrapper: exit with :func:`main`'s code."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
