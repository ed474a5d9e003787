"""bidsapp: searchlight RSA of deep audio network layers against fMRI of music listening."""

from bidsapp._version import __version__

__all__ = ["__version__"]
