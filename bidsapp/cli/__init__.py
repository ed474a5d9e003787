"""Command-line entry points: the BIDS-Apps contract and the helper tools."""
