"""BIDS labels as the app keeps them: without their ``sub-``, ``ses-`` or ``task-`` prefix."""

from __future__ import annotations


def strip_prefix(label: str, entity: str = "sub") -> str:
    """Return a label without its entity prefix (``sub-01`` and ``01`` both give ``01``).

    Parameters
    ----------
    label : str
        A label as a user or a folder name gives it.
    entity : str
        The entity whose prefix is removed: ``"sub"``, ``"ses"`` or ``"task"``.

    Returns
    -------
    str
        The bare label.
    """
    return label.removeprefix(f"{entity}-")
