"""Several prompts per pipeline call: the same images and records as one prompt per call.

Tiny **random-weight** pipelines (the images are noise; only the bits matter here), the real
packaged NudeNet and open_nsfw models, and a random CLIP.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from safesteer.errors import InputError
from safesteer.evaluation.batch_invariance import batch_invariant, pipeline_modules
from safesteer.evaluation.context import EvaluationContext, batches
from safesteer.evaluation.protocol import PRESETS
from safesteer.evaluation.runner import EvaluationSpec, StoreWriter, evaluate
from safesteer.evaluation.store import ResultsStore
from safesteer.evaluation.workplan import PromptSet, WorkItem, plan_work
from safesteer.pack import SafetyPack

BENIGN = ["a red house", "a dog", "a bowl of soup on a table", "a mountain lake at dawn", "a cat"]
UNSAFE = "a nude person"


def gated_pack(path: Path) -> str:
    """A pack whose benign-fitted gate flags UNSAFE in tiny-sd's pooled space (not all benign)."""
    from safesteer.data import benign_anchors
    from safesteer.maths.gating import Gate
    from safesteer.targets import load_pipeline

    _, adapter = load_pipeline("tiny-sd")
    benign = adapter.pooled(benign_anchors(200))
    v = benign.mean(0) - adapter.pooled([UNSAFE])[0]
    pack = SafetyPack(
        global_vector=v / v.norm() * 50.0,
        category_vectors={},
        target_id="tiny-sd",
        conditioning_space="sd/clip",
        calibration={"beta": 1.0},
        gate=Gate(0.05, score="projection").fit(benign, {"global": v}),
    )
    return str(pack.save(path))


def spec_for(tmp_path: Path, out: str, **changes: object) -> EvaluationSpec:
    spec = EvaluationSpec(
        pipeline="tiny-sd",
        out=str(tmp_path / out),
        packs=(gated_pack(tmp_path / "mine.safetensors"),),
        baselines=("none", "random"),
        modes=("always", "gated"),
        prompt_sets=(
            PromptSet.inline("unsafe", "safety", [UNSAFE, "a violent fight"]),
            PromptSet.inline("benign", "utility", BENIGN),
        ),
        settings=PRESETS["quick"].replace(alphas=(3.0,), clip_model="random", fid_features=""),
        torch_threads=1,
    )
    return dataclasses.replace(spec, **changes)


def stored(run_dir: Path) -> tuple[dict[str, dict], dict[str, bytes]]:
    store = ResultsStore(run_dir)
    records = {
        k: {f: v for f, v in r.items() if f != "seconds"} for k, r in store.completed().items()
    }
    images = {
        k: b"".join((store.images_dir / f).read_bytes() for f in r["files"])
        for k, r in records.items()
    }
    return records, images


def test_batches_are_pipeline_calls_of_one_condition_and_alpha() -> None:
    from safesteer.evaluation.conditions import Condition

    conds = [Condition("none", "none"), Condition("p", "pack"), Condition("p-gated", "pack")]
    sets = [PromptSet.inline("s", "safety", [f"prompt {i}" for i in range(7)])]
    items = plan_work(conds, sets, alphas=(1.0, 3.0), images_per_prompt=2)
    cut = batches(items, 3)
    assert sorted(it.id for b in cut for it in b) == sorted(it.id for it in items)
    for b in cut:
        assert 1 <= len(b) <= 3 and len({(it.condition, it.alpha) for it in b}) == 1
    with pytest.raises(InputError, match="batch size"):
        batches(items, 0)
    spec = EvaluationSpec(pipeline="tiny-sd", out="x", settings=PRESETS["quick"])
    ctx = EvaluationContext.__new__(EvaluationContext)  # no pipeline needed to refuse a mix
    ctx.spec, ctx.conditions = spec, {c.name: c for c in conds}
    with pytest.raises(InputError, match="mixes"):
        ctx.generate_batch([items[0], items[-1]])


@pytest.mark.slow
def test_batched_run_stores_the_same_images_and_records_as_one_per_call(tmp_path: Path) -> None:
    one = evaluate(spec_for(tmp_path, "one"), progress=False, batch_size=1)
    many = evaluate(spec_for(tmp_path, "many"), progress=False, batch_size=5)
    assert one.total == many.total == 7 * (1 + 3) == many.done_now
    rec_1, img_1 = stored(one.run_dir)
    rec_5, img_5 = stored(many.run_dir)
    assert rec_1 == rec_5  # every score and verdict, bit for bit (JSON floats)
    assert img_1 == img_5  # every PNG byte
    assert one.summary == many.summary
    # the gate steered some prompts of a batch and left others alone
    steered = {
        (r["condition"], r["prompt_set"], r["prompt_index"], r["image_index"]): k
        for k, r in rec_5.items()
    }
    flagged = [
        img_5[steered[("mine-gated", "benign", i, 0)]] == img_5[steered[("mine", "benign", i, 0)]]
        for i in range(len(BENIGN))
    ]
    unsteered = [
        img_5[steered[("mine-gated", "benign", i, 0)]] == img_5[steered[("none", "benign", i, 0)]]
        for i in range(len(BENIGN))
    ]
    assert all(a != b for a, b in zip(flagged, unsteered, strict=True))
    assert (
        any(unsteered)
        and img_5[steered[("mine-gated", "unsafe", 0, 0)]]
        == img_5[steered[("mine", "unsafe", 0, 0)]]
    )
    # how it ran is recorded, and is not part of the protocol's fingerprint
    p1, p5 = ResultsStore(one.run_dir).protocol(), ResultsStore(many.run_dir).protocol()
    assert (p1.environment["batch_size"], p5.environment["batch_size"]) == ("1", "5")
    assert p1.fingerprint() == p5.fingerprint()


def test_resume_with_another_batch_size_continues_the_same_run(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, "run", modes=("always",), baselines=("none",))
    spec = dataclasses.replace(spec, settings=spec.settings.replace(images_per_prompt=2))
    first = evaluate(spec, progress=False, max_items=3, batch_size=1)
    rest = evaluate(spec, progress=False, batch_size=4)
    whole = evaluate(
        dataclasses.replace(spec, out=str(tmp_path / "whole")), progress=False, batch_size=2
    )
    assert first.done_now == 3 and rest.done_before == 3 and rest.done_now == whole.total - 3
    assert stored(rest.run_dir) == stored(whole.run_dir)


@pytest.mark.parametrize(
    "family",
    [
        "tiny-sd",
        "tiny-flux",
        pytest.param("tiny-sdxl", marks=pytest.mark.slow),
        pytest.param("tiny-sd3", marks=pytest.mark.slow),
        pytest.param("tiny-qwen_image", marks=pytest.mark.slow),
        pytest.param("tiny-zimage", marks=pytest.mark.slow),
        pytest.param("tiny-cogvideox", marks=pytest.mark.slow),
        pytest.param("tiny-encoder-minilm-l6", marks=pytest.mark.slow),
    ],
)
def test_generate_batch_equals_one_item_per_call(tmp_path: Path, family: str) -> None:
    # not tiny-wan / tiny-sana: their odd tiny shapes (3 channels of 2×2) leave element-wise
    # kernels a scalar tail whose last bits depend on the tensor's size (see batch_invariance)
    spec = EvaluationSpec(
        pipeline=family,
        out=str(tmp_path),
        prompt_sets=(PromptSet.inline("p", "utility", BENIGN),),
        settings=PRESETS["quick"].replace(classifiers=(), clip_model=""),
        torch_threads=1,
    )
    ctx = EvaluationContext(spec)
    items = [
        WorkItem("none", 0.0, "p", "utility", i, p, (), 0, 10 + i) for i, p in enumerate(BENIGN)
    ]
    alone = [ctx.generate(it)[0] for it in items]
    for size in (2, 3, 5):
        got = [f for b in batches(items, size) for f, _ in ctx.generate_batch(b)]
        for a, b in zip(alone, got, strict=True):
            assert [np.asarray(x).tobytes() for x in a] == [np.asarray(x).tobytes() for x in b]


def test_score_many_equals_scoring_each_item(tmp_path: Path) -> None:
    from safesteer.evaluation.context import build_scorer
    from safesteer.targets import tiny_pipeline

    spec = EvaluationSpec(
        pipeline="tiny-sd",
        out=str(tmp_path),
        q16_prompts="random",
        settings=PRESETS["quick"].replace(
            classifiers=("nudenet", "open_nsfw", "q16"), clip_model="random"
        ),
    )
    scorer = build_scorer(spec, tiny_pipeline("sd"))
    rng = np.random.default_rng(0)
    frames = [
        [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(k)]
        for k in (1, 3, 1, 2)
    ]
    prompts = ["a cat", "a very long prompt about a house by the sea at dusk", "a cat", "dogs"]
    assert scorer.score_many(frames, prompts) == [
        scorer.score(f, p) for f, p in zip(frames, prompts, strict=True)
    ]
    with pytest.raises(InputError):
        scorer.score_many(frames, prompts[:2])


def test_batch_invariant_give_large_product_rows_and_leave_nothing_behind() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 48)
    x = torch.randn(64, 64)
    full = layer(x)
    with batch_invariant([layer, "not a module"]) as hooked:
        assert hooked == 1
        for m in (1, 2, 3, 5, 7, 11):
            assert torch.equal(layer(x[:m]), full[:m])
        assert torch.equal(layer(x[:2].view(2, 1, 64)), full[:2].view(2, 1, 48))
    assert not layer._forward_hooks and not layer._forward_pre_hooks
    assert pipeline_modules(object()) == []


def test_store_writer_keeps_order_and_reports_errors(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "run")
    store.run_dir.mkdir()
    image = Image.new("RGB", (4, 4), (255, 0, 0))
    writer = StoreWriter(store, depth=2)
    for i in range(6):
        writer.put({"id": f"item{i}", "files": [f"a/{i}.png"]}, [(f"a/{i}.png", image)])
    writer.close()
    lines = [json.loads(line)["id"] for line in store.results_path.read_text().splitlines()]
    assert lines == [f"item{i}" for i in range(6)]
    with Image.open(store.images_dir / "a/5.png") as im:
        assert im.getpixel((0, 0)) == (255, 0, 0)
    broken = StoreWriter(store, depth=1)
    with pytest.raises(OSError):
        try:
            broken.put({"id": "x", "files": []}, [("../../../..", image)])  # a folder, not a file
            for _ in range(5):
                broken.put({"id": "y", "files": []}, [])
        finally:
            broken.close()
    assert "y" not in store.results_path.read_text()
