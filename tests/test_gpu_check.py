"""scripts/gpu_check.sh: refuses without a GPU unless told to fall back, and then runs the same
checks on CPU and says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from safesteer.jobs import gpu_check

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_no_gpu_and_no_fallback_is_refused(capsys):
    assert gpu_check.main(["--families", "flux"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.slow
def test_script_runs_the_checks_with_the_cpu_fallback():
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--cpu-fallback", "--families", "flux",
         "zimage"],
        capture_output=True, text=True, env=env, check=False, timeout=900,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        assert "NO GPU: running the same checks on CPU" in out and "CPU fallback" in out
    for family in ("flux", "zimage"):
        line = next(x for x in out.splitlines() if x.startswith(family))
        assert "ok: torch.bfloat16" in line and "α=0 identical" in line and "peak" in line
    assert "source reader ok" in out and "all checks passed" in out


def test_a_failing_check_is_reported_and_the_others_run(monkeypatch):
    lines: list[str] = []

    def broken(family, device, dtype):
        raise RuntimeError("boom")

    monkeypatch.setattr(gpu_check, "check_family", broken)
    monkeypatch.setattr(gpu_check, "check_reader", lambda d, t: "source reader ok")
    assert gpu_check.run_checks(["flux"], "cpu", torch.bfloat16, lines.append) is False
    assert "FAILED: RuntimeError: boom" in lines[0] and lines[1].startswith("source reader ok")
