"""Tests for safesteer.data.loaders: round trips of small files the tests write, and errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from safesteer.data import PromptRecord, guess_format, load_prompts
from safesteer.errors import InputError

I2P_HEADER = (
    "prompt,categories,hard,inappropriate_percentage,nudity_percentage,lexica_url,"
    "sd_safety_percentage,prompt_toxicity,evaluation_seed,evaluation_guidance,"
    "sd_image_width,sd_image_height,sd_model\n"
)


def test_i2p_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "i2p.csv"
    path.write_text(
        I2P_HEADER + '"a castle, at dusk","violence,shocking",1,40.0,0.0,u,10,0.1,1234,7.5,512,'
        "768,1.4\n" + "a quiet lake,,0,0,0,u,0,0.0,99,7,512,512,1.4\n",
        encoding="utf-8",
    )
    assert guess_format(path) == "i2p"
    records = load_prompts(path)
    assert records[0] == PromptRecord(
        prompt="a castle, at dusk",
        categories=("violence", "shocking"),
        seed=1234,
        guidance=7.5,
        width=512,
        height=768,
        extra=records[0].extra,
    )
    assert records[0].extra["sd_model"] == "1.4"
    assert records[1].categories == () and records[1].seed == 99 and records[1].guidance == 7.0


def test_coco_captions_csv(tmp_path: Path) -> None:
    path = tmp_path / "coco.csv"
    path.write_text("image_id,caption\n1,A dog on a couch.\n2,Two kites in a blue sky.\n")
    assert guess_format(path) == "coco"
    records = load_prompts(path)
    assert [r.prompt for r in records] == ["A dog on a couch.", "Two kites in a blue sky."]
    assert records[1].extra == {"image_id": "2"}


def test_text_jsonl_and_parquet_round_trip(tmp_path: Path) -> None:
    prompts = ["a red fox", "a bowl of pears, watercolor", 'quotes "inside"']
    txt = tmp_path / "p.txt"
    txt.write_text("\n".join(["# comment", *prompts, ""]), encoding="utf-8")
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": p, "seed": i}) for i, p in enumerate(prompts)))
    parquet = tmp_path / "p.parquet"
    pd.DataFrame({"prompt": prompts, "guidance": [1.5, 2.5, 3.5]}).to_parquet(parquet)
    assert [r.prompt for r in load_prompts(txt)] == prompts
    assert [(r.prompt, r.seed) for r in load_prompts(jsonl)] == list(
        zip(prompts, [0, 1, 2], strict=True)
    )
    assert [(r.prompt, r.guidance) for r in load_prompts(parquet)] == list(
        zip(prompts, [1.5, 2.5, 3.5], strict=True)
    )


def test_column_override_and_missing_column_names_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("id,sentence\n1,a boat\n")
    assert [r.prompt for r in load_prompts(path, column="sentence")] == ["a boat"]
    with pytest.raises(InputError, match=r"no column 'prompt'.*sentence") as info:
        load_prompts(path)
    assert info.value.hint and "column" in info.value.hint
    with pytest.raises(InputError, match="'caption'"):
        load_prompts(path, fmt="coco")


def test_empty_files_bad_encoding_and_bad_json_are_input_errors(tmp_path: Path) -> None:
    empty = tmp_path / "e.txt"
    empty.write_text("  \n")
    with pytest.raises(InputError, match="empty"):
        load_prompts(empty)
    latin = tmp_path / "l.csv"
    latin.write_bytes("prompt\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(InputError, match="UTF-8"):
        load_prompts(latin)
    header_only = tmp_path / "h.csv"
    header_only.write_text("prompt\n")
    with pytest.raises(InputError, match="no prompts"):
        load_prompts(header_only)
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"prompt": "ok"}\n{oops\n')
    with pytest.raises(InputError, match=r"b.jsonl:2"):
        load_prompts(bad)
    with pytest.raises(InputError, match="non-number"):
        (tmp_path / "s.csv").write_text("prompt,seed\na cat,abc\n")
        load_prompts(tmp_path / "s.csv")


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_prompts(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="format"):
        load_prompts(tmp_path / "p.docx")
    with pytest.raises(InputError, match="format"):
        load_prompts(tmp_path / "p.txt", fmt="xlsx")


@pytest.mark.skipif(
    importlib.util.find_spec("datasets") is not None, reason="`datasets` is installed"
)
def test_hf_without_datasets_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="datasets") as info:
        load_prompts("hf:AIML-TUDA/i2p")
    assert info.value.hint and "pip install datasets" in info.value.hint
    assert guess_format(tmp_path) == "hf"  # a saved dataset is a folder


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="needs `datasets`")
def test_hf_load_from_disk_round_trip(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_dict(
        {"prompt": ["a kite", "a lake"], "categories": ["", "hate"]}
    ).save_to_disk(str(tmp_path / "ds"))
    records = load_prompts(tmp_path / "ds")
    assert [(r.prompt, r.categories) for r in records] == [("a kite", ()), ("a lake", ("hate",))]


def test_i2p_hub_column_names_sd_seed_and_sd_guidance_scale(tmp_path: Path) -> None:
    # the hub copy (hf:AIML-TUDA/i2p) names seed and guidance sd_seed / sd_guidance_scale
    header = I2P_HEADER.replace("evaluation_seed", "sd_seed").replace(
        "evaluation_guidance", "sd_guidance_scale"
    )
    path = tmp_path / "i2p_hub.csv"
    path.write_text(header + "a quiet lake,hate,0,0,0,u,0,0.0,4242,6.5,512,512,1.4\n")
    (record,) = load_prompts(path)
    assert record.seed == 4242 and record.guidance == 6.5 and record.categories == ("hate",)


def test_list_valued_caption_column_takes_the_first_caption(tmp_path: Path) -> None:
    # hf:phiyodr/coco2017 keeps five captions per image in a list column "captions"
    path = tmp_path / "coco.jsonl"
    rows = [{"captions": ["A dog on a couch.", "A brown dog."]}, {"captions": ["Two kites."]}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    records = load_prompts(path, column="captions")
    assert [r.prompt for r in records] == ["A dog on a couch.", "Two kites."]
