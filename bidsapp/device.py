"""Where the network and the searchlight run: the one reading of ``--device``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bidsapp.errors import NotAvailableError, UsageError

if TYPE_CHECKING:
    import torch


def cuda_available() -> bool:
    """Return whether torch is installed and sees a CUDA GPU."""
    try:
        # Lazy on purpose: the CPU searchlight runs without torch, and importing it takes
        # seconds that a run stopping at the input checks must not pay.
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device_name(device: object = "auto") -> str:
    """Turn ``'auto'``, ``'cpu'`` or ``'cuda[:N]'`` into the device that will be used.

    Parameters
    ----------
    device : str or torch.device, optional
        ``'auto'`` picks CUDA when torch sees a GPU, else the CPU.

    Returns
    -------
    str
        ``'cpu'`` or ``'cuda[:N]'``.

    Raises
    ------
    NotAvailableError
        If CUDA is asked for but torch sees no GPU (exit 69).
    UsageError
        If the name is not a device (exit 64).
    """
    name = str(device)
    if name == "auto":
        return "cuda" if cuda_available() else "cpu"
    if name != "cpu" and not name.startswith("cuda"):
        raise UsageError(f"Unknown device {device!r}", fix="use auto, cpu or cuda[:N]")
    if name.startswith("cuda") and not cuda_available():
        raise NotAvailableError(
            f"--device {name} asks for a CUDA GPU, but torch sees none on this machine "
            "(no CUDA device is visible to it)",
            fix="use --device auto (GPU when present, else CPU) or --device cpu; in "
                "Apptainer/Singularity pass --nv, in Docker --gpus all")
    return name


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return :func:`resolve_device_name`'s device as a ``torch.device``.

    Parameters
    ----------
    device : str or torch.device, optional
        As for :func:`resolve_device_name`; a ``torch.device`` is returned as it is.

    Returns
    -------
    torch.device
        The device to run on.
    """
    import torch  # only callers that run torch ask for a torch.device

    if isinstance(device, torch.device):
        return device
    return torch.device(resolve_device_name(device))
