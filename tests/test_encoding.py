"""The encode step's choices (docs/design.md §2): the single-actor fill of `stacked`, the three
normalisations, and the patch-aligned part bands, each against a plain NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest

from s2i_cli import store
from s2i_cli.convert.flow import convert
from s2i_cli.encoder import skeletons
from s2i_cli.encoder.encoding import Encoding, dataset_limits, encode
from s2i_cli.encoder.pixels import decode_image
from s2i_cli.formats import get_format


def reference(seq: np.ndarray, actors: int, enc: Encoding) -> tuple[np.ndarray, np.ndarray]:
    """NumPy: the float image through the maps, then the normalisation of `enc`, then uint8."""
    size = enc.size
    col_idx, col_w = skeletons.column_map(enc.skeleton, enc.layout, size)
    actor, f0, f1, w = skeletons.row_map(len(seq), actors, size, enc.persons, enc.fill)
    rows = (1 - w[:, None, None]) * seq[f0, actor] + w[:, None, None] * seq[f1, actor]  # (H, V, C)
    image = np.einsum("wk,hwkc->chw", col_w.astype(np.float64), rows[:, col_idx].astype(np.float64))
    used = skeletons.used_joints(enc.skeleton)
    read = seq[:, sorted(set(actor.tolist()))][:, :, used].reshape(-1, 3)
    lo, hi = read.min(axis=0).astype(np.float64), read.max(axis=0).astype(np.float64)
    if enc.norm == "isotropic":
        spatial = 2 if enc.skeleton.is_2d else 3
        widest = (hi - lo)[:spatial].max()
        mid = (hi + lo)[:spatial] / 2
        lo[:spatial], hi[:spatial] = mid - widest / 2, mid + widest / 2
    elif enc.norm == "dataset":
        lo, hi = np.asarray(enc.limits, dtype=np.float64).T
    q = (image - lo[:, None, None]) / (hi - lo)[:, None, None] * 255
    return np.clip(np.floor(q + 0.5), 0, 255).astype(np.uint8), np.stack([lo, hi], axis=1)


def walk(frames: int, actors: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    seq = np.zeros((frames, 2, 25, 3), dtype=np.float32)
    seq[:, :actors] = np.cumsum(rng.normal(0, 0.05, (frames, actors, 25, 3)), axis=0) * np.array([0.4, 1.3, 0.6])
    return seq


@pytest.mark.parametrize("norm", ["channel", "isotropic", "dataset"])
@pytest.mark.parametrize("fill", ["zero", "repeat"])
def test_encode_equals_numpy_reference(norm, fill):
    seqs = [walk(37, 1, 1), walk(12, 2, 2), walk(80, 1, 3)]
    limits = tuple(map(tuple, dataset_limits(seqs, skeletons.NTU25))) if norm == "dataset" else None
    enc = Encoding(skeletons.NTU25, "aligned", 80, "stacked", fill, norm, limits)
    images, norms = encode(seqs, [1, 2, 1], enc)
    serial, _ = encode(seqs, [1, 2, 1], enc, parallel=False)
    assert np.array_equal(images, serial)
    for i, (seq, actors) in enumerate(zip(seqs, [1, 2, 1])):
        want, want_norm = reference(seq, actors, enc)
        assert np.allclose(norms[i], want_norm, atol=1e-5)
        assert np.abs(images[i].astype(int) - want.astype(int)).max() <= 1


def test_isotropic_keeps_proportions_and_decodes_to_metres():
    seq = walk(50, 1)
    enc = Encoding(skeletons.NTU25, "parts", 32, "main", norm="isotropic")
    images, norm = encode([seq], [1], enc)
    widths = norm[0, :, 1] - norm[0, :, 0]
    assert np.allclose(widths, widths.max())  # one scale for x, y, z
    used = skeletons.used_joints(skeletons.NTU25)
    assert np.all(norm[0, :, 0] <= seq[:, 0, used].min(axis=(0, 1)) + 1e-6)
    decoded = decode_image(images[0], norm[0])
    want, _ = reference(seq, 1, Encoding(skeletons.NTU25, "parts", 32, "main"))  # any norm: compare in metres
    float_image = decode_image(want, reference(seq, 1, Encoding(skeletons.NTU25, "parts", 32, "main"))[1])
    step = widths.max() / 255
    assert np.abs(decoded - float_image).max() <= 2 * step


def test_dataset_limits_cover_the_training_values():
    seqs = [walk(40, 1, s) for s in range(5)]
    limits = dataset_limits(seqs, skeletons.NTU25, coverage=1.0)
    values = np.concatenate([s[:, 0][:, skeletons.used_joints(skeletons.NTU25)].reshape(-1, 3) for s in seqs])
    present = np.any(values[:, :2] != 0, axis=1)
    assert np.allclose(limits[:, 0], values[present].min(axis=0)) and np.allclose(limits[:, 1], values[present].max(axis=0))
    with pytest.raises(ValueError, match="limits"):
        Encoding(skeletons.NTU25, norm="dataset")


def test_aligned_bands_and_patch_parts():
    assert skeletons.band_edges(224, align=16).tolist() == [0, 32, 80, 128, 176, 224]
    assert skeletons.band_edges(112, align=16).tolist() == [0, 48, 64, 80, 96, 112]
    assert skeletons.patch_column_parts(skeletons.NTU25, "aligned", 224) == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert skeletons.patch_column_parts(skeletons.NTU25, "parts", 224)[:4] == [0, 0, 0, 1]  # 45-px bands
    with pytest.raises(ValueError, match="multiple of 16"):
        skeletons.band_edges(100, align=16)


def test_mirror_swaps_limbs():
    perm = skeletons.mirror_joints(skeletons.NTU25)
    assert perm[4] == 8 and perm[8] == 4 and perm[21] == 23 and perm[19] == 15 and perm[3] == 3
    assert sorted(perm.tolist()) == list(range(25))
    op = skeletons.mirror_joints(skeletons.OPENPOSE18)
    assert op[5] == 2 and op[13] == 10 and op[0] == 0 and op[1] == 1


@pytest.mark.parametrize("skeleton", skeletons.SKELETONS.values(), ids=skeletons.SKELETONS)
def test_mirror_swaps_every_left_right_pair(skeleton):
    """Regression: only joints in the limb slots of `parts` swapped, so a mirrored OpenPose-18 or
    COCO-17 skeleton kept its "left eye" (ear) on the right. Every skeleton's mirror is an
    involution that maps each "left X" to "right X", keeps midline joints, and swaps limb slots."""
    perm = skeletons.mirror_joints(skeleton)
    names = skeleton.joints
    assert sorted(perm.tolist()) == list(range(skeleton.num_joints))
    assert np.array_equal(perm[perm], np.arange(skeleton.num_joints))
    for j, name in enumerate(names):
        side, _, rest = name.partition(" ")
        want = {"left": f"right {rest}", "right": f"left {rest}"}.get(side, name)
        assert names[perm[j]] == want, (skeleton.name, name, names[perm[j]])
    for left, right in ((1, 2), (3, 4)):  # arm (leg) slots swap, so a mirrored image swaps bands
        for a, b in zip(skeleton.parts[left], skeleton.parts[right]):
            if isinstance(a, int) and isinstance(b, int):
                assert perm[a] == b and perm[b] == a


def test_single_actor_zero_fill_has_no_twin(ntu_dir, tmp_path):
    """Regression: with `stacked` a single-actor sample repeated actor 1 in the bottom half, so every
    patch had an identical twin for MAE to copy. With fill=zero the bottom half is the origin."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "S001C001P001R001A001.skeleton").symlink_to(ntu_dir / "S001C001P001R001A001.skeleton")
    for fill in ("repeat", "zero"):
        convert("ntu60", raw, tmp_path / f"{fill}.zarr", size=32, persons="stacked", fill=fill, progress=False)
    rep, zero = (store.open_store(tmp_path / f"{f}.zarr") for f in ("repeat", "zero"))
    assert zero["actors"][0] == 1 and zero.attrs["s2i"]["fill"] == "zero"
    top, bottom = rep["images"][0][:, :16], rep["images"][0][:, 16:]
    assert np.array_equal(top, bottom)  # the twin the zero fill removes
    image, norm = zero["images"][0], zero["norm"][0]
    assert not np.array_equal(image[:, :16], image[:, 16:])
    decoded = decode_image(image, norm)
    step = (norm[:, 1] - norm[:, 0]) / 255
    assert np.all(np.abs(decoded[:, 16:]) <= step[:, None, None])  # the empty body sits at the origin
    with pytest.raises(Exception, match="unknown fill"):
        convert("ntu60", raw, tmp_path / "bad.zarr", size=32, fill="mean", progress=False)


def test_kinetics_y_points_up():
    fmt = get_format("kinetics")
    from tests.helpers import shared_data
    path = next((shared_data("kinetics_skeleton") / "kinetics_val").glob("*.json"))
    seq, _ = fmt.read_items(path, path.read_bytes(), [None])[0]
    nose, hips = seq[:, 0, 0], seq[:, 0, [8, 11]]
    seen = (nose[:, 2] > 0) & (hips[:, :, 2] > 0).all(axis=1)
    assert seen.sum() > 5
    assert np.mean(nose[seen, 1] > hips[seen, :, 1].mean(axis=1)) > 0.9  # G means "up", as NTU's y


def test_convert_with_dataset_limits(ntu_dir, tmp_path):
    convert("ntu60", ntu_dir, tmp_path / "d.zarr", size=32, norm="dataset", progress=False)
    root = store.open_store(tmp_path / "d.zarr")
    attrs = root.attrs["s2i"]
    limits = np.asarray(attrs["norm_limits"], dtype=np.float32)
    assert attrs["norm"] == "dataset" and limits.shape == (3, 2)
    norms = root["norm"][:]
    assert np.all(norms == limits[None])  # one scale for every sample
    train = root["splits/xsub/train"][:]
    want = dataset_limits([store.read_skeleton(root, int(i)) for i in train], skeletons.NTU25)
    assert np.allclose(limits, want)
    i = int(root["splits/xsub/test"][0])
    enc = Encoding(skeletons.NTU25, "parts", 32, "stacked", norm="dataset", limits=tuple(map(tuple, limits.tolist())))
    image, _ = encode([store.read_skeleton(root, i)], [int(root["actors"][i])], enc)
    assert np.array_equal(root["images"][i], image[0])
