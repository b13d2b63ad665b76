"""CTR-GCN's NTU `.npz` (`data/ntu*/seq_transformation.py`, read by its `feeders/feeder_ntu.py`):
per protocol one file `NTU60_CS.npz` (or `_CV`; NTU120: `_CSub`, `_CSet`) holding `x_train`,
`y_train`, `x_test`, `y_test`. `x_*` is (N, frames, 150) float32: each frame is 2 bodies × 25
NTU joints × xyz, an absent second body and the frames after a sample's end zero (CTR-GCN's
NTU60 padding; its NTU120 script repeats a single body, which the feeder treats alike). `y_*`
is one-hot (N, classes) float64, as `one_hot_vector` writes it.

`np.savez` holds every array in memory; here each member is written row block by row block
into an uncompressed zip entry (what `np.savez` makes), so memory is one shard whatever N.
A sample longer than `frames` is resampled to it (uniformly spaced frames); NTU's are at most
300, CTR-GCN's length."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import zarr

from ..store import class_names, read_header, split_indices
from .samples import SIDES, ExportError, check_out, protocols_to_write, samples_at

FRAMES = 300
BODIES, JOINTS, XYZ = 2, 25, 3
# CTR-GCN's file names: the protocol's code, by dataset size (seq_transformation.py)
CODES = {60: {"xsub": "CS", "xview": "CV"}, 120: {"xsub": "CSub", "xset": "CSet"}}


def file_name(protocol: str, classes: int) -> str:
    """`NTU60_CS.npz` for NTU60 xsub; a protocol CTR-GCN has no code for keeps its own name."""
    size = 60 if classes <= 60 else 120
    return f"NTU{size}_{CODES[size].get(protocol, protocol)}.npz"


def frame_rows(joints: np.ndarray, frames: int) -> np.ndarray:
    """(T, actors, 25, 3) -> (frames, 150): bodies side by side, zero after the end and for an
    absent second body; resampled to `frames` if longer."""
    if len(joints) > frames:
        joints = joints[np.linspace(0, len(joints) - 1, frames).round().astype(np.int64)]
    rows = np.zeros((frames, BODIES, JOINTS, XYZ), np.float32)
    rows[:len(joints), :joints.shape[1]] = joints
    return rows.reshape(frames, BODIES * JOINTS * XYZ)


def write_member(zf: zipfile.ZipFile, name: str, shape: tuple[int, ...], dtype: np.dtype,
                 blocks: Iterator[np.ndarray]) -> None:
    """One `.npy` member of an `.npz`, its rows streamed in: a version 1.0 header (NumPy pads it
    so the data is 64-byte aligned), then the blocks' bytes; the blocks must fill `shape`."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    expected, written = int(np.prod(shape)) * np.dtype(dtype).itemsize, 0
    with zf.open(f"{name}.npy", "w", force_zip64=True) as fp:
        np.lib.format.write_array_header_1_0(fp, header)
        for block in blocks:
            data = np.ascontiguousarray(block, dtype=dtype)
            fp.write(data.tobytes())
            written += data.nbytes
    if written != expected:  # the side changed under us: never leave a file that lies about its shape
        raise ExportError(f"{name}: wrote {written} bytes for shape {shape}, expected {expected}")


def write_protocol(root: zarr.Group, protocol: str, path: Path, frames: int, classes: int,
                   advance: Callable[[int], None]) -> dict[str, int]:
    """One protocol's `.npz`, written to a temporary name and renamed when whole."""
    tmp = path.with_name(path.name + ".partial")
    counts = {}
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for side in SIDES:
                indices = split_indices(root, protocol, side)
                n = len(indices)
                labels: list[int] = []

                def rows() -> Iterator[np.ndarray]:
                    for sample in samples_at(root, indices):
                        labels.append(sample.label)
                        advance(1)
                        yield frame_rows(sample.joints, frames)[None]

                write_member(zf, f"x_{side}", (n, frames, BODIES * JOINTS * XYZ), np.float32, rows())
                one_hot = np.eye(classes)
                write_member(zf, f"y_{side}", (n, classes), np.float64,
                             (one_hot[labels[i:i + 4096]] for i in range(0, len(labels), 4096)))
                counts[side] = n
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return counts


def plan_ctrgcn(root: zarr.Group, out: Path, protocol: str | None, frames: int, overwrite: bool) -> dict[str, str]:
    """{file name: protocol} to write, or ExportError before anything is written."""
    skeleton = read_header(root).skeleton
    if root["skeleton/joints"].shape[2:] != (JOINTS, XYZ) or skeleton != "ntu25":
        raise ExportError(f"--to ctrgcn writes NTU's 25 Kinect joints (xyz); this store holds "
                          f"{skeleton or 'another skeleton'}: use --to pyskl")
    if frames < 1:
        raise ExportError(f"--frames {frames}: give a positive number of frames (CTR-GCN uses 300)")
    classes = len(class_names(root))
    files = {file_name(p, classes): p for p in protocols_to_write(root, protocol)}
    check_out(out, list(files), overwrite)
    return files


def export_ctrgcn(root: zarr.Group, out: Path, protocol: str | None, frames: int, overwrite: bool,
                  advance: Callable[[int], None] = lambda n: None) -> dict[str, dict[str, int]]:
    """Every asked protocol's `.npz` into the folder `out`; {file name: {side: samples}}."""
    files, classes = plan_ctrgcn(root, out, protocol, frames, overwrite), len(class_names(root))
    out.mkdir(parents=True, exist_ok=True)
    return {name: write_protocol(root, p, out / name, frames, classes, advance) for name, p in files.items()}
