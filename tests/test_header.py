"""The store header and the run's config.json are type-checked when opened (issues 19, 20):
wrong types give one line naming the store (or file) and the field, never a traceback; the
header is the one reader of the `s2i` attributes, with the defaults of older formats in one
place. And the vocabulary: every choice refused before any work, listed in --help."""
from __future__ import annotations

import json

import pytest
import zarr
from typer.testing import CliRunner

from s2i_cli import store
from s2i_cli.cli import app
from s2i_cli.store.header import FORMAT_VERSION, HeaderError, StoreHeader

from .stores import make_store


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("h") / "s.zarr", n=8, size=16)


def crafted(good, tmp_path, **changes):
    """A copy of the good store whose attributes have `changes`, written raw (no checks)."""
    import shutil

    out = tmp_path / "crafted.zarr"
    shutil.copytree(good, out)
    root = zarr.open_group(str(out), mode="r+", use_consolidated=False)
    root.attrs["s2i"] = {**root.attrs["s2i"], **changes}
    zarr.consolidate_metadata(root.store)
    return out


@pytest.mark.filterwarnings("ignore:Consolidated metadata")
@pytest.mark.parametrize("field,value", [("format_version", "3"), ("shard", -4), ("samples", -1),
                                         ("class_names", [1, 2]), ("class_names", "abc"), ("image_size", [16]),
                                         ("streams", {"bone": [1, 1, 1]}), ("rejected", [{"name": 3}]),
                                         ("persons", "crowd"), ("complete", "yes")])
def test_wrong_types_are_one_line_naming_the_store_and_field(good, tmp_path, field, value):
    out = crafted(good, tmp_path, **{field: value})
    for command in (["info", str(out)], ["show", str(out), "--out", str(tmp_path / "x.png")],
                    ["pretrain", str(out), "--run-dir", str(tmp_path / "run")]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert str(out) in " ".join(result.output.split()) and field in lines[0], lines[0]


def test_the_header_round_trips_and_keeps_unknown_keys(good):
    root = store.open_store(good)
    header = store.read_header(root)
    assert StoreHeader.from_attrs(header.to_attrs()) == header
    kept = StoreHeader.from_attrs({**header.to_attrs(), "future_field": {"a": 1}})
    assert kept.to_attrs()["future_field"] == {"a": 1}
    assert header.updated(samples=3).samples == 3
    with pytest.raises(HeaderError, match="samples"):
        header.updated(samples=-3)


def test_an_older_format_reads_with_its_defaults_in_one_place():
    old = StoreHeader.from_attrs({"format_version": 2, "shard": 4, "image_size": [32, 32]})
    assert old.streams == {"joint": [1.0, 1.0, 1.0]} and old.persons == "stacked" and old.norm == "channel"
    assert old.frame_region == store.frame_region(4) and old.class_name(3) == "class 3"
    with pytest.raises(HeaderError, match="newer than this s2i"):
        StoreHeader.from_attrs({"format_version": FORMAT_VERSION + 1, "shard": 4, "image_size": [32, 32]})


@pytest.mark.filterwarnings("ignore:Consolidated metadata")
def test_class_names_are_derived_one_way(good, tmp_path):
    out = crafted(good, tmp_path, class_names=["only one"])
    root = store.open_store(out)
    assert store.class_names(root) == ["only one", "class 1", "class 2", "class 3"]


@pytest.mark.parametrize("field,value", [("img_size", "32"), ("class_names", [1]), ("store", 5), ("epochs", "3"),
                                         ("model", None)])
def test_config_json_of_the_wrong_type_is_one_line_naming_the_file_and_field(tmp_path, field, value):
    run = tmp_path / "run"
    run.mkdir()
    config = {"store": str(tmp_path / "s.zarr"), "model": "vit_tiny", "img_size": 32, "class_names": ["a"],
              field: value}
    (run / "config.json").write_text(json.dumps(config))
    (run / "checkpoint-last.pt").write_bytes(b"")
    result = CliRunner().invoke(app, ["evaluate", "--run", str(run), "--protocol", "xsub"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "config.json" in result.output and field in result.output


# ------------------------------------------------------------------ the vocabulary

@pytest.mark.parametrize("command", [["convert", "ntu60", "RAW", "OUT", "--norm", "minmax"],
                                     ["convert", "ntu61", "RAW", "OUT"],
                                     ["convert", "ntu60", "RAW", "OUT", "--streams", "joint,bones"],
                                     ["pretrain", "STORE", "--masking", "blocks"],
                                     ["pretrain", "STORE", "--temporal-crop", "half"],
                                     ["evaluate", "--mode", "probe"], ["evaluate", "--pool", "max"],
                                     ["evaluate", "--augment", "blur"], ["show", "STORE", "--stream", "bones"],
                                     ["encode", "STORE", "--streams", "velocity"]])
def test_a_bad_choice_is_one_line_before_any_file_is_read(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # RAW, OUT and STORE do not exist: the choice is refused first
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "Invalid value" in result.output and "no store" not in result.output
    assert not (tmp_path / "OUT").exists()


def test_help_lists_the_choices_and_completion_is_on():
    runner = CliRunner()
    text = " ".join(runner.invoke(app, ["convert", "--help"], env={"COLUMNS": "250"}).output.split())
    assert "channel|isotropic|dataset" in text and "parts|aligned|concat" in text and "zero|repeat" in text
    text = " ".join(runner.invoke(app, ["pretrain", "--help"], env={"COLUMNS": "250"}).output.split())
    assert "random|tube|frames|parts" in text and "mae|diffmae" in text and "joint|bone|motion|bone-motion" in text
    text = " ".join(runner.invoke(app, ["evaluate", "--help"], env={"COLUMNS": "250"}).output.split())
    assert "linear|knn|finetune" in text and "token|avg" in text
    assert "--install-completion" in runner.invoke(app, ["--help"]).output
    shown = runner.invoke(app, ["--show-completion", "bash"])
    assert shown.exit_code == 0 and "complete" in shown.output


def test_library_defaults_name_the_one_declaration():
    import inspect

    from s2i_cli import vocab
    from s2i_cli.convert.config import ConvertConfig
    from s2i_cli.encoder.encoding import Encoding
    from s2i_cli.encoder.streams import encode_streams

    assert ConvertConfig.norm == Encoding.norm == vocab.NORM_DEFAULT == "isotropic"
    assert inspect.signature(encode_streams).parameters["norm"].default == vocab.NORM_DEFAULT
    assert ConvertConfig.fill == Encoding.fill == vocab.FILL_DEFAULT
    assert vocab.parse_streams(" bone, joint,bone") == ("bone", "joint")
