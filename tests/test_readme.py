"""The README's library example runs as written (offline: tiny pipeline, packaged source)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _library_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Library") :]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match is not None, "the README's Library section has no python block"
    return match.group(1)


@pytest.mark.slow
def test_readme_library_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine
    namespace: dict[str, object] = {}
    try:
        exec(compile(_library_block(), "README.md", "exec"), namespace)
    finally:
        torch.set_num_threads(threads)
    pack = namespace["pack"]
    assert (tmp_path / "flux-pack" / "README.md").is_file()
    assert type(pack).__name__ == "SafetyPack" and pack.alpha_default == 5.0
    assert namespace["image"].size == namespace["baseline"].size == (64, 64)
    from safesteer import is_steered

    assert not is_steered(namespace["pipe"])
