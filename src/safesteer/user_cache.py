"""Where safesteer keeps what it computes once: ``$SAFESTEER_CACHE`` or ``~/.cache/safesteer``.

One rule for every layer (converted models, pooled states, tokenizers, hub data sets).

Example:
    >>> import os
    >>> os.environ["SAFESTEER_CACHE"] = "/tmp/ss-cache-example"
    >>> str(user_cache_root())
    '/tmp/ss-cache-example'
    >>> del os.environ["SAFESTEER_CACHE"]
    >>> user_cache_root().parts[-2:]
    ('.cache', 'safesteer')
"""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_root() -> Path:
    """``$SAFESTEER_CACHE`` when set, else ``~/.cache/safesteer`` (not created here)."""
    return Path(os.environ.get("SAFESTEER_CACHE") or Path.home() / ".cache" / "safesteer")


__all__ = ["user_cache_root"]
