"""The validation layer: value checks and argparse types, one behaviour each."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from safesteer import validation as v
from safesteer.errors import InputError


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (v.alpha, "3", 3.0),
        (v.alpha, "-1000", -1000.0),
        (v.alpha, "0", 0.0),
        (v.positive_int, "1", 1),
        (v.non_negative_int, "0", 0),
        (v.int_at_least(2), "2", 2),
        (v.seed, "0", 0),
        (v.probability, "1", 1.0),
        (v.open_fraction, "0.05", 0.05),
        (v.positive_float, "1e-9", 1e-9),
        (v.non_negative_float, "0", 0.0),
        (v.size, "512", (512, 512)),
        (v.size, "768x512", (768, 512)),
        (v.size, "768X512", (768, 512)),
        (v.dtype, "bfloat16", "bfloat16"),
        (v.device, "cpu", "cpu"),
        (v.device, "auto", "auto"),
        (v.name_list, "violence, sexual", ["violence", "sexual"]),
        (v.ray_address, "10.0.0.5:6379", "10.0.0.5:6379"),
        (v.ray_address, "ray://head:10001", "ray://head:10001"),
        (v.ray_address, "auto", "auto"),
    ],
)
def test_good_values_pass(parse, text: str, value: object) -> None:
    assert parse(text) == value


@pytest.mark.parametrize(
    ("parse", "text", "says"),
    [
        (v.alpha, "nan", "not a finite number"),
        (v.alpha, "1000.5", "beyond ±1000"),
        (v.positive_int, "0", "too small"),
        (v.positive_int, "1.0", "not an integer"),
        (v.int_at_least(2), "1", "use 2 or more"),
        (v.seed, "-1", "too small"),
        (v.probability, "1.01", "not [0, 1]"),
        (v.open_fraction, "0", "not (0, 1)"),
        (v.positive_float, "0", "not > 0"),
        (v.non_negative_float, "-0.5", "not ≥ 0"),
        (v.dtype, "torch.float16", "unknown dtype"),
        (v.dtype, "long", "unknown dtype"),
        (v.device, "gpu", "unknown device"),
        (v.device, "meta", "not supported"),
        (v.name_list, " , ", "names nothing"),
        (v.ray_address, "head", "not HOST:PORT"),
        (v.ray_address, "head:0", "not HOST:PORT"),
    ],
)
def test_bad_values_are_refused_with_a_fix(parse, text: str, says: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as err:
        parse(text)
    assert says in str(err.value) and "(fix: " in str(err.value)


def test_value_checks_for_library_code() -> None:
    assert v.check_finite(2, "guidance", low=0) == 2.0
    with pytest.raises(InputError, match=r"guidance is -1, not ≥ 0 \(fix: use a value ≥ 0\)"):
        v.check_finite(-1, "guidance", low=0)
    with pytest.raises(InputError, match="steps is 0"):
        v.check_positive_int(0, "steps")
    with pytest.raises(InputError, match="steps is True"):
        v.check_positive_int(True, "steps")  # type: ignore[arg-type]
    assert v.check_distinct([1, 3.0, "a"], "xs") == [1, 3.0, "a"]
    with pytest.raises(InputError, match=r"alphas lists 3 twice \(3 and 3.0 are equal\)"):
        v.check_distinct([3, 3.0], "alphas")
    with pytest.raises(InputError, match="lists q16 twice"):
        v.check_distinct(["q16", "nudenet", "q16"], "--classifiers")


def test_distinct_action_refuses_repeats_through_argparse(capsys) -> None:
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--alphas", type=v.alpha, nargs="+", action=v.Distinct)
    assert parser.parse_args(["--alphas", "0", "3"]).alphas == [0.0, 3.0]
    with pytest.raises(SystemExit):
        parser.parse_args(["--alphas", "3", "3.0"])
    assert "--alphas lists 3 twice" in capsys.readouterr().err


def test_output_checks_refuse_files_folders_and_unwritable_places(tmp_path: Path) -> None:
    a_file = tmp_path / "f.txt"
    a_file.write_text("keep me")
    assert v.check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    assert v.check_output_file(tmp_path / "p.safetensors") == tmp_path / "p.safetensors"
    assert v.check_output_file(a_file) == a_file  # replacing a file is fine
    with pytest.raises(InputError, match="is a file, not a folder"):
        v.check_output_dir(a_file)
    with pytest.raises(InputError, match="which is a file"):
        v.check_output_dir(a_file / "sub")
    with pytest.raises(InputError, match="is a folder, not a file"):
        v.check_output_file(tmp_path)
    with pytest.raises(InputError, match="which is a file"):
        v.check_output_file(a_file / "p.safetensors")
    with pytest.raises(InputError, match="cannot write in /proc"):
        v.check_output_file("/proc/safesteer-test/p.safetensors")
    assert a_file.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]  # no probe file left


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(InputError, match="cannot write"):
            v.check_output_dir(ro)
        with pytest.raises(InputError, match="cannot write"):
            v.check_output_file(ro / "p.safetensors")
    finally:
        ro.chmod(stat.S_IRWXU)


def test_input_checks_and_utf8_with_the_line(tmp_path: Path) -> None:
    good = tmp_path / "p.txt"
    good.write_bytes("\ufeffa café\nb\n".encode())
    assert v.read_utf8(good) == "a café\nb\n"  # the BOM is dropped
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"one\ntwo\nthr\xe9e\n")
    with pytest.raises(InputError, match=r"line 3 has the byte 0xe9"):
        v.read_utf8(bad, "prompt file")
    with pytest.raises(InputError, match="does not exist"):
        v.check_input_file(tmp_path / "nope")
    with pytest.raises(InputError, match="is a folder"):
        v.check_input_file(tmp_path)
    with pytest.raises(InputError, match="is a file, not a folder"):
        v.check_input_dir(good)
    with pytest.raises(argparse.ArgumentTypeError, match="line 3"):
        v.prompt_file(str(bad))
    assert v.prompt_file("hf:nateraw/parti-prompts") == "hf:nateraw/parti-prompts"


def test_the_table_of_types_lists_every_type() -> None:
    assert {"alpha", "positive_int", "device", "dtype", "output_dir", "output_file"} <= set(
        v.ARG_TYPES
    )
    for name, parse in v.ARG_TYPES.items():
        assert parse.__name__ == name
        assert f"v.{name}" in (v.__doc__ or ""), f"{name} is missing from the module's table"
