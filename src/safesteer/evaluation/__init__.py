"""Evaluation: ASR and utility of steered generation, reproducible and resumable.

Modules, one concept each: :mod:`classifiers` (the judge contract), :mod:`nudenet`,
:mod:`open_nsfw`, :mod:`q16`, :mod:`clip` and :mod:`clip_score`, :mod:`fid`,
:mod:`protocol` (records and presets), :mod:`store` (resumable results), :mod:`conditions`
(packs and baselines), :mod:`workplan` (prompt sets, work items), :mod:`scoring`,
:mod:`runner` (the loop), :mod:`ray_runner` (scale-out), :mod:`summary` and :mod:`report`.
Submodules are imported on use so that ``import safesteer.evaluation`` stays light.
"""
