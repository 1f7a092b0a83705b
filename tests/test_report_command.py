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


def test_report_works_on_what_is_readable(tmp_path, capsys):
    """A damaged line, a record with ``"alpha": "high"``, invalid bytes, and no images/ folder:
    the page is written from the readable records, and each problem is a warning."""
    import json
    import shutil

    run = _run(tmp_path)
    results = run / "results.jsonl"
    lines = results.read_bytes().splitlines(keepends=True)
    bad_alpha = json.loads(lines[1])
    bad_alpha["alpha"] = "high"
    damaged = [
        lines[0],
        b'{"id": "x", "cond\n',  # not JSON (a line cut in the middle, then more lines)
        json.dumps(bad_alpha).encode() + b"\n",
        b"\xff\xfe garbage\n",
        *lines[2:],
    ]
    results.write_bytes(b"".join(damaged))
    shutil.rmtree(run / "images")
    assert main(["report", str(run), "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "warning: " in err and "skipped 3 damaged record(s)" in err
    assert "line 2: not JSON" in err and "line 3: 'alpha' is 'high'" in err
    assert "image(s) under" in err and "missing" in err
    page = (tmp_path / "r" / "index.html").read_text()
    assert "image missing" in page and "<table>" in page
    assert results.read_bytes() == b"".join(damaged)  # reading never rewrites the results
