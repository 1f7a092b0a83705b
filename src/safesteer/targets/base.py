"""The target-adapter contract: what a generator's text conditioning looks like, and where it is.

A :class:`TargetAdapter` wraps one diffusers pipeline. It produces **exactly** the conditioning
states the pipeline feeds its denoiser by calling the pipeline's own prompt encoding (never a
re-implementation), plus a mask of the prompt's real tokens, so that maps fitted on
:meth:`TargetAdapter.pooled` and steering at inference see the same states.

Subclasses (one per family, e.g. :class:`~safesteer.targets.flux.FluxAdapter`) set the class
attributes below and implement ``_encode_call(prompts)`` (call the pipeline's encoder with its
defaults, guidance off). Three hooks, used both here and by :func:`safesteer.attach`, read what
the encoder returned; their defaults fit the usual ``(prompt_embeds, negative_prompt_embeds,
*rest)`` tuple, and a family overrides only what differs:

- ``positive(out)`` / ``negative(out)``: the (states, mask-or-None) of a branch
  (default: ``out[0]`` / ``out[1]``; no negative branch for a two-call family);
- ``replace(out, positive, negative)``: the same return value with those states swapped in
  (default: ``(positive, negative or out[1], *out[2:])``).

Example:
    >>> from safesteer.targets import adapter_for, tiny_pipeline
    >>> adapter = adapter_for(tiny_pipeline("sd"))
    >>> enc = adapter.encode(["a photo of a cat"])
    >>> enc.states.shape, int(enc.mask.sum())
    (torch.Size([1, 77, 32]), 7)
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from safesteer.errors import InputError

#: pipeline -> {conditioning space: D}, so attaching per call does not re-encode (weak: no leak)
_DIMS: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()

#: states as a pipeline returns them: a [B, T, D] tensor, or a list of [T_i, D] (Z-Image)
RawStates = Tensor | list[Tensor]


@dataclass
class EncodedPrompts:
    """Conditioning states and their real-token mask.

    Attributes:
        states: ``[B, T, D]``, float32 on CPU (what the denoiser sees, in full precision).
        mask: ``[B, T]`` bool, True on the prompt's real tokens (not padding).
    """

    states: Tensor
    mask: Tensor

    def __post_init__(self) -> None:
        if self.states.ndim != 3 or self.mask.shape != self.states.shape[:2]:
            raise InputError(
                f"EncodedPrompts needs states [B, T, D] and mask [B, T]; got "
                f"{tuple(self.states.shape)} and {tuple(self.mask.shape)}"
            )


def as_prompt_list(prompts: str | Sequence[str] | None, name: str = "prompts") -> list[str] | None:
    """``"x"`` → ``["x"]``; a sequence → a list copy (pipelines may edit lists in place)."""
    if prompts is None:
        return None
    if isinstance(prompts, str):
        return [prompts]
    out = list(prompts)
    if not all(isinstance(p, str) for p in out):
        raise InputError(f"{name} must be strings", hint="pass a list of prompt texts")
    return out


def pad_states(states: RawStates) -> tuple[Tensor, Tensor | None]:
    """A list of ``[T_i, D]`` → zero-padded ``[B, max T_i, D]`` and its mask; a tensor as is."""
    if isinstance(states, Tensor):
        return states, None
    if not states:
        raise InputError("no conditioning states to pad")
    longest = max(s.shape[0] for s in states)
    padded = states[0].new_zeros(len(states), longest, states[0].shape[-1])
    mask = torch.zeros(len(states), longest, dtype=torch.bool, device=states[0].device)
    for i, s in enumerate(states):
        padded[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = True
    return padded, mask


def unpad_states(padded: Tensor, like: RawStates) -> RawStates:
    """Inverse of :func:`pad_states` for the shapes of ``like``."""
    if isinstance(like, Tensor):
        return padded
    return [padded[i, : s.shape[0]] for i, s in enumerate(like)]


class TargetAdapter:
    """Base class of the per-family adapters (see the module docstring for the hooks).

    Attributes:
        family: short family name (``"flux"``, ``"sd"``…).
        space: which encoder's states are steered (``"t5"``, ``"clip-l"``…);
            ``conditioning_space`` is ``"<family>/<space>"``.
        pipeline_classes: diffusers class names this adapter serves.
        two_call_cfg: True where the pipeline encodes the negative prompt with a second call of
            ``encode_prompt`` (FLUX, Qwen-Image) rather than returning both branches at once.
        makes_video: True where the pipeline returns video frames (``out.frames``), not images.
        default_max_sequence_length: the pipeline ``__call__``'s default text length.
        components: (component name, class name) pairs the family's pipelines hold (FLUX:
            ``(("transformer", "FluxTransformer2DModel"),)``); :func:`safesteer.adapter_for`
            matches variant pipelines (img2img, inpaint, ``from_pipe`` copies) by these.
        denoiser_input: ``(keyword, position)`` of the conditioning in the denoiser's call
            (``"encoder_hidden_states"``; Z-Image: ``("cap_feats", 2)``), where
            :func:`safesteer.attach`'s hook adds ``α·v``.
        encoding_attributes: pipeline attributes that decide how prompts are encoded (e.g.
            Qwen-Image's template); a pipeline sharing a steered denoiser must have equal ones.
    """

    family: ClassVar[str] = ""
    space: ClassVar[str] = ""
    pipeline_classes: ClassVar[tuple[str, ...]] = ()
    two_call_cfg: ClassVar[bool] = False
    makes_video: ClassVar[bool] = False
    default_max_sequence_length: ClassVar[int | None] = None
    encode_method: ClassVar[str] = "encode_prompt"
    components: ClassVar[tuple[tuple[str, str], ...]] = ()
    denoiser_input: ClassVar[tuple[str, int | None]] = ("encoder_hidden_states", None)
    encoding_attributes: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        pipe: Any,
        *,
        target_id: str | None = None,
        max_sequence_length: int | None = None,
        random_weights: bool = False,
    ) -> None:
        self.pipe = pipe
        self.target_id = target_id or str(getattr(pipe, "name_or_path", "") or type(pipe).__name__)
        self.max_sequence_length = max_sequence_length or self.default_max_sequence_length
        self.random_weights = random_weights
        self._dim: int | None = None

    def __repr__(self) -> str:
        name, space = type(self).__name__, self.conditioning_space
        return f"{name}(target_id={self.target_id!r}, space={space!r})"

    # ---- public API ------------------------------------------------------------------------
    @property
    def conditioning_space(self) -> str:
        """``"<family>/<space>"``, e.g. ``"flux/t5"``; a pack must name the same space."""
        return f"{self.family}/{self.space}"

    @property
    def dim(self) -> int:
        """D of the steered states (found once per pipeline and space by encoding one prompt)."""
        if self._dim is None:
            known = _DIMS.get(self.pipe, {}) if self.pipe is not None else {}
            dim = known.get(self.conditioning_space)
            if dim is None:
                dim = int(self.encode(["a"]).states.shape[-1])
                if self.pipe is not None:
                    _DIMS.setdefault(self.pipe, {})[self.conditioning_space] = dim
            self._dim = dim
        return self._dim

    def encode(self, prompts: str | Sequence[str]) -> EncodedPrompts:
        """The states the denoiser sees for ``prompts`` (guidance off), and their real tokens."""
        texts = as_prompt_list(prompts)
        if not texts:
            raise InputError("no prompts to encode", hint="pass at least one prompt")
        with torch.no_grad():
            out = self._encode_call(list(texts))
        raw, mask = self.positive(out)
        states, mask = self.view(*self.states_and_mask(raw, mask, texts))
        return EncodedPrompts(states.detach().float().cpu(), mask.detach().bool().cpu())

    def pooled(self, prompts: Sequence[str], batch_size: int = 16) -> Tensor:
        """``[N, D]`` masked means of :meth:`encode` over real tokens, in batches of prompts
        with the same token count (:func:`safesteer.targets.pooled.pooled_by_length`)."""
        from safesteer.targets.pooled import pooled_by_length

        texts = as_prompt_list(prompts) or []
        if not texts:
            raise InputError("no prompts to pool", hint="pass at least one prompt")
        return pooled_by_length(self, texts, batch_size)

    # ---- hooks shared with attach ----------------------------------------------------------
    def states_and_mask(
        self, raw: RawStates, mask: Tensor | None, prompts: list[str] | None
    ) -> tuple[Tensor, Tensor]:
        """Padded ``[N, T, D]`` states and a bool ``[N, T]`` real-token mask."""
        states, list_mask = pad_states(raw)
        if mask is None:
            mask = list_mask if list_mask is not None else self.token_mask(prompts, states)
        return states, mask.bool().to(states.device)

    def view(self, states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The part of the encoder's output that is this adapter's space (default: all of it)."""
        return states, mask

    def region(self, states: Tensor) -> Tensor | None:
        """``[N, T]`` bool: positions of the encoder's output in this space (None: all)."""
        return None

    def token_mask(self, prompts: list[str] | None, states: Tensor) -> Tensor:
        """Real tokens from the pipeline's tokenizer, padded like the pipeline pads (to T).

        Rows repeat each prompt ``N / len(prompts)`` times (``num_images_per_prompt``). Without
        prompts (the user passed embeddings) every position counts as real.
        """
        n, t = states.shape[:2]
        if not prompts or n % len(prompts):
            return torch.ones(n, t, dtype=torch.bool, device=states.device)
        mask = self._tokenizer_mask(self.mask_tokenizer(), prompts, t)
        return mask.repeat_interleave(n // len(prompts), dim=0).to(states.device)

    @staticmethod
    def _tokenizer_mask(tokenizer: Any, prompts: list[str], length: int) -> Tensor:
        enc = tokenizer(
            prompts,
            padding="max_length",
            max_length=length,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        return enc.attention_mask.bool()

    def mask_tokenizer(self) -> Any:
        """The tokenizer whose padding matches the steered states."""
        return self.pipe.tokenizer

    def call_prompts(self, arguments: dict[str, Any]) -> tuple[list[str] | None, list[str] | None]:
        """(positive, negative) prompts of one ``encode_prompt`` call, from its bound arguments."""
        pos = as_prompt_list(arguments.get("prompt"))
        neg = arguments.get("negative_prompt")
        if neg is None and pos is not None:
            neg = [""] * len(pos)
        elif isinstance(neg, str) and pos is not None:
            neg = [neg] * len(pos)
        return pos, as_prompt_list(neg)

    def _encode_call(self, prompts: list[str]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def positive(self, out: Any) -> tuple[RawStates, Tensor | None]:
        """The positive branch in ``out``: ``out[0]``, no mask (the tokenizer gives it)."""
        return out[0], None

    def negative(self, out: Any) -> tuple[RawStates | None, Tensor | None]:
        """The negative branch in ``out``: ``out[1]`` (None for a two-call family, whose second
        call encodes the negative prompt as its positive branch)."""
        if self.two_call_cfg:
            return None, None
        return out[1], None

    def replace(self, out: Any, positive: RawStates, negative: RawStates | None) -> Any:
        """``out`` with the positive states (and the negative ones, when given) swapped in."""
        return (positive, out[1] if negative is None else negative, *out[2:])

    def encoding_template(self) -> str | None:
        """The text the pipeline wraps prompts in before encoding (None: no template).

        Recorded (hashed) in a pack's encoding spec (:mod:`safesteer.targets.encoding`).
        """
        return None

    def encoding_spec(self) -> dict[str, Any]:
        """What decides these states (:func:`safesteer.targets.encoding.encoding_spec`)."""
        from safesteer.targets.encoding import encoding_spec

        return encoding_spec(self)

    def _msl_kwargs(self) -> dict[str, int]:
        msl = self.max_sequence_length
        return {} if msl is None else {"max_sequence_length": msl}
