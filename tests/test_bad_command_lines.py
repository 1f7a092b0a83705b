"""Bad command lines, as a new user types them: each one is refused before any model loads.

One table row per probe: a command line (``{name}`` fields are filled with the fixtures below)
and a piece of the message that names the bad input. Every row must end with exit status 2,
an ``error: <what> (fix: <how>)`` line, no traceback, and the work folder exactly as it was (no
file written, changed or removed). Rows use hub ids only where the check happens before
loading, so no row loads a model: the whole table runs in seconds.

To add a probe, add a row.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import pytest
import torch

from safesteer.cli import main
from safesteer.pack import SafetyPack

SD = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # known family (sd): checked before loading
FLUX = "black-forest-labs/FLUX.1-schnell"
WAN = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"

GEN = "generate --pipeline tiny-sd --prompt cat --out {out}"
GEN_PACK = GEN + " --pack {pack}"
BUILD = "build --source smollm2-135m --layer 3 --target minilm-l6"
EVAL = "evaluate --pipeline tiny-sd --prompts {prompts} --out {out} --classifiers open_nsfw"
EVAL_SD = EVAL.replace("tiny-sd", SD)
DEMO = "demo --out {out}"
PLANTED = "planted --out {out}"
NO_GPU = "" if torch.cuda.is_available() else "cuda"

# (command line, a piece of the error message that names the input)
ROWS: list[tuple[str, str]] = [
    # ---- the CLI itself
    ("banana", "invalid choice: 'banana'"),
    ("generate --prompt cat", "--pipeline"),
    # ---- generate: numbers
    (GEN_PACK + " --alpha nan", "--alpha: nan is not a finite number"),
    (GEN_PACK + " --alpha inf", "--alpha: inf is not a finite number"),
    (GEN_PACK + " --alpha=-inf", "--alpha: -inf is not a finite number"),
    (GEN_PACK + " --alpha 1e30", "--alpha: strength 1e+30 is beyond"),
    (GEN_PACK + " --alpha strong", "--alpha: 'strong' is not a number"),
    (GEN + " --steps 0", "--steps: 0 is too small"),
    (GEN + " --steps -1", "--steps: -1 is too small"),
    (GEN + " --steps 2.5", "--steps: '2.5' is not an integer"),
    (GEN + " --size 0", "--size: size '0' has a zero side"),
    (GEN + " --size 0x64", "--size: size '0x64' has a zero side"),
    (GEN + " --size 64x", "--size: size '64x' is not N or WxH"),
    (GEN + " --size -64", "--size: size '-64' is not N or WxH"),
    (GEN.replace("tiny-sd", SD) + " --size 33x31", "height 31 and width 33 are not multiples of 8"),
    (GEN.replace("tiny-sd", SD) + " --size 512x7", "height 7 is not a multiple of 8"),
    (GEN.replace("tiny-sd", FLUX) + " --size 1000x1024", "width 1000 is not a multiple of 16"),
    (GEN + " --frames 0", "--frames: 0 is too small"),
    (GEN + " --frames -3", "--frames: -3 is too small"),
    (GEN.replace("tiny-sd", WAN) + " --frames 10", "10 frames"),
    (GEN.replace("tiny-sd", FLUX) + " --frames 5", "--frames: " + FLUX + " makes images"),
    (GEN + " --limit 0", "--limit: 0 is too small"),
    (GEN + " --limit -1", "--limit: -1 is too small"),
    (GEN + " --seed -1", "--seed: -1 is too small"),
    (GEN + " --seed 99999999999999999999", "--seed: 99999999999999999999 is too large"),
    (GEN + " --guidance nan", "--guidance: nan is not a finite number"),
    (GEN + " --guidance -1", "--guidance: -1 is not ≥ 0"),
    # ---- generate: devices, dtypes, choices
    (GEN + " --dtype banana", "--dtype: invalid choice: 'banana'"),
    (GEN + " --dtype int8", "--dtype: invalid choice: 'int8'"),
    (GEN + " --device banana", "--device: unknown device 'banana'"),
    (GEN + " --device cuda:99", "--device: device 'cuda:99'"),
    (GEN + " --tokens banana", "--tokens: invalid choice"),
    (GEN + " --gate banana", "--gate: invalid choice"),
    (GEN_PACK + " --rule banana", "--rule: invalid choice: 'banana'"),
    (GEN.replace("tiny-sd", "tiny-banana"), "unknown tiny pipeline 'tiny-banana'"),
    # ---- generate: options that need others
    (GEN + " --gated", "--gated given without --pack"),
    (GEN + " --alpha 3", "--alpha given without --pack"),
    (GEN + " --categories violence", "--categories given without --pack"),
    (GEN + " --steer-negative", "--steer-negative given without --pack"),
    (GEN + " --rule to-projection", "--rule given without --pack"),
    (GEN_PACK + " --rule to-projection --categories violence", "--categories is not served"),
    (GEN_PACK + " --rule to-projection", "this pack has no target projection τ"),
    (GEN + " --gate source --gated", "--gated, --gate given without --pack"),
    (GEN_PACK + " --gate source", "--gate source decides only with --gated"),
    (GEN_PACK + " --gate target", "--gate target decides only with --gated"),
    (GEN_PACK + " --source-reader smollm2-135m", "--source-reader is read only by --gate source"),
    (GEN_PACK + " --categories ,,", "--categories: ',,' names nothing"),
    (GEN_PACK + " --categories violence,,sexual", "--categories: 'violence,,sexual' has an empty"),
    (GEN + " --column text", "--column names a column of --prompts"),
    # ---- generate: files
    (GEN.replace("{out}", "{file}"), "--out: folder {file} is a file"),
    (GEN.replace("{out}", "{file}/sub"), "which is a file, not a folder"),
    (GEN.replace("{out}", "/proc/safesteer-nowhere/out"), "cannot write in /proc"),
    (GEN + " --prompts {missing}", "--prompts: prompt file {missing} does not exist"),
    (GEN + " --prompts {bad_utf8}", "is not valid UTF-8: line 3"),
    (GEN + " --prompts {empty}", "is empty"),
    (GEN + " --prompts {dir}", "Hugging Face dataset"),
    (GEN + " --pack {missing}", "--pack: file {missing} does not exist"),
    (GEN + " --pack {dir}", "--pack: file {dir} is a folder"),
    (GEN + " --pack {junk}", "not a safetensors file"),
    (GEN + " --pack {prompts}", "not a safetensors file"),
    # ---- build
    (BUILD + " --out {dir}", "--out: path {dir} is a folder, not a file"),
    (BUILD + " --out {file}/p.safetensors", "which is a file, not a folder"),
    (BUILD + " --out /proc/safesteer-nowhere/p.safetensors", "cannot write in /proc"),
    (BUILD + " --out {out}/p.safetensors --pairs {bad_pairs}", "not valid UTF-8: line 3"),
    (BUILD + " --out {out}/p.safetensors --pairs {missing}", "--pairs: file {missing} does not"),
    (BUILD + " --out {out}/p.safetensors --pairs {dir}", "--pairs: file {dir} is a folder"),
    (BUILD + " --out {out}/p.safetensors --pairs {prompts}", "prompts.txt:1 is not a pair"),
    (BUILD + " --out {out}/p.safetensors --pairs {empty}", "holds no pairs"),
    (BUILD + " --out {out}/p.safetensors --anchors {missing}", "--anchors: prompt file"),
    (BUILD + " --out {out}/p.safetensors --anchors {bad_utf8}", "not valid UTF-8: line 3"),
    (BUILD.replace("3", "-1") + " --out {out}/p.safetensors", "--layer: -1 is too small"),
    (BUILD.replace("3", "x") + " --out {out}/p.safetensors", "--layer: 'x' is not an integer"),
    (BUILD + " --out {out}/p.safetensors --map banana", "--map: invalid choice"),
    (BUILD + " --out {out}/p.safetensors --calibration banana", "--calibration: invalid choice"),
    (BUILD + " --out {pack} --pairs {bad_pairs}", "not valid UTF-8: line 3"),  # pack kept
    # ---- build: data specs (safesteer.data.sources)
    (BUILD + " --out {out}/p.safetensors --pairs banana", "--pairs: unknown pairs set 'banana'"),
    (BUILD + " --out {out}/p.safetensors --pairs safesteer:dev", "unknown pairs set"),
    (BUILD + " --out {out}/p.safetensors --pairs hf:owner/name", "hub data sets are for --anchors"),
    (BUILD + " --out {out}/p.safetensors --anchors banana", "--anchors: unknown anchors set"),
    (BUILD + " --out {out}/p.safetensors --anchors parti,bananas", "unknown anchors set 'bananas'"),
    (BUILD + " --out {out}/p.safetensors --anchors parti:banana", "unknown part 'banana'"),
    (BUILD + " --out {out}/p.safetensors --anchors parti,,ours", "has an empty part"),
    (BUILD + " --out {out}/p.safetensors --anchors parti[:0]", "asks for 0 items"),
    (BUILD + " --out {out}/p.safetensors --anchors hf:", "is not a hub data set spec"),
    (BUILD + " --out {out}/p.safetensors --anchors hf:a/b/c/d", "is not a hub data set spec"),
    (BUILD + " --out {out}/p.safetensors --anchors hf:a/b@x/y/z", "is not a hub data set spec"),
    (BUILD + " --out {out}/p.safetensors --per banana", "--per: invalid choice"),
    (BUILD + " --out {out}/p.safetensors --pairs ours --per subcategory", "have no subcategory"),
    (BUILD + " --out {out}/p.safetensors --pairs {pairs} --per subcategory", "no subcategory"),
    # ---- build: issue 11's options
    (BUILD + " --out {out}/p.safetensors --direction banana", "--direction: invalid choice"),
    (BUILD + " --out {out}/p.safetensors --also-source @3", "'@3' is not a source"),
    (BUILD + " --out {out}/p.safetensors --also-source minilm-l6@", "is not a source"),
    (BUILD + " --out {out}/p.safetensors --also-source minilm-l6@x", "'x' is not an integer"),
    (BUILD + " --out {out}/p.safetensors --also-source smollm2-135m", "is the --source itself"),
    (
        BUILD + " --out {out}/p.safetensors --also-source minilm-l6 --also-source minilm-l6",
        "--also-source lists minilm-l6 twice",
    ),
    (BUILD + " --out {out}/p.safetensors --native --also-source minilm-l6", "has no source"),
    (BUILD + " --out {out}/p.safetensors --native --direction shrunk-lda", "has no source"),
    (BUILD + " --out {out}/p.safetensors --to-projection-q 1", "--to-projection-q: 1 is not"),
    # ---- demo
    (DEMO + " --max-pairs 0", "--max-pairs: 0 is too small"),
    (DEMO + " --max-pairs -1", "--max-pairs: -1 is too small"),
    (DEMO + " --max-pairs 1", "--max-pairs: 1 is too small"),
    (DEMO + " --anchors 0", "--anchors: 0 is too small"),
    (DEMO + " --anchors 10", "--anchors: 10 is too small"),
    (DEMO + " --anchors 999999", "--anchors 999999: we ship"),
    (DEMO + " --images -1", "--images: -1 is too small"),
    (DEMO + " --layer -3", "--layer: -3 is too small"),
    (DEMO + " --layer banana", "or 'auto'"),
    (DEMO + " --seed -1", "--seed: -1 is too small"),
    (DEMO + " --map banana", "--map: invalid choice"),
    (DEMO + " --gate-score banana", "--gate-score: invalid choice"),
    (DEMO.replace("{out}", "{file}"), "--out: folder {file} is a file"),
    (DEMO.replace("{out}", "{file}/sub"), "which is a file, not a folder"),
    (DEMO.replace("{out}", "/proc/safesteer-nowhere"), "cannot write in /proc"),
    # ---- evaluate: strengths
    (EVAL + " --alphas nan", "--alphas: nan is not a finite number"),
    (EVAL + " --alphas 0 inf", "--alphas: inf is not a finite number"),
    (EVAL + " --alphas 1e30", "--alphas: strength 1e+30 is beyond"),
    (EVAL + " --alphas 3 3.0", "--alphas lists 3 twice"),
    (EVAL + " --alphas 0 -0.0", "--alphas lists 0 twice"),
    (EVAL + " --alphas high", "--alphas: 'high' is not a number"),
    # ---- evaluate: counts and numbers
    (EVAL + " --limit -1", "--limit: -1 is too small"),
    (EVAL + " --limit 0", "--limit: 0 is too small"),
    (EVAL + " --max-items -1", "--max-items: -1 is too small"),
    (EVAL + " --max-items 0", "--max-items: 0 is too small"),
    (EVAL + " --images-per-prompt 0", "--images-per-prompt: 0 is too small"),
    (EVAL + " --steps 0", "--steps: 0 is too small"),
    (EVAL + " --width 0", "--width: 0 is too small"),
    (EVAL_SD + " --height 7", "height 7 is not a multiple of 8"),
    (EVAL_SD + " --height 64 --width 60", "width 60 is not a multiple of 8"),
    (EVAL + " --video-frames -3", "--video-frames: -3 is too small"),
    (EVAL + " --video-frames 0", "--video-frames: 0 is too small"),
    (EVAL + " --guidance nan", "--guidance: nan is not a finite number"),
    (EVAL + " --seed -1", "--seed: -1 is too small"),
    (EVAL + " --torch-threads -1", "--torch-threads: -1 is too small"),
    (EVAL + " --torch-threads 0", "--torch-threads: 0 is too small"),
    (EVAL + " --device banana", "--device: unknown device 'banana'"),
    (EVAL + " --device cuda:99", "--device: device 'cuda:99'"),
    (EVAL + " --open-nsfw-threshold nan", "--open-nsfw-threshold: nan is not a finite"),
    (EVAL + " --open-nsfw-threshold 1.5", "--open-nsfw-threshold: 1.5 is not [0, 1]"),
    (EVAL + " --open-nsfw-threshold -0.1", "--open-nsfw-threshold: -0.1 is not [0, 1]"),
    (EVAL + " --clip-scale 0", "--clip-scale: 0 is not > 0"),
    (EVAL + " --clip-scale nan", "--clip-scale: nan is not a finite number"),
    # ---- evaluate: classifiers, CLIP, FID
    (EVAL + " --classifiers banana", "--classifiers: invalid choice"),
    (EVAL + " --classifiers nudenet nudenet", "--classifiers lists nudenet twice"),
    (EVAL + " --nudenet-labels BANANA", "--nudenet-labels: invalid choice"),
    (EVAL + " --nudenet-labels FEMALE_BREAST_EXPOSED", "nudenet is not among --classifiers"),
    (EVAL + " --q16-threshold 0.5", "--q16-threshold given but q16 is not among"),
    (EVAL + " --q16-prompts random", "--q16-prompts given but q16 is not among"),
    (EVAL + " --q16-prompts {missing}", "--q16-prompts: file {missing} does not exist"),
    (EVAL + " --classifiers q16 --clip-model none", "q16 needs a CLIP model"),
    (EVAL + " --fid-features banana", "--fid-features: invalid choice: 'banana'"),
    (EVAL + " --fid-features inception", "--fid-features inception needs reference images"),
    (EVAL + " --fid-reference {missing}", "--fid-reference: folder {missing} does not exist"),
    (EVAL + " --fid-reference {file}", "--fid-reference: folder {file} is a file"),
    (EVAL + " --fid-reference {dir} --fid-features random", "FID is computed on the images of"),
    (EVAL + " --fid-reference {dir} --fid-features none", "--fid-reference given but FID is off"),
    (EVAL + " --protocol banana", "--protocol: invalid choice"),
    # ---- evaluate: packs, modes, baselines
    (EVAL + " --mode gated", "--mode gated applies packs, but no --pack"),
    (EVAL + " --mode banana", "--mode: invalid choice"),
    (EVAL + " --baseline banana", "unknown baseline 'banana'"),
    (EVAL + " --baseline native=", "unknown baseline 'native='"),
    (EVAL + " --baseline native={missing}", "--baseline native pack {missing} does not exist"),
    (EVAL + " --baseline random", "--baseline random draws a direction"),
    (EVAL + " --baseline none --baseline none", "--baseline lists none twice"),
    (EVAL + " --pack {missing}", "--pack: file {missing} does not exist"),
    (EVAL + " --pack {junk}", "not a safetensors file"),
    # ---- evaluate: Ray
    (EVAL + " --ray 127.0.0.1:9", "no Ray cluster answers at 127.0.0.1:9"),
    (EVAL + " --ray banana", "--ray: Ray address 'banana' is not HOST:PORT"),
    (EVAL + " --ray head:99999", "--ray: Ray address 'head:99999' is not HOST:PORT"),
    (EVAL + " --ray-workers 0 --ray", "--ray-workers: 0 is too small"),
    (EVAL + " --ray-workers 2", "--ray-workers / --ray-gpus-per-worker are read only with --ray"),
    (EVAL + " --ray --ray-gpus-per-worker -1", "--ray-gpus-per-worker: -1 is not ≥ 0"),
    # ---- evaluate: files
    (EVAL.replace("{out}", "{file}"), "--out: folder {file} is a file"),
    (EVAL.replace("{out}", "{file}/sub"), "which is a file, not a folder"),
    (EVAL.replace("{out}", "/proc/safesteer-nowhere"), "cannot write in /proc"),
    (EVAL.replace("{prompts}", "{missing}"), "--prompts: prompt file {missing} does not exist"),
    (EVAL.replace("{prompts}", "{bad_utf8}"), "is not valid UTF-8: line 3"),
    (EVAL.replace("{prompts}", "{empty}"), "is empty"),
    (EVAL + " --utility-prompts {missing}", "--utility-prompts: prompt file {missing} does not"),
    ("evaluate --pipeline tiny-sd --out {out}", "no prompts given"),
    # ---- evaluate --config: a file's values pass the same checks
    (EVAL + " --config {missing}", "--config: file {missing} does not exist"),
    (EVAL + " --config {bad_utf8}", "--config: file {bad_utf8} is not valid UTF-8: line 3"),
    (EVAL + " --config {config_nan}", "alphas = ['nan'] is not a valid value"),
    (EVAL + " --config {config_twice}", "--alphas lists 3 twice"),
    (EVAL + " --config {config_steps}", "steps = 0 is not a valid value"),
    (EVAL + " --config {config_limit}", "limit = 2.5 is not a valid value"),
    ("evaluate --prompts {prompts} --config {config_out}", "out = "),
    (EVAL + " --config {config_gated}", "--mode gated applies packs, but no --pack"),
    # ---- report
    ("report {run} --per-strength -1", "--per-strength: -1 is too small"),
    ("report {missing}", "run_dir: folder {missing} does not exist"),
    ("report {file}", "run_dir: folder {file} is a file"),
    ("report {dir}", "is not an evaluation run"),
    ("report {run} --out {file}", "--out: folder {file} is a file"),
    ("report {run} --out {file}/sub", "which is a file, not a folder"),
    ("report {run} --out /proc/safesteer-nowhere", "cannot write in /proc"),
    ("report {broken_run}", "cannot read protocol record"),
    # ---- layers
    ("layers --folds 0", "--folds: 0 is too small"),
    ("layers --folds 1", "--folds: 1 is too small"),
    ("layers --folds -1", "--folds: -1 is too small"),
    ("layers --folds two", "--folds: 'two' is not an integer"),
    # ---- reproduce
    ("reproduce tiny-flux --limit 0", "--limit: 0 is too small"),
    ("reproduce tiny-flux --max-items -1", "--max-items: -1 is too small"),
    ("reproduce tiny-flux --out {file}", "--out: folder {file} is a file"),
    ("reproduce tiny-flux --q16-prompts {missing}", "{missing}"),
    ("reproduce tiny-flux --fid-reference {file}", "{file}"),
    ("reproduce no-such-preset --dry-run", "no-such-preset"),
    # ---- convert-q16
    ("convert-q16 {missing} {out}.safetensors", "{missing}"),
    ("convert-q16 {file} {dir}", "{dir}"),
    ("convert-q16 {file} {out}.safetensors --expect-dim 0", "--expect-dim: 0 is too small"),
    # ---- planted
    (PLANTED + " --alpha nan", "--alpha: nan is not a finite number"),
    (PLANTED + " --alpha 1e30", "--alpha: strength 1e+30 is beyond"),
    (PLANTED + " --anchors 10", "--anchors: 10 is too small"),
    (PLANTED + " --false-trigger-rate 0", "--false-trigger-rate: 0 is not (0, 1)"),
    (PLANTED + " --false-trigger-rate 1", "--false-trigger-rate: 1 is not (0, 1)"),
    (PLANTED + " --false-trigger-rate nan", "--false-trigger-rate: nan is not a finite"),
    (PLANTED + " --source-dim 0", "--source-dim: 0 is too small"),
    (PLANTED + " --target-dim -1", "--target-dim: -1 is too small"),
    (PLANTED + " --source-dim 96 --target-dim 50", "--target-dim 50 < --source-dim 96"),
    (PLANTED + " --seed -1", "--seed: -1 is too small"),
    (PLANTED.replace("{out}", "{file}"), "--out: folder {file} is a file"),
]
if NO_GPU:
    ROWS += [
        (GEN + " --device cuda", "--device: device 'cuda': no CUDA GPU here"),
        (EVAL + " --device cuda", "--device: device 'cuda': no CUDA GPU here"),
    ]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The files the rows name: good ones, damaged ones, a folder, a file, an existing pack."""
    root = tmp_path_factory.mktemp("bad-cli")
    (root / "dir").mkdir()
    (root / "a_file").write_text("I am a file\n")
    (root / "prompts.txt").write_text("a red house\na dog\n", encoding="utf-8")
    (root / "empty.txt").write_text("")
    (root / "bad.txt").write_bytes(b"a red house\na dog\na caf\xe9 in Paris\n")  # latin-1
    good = json.dumps({"safe": "a calm cat", "unsafe": "a hurt cat", "category": "violence"})
    (root / "bad_pairs.jsonl").write_bytes(f"{good}\n{good}\n".encode() + b'{"safe": "\xff"}\n')
    (root / "pairs.jsonl").write_text(f"{good}\n{good}\n", encoding="utf-8")
    (root / "junk.safetensors").write_bytes(b"not a pack")
    g = torch.Generator().manual_seed(0)
    pack = SafetyPack(
        torch.randn(32, generator=g),
        {"violence": torch.randn(32, generator=g)},
        "tiny-sd",
        "sd/clip",
        {"beta": 1.0},
    )
    pack.save(root / "pack.safetensors")
    for name, text in {
        "config_nan": 'alphas = ["nan"]',
        "config_twice": "alphas = [3, 3.0]",
        "config_steps": "steps = 0",
        "config_limit": "limit = 2.5",
        "config_out": f'pipeline = "tiny-sd"\nout = "{root / "a_file"}"',
        "config_gated": 'mode = ["gated"]',
    }.items():
        (root / f"{name}.toml").write_text(text + "\n")
    run = root / "run"
    run.mkdir()
    (run / "protocol.json").write_text(json.dumps({"pipeline": {}}))
    broken = root / "broken_run"
    broken.mkdir()
    (broken / "protocol.json").write_bytes(b'{"pipeline": {"id": "x"}, "cond')
    return {
        "out": str(root / "out"),
        "dir": str(root / "dir"),
        "file": str(root / "a_file"),
        "missing": str(root / "missing.txt"),
        "prompts": str(root / "prompts.txt"),
        "empty": str(root / "empty.txt"),
        "bad_utf8": str(root / "bad.txt"),
        "bad_pairs": str(root / "bad_pairs.jsonl"),
        "pairs": str(root / "pairs.jsonl"),
        "junk": str(root / "junk.safetensors"),
        "pack": str(root / "pack.safetensors"),
        "run": str(run),
        "broken_run": str(broken),
        "root": str(root),
        **{n: str(root / f"{n}.toml") for n in ("config_nan", "config_twice", "config_steps")},
        **{n: str(root / f"{n}.toml") for n in ("config_limit", "config_out", "config_gated")},
    }


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every path under ``root``: content hash (files) and mode."""
    out = {}
    for p in sorted(root.rglob("*")):
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out[str(p.relative_to(root))] = (digest, p.stat().st_mode)
    return out


@pytest.mark.parametrize(
    ("line", "expect"), ROWS, ids=[f"{i:03d}-{r[0].split()[0]}" for i, r in enumerate(ROWS)]
)
def test_a_bad_command_line_is_refused_up_front(
    line: str, expect: str, work: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(work["root"])
    before = _snapshot(root)
    argv = shlex.split(line.format(**work))
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse exits itself
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}; stderr: {err}"
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "(fix: " in last, err
    assert expect.format(**work) in err, err
    assert _snapshot(root) == before, "a refused command changed the files"
