"""End-to-end jobs: each runs a whole pass (build packs, steer, judge) and writes a run folder."""
