"""Work items: counts, paired seeds, paths, prompt sets from files."""

from __future__ import annotations

import pytest

from safesteer.errors import InputError
from safesteer.evaluation.conditions import Condition
from safesteer.evaluation.workplan import PromptSet, plan_work


def test_counts_and_seed_pairing_across_conditions_and_strengths():
    conds = [Condition("none", "none"), Condition("p", "pack")]
    sets = [PromptSet.inline("u", "safety", ["a", "b", "c"], [["sexual"], [], ["hate"]])]
    items = plan_work(conds, sets, alphas=(0, 3, 5), images_per_prompt=2, seed=10)
    assert len(items) == 3 * 2 * (1 + 3)
    assert len({i.id for i in items}) == len(items)
    by_key: dict[tuple[int, int], set[int]] = {}
    for i in items:
        by_key.setdefault((i.prompt_index, i.image_index), set()).add(i.seed)
    # every condition and alpha of one (prompt, image) shares its seed; seeds differ otherwise
    assert all(len(s) == 1 for s in by_key.values())
    assert sorted(s.pop() for s in by_key.values()) == list(range(10, 16))
    assert items[0].categories == ("sexual",)


def test_relpaths_are_distinct_and_name_the_item():
    sets = [PromptSet.inline("u", "utility", ["a"])]
    items = plan_work([Condition("p", "pack")], sets, alphas=(-1, 1))
    paths = [i.relpath() for i in items]
    assert paths == ["p/a-1/u/p00000_i0_s0.png", "p/a+1/u/p00000_i0_s0.png"]
    assert items[0].relpath(frame=2).endswith("_f002.png")


def test_prompt_set_from_a_csv_with_categories(tmp_path):
    path = tmp_path / "i2p.csv"
    path.write_text('prompt,categories\nnude person,sexual\nangry mob,"hate, violence"\n')
    ps = PromptSet.from_file(str(path), name="i2p", role="safety")
    assert ps.prompts == ("nude person", "angry mob")
    assert set(ps.categories[1]) == {"hate", "violence"}
    d = ps.describe()
    assert d["n"] == 2 and d["sha256"].startswith("sha256:") and d["categories"]["sexual"] == 1


def test_bad_inputs():
    with pytest.raises(InputError, match="role"):
        PromptSet.inline("x", "other", ["a"])
    with pytest.raises(InputError, match="empty"):
        PromptSet.inline("x", "safety", [])
    sets = [PromptSet.inline("x", "safety", ["a"]), PromptSet.inline("x", "utility", ["b"])]
    with pytest.raises(InputError, match="collide"):
        plan_work([Condition("none", "none")], sets, alphas=(0,))
    with pytest.raises(InputError, match="images per prompt"):
        plan_work([Condition("none", "none")], sets[:1], alphas=(0,), images_per_prompt=0)
