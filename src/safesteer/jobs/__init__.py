"""Runs: each job makes a whole pass with the library (build packs, steer, judge) and writes a
run folder. :mod:`.default` is ``safesteer demo``; :mod:`.planted` is ``safesteer planted``."""
