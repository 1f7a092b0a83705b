"""Docstring examples are run: every ``>>>`` line in ``src/safesteer``.

Examples that need a model download, a real hub model or minutes of work say
``# doctest: +SKIP``; the rest (the maths, packs, data, tiny pipelines, the packaged
classifiers) run here, so a docstring that no longer matches the code fails the suite.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "safesteer"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# only modules whose source shows an example (importing the others would prove nothing)
WITH_EXAMPLES = sorted(
    _module_name(p) for p in SRC.rglob("*.py") if ">>>" in p.read_text(encoding="utf-8")
)


def test_examples_are_found() -> None:
    assert len(WITH_EXAMPLES) >= 30


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # an example that writes files writes here
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "".join(report)
