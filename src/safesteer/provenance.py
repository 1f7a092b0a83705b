"""Provenance: stable fingerprints of the data and software that produced a result.

Every pack and every printed figure says where it comes from. These helpers make the
"where" reproducible: a hash of an ordered set of texts, and a record of the environment.

Example:
    >>> text_set_hash(["a cat", "a dog"])[:7]
    'sha256:'
    >>> text_set_hash(["a cat", "a dog"]) == text_set_hash(["a cat", "a dog"])
    True
"""

from __future__ import annotations

import hashlib
import platform
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from safesteer._version import __version__

__all__ = ["environment_record", "package_version", "software_record", "text_set_hash"]


def text_set_hash(texts: Sequence[str]) -> str:
    """``"sha256:<hex>"`` of the texts in order, joined with ``"\\n"``.

    Order matters (anchor *i* pairs with state row *i*), so the hash is not sorted.

    Example:
        >>> text_set_hash(["a", "b"]) != text_set_hash(["b", "a"])
        True
    """
    if isinstance(texts, str):  # a bare string would be hashed character by character
        texts = [texts]
    digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
    return f"sha256:{digest}"


def package_version(name: str) -> str:
    """Installed version of distribution ``name``, or ``"not installed"``."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def environment_record() -> dict[str, str]:
    """Versions of Python, the platform and the libraries a result depends on.

    Example:
        >>> sorted(environment_record())[:3]
        ['diffusers', 'platform', 'python']
    """
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": package_version("torch"),
        "transformers": package_version("transformers"),
        "diffusers": package_version("diffusers"),
        "safesteer": __version__,
    }


def software_record() -> dict[str, str]:
    """The versions a result's numbers depend on, without the host (what packs record).

    :func:`environment_record` less ``platform`` (kernel and host details change without
    changing a number, and would make the same pack differ byte for byte between machines).

    Example:
        >>> "platform" in software_record(), software_record()["safesteer"] == __version__
        (False, True)
    """
    record = environment_record()
    record.pop("platform")
    return record
