"""Streams in the store: `s2i convert --streams` writes them in one pass, `s2i encode` adds
them from the stored skeletons with the same arrays, `s2i info` lists them, `s2i show
--stream` draws one, xarray reads them without s2i, and the loader trains on one."""
import numpy as np
import pytest
from typer.testing import CliRunner

from s2i_cli import store
from s2i_cli.cli import app
from s2i_cli.convert.add_streams import encode
from s2i_cli.convert.flow import convert
from s2i_cli.encoder.streams import STREAMS
from s2i_cli.train.loader import make_loader
from s2i_cli.views.info import store_summary
from tests.helpers import shared_data

pytestmark = pytest.mark.slow

SIZE = 32


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The real NTU files converted twice: all four streams at once, and joint only."""
    raw = shared_data("ntu")
    tmp = tmp_path_factory.mktemp("streams")
    convert("ntu120", raw, tmp / "all.zarr", size=SIZE, shard=8, workers=1, streams=STREAMS, progress=False)
    convert("ntu120", raw, tmp / "joint.zarr", size=SIZE, shard=8, workers=1, progress=False)
    return tmp / "all.zarr", tmp / "joint.zarr"


def test_encode_gives_the_same_arrays_as_convert_streams(stores):
    both, joint = stores
    assert list(store.stored_streams(store.open_store(joint))) == ["joint"]
    report = encode(joint, ("bone", "motion", "bone-motion"), progress=False)
    assert report.added == ["bone", "motion", "bone-motion"] and report.samples > 10
    a, b = store.open_store(both), store.open_store(joint)
    assert store.stored_streams(a) == store.stored_streams(b)
    assert list(store.stored_streams(a)) == list(STREAMS)
    valid = np.asarray(a["valid"][:], dtype=bool)
    for stream in STREAMS:
        images_a, norm_a, power_a = store.stream_arrays(a, stream)
        images_b, norm_b, power_b = store.stream_arrays(b, stream)
        np.testing.assert_array_equal(images_a[:], images_b[:])
        np.testing.assert_array_equal(norm_a[:], norm_b[:])
        np.testing.assert_array_equal(power_a, power_b)
        if stream != "joint":
            assert not np.array_equal(images_a[:][valid], a["images"][:][valid])  # not the joint images again
    again = encode(joint, ("joint", "bone"), progress=False)
    assert again.added == [] and again.present == ["joint", "bone"]


def test_streams_are_listed_shown_and_read_without_s2i(stores, tmp_path):
    both, _ = stores
    root = store.open_store(both)
    summary = store_summary(root)
    assert summary["streams"] == list(STREAMS)
    # the images' size counts every stream's array, not the joint images alone
    assert summary["image_bytes"] == len(STREAMS) * root["images"].nbytes
    runner = CliRunner()
    result = runner.invoke(app, ["info", str(both)])
    assert result.exit_code == 0 and "bone-motion" in result.output
    result = runner.invoke(app, ["show", str(both), "--index", "1", "--stream", "motion", "--out",
                                 str(tmp_path / "m.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.png").stat().st_size > 10_000
    xr = pytest.importorskip("xarray")
    ds = xr.open_zarr(str(both), consolidated=True)
    images = ds["images_bone_motion"]
    assert images.dims == ("sample", "channel", "row", "column")
    np.testing.assert_array_equal(images.values, store.stream_arrays(root, "bone-motion")[0][:])


def test_a_missing_stream_is_one_line(stores, tmp_path):
    _, joint_only = stores
    fresh = tmp_path / "j.zarr"
    convert("ntu120", shared_data("ntu"), fresh, size=SIZE, workers=1, limit=3, progress=False)
    result = CliRunner().invoke(app, ["show", str(fresh), "--stream", "bone"])
    assert result.exit_code == 2
    assert "has no bone stream (it has joint): add it with `s2i encode" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(store.StoreError, match="no motion stream"):
        make_loader(fresh, np.arange(3), 2, shuffle=False, workers=0, stream="motion")
    result = CliRunner().invoke(app, ["encode", str(fresh), "--streams", "bones"])
    assert result.exit_code == 2 and "unknown stream bones" in result.output


def test_the_loader_reads_the_chosen_stream(stores):
    both, _ = stores
    root = store.open_store(both)
    idx = np.flatnonzero(np.asarray(root["valid"][:], dtype=bool))[:4]
    images, _, index = next(iter(make_loader(both, idx, 4, shuffle=False, workers=0, stream="bone")))
    np.testing.assert_array_equal(images.numpy(), store.stream_arrays(root, "bone")[0][index.numpy()])
