#!/usr/bin/env python3
"""BIDS-App entry point: ``run.py bids_dir output_dir {participant,group} [options]``."""

import sys
from pathlib import Path

# Run from a checkout without installing: the package sits beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bidsapp.cli.run import cli  # noqa: E402

if __name__ == "__main__":
    cli()
