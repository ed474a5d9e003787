"""Training and evaluation of the study's ResNet-18: rendered corpus, MagnaTagATune, CLI.

Modules: :mod:`~.tags` (what the corpus supervises), :mod:`~.corpus` (music21 works and the
split by work), :mod:`~.render` and :mod:`~.shards` (FluidSynth rendering into shards),
:mod:`~.data` (clip sets and crops), :mod:`~.transport` (the corpus as Ogg/Opus for a
GPU machine), :mod:`~.mtt` (MagnaTagATune), :mod:`~.train`,
:mod:`~.metrics`, :mod:`~.probe` (hierarchy check), :mod:`~.export`, :mod:`~.checkset` and
:mod:`~.cli` (``bidsapp train`` / ``bidsapp evaluate``).  Nothing here runs in the app.
"""
