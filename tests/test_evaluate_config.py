"""``safesteer evaluate --config file.toml``, ``--verbose/--quiet``, failing fast offline, and the
per-item gate records that give each gated condition's false-trigger rate per prompt set."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

import targets_checks as tc
from safesteer.cli import main
from safesteer.evaluation.context import batches
from safesteer.evaluation.runner import EvaluationSpec, evaluate
from safesteer.evaluation.workplan import PromptSet, plan_work
from targets_checks import one_torch_thread  # noqa: F401 - autouse fixture
from test_attach import BENIGN, PLANTED, gated_pack

QUICK = [
    "--pipeline",
    "tiny-sd",
    "--classifiers",
    "open_nsfw",
    "--clip-model",
    "none",
    "--fid-features",
    "none",
    "--torch-threads",
    "1",
    "--no-progress",
]


def _prompts(tmp_path: Path) -> Path:
    path = tmp_path / "p.txt"
    path.write_text("a cat\n")
    return path


def test_config_file_gives_every_option_and_the_command_line_wins(tmp_path: Path) -> None:
    config = tmp_path / "eval.toml"
    config.write_text(
        f"""
pipeline = "tiny-sd"
out = "{tmp_path / "run"}"
prompts = "{_prompts(tmp_path)}"
baseline = ["none"]
classifiers = ["open_nsfw"]
clip-model = "none"
fid_features = "none"
alphas = [0, 3]
seed = 5
steps = 3
torch-threads = 1
no-progress = true
"""
    )
    assert main(["evaluate", "--config", str(config), "--seed", "7"]) == 0
    protocol = json.loads((tmp_path / "run" / "protocol.json").read_text())
    assert protocol["settings"]["seed"] == 7  # the command line wins
    assert protocol["settings"]["alphas"] == [0.0, 3.0]  # from the file, through float
    assert protocol["pipeline"]["call"]["num_inference_steps"] == 3
    assert protocol["classifiers"][0]["name"] == "open_nsfw"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('pipline = "tiny-sd"', "unknown key(s) pipline"),
        ('alphas = "three"', "alphas = 'three' is not a valid value"),
        ('classifiers = ["nudenet", "clipper"]', "is not one of"),
        ("no-progress = 1", "must be true or false"),
        ('out = ["a", "b"]', "takes one value, not a list"),
        ("pipeline = ", "is not valid TOML"),
    ],
)
def test_bad_config_files_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, message: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(body + "\n")
    out = tmp_path / "run"
    assert main(["evaluate", "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not out.exists()


def test_pipeline_and_out_are_required_from_somewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # (the prompt file must exist: it is checked before the missing options are)
    assert main(["evaluate", "--prompts", str(_prompts(tmp_path))]) == 2
    assert "--pipeline and --out required" in capsys.readouterr().err


def test_verbose_and_quiet_set_the_safesteer_logger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = _prompts(tmp_path)
    args = ["evaluate", *QUICK, "--prompts", str(prompts), "--alphas", "0"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert "items planned" in capsys.readouterr().err  # info by default
    assert main(["--quiet", *args, "--out", str(tmp_path / "b")]) == 0
    assert "items planned" not in capsys.readouterr().err
    assert logging.getLogger("safesteer").level == logging.WARNING
    assert main([*args, "--out", str(tmp_path / "c"), "-v"]) == 0
    assert logging.getLogger("safesteer").level == logging.DEBUG
    main([*args, "--out", str(tmp_path / "d")])  # back to the default for later tests


def test_default_protocol_offline_fails_at_once_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["evaluate", "--pipeline", "tiny-sd", "--prompts", str(_prompts(tmp_path))]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "cannot load model 'openai/clip-vit-large-patch14' (CLIP model)" in err
    assert "HF_HUB_OFFLINE is set and it is not in the hub cache" in err


def test_each_item_records_its_gate_and_the_summary_gives_false_trigger_rates(
    tmp_path: Path,
) -> None:
    from safesteer.evaluation.protocol import PRESETS
    from safesteer.evaluation.store import ResultsStore

    _, adapter = tc.make("sd")
    pack = gated_pack(adapter)
    pack_path = pack.save(tmp_path / "gated.safetensors")
    # five benign prompts below the gate's threshold and one well past it (a planted word):
    # a decision exactly at the threshold is the same everywhere now (pooling is deterministic)
    benign = [*BENIGN[:5], "zzqx a photo of a cat"]
    spec = EvaluationSpec(
        pipeline="tiny-sd",
        out=str(tmp_path / "run"),
        packs=(str(pack_path),),
        baselines=("none",),
        modes=("gated",),
        prompt_sets=(
            PromptSet.inline("planted (ours)", "safety", [PLANTED]),
            PromptSet.inline("benign (ours)", "utility", benign),
        ),
        settings=PRESETS["quick"].replace(alphas=(0.0, 2.0), classifiers=("open_nsfw",)),
        torch_threads=1,
    )
    result = evaluate(spec, progress=False)
    # one prompt per call (a batched call decides the same; see test_evaluation_batching)
    expected = [bool(pack.gate.decide(adapter.pooled([p])).steer[0]) for p in benign]
    assert 0 < sum(expected) < len(benign)
    records = ResultsStore(result.run_dir).completed().values()
    for r in records:
        steering = r["steering"]
        if r["condition"] == "none":
            assert steering == {"steered": False, "gate": None}
            continue
        assert steering["gate"] == "target" and "prompt" not in steering
        if r["role"] == "utility":
            assert steering["gate_flagged"] == expected[r["prompt_index"]]
            assert steering["steered"] == (expected[r["prompt_index"]] and r["alpha"] > 0)
        else:
            assert steering["gate_flagged"] is True
    rates = {(g["prompt_set"], g["meaning"]): g for g in result.summary["gate_rates"]}
    benign_rate = rates[("benign (ours)", "false-trigger rate")]
    assert benign_rate["n"] == 6 and benign_rate["steered"] == sum(expected)
    assert rates[("planted (ours)", "trigger rate")]["rate"] == 1.0


def test_batches_group_items_by_steering_and_keep_each_once() -> None:
    from safesteer.evaluation.conditions import Condition

    sets = [
        PromptSet.inline("a", "safety", ["x", "y", "z"]),
        PromptSet.inline("b", "utility", ["w"]),
    ]
    items = plan_work(
        [Condition("none", "none"), Condition("p", "pack")],
        sets,
        alphas=(0, 3),
        images_per_prompt=2,
    )
    cut = batches(items, 3)
    assert sorted(i.id for b in cut for i in b) == sorted(i.id for i in items)
    assert all(len(b) <= 3 and len({(i.condition, i.alpha) for i in b}) == 1 for b in cut)
    assert [len(b) for b in cut][:3] == [3, 3, 2]  # 8 items of (none, 0): 3 + 3 + 2


def test_progress_bars_on_long_loops_and_off_when_quiet(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from safesteer.logs import configure

    _, adapter = tc.make("sd")
    configure(0)
    adapter.pooled([f"prompt {i}" for i in range(40)], batch_size=8)
    assert "pooling tiny-sd states" in capsys.readouterr().err
    configure(-1)
    try:
        adapter.pooled([f"prompt {i}" for i in range(40)], batch_size=8)
        assert "pooling" not in capsys.readouterr().err
    finally:
        configure(0)


def test_diffusers_truncation_warnings_never_print_the_prompt() -> None:
    from diffusers.utils import logging as dlog

    from safesteer import logs
    from safesteer.targets import load_pipeline

    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    root = dlog._get_library_root_logger()
    handler = Collect()
    root.addHandler(handler)
    level = dlog.get_verbosity()
    dlog.set_verbosity_warning()  # as a library user has it (the CLI lowers it to errors)
    try:
        pipe, adapter = load_pipeline("tiny-flux")  # installs the filter on diffusers' handlers
        before = logs._FILTER.count
        adapter.encode(["a secret long prompt " * 8] * 3)  # 16-token tiny T5: cut
        assert logs._FILTER.count > before
        assert not [r for r in seen if "secret" in r.getMessage()]
    finally:
        root.removeHandler(handler)
        dlog.set_verbosity(level)
    del pipe
    assert torch.get_num_threads() >= 1
