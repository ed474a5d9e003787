"""Independent random streams named by what they are for.

Every random choice draws from a generator keyed by the seed and a name such as
``("sub-01", "motion", 2)``.  Streams do not share state, so sub-01's data do not change
when more subjects or runs are asked for, and adding a random choice to one step does not
shift every later one.
"""

from __future__ import annotations

import hashlib

import numpy as np


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """Return the generator of the stream ``keys`` under ``seed``.

    Parameters
    ----------
    seed : int
        The simulation's seed (non-negative).
    *keys : object
        Names of the stream; their ``str()`` is hashed, so use stable values (strings and
        ints).

    Returns
    -------
    numpy.random.Generator
        A PCG64 generator, the same for the same seed and keys on every platform.
    """
    digest = hashlib.sha256("/".join(str(k) for k in keys).encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), *words])))
