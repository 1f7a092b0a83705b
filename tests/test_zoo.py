"""Tests for safesteer.models.zoo: presets with no hub, local folders, errors with hints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from safesteer.errors import ModelLoadError
from safesteer.models import SourceReader, cache_dir, load_preset, load_pretrained
from safesteer.models.zoo import PRESETS


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFESTEER_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    monkeypatch.delenv("SAFESTEER_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "safesteer"


def test_unknown_preset_and_unloadable_model_are_model_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="unknown model preset") as info:
        load_preset("gpt-17")
    assert info.value.hint and all(name in info.value.hint for name in PRESETS)
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        load_pretrained(str(tmp_path / "no-such-folder"))
    assert info.value.hint and "preset" in info.value.hint
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="cannot load model") as info:
        load_pretrained(str(tmp_path / "empty"))
    assert info.value.hint and "preset" in info.value.hint


def test_minilm_preset_is_an_encoder_with_a_stable_id() -> None:
    first, second = load_preset("minilm-l6"), load_preset("minilm-l6")
    assert first.kind == "encoder"
    assert first.model_id == second.model_id and first.model_id.startswith("minilm-l6@")
    assert (first.model.config.num_hidden_layers, first.model.config.hidden_size) == (6, 384)
    ids = first.tokenizer("a photo of a cat")["input_ids"]
    assert ids[0] == first.tokenizer.cls_token_id and ids[-1] == first.tokenizer.sep_token_id


def test_local_folder_of_a_causal_lm_loads_and_reads(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_preset("minilm-l6").tokenizer  # any tokenizer will do for a random model
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        architectures=["LlamaForCausalLM"],
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    loaded = load_pretrained(str(tmp_path / "tiny"))
    assert loaded.kind == "causal-lm" and str((tmp_path / "tiny").resolve()) in loaded.model_id
    reader = SourceReader(loaded, cache=False, progress=False)
    assert reader.pooled(["a cat", "a dog"], 2).shape == (2, 32)


@pytest.mark.slow
def test_gguf_preset_converts_once_then_reuses_the_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SAFESTEER_CACHE", str(tmp_path))
    first = load_preset("smollm2-135m")
    message = capsys.readouterr().err
    assert "first use of smollm2-135m" in message and "ready" in message
    folders = list((tmp_path / "models").iterdir())
    assert len(folders) == 1 and (folders[0] / "model.safetensors").is_file()
    assert (folders[0] / "tokenizer.json").is_file() or (folders[0] / "tokenizer.model").is_file()
    assert not list(folders[0].rglob("*.gguf"))
    converted = folders[0] / "model.safetensors"
    stamp = (converted.stat().st_ino, converted.stat().st_mtime_ns)
    second = load_preset("smollm2-135m")
    assert "first use" not in capsys.readouterr().err
    # the second load reads the converted copy; it converts nothing and rewrites nothing
    assert (converted.stat().st_ino, converted.stat().st_mtime_ns) == stamp
    assert list((tmp_path / "models").iterdir()) == folders
    assert first.model_id == second.model_id and first.kind == "causal-lm"
    assert (second.model.config.num_hidden_layers, second.model.config.hidden_size) == (30, 576)
    name = "model.embed_tokens.weight"
    assert torch.equal(first.model.state_dict()[name], second.model.state_dict()[name])


@pytest.mark.slow
def test_gemma3_preset_has_the_expected_shape() -> None:
    loaded = load_preset("gemma3-270m")
    assert loaded.kind == "causal-lm" and loaded.model_id.startswith("gemma3-270m@")
    config = loaded.model.config
    assert (config.num_hidden_layers, config.hidden_size) == (18, 640)
    assert loaded.tokenizer("a cat")["input_ids"][0] == loaded.tokenizer.bos_token_id
