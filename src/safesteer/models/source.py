"""Pooled hidden states of a source LLM or encoder at chosen layers, with a real early exit.

Layer numbering is that of Hugging Face ``output_hidden_states``: ``0`` is the embedding output
(the input of the first block), ``L`` (1 ≤ L < num_layers) the output of block ``L``, and
``num_layers`` the model's ``last_hidden_state`` (after the final norm for LLMs, as
``hidden_states[-1]``). Negative indices count from the end (``-1`` = ``num_layers``).

How a prompt is pooled (``h_s(x)`` of method.md §1):

1. the prompt is tokenized (optionally inside the chat template as a user turn) and read in a
   batch of prompts with the same token count, unpadded
   (:func:`~safesteer.models.batching.same_length_batches`): its state is a function of its
   text alone, whatever else is read with it or was cached before;
2. tokens kept: attention mask True **and** neither flagged by the tokenizer's
   ``special_tokens_mask`` nor one of its ``all_special_ids`` (so BOS/EOS/CLS/SEP/PAD and chat
   markers such as ``<|im_start|>`` are excluded; the template's plain-text words such as
   ``user`` or a default system prompt are kept);
3. at each layer, real tokens whose state norm exceeds ``outlier_ratio ×`` the prompt's median
   token norm are dropped (attention sinks; :func:`safesteer.maths.pooling.outlier_positions`)
   — for SmolLM2 (ratio 4) the first token at layers 2–29 and, rarely, a second sink at layers
   3–9; :attr:`SourceReader.exclusions` counts them; ``outlier_ratio=None`` keeps every token;
4. short prompts (``short_prompts=True``, the default): a prompt of 1–2 real tokens has no
   median of its own, so its tokens are compared with ``outlier_ratio × r_L``, where ``r_L``
   (:attr:`SourceReader.reference_norms`) is the median real-token norm at layer ``L`` over a
   packaged benign calibration set (:func:`reference_prompts`), measured once per model and
   kept in the reader's settings (so in the cache key and in a pack's source gate spec). A
   prompt with no token left (a one-token prompt that is its own sink: SmolLM2 adds no BOS) is
   re-read after :attr:`SourceReader.sink_prefix` (``<|endoftext|>`` where the vocabulary has
   it, else the BOS token; none when the tokenizer adds a BOS itself), a special token the pool
   excludes. Prompts of three or more tokens pool exactly as without the rule;
5. the mean of what is left.

Only the blocks up to the deepest asked layer run: a forward hook on that block raises a private
exception that stops the forward (masks, rotary embeddings and sliding windows are built by the
model itself, so the states are exactly those of a full forward). The LM head never runs.

Example:
    >>> reader = SourceReader.from_preset("smollm2-135m")  # doctest: +SKIP
    >>> reader.pooled(["a cat on a sofa"], layer=15).shape  # doctest: +SKIP
    torch.Size([1, 576])
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from safesteer.errors import InputError, ModelLoadError
from safesteer.maths.pooling import DEFAULT_OUTLIER_RATIO, reference_norm, robust_mean
from safesteer.models.batching import filled, same_length_batches
from safesteer.models.cache import StateCache
from safesteer.models.zoo import (
    LoadedModel,
    cache_dir,
    is_preset,
    load_preset,
    load_pretrained,
)

_PROGRESS_MIN_PROMPTS = 256  # below this a bar is noise
#: how many prompts of each calibration set measure ``r_L`` (see :func:`reference_prompts`)
REFERENCE_PROMPTS_PER_SET = 24
#: the name of the short-prompt rule in the reader settings (change it when the rule changes)
SHORT_PROMPT_RULE = "reference-norm-v1"


def reference_prompts() -> list[str]:
    """The benign calibration set of ``r_L``: the first 24 prompts of the map-fit parts of
    PartiPrompts, T2I-CompBench and our anchors (:func:`safesteer.data.partitions.benign_parts`).

    Example:
        >>> len(reference_prompts())
        72
    """
    from safesteer.data.partitions import benign_parts

    parts = benign_parts()
    n = REFERENCE_PROMPTS_PER_SET
    return [t for name in ("parti", "compbench", "ours") for t in parts[name]["fit"][:n]]


def _significant(x: float) -> float:
    """``x`` to 4 significant digits: the same on every machine despite float noise."""
    return float(f"{x:.4g}")


#: r_L per (model id, settings) measured in this process (readers with cache=False share it)
_REFERENCE_MEMO: dict[str, dict[int, float]] = {}


class _StopForward(Exception):
    """Raised by the hook on the deepest asked block to skip the rest of the model."""


def _find_blocks(base: nn.Module, n_layers: int) -> nn.ModuleList:
    for module in base.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module
    raise ModelLoadError(
        f"cannot find the {n_layers} transformer blocks of {type(base).__name__}",
        hint="use a Llama/Mistral/Qwen/Gemma/BERT-style model",
    )


def _first_tensor(output: Any) -> Tensor:
    return output[0] if isinstance(output, tuple | list) else output


class SourceReader:
    """Reads mean-pooled hidden states of ``loaded.model`` (see the module docstring).

    Args:
        loaded: model, tokenizer and id, from :func:`load_preset` or :func:`load_pretrained`.
        batch_size: most prompts per forward pass; a batch holds prompts of one token count
            only (:func:`~safesteer.models.batching.same_length_batches`), so nothing is padded
            and a prompt's state never depends on which prompts it was read with.
        chat_template: wrap each prompt as a user turn of the tokenizer's chat template.
        outlier_ratio: drop tokens with norm > ratio × median norm; None keeps every real token.
        max_length: longer prompts are truncated to this many tokens.
        cache: True → ``<user cache>/states``, a path → that folder, False → no cache.
        progress: True/False forces the bar; None shows it from 256 prompts on.
        short_prompts: the short-prompt rule of the module docstring (step 4); False pools
            1–2-token prompts over all their tokens, sink included (the old rule).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        batch_size: int = 32,
        chat_template: bool = False,
        outlier_ratio: float | None = DEFAULT_OUTLIER_RATIO,
        max_length: int = 256,
        cache: bool | str | Path = True,
        progress: bool | None = None,
        short_prompts: bool = True,
    ) -> None:
        self.loaded = loaded
        self.model_id = loaded.model_id
        self.kind = loaded.kind
        self.model = loaded.model.eval()
        self.tokenizer = loaded.tokenizer
        first = next(iter(self.model.parameters()), None)
        #: where the model runs and in which precision (inputs are moved here; pooled states
        #: come back float32 on CPU whatever these are)
        self.device: torch.device = first.device if first is not None else torch.device("cpu")
        self.dtype: torch.dtype = first.dtype if first is not None else torch.float32
        config = self.model.config
        self.num_layers: int = int(config.num_hidden_layers)
        self.hidden_size: int = int(config.hidden_size)
        self.batch_size = batch_size
        self.chat_template = chat_template
        self.outlier_ratio = outlier_ratio
        self.max_length = max_length
        self.progress = progress
        # the decoder/encoder without any head: the LM head is never needed
        self._base: nn.Module = getattr(self.model, "base_model", self.model)
        self._blocks = _find_blocks(self._base, self.num_layers)
        self._special_ids = torch.tensor(sorted(self.tokenizer.all_special_ids), dtype=torch.long)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.short_prompts = bool(short_prompts) and outlier_ratio is not None
        self._base_settings: dict[str, Any] = {
            "pooling": "mean-real-tokens-v1",
            "batching": "same token count, unpadded (safesteer.models.batching)",
            "exclude": "special_tokens_mask",
            "outlier_ratio": outlier_ratio,
            "chat_template": chat_template,
            "max_length": max_length,
        }
        self._cache_root: Path | None = None
        if cache is not False:
            self._cache_root = cache_dir() if cache is True else Path(cache)
        self._state_cache: StateCache | None = None
        self._reference: dict[int, float] | None = None
        self._auto_layer: int | None = None
        self.layer_calls = 0  # blocks run since creation; shows the early exit
        self.exclusions: dict[int, Counter[int]] = {}  # layer -> {position: times dropped}

    def _count_call(self, module: nn.Module, args: Any) -> None:
        self.layer_calls += 1

    # -- settings, the short-prompt reference norms and the cache --------------------------
    @property
    def settings(self) -> dict[str, Any]:
        """What identifies this reader's pooled states besides the model id (the cache key and
        a pack's ``source_gate_spec["pooling"]``): pooling rule, excluded tokens, outlier ratio,
        chat template, max length and, with ``short_prompts``, the rule with its ``r_L`` per
        layer (measured on first use, see :attr:`reference_norms`)."""
        out = dict(self._base_settings)
        if self.short_prompts:
            out["short_prompts"] = {
                "rule": SHORT_PROMPT_RULE,
                "prefix": self.sink_prefix,
                "reference_norms": {str(k): v for k, v in self.reference_norms.items()},
            }
        return out

    def _keyed(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        keyed = dict(settings)
        # states read in another precision differ: cached apart (float32 keeps its old key)
        if self.dtype != torch.float32:
            keyed["dtype"] = str(self.dtype).removeprefix("torch.")
        return keyed

    @property
    def _cache(self) -> StateCache | None:
        if self._cache_root is not None and self._state_cache is None:
            self._state_cache = StateCache(
                self._cache_root, self.model_id, self._keyed(self.settings)
            )
        return self._state_cache

    @property
    def sink_prefix(self) -> str | None:
        """The special token a one-token sink prompt is re-read after (module docstring, step 4):
        ``<|endoftext|>`` when the vocabulary has it as a special token, else the BOS token;
        None when the tokenizer starts every prompt with a special token of its own (a BOS or
        ``[CLS]``: the sink is then that token, already excluded) or the prompt sits in a chat
        template."""
        tok = self.tokenizer
        if self.chat_template:
            return None
        special = set(tok.all_special_ids)
        first = tok("a", add_special_tokens=True)["input_ids"]
        if first and first[0] in special:  # a BOS / [CLS] the tokenizer adds: it is the sink
            return None
        eot = tok.convert_tokens_to_ids("<|endoftext|>")
        if isinstance(eot, int) and eot in special:
            return "<|endoftext|>"
        return str(tok.bos_token) if getattr(tok, "bos_token", None) else None

    @property
    def reference_norms(self) -> dict[int, float]:
        """``r_L`` for every layer ``0..num_layers``: the median real-token norm over
        :func:`reference_prompts` (4 significant digits), measured once per model and settings
        in one pass and kept in ``<cache>/reference_norms/`` when the reader has a cache."""
        if self._reference is None:
            key = json.dumps(
                [self.model_id, self._keyed(self._base_settings), SHORT_PROMPT_RULE],
                sort_keys=True,
                default=str,
            )
            digest = hashlib.sha256(key.encode()).hexdigest()[:16]
            path = None
            if self._cache_root is not None:
                path = self._cache_root / "reference_norms" / f"{digest}.json"
            if digest not in _REFERENCE_MEMO and path is not None and path.is_file():
                stored = json.loads(path.read_text())
                _REFERENCE_MEMO[digest] = {int(k): float(v) for k, v in stored["norms"].items()}
            if digest not in _REFERENCE_MEMO:
                _REFERENCE_MEMO[digest] = self._measure_reference()
            if path is not None and not path.is_file():
                from safesteer.atomic import write_json_atomic

                path.parent.mkdir(parents=True, exist_ok=True)
                record = {"model_id": self.model_id, "key": key}
                norms = {str(k): v for k, v in _REFERENCE_MEMO[digest].items()}
                write_json_atomic(path, {**record, "norms": norms})
            self._reference = dict(_REFERENCE_MEMO[digest])
        return self._reference

    def _measure_reference(self) -> dict[int, float]:
        texts = self._texts(reference_prompts())
        layers = list(range(self.num_layers + 1))
        norms: dict[int, list[Tensor]] = {layer: [] for layer in layers}
        for start in range(0, len(texts), 16):
            states, mask = self.token_states(texts[start : start + 16], layers)
            for layer, s in states.items():
                norms[layer].append(s.norm(dim=-1)[mask].cpu())
        return {layer: _significant(reference_norm(norms[layer])) for layer in layers}

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_preset(
        cls, name: str, *, dtype: Any = None, device: str | None = None, **kw: Any
    ) -> SourceReader:
        """A reader over a packaged preset: ``smollm2-135m``, ``gemma3-270m`` or ``minilm-l6``.

        ``dtype`` / ``device``: names of :mod:`safesteer.models.device` (``"auto"``: bfloat16
        on a GPU, float32 on CPU); None keeps float32 on CPU.
        """
        return cls(_placed(load_preset(name), dtype, device), **kw)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        gguf_file: str | None = None,
        dtype: Any = None,
        device: str | None = None,
        **kw: Any,
    ) -> SourceReader:
        """A reader over a hub id, a local folder or a GGUF file (``gguf_file=`` in the folder).

        The weights load in ``dtype`` (``"auto"``: bfloat16 on a GPU, float32 on CPU) directly
        on ``device``; pooled states come back float32 on CPU either way.
        """
        from safesteer.models.device import resolve_device, resolve_dtype

        where = resolve_device(device) if device is not None else None
        torch_dtype = None if dtype is None else resolve_dtype(dtype, where or "cpu")
        loaded = load_pretrained(name_or_path, gguf_file=gguf_file, dtype=torch_dtype, device=where)
        return cls(loaded, **kw)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], **kw: Any) -> SourceReader:
        """The reader a pack's ``source_gate_spec`` names (:func:`safesteer.pack.source_spec`).

        A preset's ``model_id`` starts with its name (``"smollm2-135m@…"``); other ids are the
        hub id or folder before ``@`` / ``:``. The pooling settings (chat template, outlier
        ratio, max length) come from the spec; ``kw`` adds reader options such as ``cache``.
        """
        model_id = str(spec.get("model_id", ""))
        pooling = dict(spec.get("pooling") or {})
        options = {
            k: pooling[k] for k in ("chat_template", "outlier_ratio", "max_length") if k in pooling
        }
        if pooling:  # a spec from before the short-prompt rule pools short prompts as then
            options["short_prompts"] = "short_prompts" in pooling
        name = model_id.split("@")[0]
        if is_preset(name):
            return cls.from_preset(name, **options, **kw)
        path = model_id.rsplit(":", 1)[0] if Path(model_id.rsplit(":", 1)[0]).exists() else name
        if not path:
            raise InputError("the spec names no source model", hint="pass pack.source_gate_spec")
        return cls.from_pretrained(path, **options, **kw)

    # -- layers -------------------------------------------------------------------------
    def resolve_layer(self, layer: int | str) -> int:
        """Absolute layer index in ``0..num_layers``; ``"auto"`` runs :func:`choose_layer` once."""
        if isinstance(layer, str):
            if layer != "auto":
                raise InputError(
                    f"layer {layer!r} is neither an index nor 'auto'",
                    hint=f"use 0..{self.num_layers}, a negative index or auto",
                )
            if self._auto_layer is None:
                from safesteer.models.layers import choose_layer

                self._auto_layer = choose_layer(self)
            return self._auto_layer
        index = layer + self.num_layers + 1 if layer < 0 else layer
        if not 0 <= index <= self.num_layers:
            raise InputError(
                f"layer {layer} is out of range for {self.model_id}",
                hint=f"use 0..{self.num_layers} or -1..-{self.num_layers + 1}",
            )
        return index

    # -- tokenization -------------------------------------------------------------------
    def _texts(self, prompts: Sequence[str]) -> list[str]:
        if not self.chat_template:
            return list(prompts)
        if not getattr(self.tokenizer, "chat_template", None):
            raise InputError(
                f"{self.model_id} has no chat template", hint="pass chat_template=False"
            )
        return [
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
            )
            for p in prompts
        ]

    def _encode(self, texts: Sequence[str]) -> dict[str, Tensor]:
        return self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
            return_special_tokens_mask=True,
            add_special_tokens=not self.chat_template,
            padding_side="right",
        )  # real tokens keep their positions

    # -- the forward with early exit ----------------------------------------------------
    def token_states(
        self, texts: Sequence[str], layers: Sequence[int]
    ) -> tuple[dict[int, Tensor], Tensor]:
        """Token states ``{layer: [B,T,D]}`` at absolute ``layers`` and the pooling mask ``[B,T]``.

        ``texts`` are already templated. Blocks deeper than ``max(layers)`` do not run.
        """
        enc = self._encode(texts)
        special = enc.pop("special_tokens_mask").bool()
        # the tokenizer flags only tokens it added itself; template markers are found by id
        special |= torch.isin(enc["input_ids"], self._special_ids)
        mask = (enc["attention_mask"].bool() & ~special).to(self.device)
        enc = {k: v.to(self.device) for k, v in enc.items()}  # the inputs go where the model is
        want = sorted(set(layers))
        deepest = want[-1]
        captured: dict[int, Tensor] = {}

        def capture_input(layer: int) -> Any:
            def hook(module: nn.Module, args: Any, kwargs: Any) -> None:
                captured[layer] = (args[0] if args else kwargs["hidden_states"]).float()
                if layer == deepest:
                    raise _StopForward

            return hook

        def capture_output(layer: int) -> Any:
            def hook(module: nn.Module, args: Any, output: Any) -> None:
                captured[layer] = _first_tensor(output).float()
                if layer == deepest:
                    raise _StopForward

            return hook

        # counted only during our own forwards, so several readers may share one model
        handles = [b.register_forward_pre_hook(self._count_call) for b in self._blocks]
        try:
            if 0 in want:
                handles.append(
                    self._blocks[0].register_forward_pre_hook(capture_input(0), with_kwargs=True)
                )
            for layer in want:
                if 0 < layer < self.num_layers:
                    handles.append(
                        self._blocks[layer - 1].register_forward_hook(capture_output(layer))
                    )
            kwargs: dict[str, Any] = dict(enc)
            if self.kind == "causal-lm":
                kwargs["use_cache"] = False
            with torch.inference_mode():
                try:
                    out = self._base(**kwargs)
                except _StopForward:
                    out = None
            if deepest == self.num_layers:
                assert out is not None
                captured[deepest] = out.last_hidden_state.float()
        finally:
            for h in handles:
                h.remove()
        return {layer: captured[layer] for layer in want}, mask

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Token count of each (templated) text as :meth:`token_states` encodes it."""
        ids = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            add_special_tokens=not self.chat_template,
        )["input_ids"]
        return [len(i) for i in ids]

    def _compute(self, prompts: Sequence[str], layers: Sequence[int]) -> dict[int, Tensor]:
        texts = self._texts(prompts)
        # batches of equal token count: no padding, so a state depends on its text only
        lengths = self.token_lengths(texts)
        batches = same_length_batches(lengths, self.batch_size)
        out = {layer: torch.empty(len(texts), self.hidden_size) for layer in layers}
        show = self.progress if self.progress is not None else len(texts) >= _PROGRESS_MIN_PROMPTS
        if show:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"reading {self.model_id.split('@')[0]}", unit="batch")
        sink_only: dict[int, list[int]] = {layer: [] for layer in layers}
        for idx in batches:
            run = filled(idx, lengths[idx[0]])  # enough rows for row-independent products
            states, mask = self.token_states([texts[i] for i in run], layers)
            n = len(idx)
            for layer, s in states.items():
                result = self._pool(s[:n], mask[:n], layer)
                out[layer][idx] = result.pooled.float().cpu()  # float32 on CPU, whatever ran
                counts = self.exclusions.setdefault(layer, Counter())
                counts.update(result.excluded.nonzero()[:, 1].cpu().tolist())
                if result.sink_only is not None:
                    sink_only[layer] += [idx[r] for r in result.sink_only.nonzero()[:, 0].tolist()]
        self._reread_sink_only(texts, sink_only, out)
        return out

    def _pool(self, states: Tensor, mask: Tensor, layer: int) -> Any:
        reference = self.reference_norms[layer] if self.short_prompts else None
        return robust_mean(states, mask, self.outlier_ratio, reference=reference)

    def _reread_sink_only(
        self, texts: Sequence[str], sink_only: Mapping[int, list[int]], out: dict[int, Tensor]
    ) -> None:
        """Re-read, after :attr:`sink_prefix`, the prompts that were all sink at some layer and
        pool them again at those layers (the prefix is special: excluded from the pool).

        Without a prefix, or when the re-read still leaves nothing, the first read's row (all
        real tokens kept) stands."""
        rows = sorted({i for found in sink_only.values() for i in found})
        prefix = self.sink_prefix
        if not rows or prefix is None:
            return
        layers = [layer for layer, found in sink_only.items() if found]
        prefixed = [prefix + texts[i] for i in rows]
        # read as every prompt is: batches of one token count, unpadded (deterministic states)
        lengths = self.token_lengths(prefixed)
        for pick in same_length_batches(lengths, self.batch_size):
            run = filled(pick, lengths[pick[0]])
            states, mask = self.token_states([prefixed[k] for k in run], layers)
            n = len(pick)
            for layer in layers:
                result = self._pool(states[layer][:n], mask[:n], layer)
                for j, k in enumerate(pick):
                    gone = result.sink_only is not None and bool(result.sink_only[j])
                    if rows[k] in sink_only[layer] and not gone:
                        out[layer][rows[k]] = result.pooled[j].float().cpu()

    # -- public reading -----------------------------------------------------------------
    def pooled_layers(
        self, prompts: Sequence[str], layers: Sequence[int | str]
    ) -> dict[int, Tensor]:
        """Pooled states ``{layer: [N, D]}`` for several layers in one pass.

        Keys are the layers as given (``-1`` stays ``-1``; ``"auto"`` becomes its index).
        Cached vectors are reused; only missing prompts run, once for all layers.
        """
        if isinstance(prompts, str):
            raise InputError(
                "prompts must be a list of strings, not one string", hint="wrap it: [prompt]"
            )
        if not prompts:
            raise InputError("no prompts to read", hint="pass at least one prompt")
        empty = [i for i, p in enumerate(prompts) if not p or not p.strip()]
        if empty:
            raise InputError(f"prompts {empty[:5]} are empty", hint="drop empty prompts")
        if not layers:
            raise InputError("no layers asked", hint="pass at least one layer")
        absolute = {key: self.resolve_layer(key) for key in layers}
        wanted = sorted(set(absolute.values()))
        unique = list(dict.fromkeys(prompts))
        found: dict[int, list[Tensor | None]] = {
            layer: (self._cache.get(layer, unique) if self._cache else [None] * len(unique))
            for layer in wanted
        }
        missing = [i for i, t in enumerate(unique) if any(found[la][i] is None for la in wanted)]
        if missing:
            computed = self._compute([unique[i] for i in missing], wanted)
            for layer in wanted:
                if self._cache:
                    self._cache.put(layer, [unique[i] for i in missing], computed[layer])
                for row, i in enumerate(missing):
                    found[layer][i] = computed[layer][row]
        position = {t: i for i, t in enumerate(unique)}
        rows = [position[p] for p in prompts]
        result: dict[int, Tensor] = {}
        for key, layer in absolute.items():
            vectors = found[layer]
            stacked = [vectors[r] for r in rows]  # every row is filled above
            result[int(layer) if isinstance(key, str) else key] = torch.stack(stacked)  # type: ignore[arg-type]
        return result

    def pooled(self, prompts: Sequence[str], layer: int | str) -> Tensor:
        """Pooled states ``[N, D]`` at one layer (an index, a negative index or ``"auto"``)."""
        resolved = self.resolve_layer(layer)
        return self.pooled_layers(prompts, [resolved])[resolved]

    def __repr__(self) -> str:
        return (
            f"SourceReader({self.model_id!r}, layers={self.num_layers}, "
            f"d={self.hidden_size}, outlier_ratio={self.outlier_ratio})"
        )


def _placed(loaded: LoadedModel, dtype: Any, device: str | None) -> LoadedModel:
    """``loaded`` cast to ``dtype`` and moved to ``device`` (names of models.device)."""
    if dtype is None and device is None:
        return loaded
    from safesteer.models.device import resolve_device, resolve_dtype

    where = resolve_device(device) if device is not None else "cpu"
    model = loaded.model
    if dtype is not None:
        model = model.to(dtype=resolve_dtype(dtype, where))
    if device is not None:
        model = model.to(where)
    loaded.model = model
    return loaded


def load_source(name: str, **kw: Any) -> SourceReader:
    """A reader for a packaged preset (:meth:`SourceReader.from_preset`) or any other model id,
    folder or GGUF file (:meth:`SourceReader.from_pretrained`)."""
    if is_preset(name):
        return SourceReader.from_preset(name, **kw)
    return SourceReader.from_pretrained(name, **kw)


__all__ = ["SourceReader", "load_source"]
