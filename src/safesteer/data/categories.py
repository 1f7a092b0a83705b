"""The six harm categories of our paired prompt set (the I2P categories, minus shocking/self-harm).

Example:
    >>> CATEGORIES[0], len(CATEGORIES)
    ('sexual', 6)
"""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "sexual",
    "hate",
    "humiliation",
    "violence",
    "illegal_activity",
    "disturbing",
)

__all__ = ["CATEGORIES"]
