"""Evaluation: how good steering is, reproducible and resumable.

Images (the paper's protocol): :mod:`classifiers` (the classifier contract), :mod:`nudenet`,
:mod:`open_nsfw`, :mod:`q16` and :mod:`registry` (which classifiers exist), :mod:`clip_model`
(loading CLIP) and :mod:`clip_score` (the metric), :mod:`fid`, :mod:`protocol` (records and
presets), :mod:`conditions` (packs and baselines), :mod:`workplan` (prompt sets, work items),
:mod:`scoring`, :mod:`context` (one loaded pipeline and scorer), :mod:`runner` (the loop),
:mod:`ray_runner` (scale-out), :mod:`store` (resumable results), :mod:`summary` and
:mod:`report_page`.

States (representation level, no images): :mod:`probes` (classifiers on pooled target states)
and :mod:`transfer_metrics` (does a transferred vector act like the native one?).

Submodules are imported on use so that ``import safesteer.evaluation`` stays light.
"""
