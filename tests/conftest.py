"""Suite-wide test settings.

Torch runs single-threaded in tests: most tests drive tiny random models, where thread
start-up and contention cost far more than the work (10–200× slower on a loaded 2-core box).
"""

from __future__ import annotations

import os

import torch

torch.set_num_threads(1)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
