"""convert-q16: Q16-style prompt files built the same way convert; anything else is refused
without running it."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from safesteer.cli import main
from safesteer.errors import InputError
from safesteer.evaluation.q16 import load_prompt_embeddings
from safesteer.evaluation.q16_convert import convert_q16, read_q16_prompts

X = np.random.default_rng(0).standard_normal((2, 768)).astype(np.float16)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_pickles_convert_exactly(tmp_path, protocol):
    src = tmp_path / "prompts.p"
    src.write_bytes(pickle.dumps(X, protocol=protocol))  # how Q16's file is made
    info = convert_q16(src, tmp_path / "q16.safetensors")
    loaded = load_prompt_embeddings(tmp_path / "q16.safetensors")
    assert torch.equal(loaded, torch.from_numpy(X.astype(np.float32)))
    assert info["rows"] == ["non inappropriate", "inappropriate"] and info["dtype_in"] == "float16"


def test_numpy1_pickles_lists_and_torch_zips_are_read(tmp_path):
    old = tmp_path / "numpy1.p"  # numpy 1.x names its module numpy.core
    old.write_bytes(
        pickle.dumps(X, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    )
    assert read_q16_prompts(old)[0].shape == (2, 768)
    lst = tmp_path / "list.p"
    lst.write_bytes(pickle.dumps(X.astype(np.float32).tolist()))
    assert torch.equal(read_q16_prompts(lst)[0], torch.from_numpy(X.astype(np.float32)))
    pt = tmp_path / "t.pt"
    torch.save(torch.from_numpy(X), pt)
    assert read_q16_prompts(pt)[1] == "float16"


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.p"
    evil.write_bytes(pickle.dumps(_Evil(str(marker))))
    with pytest.raises(InputError, match=r"refused (posix|os)\.system"):
        read_q16_prompts(evil)
    assert not marker.exists()
    # a malicious object hidden inside a list is refused the same way
    nested = tmp_path / "nested.p"
    nested.write_bytes(pickle.dumps([X.tolist()[0], _Evil(str(marker))]))
    with pytest.raises(InputError, match="refused"):
        read_q16_prompts(nested)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "payload", "match"),
    [
        ("torchpickle.p", lambda: pickle.dumps(torch.from_numpy(X)), "refused torch"),
        ("object.p", lambda: pickle.dumps(np.array([[1.0, {}]], dtype=object)), "object array"),
        ("shape.p", lambda: pickle.dumps(np.zeros((3, 768), np.float32)), r"shape \(3, 768\)"),
        ("ints.p", lambda: pickle.dumps(np.zeros((2, 8), np.int64)), "int64"),
        ("text.p", lambda: b"hello world", "neither a pickle"),
        ("builtin.p", lambda: pickle.dumps(print), "refused builtins.print"),
    ],
)
def test_other_contents_are_refused(tmp_path, name, payload, match):
    path = tmp_path / name
    path.write_bytes(payload())
    with pytest.raises(InputError, match=match):
        read_q16_prompts(path)


def test_cli_converts_and_refuses_with_exit_2(tmp_path, capsys):
    src = tmp_path / "prompts.p"
    src.write_bytes(pickle.dumps(X, protocol=4))
    out = tmp_path / "q16.safetensors"
    assert main(["convert-q16", str(src), str(out)]) == 0
    assert "wrote" in capsys.readouterr().out and out.is_file()
    evil = tmp_path / "evil.p"
    evil.write_bytes(pickle.dumps(_Evil(str(tmp_path / "x"))))
    assert main(["convert-q16", str(evil), str(tmp_path / "bad.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "refused" in err and "fix:" in err
    assert not (tmp_path / "bad.safetensors").exists() and not (tmp_path / "x").exists()
    assert (
        main(["convert-q16", str(src), str(tmp_path / "w.safetensors"), "--expect-dim", "512"]) == 2
    )
