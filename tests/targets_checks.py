"""Shared checks for the per-family target tests (tests/test_targets_<family>.py).

Each check runs a tiny random-weight pipeline of the real diffusers class and captures what its
denoiser receives (a forward pre-hook on ``pipe.transformer`` / ``pipe.unet``), so the claims are
tested against the pipeline's own computation, not against our code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import Tensor

from safesteer.pack import SafetyPack
from safesteer.targets import adapter_for, attach, detach, load_pipeline, steered
from safesteer.targets.base import TargetAdapter, pad_states
from safesteer.targets.tiny import tiny_call_defaults


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine: one thread is ~10x faster than two (no spinning)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


PROMPTS = ("a photo of a cat", "a red bicycle leaning on a wall")


@dataclass
class Family:
    """How a family's denoiser receives the two CFG branches at the first step.

    layout: ``"cat"`` — one call with ``[negative; positive]`` rows; ``"separate"`` — a call for
    the positive branch, then one for the negative; ``"list"`` — one call whose positional arg
    ``arg`` is a list of positive then negative ``[T_i, D]`` tensors (Z-Image).
    cfg: call arguments that switch classifier-free guidance on.
    """

    name: str
    layout: str
    cfg: dict[str, Any]
    arg: int | None = None


def make(family: str) -> tuple[Any, TargetAdapter]:
    return load_pipeline(f"tiny-{family}")


def random_pack(
    adapter: TargetAdapter, seed: int = 0, *, space: str | None = None, dim: int | None = None
) -> SafetyPack:
    g = torch.Generator().manual_seed(seed)
    d = dim or adapter.dim
    return SafetyPack(
        global_vector=torch.randn(d, generator=g),
        category_vectors={
            "sexual": torch.randn(d, generator=g),
            "violence": torch.randn(d, generator=g),
        },
        target_id=adapter.target_id,
        conditioning_space=space or adapter.conditioning_space,
        calibration={"beta": 1.0},
        provenance={"note": "random test vectors"},
    )


def run(
    pipe: Any, family: Family, prompts: Sequence[str], seed: int = 0, **extra: Any
) -> tuple[Tensor, list[Any]]:
    """Run 2 steps; return the output and the conditioning of every denoiser call."""
    captured: list[Any] = []
    denoiser = getattr(pipe, "transformer", None) or pipe.unet

    def hook(module: Any, args: Any, kwargs: Any) -> None:
        if family.arg is not None:
            captured.append([t.detach().clone() for t in args[family.arg]])
        else:
            captured.append(kwargs["encoder_hidden_states"].detach().clone())

    handle = denoiser.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        kwargs = {**tiny_call_defaults(family.name), **family.cfg, **extra}
        if isinstance(kwargs.get("negative_prompt"), str):  # one negative per prompt
            kwargs["negative_prompt"] = [kwargs["negative_prompt"]] * len(prompts)
        out = pipe(
            prompt=list(prompts),  # Z-Image rewrites the list it is given in place
            num_inference_steps=2,
            output_type="pt",
            generator=torch.Generator().manual_seed(seed),
            **kwargs,
        )
    finally:
        handle.remove()
    images = out.images if hasattr(out, "images") else out.frames
    return images, captured


def branches(family: Family, captured: list[Any], n: int) -> tuple[Tensor, Tensor]:
    """(positive, negative) conditioning of the first denoising step, padded ``[n, T, D]``."""
    if family.layout == "cat":
        first = captured[0]
        return first[n:], first[:n]
    if family.layout == "separate":
        return captured[0], captured[1]
    first = captured[0]
    return pad_states(first[:n])[0], pad_states(first[n:])[0]


def check_states_match_pipeline(family: Family) -> None:
    pipe, adapter = make(family.name)
    enc = adapter.encode(PROMPTS)
    _, captured = run(pipe, family, PROMPTS)
    positive, _ = branches(family, captured, len(PROMPTS))
    assert enc.states.shape == positive.shape
    torch.testing.assert_close(enc.states, positive.float(), rtol=0, atol=0)
    assert enc.mask.dtype == torch.bool and enc.mask.any(dim=1).all()
    # padding is never "real": each row's mask covers fewer positions for the shorter prompt
    assert enc.mask[0].sum() < enc.mask[1].sum()


def check_alpha_zero_identical(family: Family) -> None:
    pipe, adapter = make(family.name)
    base, _ = run(pipe, family, PROMPTS)
    attach(pipe, random_pack(adapter), alpha=0.0)
    same, _ = run(pipe, family, PROMPTS)
    detach(pipe)
    assert torch.equal(base, same)


def check_shift_is_alpha_v(family: Family, alpha: float = 2.5, tokens: str = "all") -> None:
    pipe, adapter = make(family.name)
    pack = random_pack(adapter)
    base_out, base = run(pipe, family, PROMPTS)
    attach(pipe, pack, alpha=alpha, tokens=tokens)
    out, steer = run(pipe, family, PROMPTS)
    detach(pipe)
    n = len(PROMPTS)
    pos0, neg0 = branches(family, base, n)
    pos1, neg1 = branches(family, steer, n)
    expected = alpha * pack.global_vector
    shift = pos1 - pos0
    mask = (
        adapter.encode(PROMPTS).mask
        if tokens == "real"
        else torch.ones(shift.shape[:2], dtype=torch.bool)
    )
    if family.layout == "list":
        mask = adapter.encode(PROMPTS).mask  # Z-Image lists hold real tokens only
    torch.testing.assert_close(
        shift[mask], expected.expand(int(mask.sum()), -1), rtol=1e-5, atol=1e-5
    )
    assert torch.equal(shift[~mask], torch.zeros_like(shift[~mask]))
    assert torch.equal(neg1, neg0), "the negative branch must stay unsteered by default"
    assert not torch.equal(out, base_out)


def check_to_projection(family: Family) -> None:
    """rule="to-projection": the first prompt (below τ) ends with pooled projection τ; the second
    (above τ) is untouched bit for bit; padding never moves."""
    from safesteer.maths.pooling import masked_mean

    pipe, adapter = make(family.name)
    pack = random_pack(adapter)
    u = pack.global_vector / pack.global_vector.norm()
    proj = adapter.pooled(list(PROMPTS)) @ u
    if proj[0] > proj[1]:  # keep "prompt 0 below τ, prompt 1 above"
        pack.global_vector = -pack.global_vector
        u, proj = -u, -proj
    tau = float(proj.mean())
    pack.calibration = {**pack.calibration, "to_projection_tau": tau, "to_projection_q": 0.5}
    _, base = run(pipe, family, PROMPTS)
    attach(pipe, pack, alpha=1.0, rule="to-projection", tokens="real")
    _, steer = run(pipe, family, PROMPTS)
    detach(pipe)
    pos0, neg0 = branches(family, base, 2)
    pos1, neg1 = branches(family, steer, 2)
    mask = adapter.encode(list(PROMPTS)).mask
    space, space_mask = adapter.view(pos1.float(), mask)
    after = masked_mean(space.double(), space_mask) @ u.double()
    assert float(after[0]) == pytest.approx(tau, abs=1e-4)
    assert torch.equal(pos1[1], pos0[1])
    if family.layout != "list":  # lists hold real tokens only
        assert torch.equal(pos1[0][~mask[0]], pos0[0][~mask[0]])
    assert torch.equal(neg1, neg0)


def check_attach_detach_restores(family: Family) -> None:
    pipe, adapter = make(family.name)
    base, _ = run(pipe, family, PROMPTS)  # first: diffusers sets call attributes (_guidance_scale…)
    before_dict = dict(pipe.__dict__)
    before_method = pipe.encode_prompt
    denoiser = getattr(pipe, "transformer", None) or pipe.unet
    hooks_before = dict(denoiser._forward_pre_hooks)
    attach(pipe, random_pack(adapter), alpha=3.0)
    assert pipe.encode_prompt != before_method
    run(pipe, family, PROMPTS)
    detach(pipe)
    assert pipe.__dict__.keys() == before_dict.keys()
    changed = [
        k for k, v in before_dict.items() if pipe.__dict__[k] is not v and not k.startswith("_")
    ]
    assert not changed, changed
    assert (
        pipe.encode_prompt == before_method
        and pipe.encode_prompt.__func__ is type(pipe).encode_prompt
    )
    assert dict(denoiser._forward_pre_hooks) == hooks_before
    again, _ = run(pipe, family, PROMPTS)
    assert torch.equal(base, again)


def check_mismatched_pack_refused(family: Family) -> None:

    from safesteer.errors import PackError

    pipe, adapter = make(family.name)
    with pytest.raises(PackError, match=adapter.conditioning_space.replace("+", r"\+")):
        attach(pipe, random_pack(adapter, dim=adapter.dim + 1))
    with pytest.raises(PackError, match="other/space"):
        attach(pipe, random_pack(adapter, space="other/space"))
    assert "_safesteer_state" not in pipe.__dict__


def check_steered_context(family: Family) -> None:
    pipe, adapter = make(family.name)
    pack = random_pack(adapter)
    attach(pipe, pack, alpha=2.0)
    _, two = run(pipe, family, PROMPTS[:1])
    with steered(pipe, alpha=0.0):
        _, zero = run(pipe, family, PROMPTS[:1])
    _, two_again = run(pipe, family, PROMPTS[:1])
    detach(pipe)
    _, base = run(pipe, family, PROMPTS[:1])
    p2, _ = branches(family, two, 1)
    p0, _ = branches(family, zero, 1)
    pb, _ = branches(family, base, 1)
    assert torch.equal(p0, pb)
    assert torch.equal(p2, branches(family, two_again, 1)[0])
    assert not torch.equal(p2, pb)


def adapter_of(family: str) -> TargetAdapter:
    pipe, _ = make(family)
    return adapter_for(pipe)
