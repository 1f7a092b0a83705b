"""The memory estimate against the real configs' published parameter counts (no weights read)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from safesteer.errors import InputError
from safesteer.models import memory
from safesteer.models.device import check_offload, resolve_dtype

CONFIGS = Path(__file__).parent / "data" / "configs"
GB = 1e9


def _close(n: int, published: float) -> bool:
    return abs(n - published) / published < 0.01


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize(
    ("folder", "published"),
    [
        # component -> published parameter count (see tests/data/configs/README.md)
        ("flux.1-schnell", {"transformer": 11.891 * GB, "text_encoder_2": 4.762 * GB,
                            "text_encoder": 0.123 * GB, "vae": 0.0838 * GB}),
        ("flux.1-dev", {"transformer": 11.901 * GB}),
        ("qwen-image", {"transformer": 20.430 * GB, "text_encoder": 8.292 * GB}),
        ("z-image-turbo", {"transformer": 6.155 * GB, "text_encoder": 4.022 * GB}),
        ("wan2.2-t2v-a14b", {"transformer": 14.288 * GB, "transformer_2": 14.288 * GB,
                             "text_encoder": 5.681 * GB}),
    ],
)  # fmt: skip
def test_pipeline_counts_match_published_sizes(folder, published):
    est = memory.estimate_pipeline(str(CONFIGS / folder), "bfloat16")
    counts = {c.name: c.params for c in est.components}
    for name, n in published.items():
        assert _close(counts[name], n), (name, counts[name], n)
    assert est.bytes == 2 * est.params  # bf16: 2 bytes a parameter
    assert "meta device" in est.source


def test_qwen_image_real_count_to_the_parameter():
    # a count of the released weights gives 20,430,401,088 (40.86 GB in bf16)
    est = memory.estimate_pipeline(str(CONFIGS / "qwen-image"), "bf16")
    transformer = next(c for c in est.components if c.name == "transformer")
    assert transformer.params == 20_430_401_088


@pytest.mark.parametrize(
    ("folder", "published"), [("mistral-7b-v0.1", 7.242), ("llama-3.1-8b", 8.030)]
)
def test_source_llm_counts(folder, published):
    est = memory.estimate_model(str(CONFIGS / folder), "float32")
    assert _close(est.params, published * GB)
    assert est.bytes == 4 * est.params


def test_peak_is_the_larger_model_when_loaded_in_turn():
    src = memory.from_counts("src", {"model": 8 * GB}, "bf16", "given")
    gen = memory.from_counts("gen", {"transformer": 12 * GB, "t5": 5 * GB}, "bf16", "given")
    seq = memory.peak(src, gen)
    both = memory.peak(src, gen, sequential=False)
    assert seq.device_bytes == int(34 * GB * memory.OVERHEAD)  # max(16, 34) GB
    assert both.device_bytes == int(50 * GB * memory.OVERHEAD)  # the sum
    off = memory.peak(src, gen, offload="model")
    assert off.device_bytes == int(24 * GB * memory.OVERHEAD)  # max(source, largest component)
    assert off.ram_bytes == int(34 * GB * memory.OVERHEAD)


def test_refusal_when_it_cannot_fit_and_the_override():
    huge = memory.Peak(10**15, 0, "test")
    with pytest.raises(InputError, match=r"would not fit on cpu.*skip-memory-check"):
        memory.check_fits(huge, "cpu")
    assert "needs" in memory.check_fits(huge, "cpu", force=True)
    assert "free" in memory.check_fits(memory.Peak(1, 0, "tiny"), "cpu")


def test_missing_configs_offline_are_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Exception, match="cannot read the configs"):
        memory.estimate_pipeline("no-such-org/no-such-model-xyz", "bf16")


def test_dtype_auto_and_offload_refusal_on_cpu():
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    assert resolve_dtype("fp16", "cpu") == torch.float16
    with pytest.raises(InputError, match="unknown dtype"):
        resolve_dtype("float8", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="needs a CUDA device"):
            check_offload("model", "cpu")
    assert check_offload("none", "cpu") == "none"
