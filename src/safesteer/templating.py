"""The package's jinja2 templates (``safesteer/templates/``): report pages and the model card.

HTML templates render with autoescape on (:func:`render_html`), so prompt text, ids and
numbers can never inject markup; the markdown model card renders without it
(:func:`render_markdown`) below the YAML header ``huggingface_hub.ModelCard`` writes.

Example:
    >>> "<script>" in render_html("_example.html.j2", value="<script>")
    False
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2


@lru_cache(maxsize=2)
def _environment(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("safesteer", "templates"),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(name: str, **context: Any) -> str:
    """Render ``templates/<name>`` with autoescape (undefined names are errors)."""
    return _environment(True).get_template(name).render(**context)


def render_markdown(name: str, **context: Any) -> str:
    """Render ``templates/<name>`` as markdown (no HTML escaping; undefined names are errors)."""
    return _environment(False).get_template(name).render(**context)
