"""Bad input tried as an attacker would (issue 13): each case was found by feeding corrupted
copies of sample files to the readers, and each test failed before its fix."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from s2i_cli.convert.shard import centre_sequences
from s2i_cli.encoder import skeletons
from s2i_cli.encoder.encoding import Encoding, encode
from s2i_cli.formats import FormatError, get_format
from s2i_cli.formats.base import ALL_ZERO, MAX_COORDINATE
from s2i_cli.formats.ntu import parse_skeleton
from s2i_cli.formats.pkummd import parse_sequence
from s2i_cli.kernels.encode import quantise_batch, quantise_batch_serial
from s2i_cli.kernels.textscan import read_float
from tests.samples import (frame_line, kinetics_doc, ntu_bytes, ntu_joints, nwucla_bytes, pku_bytes, pku_tree,
                           read_kinetics, read_ntu, read_nwucla, read_pkummd, read_toyota, toyota_doc, within)


def one(results: list):
    """The single result of a reader call on a one-item file."""
    (result,) = results[:1]
    return result


def ntu_with(token: str, joint: int = 3) -> bytes:
    """A valid one-body, three-frame NTU file whose frame-0 x of `joint` is `token` (line 5 + joint)."""
    lines = ntu_bytes(ntu_joints(np.random.default_rng(0))).decode().split("\r\n")
    fields = lines[4 + joint].split(" ")
    lines[4 + joint] = " ".join([token] + fields[1:])
    return "\r\n".join(lines).encode()


def pku_with(token: str) -> bytes:
    """A valid three-frame PKU-MMD file whose line 2 starts with `token`."""
    lines = [frame_line(0.5), frame_line(0.25), frame_line(0.75)]
    lines[1] = " ".join([token] + lines[1].split(" ")[1:])
    return ("\n".join(lines) + "\n").encode()


# --------------------------------------------------------------------------- 1. a hang

LONG_EXPONENTS = ["1e999999999999999999", "-1E+999999999999999999", "1e9223372036854775807", "1e-999999999999999999",
                  "1e-9223372036854775807", "123.456e99999999999"]


@pytest.mark.parametrize("token", LONG_EXPONENTS)
def test_a_long_exponent_is_read_in_constant_time(token):
    read_float(np.frombuffer(b"1.5e3", dtype=np.uint8), 0)  # compiled (or loaded) before the clock runs
    value, end, ok = within(2.0, read_float, np.frombuffer(token.encode(), dtype=np.uint8), 0)
    assert ok and end == len(token)
    assert value == (0.0 if "e-" in token else float(token))  # saturated: 0 or ±inf, as float() says


@pytest.mark.parametrize("token", LONG_EXPONENTS)
def test_a_long_exponent_in_a_text_file_is_rejected_or_read_quickly(token):
    within(30.0, read_ntu, ntu_with("1"))  # compile outside the time limit
    within(30.0, read_pkummd, pku_with("1"))
    start = time.perf_counter()
    ntu, pku = within(2.0, read_ntu, ntu_with(token))[0], within(2.0, read_pkummd, pku_with(token))[0]
    assert time.perf_counter() - start < 2.0
    if "e-" in token:  # a tiny value is 0: the files are fine
        assert not isinstance(ntu, FormatError) and ntu[0][0, 0, 3, 0] == 0.0
        assert not isinstance(pku, FormatError)
    else:
        assert isinstance(ntu, FormatError) and ntu.line == 8 and "beyond" in ntu.reason
        assert isinstance(pku, FormatError) and "beyond" in pku.reason


# --------------------------------------------------------------------------- 2, 3. values beyond float32 or the bound

@pytest.mark.parametrize("token", ["1e308", "-1e308", "1e39", "3.4e38", "-3e38", "1.5e6", "1e7"])
def test_text_readers_reject_values_beyond_the_bound_with_line_and_reason(token):
    with pytest.raises(FormatError) as exc:
        parse_skeleton(ntu_with(token, joint=7))
    assert exc.value.line == 12 and f"beyond the coordinate bound ±{MAX_COORDINATE:g}" in exc.value.reason
    with pytest.raises(FormatError) as exc:
        parse_sequence(pku_with(token))
    assert exc.value.line == 2 and f"beyond the coordinate bound ±{MAX_COORDINATE:g}" in exc.value.reason


def test_values_at_the_bound_are_read_and_centre_without_overflow():
    seq = ntu_with(f"{MAX_COORDINATE:g}")
    (result,) = read_ntu(seq)
    assert result[0][0, 0, 3, 0] == MAX_COORDINATE
    (result,) = read_ntu(ntu_with(f"-{MAX_COORDINATE:g}", joint=1))  # the centre joint itself
    fmt = get_format("ntu120")
    centred = centre_sequences(fmt, [result])
    _, norm = encode(centred, [result[1]], Encoding(fmt.skeleton, "parts", 16, "stacked"))
    assert np.all(np.isfinite(norm)) and all(np.all(np.isfinite(c)) for c in centred)


@pytest.mark.parametrize("value", [3e38, -3.4e38, 1e30, 2e6])
def test_json_readers_reject_finite_values_that_would_overflow_later(value):
    rng = np.random.default_rng(1)
    joints = rng.normal(size=(3, 20, 3))
    joints[1, 4, 2] = value
    assert isinstance(one(read_nwucla(nwucla_bytes(joints))), FormatError)
    doc, _ = toyota_doc(rng, frames=4)
    doc["frames"][0][0]["pose3d"][5] = value
    assert "beyond" in one(read_toyota(json.dumps(doc).encode())).reason
    doc = kinetics_doc(rng)
    doc["data"][1]["skeleton"][0]["pose"][3] = value
    assert "beyond" in one(read_kinetics(json.dumps(doc).encode())).reason


# --------------------------------------------------------------------------- 4. zero frames

def all_zero_files() -> dict[str, tuple]:
    rng = np.random.default_rng(2)
    zero_kinetics = kinetics_doc(rng)
    for frame in zero_kinetics["data"]:
        for person in frame["skeleton"]:
            person["pose"], person["score"] = [0] * 36, [0] * 18
    zero_toyota, _ = toyota_doc(rng, frames=4)
    for frame in zero_toyota["frames"]:
        for person in frame:
            person["pose3d"] = [0.0] * 39
    return {
        "ntu one body": (read_ntu, ntu_bytes(np.zeros((20, 1, 25, 3)))),
        "ntu two bodies": (read_ntu, ntu_bytes(np.zeros((20, 2, 25, 3)))),
        "pkummd": (read_pkummd, pku_bytes(np.zeros((4, 150)))),
        "nwucla": (read_nwucla, nwucla_bytes(np.zeros((5, 20, 3)))),
        "kinetics": (read_kinetics, json.dumps(zero_kinetics).encode()),
        "toyota": (read_toyota, json.dumps(zero_toyota).encode()),
    }


@pytest.mark.parametrize("case", list(all_zero_files()))
def test_every_reader_rejects_an_all_zero_sample_alike(case):
    read, data = all_zero_files()[case]
    result = one(read(data))
    assert isinstance(result, FormatError) and result.reason.startswith(ALL_ZERO), result


def test_the_encoder_refuses_a_sample_without_frames():
    skel = skeletons.NTU25
    col_idx, col_w = skeletons.column_map(skel, "parts", 8)
    joints = np.ones((3, 2, 25, 3), dtype=np.float32)  # the first sample's frames; the second has none
    offsets = np.array([0, 3, 3], dtype=np.int64)
    rows = np.zeros((2, 8), dtype=np.int64)
    norm = np.tile(np.array([0.0, 1.0], np.float32), (2, 3, 1))
    images = np.zeros((2, 3, 8, 8), np.uint8)
    for kernel in (quantise_batch, quantise_batch_serial):
        with pytest.raises(ValueError, match="no frames"):
            kernel(joints, offsets, rows, rows, rows, np.zeros((2, 8), np.float32), col_idx, col_w, norm,
                   np.ones(3, np.float32), images)
    with pytest.raises(ValueError, match="no frames"):
        encode([joints, joints[:0]], [1, 1], Encoding(skel, "parts", 8, "stacked"))


# --------------------------------------------------------------------------- 5. PKU-MMD's misleading reasons

def test_pku_skeleton_file_with_a_comma_in_its_first_line_is_reported_as_itself(tmp_path):
    decimal_commas = (frame_line(1.0).replace(".", ",") + "\n" + frame_line(2.0) + "\n").encode()
    raw = pku_tree(tmp_path, decimal_commas, "1,0,1,2\n")
    (raw / "label").rename(raw / "annotations")  # no 'label' in the folder name: told apart by content
    fmt = get_format("pkummd")
    items, rejected, _ = fmt.discover(raw)
    assert not rejected and [it.path.parent.name for it in items] == ["skeleton"]
    (result,) = fmt.read_items(items[0].path, items[0].path.read_bytes(), items)
    assert isinstance(result, FormatError) and result.line == 1
    assert "not a number" in result.reason and "decimal point" in result.reason


def test_pku_label_file_with_a_byte_order_mark_keeps_its_first_instance(tmp_path):
    raw = pku_tree(tmp_path, (frame_line(1.0) + "\n" + frame_line(2.0) + "\n").encode(), "")
    (raw / "label" / "0002-L.txt").write_bytes(b"\xef\xbb\xbf3,0,1,2\r\n4,1,1,1\r\n")
    items, rejected, _ = get_format("pkummd").discover(raw)
    assert not rejected and [(it.label, it.extra[:2]) for it in items] == [(2, (0, 1)), (3, (1, 1))]
    (raw / "label").rename(raw / "elsewhere")  # sniffed by content, BOM and all
    items, rejected, _ = get_format("pkummd").discover(raw)
    assert not rejected and len(items) == 2


# --------------------------------------------------------------------------- 6. JSON types, 64-bit IDs

@pytest.mark.parametrize("bad", ["1.5", True, False, None, {"x": 1}])
def test_json_readers_reject_coordinates_that_are_not_numbers(bad):
    rng = np.random.default_rng(3)
    ucla = rng.normal(size=(3, 20, 3)).tolist()
    ucla[1][2][0] = bad
    assert "not numeric" in one(read_nwucla(json.dumps({"skeletons": ucla, "label": 1}).encode())).reason
    doc, _ = toyota_doc(rng, frames=4)
    doc["frames"][1][0]["pose3d"][7] = bad
    assert "not numeric" in one(read_toyota(json.dumps(doc).encode())).reason
    doc, _ = toyota_doc(rng, frames=4)
    doc["frames"][1][0]["cumscore"] = bad
    assert "not numeric" in one(read_toyota(json.dumps(doc).encode())).reason
    for key in ("pose", "score"):
        doc = kinetics_doc(rng)
        doc["data"][2]["skeleton"][1][key][4] = bad
        assert "not a list of numbers" in one(read_kinetics(json.dumps(doc).encode())).reason


def test_nwucla_label_true_is_not_label_1():
    data = json.dumps({"skeletons": np.ones((2, 20, 3)).tolist(), "label": True}).encode()
    assert "disagrees" in one(read_nwucla(data)).reason


@pytest.mark.parametrize("body_id", [2**63 - 1, 10**18, 2**63 - 10**6])
def test_body_ids_up_to_2_63_minus_1_are_read_exactly(body_id):
    _, ids, _ = parse_skeleton(ntu_bytes(ntu_joints(np.random.default_rng(4)), body_ids=(body_id,)))
    assert ids.tolist() == [body_id] * 3


def test_a_body_id_beyond_64_bits_is_not_a_number_on_its_line():
    with pytest.raises(FormatError, match="not a number") as exc:
        parse_skeleton(ntu_bytes(ntu_joints(np.random.default_rng(4)), body_ids=(2**63,)))
    assert exc.value.line == 3


# --------------------------------------------------------------------------- found by the fuzz suite

def test_kinetics_label_file_nested_too_deeply_is_a_one_line_error(tmp_path):
    raw = tmp_path / "raw"
    (raw / "kinetics_val").mkdir(parents=True)
    (raw / "kinetics_val" / "vid1.json").write_text(json.dumps(kinetics_doc(np.random.default_rng(5))))
    (raw / "kinetics_val_label.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ValueError, match="kinetics_val_label.json: line 1: bad JSON"):
        get_format("kinetics").discover(raw)
    (raw / "kinetics_val_label.json").write_text(json.dumps({"vid1": {"label_index": 0, "has_skeleton": "no"}}))
    _, rejected, _ = get_format("kinetics").discover(raw)
    assert [r.reason for r in rejected] == ["kinetics_val_label.json: has_skeleton 'no' is not true or false"]


def test_ctrgcn_rows_beyond_the_bound_are_rejected_like_raw_files():
    from s2i_cli.formats.ctrgcn import real_frames

    row = np.zeros((300, 150), dtype=np.float32)
    with pytest.raises(FormatError, match=ALL_ZERO):
        real_frames(row)
    row[:10] = 0.5
    row[3, 7] = 3e38  # finite in float32, overflows when centred
    with pytest.raises(FormatError, match="beyond"):
        real_frames(row)
