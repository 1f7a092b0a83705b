"""``safesteer report RUN_DIR`` through the CLI."""

from __future__ import annotations

from safesteer.cli import main
from test_report_page import _run  # the planted run folder


def test_report_command_writes_the_page(tmp_path, capsys):
    run = _run(tmp_path)
    assert main(["report", str(run), "--per-strength", "2", "--out", str(tmp_path / "r")]) == 0
    page = tmp_path / "r" / "index.html"
    assert f"report: {page}" in capsys.readouterr().out
    assert page.read_text().count("<figure") == 2 * 7  # 7 (condition, α) groups


def test_report_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not an evaluation run" in capsys.readouterr().err
