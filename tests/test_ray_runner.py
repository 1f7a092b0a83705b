"""Ray scale-out on a local CPU cluster: same store, same images as a local run, resumable."""

from __future__ import annotations

import pytest

from safesteer.evaluation.conditions import Condition
from safesteer.evaluation.protocol import PRESETS
from safesteer.evaluation.ray_runner import split_by_prompt
from safesteer.evaluation.runner import EvaluationSpec, evaluate
from safesteer.evaluation.store import ResultsStore
from safesteer.evaluation.workplan import PromptSet, plan_work


def test_split_by_prompt_keeps_every_item_once_and_groups_prompts():
    sets = [PromptSet.inline("a", "safety", ["x", "y"]), PromptSet.inline("b", "utility", ["z"])]
    conds = [Condition("none", "none"), Condition("p", "pack")]
    items = plan_work(conds, sets, alphas=(1, 3), images_per_prompt=2)
    shards = split_by_prompt(items)
    assert len(shards) == 3
    assert sorted(i.id for s in shards for i in s) == sorted(i.id for i in items)
    for s in shards:
        assert len({(i.prompt_set, i.prompt_index) for i in s}) == 1 and len(s) == 2 * (1 + 2)


@pytest.mark.slow
def test_local_ray_cluster_matches_a_local_run_and_resumes(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is the optional [ray] extra")
    spec = EvaluationSpec(
        pipeline="tiny-sd",
        out=str(tmp_path / "local"),
        baselines=("none",),
        prompt_sets=(PromptSet.inline("u", "utility", ["a red house", "a dog", "a lake"]),),
        settings=PRESETS["quick"].replace(classifiers=("open_nsfw",)),
        torch_threads=1,
    )
    local = evaluate(spec, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = EvaluationSpec(**{**spec.__dict__, "out": str(tmp_path / "ray")})
        first = evaluate(on_ray, progress=False, ray_address="local", ray_workers=2, max_items=1)
        assert first.done_now == 1
        second = evaluate(on_ray, progress=False, ray_address="local", ray_workers=2)
        assert (second.done_before, second.done_now) == (1, local.total - 1)
    finally:
        ray.shutdown()
    a, b = ResultsStore(local.run_dir), ResultsStore(second.run_dir)
    ra, rb = a.completed(), b.completed()
    assert set(ra) == set(rb) and len(b.results_path.read_text().splitlines()) == len(rb)
    for k in ra:
        files_a = [(a.images_dir / f).read_bytes() for f in ra[k]["files"]]
        files_b = [(b.images_dir / f).read_bytes() for f in rb[k]["files"]]
        assert files_a == files_b
        assert ra[k]["verdicts"] == rb[k]["verdicts"]
    protocol = b.protocol()
    assert protocol.environment["ray_workers"] == "2"
    assert protocol.fingerprint() == a.protocol().fingerprint()  # how it ran is not what it ran
