"""The default job (``safesteer demo``): build safety packs on real models and judge the transfer.

Modules in the order the job runs: :mod:`.config` (settings), :mod:`.splits` (our data by
role), :mod:`.target_report` (everything for one target, scored by :mod:`.direction_scores`),
:mod:`.images` (step 4), :mod:`.summary`, :mod:`.run` (the whole job); results are the typed
records of :mod:`.records`, drawn by :mod:`.plots` and :mod:`.report_page`.
"""

from safesteer.jobs.default.config import (
    DEFAULT_LAYER,
    DEFAULT_SOURCE,
    DEFAULT_TARGETS,
    JobConfig,
)
from safesteer.jobs.default.run import run_default_job

__all__ = ["DEFAULT_LAYER", "DEFAULT_SOURCE", "DEFAULT_TARGETS", "JobConfig", "run_default_job"]
