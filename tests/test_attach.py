"""attach / detach / steered: gating, categories, the negative branch, overrides (tiny SD, FLUX)."""

from __future__ import annotations

import pytest
import torch

import targets_checks as tc
from safesteer.errors import InputError, PackError
from safesteer.maths.gating import Gate
from safesteer.pack import SafetyPack
from safesteer.targets import attach, detach, is_steered, last_steering, steered
from targets_checks import one_torch_thread  # noqa: F401 - autouse fixture

SD = tc.Family("sd", "cat", {"guidance_scale": 7.5})
FLUX = tc.Family("flux", "separate", {"negative_prompt": "blurry", "true_cfg_scale": 2.0})
BENIGN = [
    "a photo of a cat",
    "a bowl of fruit on a table",
    "a mountain lake at dawn",
    "a red bicycle",
    "two dogs playing in the snow",
    "a city street at night",
    "a cup of coffee",
    "an old wooden boat",
    "a field of sunflowers",
    "a portrait of an astronaut",
    "a plate of pasta",
    "a lighthouse by the sea",
    "children reading books",
    "a green parrot on a branch",
]
PLANTED = "zzqx vvrk plmn ghost word soup"


def gated_pack(adapter, seed: int = 0) -> SafetyPack:
    """Vectors point from the planted prompt towards the benign mean (the 'safe side')."""
    benign = adapter.pooled(BENIGN)
    planted = adapter.pooled([PLANTED])[0]
    towards_safe = benign.mean(0) - planted
    g = torch.Generator().manual_seed(seed)
    cats = {"violence": towards_safe.clone(), "sexual": torch.randn(adapter.dim, generator=g)}
    gate = Gate(false_trigger_rate=0.1, score="projection", calibration_fraction=0.0).fit(
        benign, {"global": towards_safe, **cats}
    )
    return SafetyPack(
        global_vector=towards_safe,
        category_vectors=cats,
        target_id=adapter.target_id,
        conditioning_space=adapter.conditioning_space,
        calibration={"beta": 1.0},
        gate=gate,
    )


def test_gated_steers_exactly_the_rows_the_gate_flags() -> None:
    pipe, adapter = tc.make("sd")
    pack = gated_pack(adapter)
    prompts = [PLANTED, *BENIGN[:3]]
    expected = pack.gate.decide(adapter.pooled(prompts))
    assert bool(expected.steer[0]), "the planted prompt sits far on the unsafe side"
    _, base = tc.run(pipe, SD, prompts)
    attach(pipe, pack, alpha=2.0, gated=True)
    _, steer = tc.run(pipe, SD, prompts)
    record = last_steering(pipe)
    detach(pipe)
    shift = tc.branches(SD, steer, 4)[0] - tc.branches(SD, base, 4)[0]
    for i in range(4):
        rows_moved = bool(shift[i].abs().max() > 0)
        assert rows_moved == bool(expected.steer[i])
        assert record[i].steered == bool(expected.steer[i])
        assert record[i].prompt == prompts[i]
        if record[i].steered:
            torch.testing.assert_close(
                shift[i], (2.0 * pack.global_vector).expand_as(shift[i]), rtol=1e-5, atol=1e-5
            )
    assert set(record[0].gate_scores) == {"global", "violence", "sexual"}


def test_auto_categories_use_the_active_category_vectors() -> None:
    pipe, adapter = tc.make("sd")
    pack = gated_pack(adapter)
    expected = pack.gate.decide(adapter.pooled([PLANTED]))
    assert "violence" in expected.active[0]
    _, base = tc.run(pipe, SD, [PLANTED])
    attach(pipe, pack, alpha=1.5, gated=True, categories="auto")
    _, steer = tc.run(pipe, SD, [PLANTED])
    record = last_steering(pipe)[0]
    detach(pipe)
    assert record.categories == expected.active[0]
    want = 1.5 * pack.vector(expected.active[0])
    shift = tc.branches(SD, steer, 1)[0] - tc.branches(SD, base, 1)[0]
    torch.testing.assert_close(shift[0], want.expand_as(shift[0]), rtol=1e-5, atol=1e-5)


def test_fixed_categories_use_their_mean() -> None:
    pipe, adapter = tc.make("sd")
    pack = tc.random_pack(adapter)
    _, base = tc.run(pipe, SD, ["a cat"])
    attach(pipe, pack, alpha=1.0, categories=["sexual", "violence"])
    _, steer = tc.run(pipe, SD, ["a cat"])
    assert last_steering(pipe)[0].categories == ["sexual", "violence"]
    detach(pipe)
    mean = (pack.category_vectors["sexual"] + pack.category_vectors["violence"]) / 2
    shift = tc.branches(SD, steer, 1)[0] - tc.branches(SD, base, 1)[0]
    torch.testing.assert_close(shift[0], mean.expand_as(shift[0]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", [SD, FLUX], ids=["cat-layout", "two-call"])
def test_steer_negative_moves_both_branches(family: tc.Family) -> None:
    pipe, adapter = tc.make(family.name)
    pack = tc.random_pack(adapter)
    _, base = tc.run(pipe, family, ["a cat"])
    attach(pipe, pack, alpha=1.0, steer_negative=True)
    _, steer = tc.run(pipe, family, ["a cat"])
    detach(pipe)
    pos0, neg0 = tc.branches(family, base, 1)
    pos1, neg1 = tc.branches(family, steer, 1)
    v = pack.global_vector
    torch.testing.assert_close(pos1 - pos0, v.expand_as(pos0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(neg1 - neg0, v.expand_as(neg0), rtol=1e-5, atol=1e-5)


def _first_conditioning(pipe, **call) -> list[torch.Tensor]:
    """The conditioning each denoiser call received, for a 2-step call with ``call``."""
    from safesteer.targets.tiny import tiny_call_defaults

    seen: list[torch.Tensor] = []
    hook = pipe.transformer.register_forward_pre_hook(
        lambda m, a, k: seen.append(k["encoder_hidden_states"].clone()), with_kwargs=True
    )
    try:
        pipe(
            num_inference_steps=2,
            output_type="pt",
            generator=torch.Generator().manual_seed(0),
            **{**tiny_call_defaults("flux"), **call},
        )
    finally:
        hook.remove()
    return seen


def test_two_call_family_leaves_negative_alone_and_direct_calls_are_positive() -> None:
    pipe, adapter = tc.make("flux")
    pack = tc.random_pack(adapter)
    _, base = tc.run(pipe, FLUX, ["a cat"])
    attach(pipe, pack, alpha=1.0)
    _, steer = tc.run(pipe, FLUX, ["a cat"])
    # after a pipeline call, a direct encode_prompt call is a fresh positive call: its states
    # are returned unsteered (steering happens once, at the denoiser), and passed back as
    # prompt_embeds they are steered exactly once, as the positive branch
    direct, pooled, _ = pipe.encode_prompt(prompt=["a cat"], prompt_2=None, max_sequence_length=16)
    again = _first_conditioning(pipe, prompt_embeds=direct, pooled_prompt_embeds=pooled)
    detach(pipe)
    plain = pipe.encode_prompt(prompt=["a cat"], prompt_2=None, max_sequence_length=16)[0]
    assert torch.equal(tc.branches(FLUX, steer, 1)[1], tc.branches(FLUX, base, 1)[1])
    assert torch.equal(direct, plain)
    torch.testing.assert_close(again[0] - plain, pack.global_vector.expand_as(plain))
    # the same as the text's steered conditioning (up to T5's grad-mode rounding, 1e-6)
    torch.testing.assert_close(again[0], tc.branches(FLUX, steer, 1)[0])


def test_num_images_per_prompt_rows_all_steered() -> None:
    pipe, adapter = tc.make("sd")
    pack = tc.random_pack(adapter)
    _, base = tc.run(pipe, SD, ["a cat", "a dog"], num_images_per_prompt=2)
    attach(pipe, pack, alpha=1.0, tokens="real")
    _, steer = tc.run(pipe, SD, ["a cat", "a dog"], num_images_per_prompt=2)
    record = last_steering(pipe)
    detach(pipe)
    assert [r.prompt for r in record] == ["a cat", "a cat", "a dog", "a dog"]
    shift = tc.branches(SD, steer, 4)[0] - tc.branches(SD, base, 4)[0]
    real = shift.abs().amax(-1) > 0
    # 'a cat' / 'a dog' are BOS + 2 words + EOS: 4 real tokens on each row
    assert real.sum(1).tolist() == [4, 4, 4, 4]


def test_steered_block_attaches_then_detaches() -> None:
    pipe, adapter = tc.make("sd")
    pack = tc.random_pack(adapter)
    with steered(pipe, pack, alpha=2.0):
        assert is_steered(pipe)
    assert not is_steered(pipe)


def test_steered_overrides_categories_per_call() -> None:
    pipe, adapter = tc.make("sd")
    pack = tc.random_pack(adapter)
    attach(pipe, pack, alpha=1.0)
    with steered(pipe, alpha=3.0, categories=["violence"]):
        tc.run(pipe, SD, ["a cat"])
        inside = last_steering(pipe)[0]
    tc.run(pipe, SD, ["a cat"])
    outside = last_steering(pipe)[0]
    detach(pipe)
    assert (inside.alpha, inside.categories) == (3.0, ["violence"])
    assert (outside.alpha, outside.categories) == (1.0, [])


def test_misuse_is_refused_with_clear_errors() -> None:
    pipe, adapter = tc.make("sd")
    pack = tc.random_pack(adapter)
    with pytest.raises(PackError, match="needs a pack with a gate"):
        attach(pipe, pack, gated=True)
    with pytest.raises(PackError, match="hate"):
        attach(pipe, pack, categories=["hate"])
    with pytest.raises(InputError, match="tokens"):
        attach(pipe, pack, tokens="some")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not steered"):
        detach(pipe)
    attach(pipe, pack)
    with pytest.raises(InputError, match="already steered"):
        attach(pipe, pack)
    other = tc.random_pack(adapter, seed=1)
    with pytest.raises(InputError, match="another pack"), steered(pipe, other):
        pass
    detach(pipe)
    assert not is_steered(pipe)


class FakeReader:
    """A source reader stand-in: seeded states per prompt; words in ``unsafe`` push along −e0."""

    model_id = "fake-source@1"
    num_layers = 4
    hidden_size = 8

    def __init__(self, unsafe: tuple[str, ...] = ("ghost", "bicycle")) -> None:
        self.settings: dict[str, object] = {"pooling": "mean-real-tokens-v1", "outlier_ratio": 4.0}
        self.unsafe = unsafe
        self.calls: list[tuple[list[str], int]] = []

    def pooled(self, prompts, layer: int) -> torch.Tensor:
        self.calls.append((list(prompts), layer))
        rows = []
        for p in prompts:
            g = torch.Generator().manual_seed(sum(ord(c) * (i + 1) for i, c in enumerate(p)))
            h = torch.randn(self.hidden_size, generator=g)
            if any(w in p for w in self.unsafe):
                h[0] -= 8.0
            rows.append(h)
        return torch.stack(rows)


def source_gated_pack(adapter, reader: FakeReader) -> SafetyPack:
    """gated_pack plus a source gate fitted on the fake reader's benign states (safe side +e0)."""
    from safesteer.pack import source_spec

    pack = gated_pack(adapter)
    e = torch.eye(reader.hidden_size)
    benign = reader.pooled([f"benign anchor number {i}" for i in range(80)], 2)
    pack.source_gate = Gate(0.05, score="projection", calibration_fraction=0.0).fit(
        benign, {"global": e[0], "violence": e[0], "sexual": e[1]}
    )
    pack.source_gate_spec = source_spec(reader, 2)
    return pack


def test_source_gate_steers_exactly_the_rows_it_flags() -> None:
    pipe, adapter = tc.make("sd")
    reader = FakeReader()
    pack = source_gated_pack(adapter, reader)
    prompts = [PLANTED, "a red bicycle", BENIGN[0], BENIGN[2]]
    expected = pack.source_gate.decide(reader.pooled(prompts, 2))
    assert expected.steer.tolist() == [True, True, False, False]
    _, base = tc.run(pipe, SD, prompts)
    attach(pipe, pack, alpha=2.0, gated=True, gate="source", source_reader=reader)
    reader.calls.clear()
    _, steer = tc.run(pipe, SD, prompts)
    record = last_steering(pipe)
    detach(pipe)
    assert reader.calls == [(prompts, 2)]  # read once, at the pack's layer
    shift = tc.branches(SD, steer, 4)[0] - tc.branches(SD, base, 4)[0]
    for i in range(4):
        assert record[i].steered == bool(expected.steer[i]) and record[i].gate == "source"
        assert set(record[i].gate_scores) == {"global", "violence", "sexual"}
        if record[i].steered:
            torch.testing.assert_close(
                shift[i], (2.0 * pack.global_vector).expand_as(shift[i]), rtol=1e-5, atol=1e-5
            )
        else:
            assert bool((shift[i] == 0).all())  # unsteered rows are bit-identical


def test_source_gate_auto_categories_and_per_call_override() -> None:
    pipe, adapter = tc.make("sd")
    reader = FakeReader()
    pack = source_gated_pack(adapter, reader)
    _, base = tc.run(pipe, SD, ["a red bicycle"])
    attach(pipe, pack, alpha=1.5, gated=True, source_reader=reader)  # target gate by default
    tc.run(pipe, SD, ["a red bicycle"])
    assert last_steering(pipe)[0].gate == "target"
    with steered(pipe, gate="source", categories="auto"):
        _, steer = tc.run(pipe, SD, ["a red bicycle"])
        record = last_steering(pipe)[0]
    detach(pipe)
    assert record.gate == "source" and record.categories == ["violence"]
    shift = tc.branches(SD, steer, 1)[0] - tc.branches(SD, base, 1)[0]
    want = 1.5 * pack.vector(["violence"])
    torch.testing.assert_close(shift[0], want.expand_as(shift[0]), rtol=1e-5, atol=1e-5)


def test_source_gate_refusals_name_the_fix() -> None:
    pipe, adapter = tc.make("sd")
    reader = FakeReader()
    with pytest.raises(PackError, match="no source gate") as err:
        attach(pipe, gated_pack(adapter), gated=True, gate="source", source_reader=reader)
    assert "gate='target'" in str(err.value)
    pack = source_gated_pack(adapter, reader)
    with pytest.raises(InputError, match="needs the source model's reader") as err2:
        attach(pipe, pack, gated=True, gate="source")
    assert "SourceReader.from_spec" in str(err2.value)
    other = FakeReader()
    other.model_id = "another-source@2"
    with pytest.raises(PackError, match="model_id 'another-source@2'"):
        attach(pipe, pack, gated=True, gate="source", source_reader=other)
    other = FakeReader()
    other.settings["outlier_ratio"] = None
    with pytest.raises(PackError, match="pooling"):
        attach(pipe, pack, gated=True, gate="source", source_reader=other)
    with pytest.raises(InputError, match="gate must be"):
        attach(pipe, pack, gated=True, gate="both")  # type: ignore[arg-type]
    assert not is_steered(pipe)
    attach(pipe, pack, gated=True)  # no reader given: a source-gate override is refused
    with pytest.raises(InputError, match="reader"), steered(pipe, gate="source"):
        pass
    detach(pipe)


# ---- the to-projection rule (issue 11) -------------------------------------------------------
def _with_tau(pack: SafetyPack, tau: float) -> SafetyPack:
    calibration = {**pack.calibration, "to_projection_tau": tau, "to_projection_q": 0.5}
    return SafetyPack(
        pack.global_vector, pack.category_vectors, pack.target_id, pack.conditioning_space,
        calibration, gate=pack.gate,
    )  # fmt: skip


def test_to_projection_moves_rows_below_tau_exactly_to_it_and_no_others() -> None:
    from safesteer.maths.pooling import masked_mean

    pipe, adapter = tc.make("sd")
    prompts = [PLANTED, *BENIGN[:3]]
    base_pack = gated_pack(adapter)
    u = base_pack.global_vector / base_pack.global_vector.norm()
    proj = adapter.pooled(prompts) @ u
    tau = float(proj.sort().values[1:3].mean())  # two prompts below τ, two above
    pack = _with_tau(base_pack, tau)
    _, base = tc.run(pipe, SD, prompts)
    attach(pipe, pack, alpha=1.0, rule="to-projection", tokens="real")
    _, steer = tc.run(pipe, SD, prompts)
    record = last_steering(pipe)
    detach(pipe)
    pos0, neg0 = tc.branches(SD, base, 4)
    pos1, neg1 = tc.branches(SD, steer, 4)
    mask = adapter.encode(prompts).mask
    after = masked_mean(pos1.double(), mask) @ u.double()
    below = proj < tau
    assert int(below.sum()) == 2
    for i in range(4):
        assert record[i].rule == "to-projection" and record[i].steered == bool(below[i])
        if below[i]:
            assert float(after[i]) == pytest.approx(tau, abs=1e-4)  # up to τ and no further
            assert record[i].shift == pytest.approx(tau - float(proj[i]), abs=1e-4)
            moved = pos1[i] - pos0[i]
            want = ((tau - float(proj[i])) * u).expand(int(mask[i].sum()), -1)
            torch.testing.assert_close(moved[mask[i]], want, rtol=1e-4, atol=1e-4)
        else:
            assert torch.equal(pos1[i], pos0[i])  # already above τ: bit for bit
            assert record[i].shift == 0.0
        assert torch.equal(pos1[i][~mask[i]], pos0[i][~mask[i]])  # padding never moves
    assert torch.equal(neg1, neg0)


def test_to_projection_with_the_gate_and_per_call_override() -> None:
    pipe, adapter = tc.make("sd")
    prompts = [PLANTED, *BENIGN[:3]]
    base_pack = gated_pack(adapter)
    u = base_pack.global_vector / base_pack.global_vector.norm()
    tau = float((adapter.pooled(prompts) @ u).max()) + 1.0  # every prompt below τ
    pack = _with_tau(base_pack, tau)
    flagged = pack.gate.decide(adapter.pooled(prompts)).steer  # type: ignore[union-attr]
    assert flagged.tolist() == [True, False, False, False]
    _, base = tc.run(pipe, SD, prompts)
    attach(pipe, pack, alpha=0.5)  # additive by default …
    with steered(pipe, rule="to-projection", gated=True):  # … to-projection for this call
        _, steer = tc.run(pipe, SD, prompts)
        record = last_steering(pipe)
    detach(pipe)
    shift = tc.branches(SD, steer, 4)[0] - tc.branches(SD, base, 4)[0]
    assert [r.steered for r in record] == flagged.tolist()  # the gate decides which rows …
    assert [bool(s.abs().max() > 0) for s in shift] == flagged.tolist()
    assert record[0].flagged and record[0].gate == "target"
    p0 = float(adapter.pooled([PLANTED])[0] @ u)
    assert record[0].shift == pytest.approx(0.5 * (tau - p0), abs=1e-4)  # … the rule how far


def test_to_projection_refusals() -> None:
    pipe, adapter = tc.make("sd")
    plain = tc.random_pack(adapter)
    with pytest.raises(PackError, match="to_projection_tau"):
        attach(pipe, plain, rule="to-projection")
    pack = _with_tau(plain, 0.0)
    with pytest.raises(InputError, match="categories"):
        attach(pipe, pack, rule="to-projection", categories=["sexual"])
    with pytest.raises(InputError, match="steering rule"):
        attach(pipe, pack, rule="sideways")  # type: ignore[arg-type]
    assert not is_steered(pipe)
    attach(pipe, pack)
    with (
        pytest.raises(InputError, match="categories"),
        steered(pipe, rule="to-projection", categories="auto"),
    ):
        pass
    detach(pipe)
