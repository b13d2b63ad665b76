"""`s2i show`: one sample's S2I image beside its skeleton (docs/design.md §2, §4).

The picture (PNG, always FIGSIZE × DPI = 1600 × 900 pixels, 16:9 for a slide):
- left, the S2I image enlarged with nearest-neighbour pixels by an integer factor when it
  fits in 680 px (3× for 224 × 224: pixel (r, c) covers PNG rows 122 + 3r.., columns
  80 + 3c..), the body-part bands marked by dashed lines and named above in their part
  colours (for `concat`, where each part's joints fall), the two actors' halves split by a
  white line and labelled when `stacked`, and the key frames ticked on its right edge;
- right, the skeleton from `skeleton/` (the stored, selected and centred sequence) as stick
  figures at 3-4 key frames (4, or 3 when two actors side by side need the width), bones
  coloured by body part, actor 2 dashed, all frames on the same scale. 3D coordinates are
  drawn as the camera saw them (right-handed camera coordinates, z away from the camera:
  with y up, x points left), 2D ones in image coordinates (y down; joints of confidence 0
  are skipped). Which way is up is judged from the data (head above the feet);
- below, the channel curves of the most moving joint of actor 1: its image column decoded
  with `decode_image` (dots, one per row) over the same column computed from `skeleton/`
  through the column and row maps (lines), and the largest difference over the whole
  image in quantisation steps: the picture shows that the encoding is invertible.
  With `stream` (bone, motion, bone-motion) the image is that stream's and the curves
  are the stream's values, computed from `skeleton/` by `streams.stream_values`.

Everything is read from the store's attributes (joint names, bones, bands, persons,
channels), so any dataset's store renders; the skeleton definition (for the column map and
the body parts) is looked up by name and, when unknown, parts are guessed from joint
names and the curves are left out. `--animate` writes a 1000 × 500 animation (GIF; WebP
or APNG by suffix) with Pillow. Matplotlib runs headless (Agg)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..encoder import skeletons, streams
from ..encoder.pixels import decode_image, quantised_values
from ..safe_text import visible
from ..store import StoreHeader, check_sample, read_header, read_skeleton, stream_arrays

DPI = 100
FIGSIZE = (16.0, 9.0)  # inches: the PNG is 1600 x 900 pixels
PNG_SIZE = (int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI))  # (width, height)
IMAGE_BOX = 680  # px: the enlarged image fits in this square, an integer factor when it can
IMAGE_LEFT, IMAGE_TOP = 80, 122  # px from the PNG's left and top edges to the image's first pixel
GIF_DPI = 80
GIF_FIGSIZE = (12.5, 6.25)  # 1000 x 500 pixels
GIF_FPS = 15
KEYFRAMES = 4

# Okabe-Ito colours: left side blue, right side orange, torso dark grey.
PART_COLORS = ("#3b3b3b", "#0072B2", "#D55E00", "#56B4E9", "#E69F00")
CHANNEL_COLORS = ("#d62728", "#2ca02c", "#1f77b4")  # x->R, y->G, z->B
BG = "#fbfbfb"


class ShowError(Exception):
    """A sample that cannot be shown (bad index or name); the message is one line."""


def find_index(root: zarr.Group, name: str) -> int:
    """The index of the sample called `name` (e.g. `S001C001P001R001A001`)."""
    names = [str(n) for n in root["name"][:]]  # a StringDType array: compare as Python strings
    wanted = name.removesuffix(".skeleton")
    hits = [i for i, n in enumerate(names) if n == wanted]
    if len(hits) == 0:
        close = [n for n in names if n[:8] == wanted[:8]][:3] or names[:3]
        raise ShowError(f"no sample named {name!r} in this store ({len(names)} samples, e.g. {', '.join(close)})")
    return hits[0]


def default_png(name: object, index: int) -> Path:
    """The file `s2i show` writes when no --out is given: the sample's name made a plain file
    name in the current folder. A store's names are data from a file someone else wrote
    (`../../x/y`, `/etc/z`, escape sequences): every character but letters, digits, `-`, `_`
    and `.` becomes `_`, no `..` survives, a leading dot goes, the length is capped, and the
    result never holds a folder, so nothing is written or created anywhere else."""
    text = re.sub(r"[^A-Za-z0-9._-]", "_", str(name))[:200]
    text = re.sub(r"\.{2,}", "_", text).lstrip(".")
    return Path(f"{text or f'sample-{index}'}.png")


def check_index(root: zarr.Group, index: int) -> int:
    n = root["label"].shape[0]
    if not -n <= index < n:
        raise ShowError(f"--index {index} is out of range: the store has {n} samples (0–{n - 1})")
    return index % n


# --------------------------------------------------------------------------- the sample


def joint_parts(header: StoreHeader, skel: skeletons.Skeleton | None, joints: int) -> np.ndarray:
    """Body part (0..4) of every joint, -1 for none: from the skeleton's parts, else guessed
    from the joint names (left/right, arm/leg words)."""
    part = np.full(joints, -1, dtype=np.int64)
    if skel is not None:
        for p, refs in enumerate(skel.parts):
            for ref in refs:
                if isinstance(ref, int):
                    part[ref] = p
    names = list(header.joint_names)
    legs = ("hip", "knee", "ankle", "foot", "toe", "heel")
    arms = ("shoulder", "elbow", "wrist", "hand", "thumb", "finger")
    for j, jn in enumerate(names[:joints]):
        if part[j] >= 0:
            continue
        jn = jn.lower().replace("_", " ")
        side = 0 if ("left" in jn or jn.startswith("l ")) else 1 if ("right" in jn or jn.startswith("r ")) else None
        if side is not None and any(w in jn for w in legs):
            part[j] = 3 + side
        elif side is not None and any(w in jn for w in arms):
            part[j] = 1 + side
        else:
            part[j] = 0
    return part


def y_points_down(header: StoreHeader, seq: np.ndarray, spatial: int) -> bool:
    """Whether the skeleton's y axis grows downwards (image coordinates), judged from the
    data: the head (or nose, neck) above the feet; 2D stores default to image coordinates."""
    names = [n.lower() for n in header.joint_names]
    top = [j for j, n in enumerate(names) if any(w in n for w in ("head", "nose", "neck"))]
    bottom = [j for j, n in enumerate(names) if any(w in n for w in ("ankle", "foot", "toe", "heel"))]
    if top and bottom and len(seq) and spatial >= 2:
        a = seq[:, 0]
        present = np.any(a[..., :spatial] != 0, axis=(1, 2))
        if present.any():
            a = a[present]
            return float(a[:, top, 1].mean()) < float(a[:, bottom, 1].mean())
    return header.is_2d


def reconstruct(skel: skeletons.Skeleton, header: StoreHeader, seq: np.ndarray, actors: int,
                height: int, width: int) -> np.ndarray:
    """The float image (3, H, W) the encoder quantised, computed from `skeleton/` with the
    same column and row maps: what `decode_image` of the stored image must give back."""
    col_idx, col_w = skeletons.column_map(skel, header.layout, width)
    actor, f0, f1, w = skeletons.row_map(len(seq), actors, height, header.persons, header.fill)
    w = w[:, None, None]
    rows = (1.0 - w) * seq[f0, actor] + w * seq[f1, actor]  # (H, V, C)
    out = np.einsum("wk,hwkc->chw", col_w.astype(np.float64), rows[:, col_idx, :].astype(np.float64))
    return out.astype(np.float32)


@dataclass
class Sample:
    index: int
    name: str
    label: int
    class_name: str
    frames: int
    actors: int
    image: np.ndarray  # (3, H, W) as stored
    norm: np.ndarray  # (3, 2)
    power: np.ndarray  # (3,) the stream's quantisation power (pixels.decode_image)
    stream: str
    seq: np.ndarray  # (T, 2, V, C) from skeleton/
    header: StoreHeader
    skel: skeletons.Skeleton | None

    @property
    def is_2d(self) -> bool:
        return self.header.is_2d

    @property
    def spatial(self) -> int:
        return 2 if self.is_2d else 3

    @property
    def values(self) -> np.ndarray:
        """(T, 2, V, C): the stream's values from skeleton/ (the skeleton itself for joint)."""
        if self.stream == "joint" or self.skel is None:
            return self.seq
        return streams.stream_values(self.seq, np.array([0, len(self.seq)]), self.stream, self.skel)


def load_sample(root: zarr.Group, index: int, stream: str = "joint") -> Sample:
    index = check_index(root, index)
    check_sample(root, index)  # a rejected file's slot has no image or skeleton
    images, norm, power = stream_arrays(root, stream)
    header = read_header(root)
    label = int(root["label"][index])
    return Sample(
        index=index, name=visible(root["name"][index]), label=label,
        class_name=visible(header.class_name(label)),
        frames=int(root["frames"][index]), actors=int(root["actors"][index]),
        image=np.asarray(images[index]), norm=np.asarray(norm[index], dtype=np.float32), power=power, stream=stream,
        seq=np.asarray(read_skeleton(root, index), dtype=np.float32), header=header, skel=skeletons.find_skeleton(header),
    )


def key_frames(frames: int, count: int = KEYFRAMES) -> np.ndarray:
    """`count` frames spread evenly from the first to the last (fewer for short samples)."""
    if frames <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, frames - 1, min(count, frames))).astype(np.int64))


def frame_rows(frames: int, height: int, persons: str, actors: int) -> list[tuple[int, np.ndarray]]:
    """Per half of the image (one for `main`): its first row and each frame's row position."""
    pos = np.arange(frames, dtype=np.float64)
    return [(first, (pos + 0.5) * (end - first) / max(frames, 1) - 0.5)
            for first, end in skeletons.actor_rows(height, persons)]


# --------------------------------------------------------------------------- drawing


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _present(seq: np.ndarray, spatial: int, is_2d: bool) -> np.ndarray:
    """(T, 2, V) joints to draw: non-zero coordinates, and confidence > 0 for 2D."""
    ok = np.any(seq[..., :spatial] != 0, axis=-1)
    if is_2d:
        ok &= seq[..., 2] > 0
    return ok


class Painter:
    """Draws the pieces of the picture for one sample (shared by the PNG and the GIF)."""

    def __init__(self, s: Sample):
        self.s = s
        joints = s.seq.shape[2] if s.seq.ndim == 4 else len(s.header.joint_names)
        self.joints = joints
        self.part = joint_parts(s.header, s.skel, joints)
        self.bones = [(int(c), int(p)) for c, p in s.header.bones if c < joints and p < joints]
        self.ok = _present(s.seq, s.spatial, s.is_2d) if len(s.seq) else np.zeros((0, 2, joints), bool)
        self.flip = y_points_down(s.header, s.seq, s.spatial)
        # 3D camera coordinates are right-handed with z away from the camera (Kinect, LCR-Net):
        # with y up, x points to the camera's left, so the camera's view draws x leftwards.
        # 2D coordinates are the image's own (x right).
        self.mirror = not s.is_2d and not self.flip
        self.limits = self._limits()

    def color(self, j: int) -> str:
        p = self.part[j] if 0 <= j < len(self.part) else -1
        return PART_COLORS[p] if p >= 0 else "#888888"

    def _limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """x and y limits shared by every frame: the whole sequence's extent plus a margin."""
        s, ok = self.s, self.ok
        if not ok.any():
            return (-1.0, 1.0), (-1.0, 1.0)
        xy = s.seq[..., :2][ok]
        lo, hi = xy.min(axis=0).astype(np.float64), xy.max(axis=0).astype(np.float64)
        span = hi - lo
        pad = 0.06 * max(float(span.max()), 1e-6)
        lo, hi = lo - pad, hi + pad
        # not thinner than a quarter of the height: a standing figure keeps room for its title
        height = hi[1] - lo[1]
        if hi[0] - lo[0] < 0.25 * height:
            mid, half = (lo[0] + hi[0]) / 2, 0.125 * height
            lo[0], hi[0] = mid - half, mid + half
        return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))

    def widen(self, aspect: float) -> None:
        """Widen the x limits (about their middle) to at least `aspect` = width / height."""
        (x0, x1), (y0, y1) = self.limits
        want = aspect * (y1 - y0)
        if x1 - x0 < want:
            mid = (x0 + x1) / 2
            self.limits = ((mid - want / 2, mid + want / 2), (y0, y1))

    @property
    def aspect(self) -> float:
        """Width / height of the drawing box in data units (equal scales on x and y)."""
        (x0, x1), (y0, y1) = self.limits
        return (x1 - x0) / max(y1 - y0, 1e-9)

    # the image ------------------------------------------------------------------------

    def rgb(self) -> np.ndarray:
        img = self.s.image
        if img.dtype != np.uint8:  # a float16 store: show the values as they are, scaled
            img = np.clip(np.asarray(img, np.float32) * (255.0 if float(np.nanmax(img)) <= 1.0 else 1.0), 0, 255)
            img = img.astype(np.uint8)
        return np.transpose(img, (1, 2, 0))

    def draw_image(self, ax, fontsize: float = 11.0, marks: np.ndarray | None = None) -> list:
        """The S2I image with bands, actor halves and (optionally) key-frame ticks; returns
        the horizontal cursor lines that the animation moves."""
        s, header = self.s, self.s.header
        h, w = s.image.shape[1:]
        ax.imshow(self.rgb(), interpolation="nearest", extent=(0, w, h, 0), aspect="equal")
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        parts = list(header.part_names or skeletons.PART_NAMES)
        bands = list(header.bands or (skeletons.band_edges(w, len(parts)).tolist()
                                      if header.layout == "parts" else [0, w]))
        if header.layout == "concat" and s.skel is not None and len(s.skel.parts) == len(parts):
            # the parts' joints side by side, resized as a whole: part k starts where its first
            # joint's column would (source position cum_k - 0.5 maps to column cum_k * W / n)
            cum = np.cumsum([0] + [len(p) for p in s.skel.parts])
            bands = list(cum * w / cum[-1])
        line = dict(color="white", lw=1.2, alpha=0.9)
        if len(bands) == len(parts) + 1:
            for b in bands[1:-1]:
                ax.axvline(b, ls=(0, (4, 3)), **line)
            centres = [(a + b) / 2 for a, b in zip(bands[:-1], bands[1:])]
            labels = parts
            colors = PART_COLORS[:len(parts)]
        else:  # concat: one band over the width, the parts' joints side by side
            centres, labels, colors = [w / 2], [f"{header.layout}: all joints"], ["#3b3b3b"]
        ax.set_xticks(centres)
        ax.set_xticklabels(labels, fontsize=fontsize)
        ax.tick_params(axis="x", length=0, pad=6, labeltop=True, labelbottom=False, top=False, bottom=False)
        for tick, c in zip(ax.get_xticklabels(), colors):
            tick.set_color(c)
            tick.set_fontweight("bold")
        halves = frame_rows(max(s.frames, 1), h, header.persons, s.actors)
        if header.stacked:
            bands = skeletons.actor_rows(h, "stacked")
            ax.axhline(bands[1][0], color="white", lw=2.0)
            second = "actor 2" if s.actors > 1 else "actor 1 (again)"
            yt, yl = [(first + end) / 2 for first, end in bands], ["actor 1", second]
        else:
            yt, yl = [h / 2], ["actor 1"]
        ax.set_yticks(yt)
        ax.set_yticklabels(yl, rotation=90, va="center", fontsize=fontsize)
        ax.tick_params(axis="y", length=0, pad=6)
        each = " of each half" if header.stacked else ""
        ax.set_ylabel(f"time  (rows: first frame at the top{each})", fontsize=fontsize - 1, color="#555555")
        for side in ax.spines.values():
            side.set_visible(False)
        if marks is not None:
            edge = ax.get_yaxis_transform()  # x in axes fractions, y in rows
            for half, (start, pos) in enumerate(halves):
                for k, f in enumerate(marks):
                    y = start + pos[f] + 0.5
                    ax.plot([1.002, 1.025], [y, y], color="#222222", lw=1.4, clip_on=False, transform=edge)
                    if half == 0:  # the second half's ticks are at the same frames: numbered once
                        ax.text(1.032, y, str(k + 1), fontsize=fontsize - 1, va="center", ha="left",
                                color="#222222", clip_on=False, transform=edge)
        cursors = []
        for start, _ in halves:
            cursors.append(ax.axhline(start, color="white", lw=1.5, ls="-", alpha=0.0))
        return cursors

    # the skeleton ----------------------------------------------------------------------

    def draw_frame(self, ax, t: int, lw: float = 2.2, ms: float = 3.5) -> list:
        """Stick figures of every present actor at frame `t` (actor 2 dashed)."""
        s = self.s
        artists = []
        if t >= len(s.seq):
            return artists
        for a in range(min(max(s.actors, 1), 2)):
            ok = self.ok[t, a]
            if not ok.any():
                continue
            xy = s.seq[t, a, :, :2]
            style = "-" if a == 0 else (0, (3, 1.5))
            alpha = 1.0 if a == 0 else 0.7
            for c, p in self.bones:
                if ok[c] and ok[p]:
                    artists += ax.plot(xy[[c, p], 0], xy[[c, p], 1], color=self.color(c), lw=lw, ls=style, alpha=alpha,
                                       solid_capstyle="round", dash_capstyle="round", zorder=2)
            idx = np.flatnonzero(ok)
            artists.append(ax.scatter(xy[idx, 0], xy[idx, 1], s=ms ** 2, zorder=3,
                                      c=[self.color(j) for j in idx], edgecolors="white", linewidths=0.6,
                                      alpha=alpha))
        return artists

    @property
    def plane(self) -> str:
        """How the image plane is drawn, for captions."""
        if self.s.is_2d:
            return "image plane: x right, y " + ("down" if self.flip else "up")
        return "camera view: x " + ("left" if self.mirror else "right") + ", y " + ("down" if self.flip else "up")

    def setup_frame_axes(self, ax) -> None:
        (x0, x1), (y0, y1) = self.limits
        ax.set_xlim((x1, x0) if self.mirror else (x0, x1))
        ax.set_ylim((y1, y0) if self.flip else (y0, y1))
        ax.set_aspect("equal", adjustable="box")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_facecolor("white")
        for side in ax.spines.values():
            side.set_color("#cccccc")

    # the channel curves ----------------------------------------------------------------

    def curve_joint(self) -> tuple[int, int] | None:
        """(joint, column) for the curves: the most moving joint of actor 1 among those with
        a column of their own (the column where the joint weighs most)."""
        s = self.s
        if s.skel is None or len(s.seq) < 2:
            return None
        col_idx, col_w = skeletons.column_map(s.skel, s.header.layout, s.image.shape[2])
        weight = np.zeros((s.image.shape[2], self.joints))
        for k in range(col_idx.shape[1]):
            np.add.at(weight, (np.arange(len(col_idx)), col_idx[:, k]), col_w[:, k])
        best_col, best_w = weight.argmax(axis=0), weight.max(axis=0)
        ok = self.ok[:, 0]
        motion = np.array([s.seq[ok[:, j], 0, j, :s.spatial].std(axis=0).sum() if ok[:, j].sum() > 1 else -1.0
                           for j in range(self.joints)])
        motion[best_w < 0.75] = -1.0
        j = int(motion.argmax())
        return (j, int(best_col[j])) if motion[j] >= 0 else None

    def draw_curves(self, ax, fontsize: float = 10.0) -> str:
        """Decoded-from-image dots over skeleton/ lines for one joint; returns the caption."""
        s, header = self.s, self.s.header
        names = list(header.joint_names)
        channels = list(header.channels)
        pick = self.curve_joint()
        decoded = decode_image(s.image.astype(np.uint8), s.norm, s.power) if s.image.dtype == np.uint8 else None
        if pick is None or decoded is None:
            ax.set_axis_off()
            skel_name = header.skeleton or "of this store"
            why = f"s2i has no definition of skeleton {skel_name}" if s.skel is None else "too few frames"
            ax.text(0.5, 0.5, f"(channel curves skipped: {why})", ha="center", va="center", color="#777777",
                    fontsize=fontsize, transform=ax.transAxes)
            return ""
        j, col = pick
        h, w = s.image.shape[1:]
        values = s.values
        expected = reconstruct(s.skel, header, values, s.actors, h, w)
        actor, f0, f1, rw = skeletons.row_map(len(s.seq), s.actors, h, header.persons)
        rows = np.flatnonzero(actor == 0)[: skeletons.actor_rows(h, header.persons)[0][1]]
        pos = (1.0 - rw[rows]) * f0[rows] + rw[rows] * f1[rows] + 1  # 1-based frame position of each row
        frames_axis = np.arange(1, len(s.seq) + 1)
        # the value the column holds at each frame, from skeleton/ through the same column taps
        col_idx, col_w = skeletons.column_map(s.skel, header.layout, w)
        line = np.einsum("k,tkc->ct", col_w[col].astype(np.float64), values[:, 0, col_idx[col], :].astype(np.float64))
        unit = "" if s.is_2d else " (m)"
        for c in range(s.spatial):
            ax.plot(frames_axis, line[c], color=CHANNEL_COLORS[c], lw=1.6, alpha=0.85,
                    label=f"{channels[c]} → {'RGB'[c]}")
            ax.plot(pos, decoded[c, rows, col], ls="none", marker="o", ms=2.6, color=CHANNEL_COLORS[c],
                    markeredgecolor="white", markeredgewidth=0.3)
        ax.set_xlim(1, max(len(s.seq), 2))
        ax.set_xlabel("frame", fontsize=fontsize)
        quantity = {"joint": "coordinate", "bone": "bone", "motion": "motion / frame",
                    "bone-motion": "bone motion / frame"}.get(s.stream, s.stream)
        ax.set_ylabel(f"{quantity}{unit}", fontsize=fontsize)
        ax.tick_params(labelsize=fontsize - 1)
        ax.grid(True, color="#e6e6e6", lw=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=fontsize - 1, frameon=False,
                  handlelength=1.4, title="channel", title_fontsize=fontsize - 1)
        jn = names[j] if j < len(names) else f"joint {j}"
        # two lines: in one, a long joint name or stream ran past the figure's right edge
        ax.set_title(f"{jn}, actor 1: image column {col}\ndecoded (dots) over "
                     f"{'skeleton/' if s.stream == 'joint' else s.stream + ' from skeleton/'} (lines)",
                     fontsize=fontsize + 1, loc="left", color="#222222")
        err = np.abs(decoded - expected).reshape(3, -1).max(axis=1)
        flat = s.norm[:, 1] <= s.norm[:, 0]  # a constant channel: every value is its one level
        in_steps = float(np.max(np.where(flat[:, None, None], 0.0, np.abs(
            quantised_values(expected, s.norm, s.power) - s.image.astype(np.float64)))))
        err_txt = (f"{1000 * err[:s.spatial].max():.1f} mm" if not s.is_2d else f"{err[:s.spatial].max():.3g}")
        return (f"decoded image vs skeleton/: all {h}×{w}×3 values within {in_steps:.2f} "
                f"quantisation steps (≤ {err_txt})")


def render_sample(root: zarr.Group, index: int, out: Path, animate: Path | None = None, *,
                  keyframes: int | None = None, max_animation_frames: int = 90, stream: str = "joint") -> Path:
    """Draw sample `index` of an open store to `out` (PNG, always 1600 x 900 px); with
    `animate`, also a GIF of the whole sequence (1000 x 500 px). `keyframes` (default: 4, or
    3 when the actors stand side by side and need the width). Returns `out`."""
    plt = _mpl()
    from matplotlib.lines import Line2D

    s = load_sample(root, index, stream)
    paint = Painter(s)
    header = s.header
    h, w = s.image.shape[1:]
    W, H = PNG_SIZE
    fig = plt.figure(figsize=FIGSIZE, dpi=DPI, facecolor=BG)

    # title ---------------------------------------------------------------------------------
    fig.text(40 / W, 1 - 20 / H, s.name, fontsize=20, fontweight="bold", va="top", ha="left", family="monospace")
    actor_txt = f"{s.actors} actor" + ("s" if s.actors != 1 else "")
    fig.text(1 - 40 / W, 1 - 24 / H, f"{header.dataset}  ·  sample {s.index}", fontsize=13,
             va="top", ha="right", color="#666666")
    fig.text(40 / W, 1 - 54 / H, f"{s.class_name}  (class {s.label + 1})   ·   {s.frames} frames   ·   {actor_txt}",
             fontsize=15, va="top", ha="left", color="#222222")

    # the image: an integer enlargement when one fits in the box (3x for 224 x 224) ------------
    scale = IMAGE_BOX / max(h, w)
    scale = math.floor(scale) if scale >= 1 else scale
    iw, ih = w * scale, h * scale
    left, top = IMAGE_LEFT, H - IMAGE_TOP
    bottom = top - ih
    ax_img = fig.add_axes((left / W, bottom / H, iw / W, ih / H))
    n_key = keyframes or (3 if paint.aspect > 0.55 else KEYFRAMES)
    marks = key_frames(len(s.seq), n_key)
    paint.draw_image(ax_img, fontsize=12, marks=marks)
    mode = {"stacked": "stacked persons", "main": "main actor only"}.get(header.persons, header.persons)
    channels = header.channels
    fig.text(left / W, (bottom - 14) / H,
             f"S2I {s.stream} image {h} × {w}, {header.layout} layout, {mode}  ·  shown {scale:g}× (nearest)  ·  "
             f"R, G, B = {', '.join(channels)}", ha="left", va="top", fontsize=11, color="#444444")

    # key frames ------------------------------------------------------------------------------
    x0, x1 = 870, W - 40
    ptop, pbot = top, 470  # panel area, titles included
    title_h = 30
    gap = 16
    avail = ptop - pbot - title_h
    n = max(len(marks), 1)
    paint.widen(140 / avail)  # room for each panel's title
    pw = min(avail * paint.aspect, (x1 - x0 - gap * (n - 1)) / n)
    ph = pw / paint.aspect
    row_w = n * pw + (n - 1) * gap
    start = (x0 + x1) / 2 - row_w / 2
    ybox = ptop - title_h - ph
    for k, t in enumerate(marks):
        ax = fig.add_axes(((start + k * (pw + gap)) / W, ybox / H, pw / W, ph / H))
        paint.setup_frame_axes(ax)
        paint.draw_frame(ax, int(t), lw=2.4, ms=4.4)
        ax.set_title(f"{k + 1} · frame {t + 1}/{len(s.seq)}", fontsize=12, color="#222222", pad=6)
    if len(marks) == 0:
        fig.text((x0 + x1) / 2 / W, (ptop + pbot) / 2 / H, "(no skeleton frames stored)", ha="center",
                 color="#777777", fontsize=13)
    who = "  ·  actor 2 dashed" if s.actors > 1 else ""
    fig.text((x0 + x1) / 2 / W, (ybox - 10) / H,
             f"skeleton/ at the frames ticked beside the image  ·  {paint.plane}{who}",
             ha="center", va="top", fontsize=11, color="#444444")
    handles = [Line2D([], [], color=c, lw=3, label=p)
               for p, c in zip(header.part_names or skeletons.PART_NAMES, PART_COLORS)]
    if (paint.part >= 0).any():
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=((x0 + x1) / 2 / W, (ybox - 32) / H),
                   ncol=len(handles), fontsize=11, frameon=False, handlelength=1.8, columnspacing=1.3)

    # channel curves --------------------------------------------------------------------------
    cb, ct = 175, int(np.clip(ybox - 125, 340, 420))  # the two-line title stays clear of the legend above
    ax_c = fig.add_axes(((x0 + 40) / W, cb / H, (x1 - x0 - 140) / W, (ct - cb) / H))
    ax_c.set_facecolor("white")
    caption = paint.draw_curves(ax_c, fontsize=11)
    if caption:
        fig.text((x0 - 20) / W, (cb - 50) / H, caption, ha="left", va="top", fontsize=10.5, color="#444444")
    rows_txt = "top half actor 1, bottom half actor 2" if header.stacked else "actor 1"
    parts_txt = ("five body-part bands, joints proximal → distal"
                 if header.layout == "parts" else "the parts' joints side by side, resized as a whole")
    joint_scaling = {"channel": "each channel min–max scaled per sample",
                     "isotropic": "one min–max scale per sample for all channels",
                     "dataset": "fixed limits from the training split"}
    scaling = (joint_scaling.get(header.norm, "") if s.stream == "joint" else
               "0 = mid-grey, scaled by the sample's largest value" + (", signed sqrt" if s.power[0] != 1 else ""))
    fig.text(40 / W, 24 / H, f"S2I: rows = time ({rows_txt});  columns = {parts_txt};  {scaling}",
             ha="left", va="bottom", fontsize=11, color="#666666")

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, facecolor=BG)  # no bbox_inches="tight": the size stays 1600 x 900
    plt.close(fig)
    if animate is not None:
        render_animation(s, paint, Path(animate), max_frames=max_animation_frames)
    return out


def _mix(color: str, white: float) -> tuple[int, int, int]:
    """An '#rrggbb' colour blended with `white` parts of white, as 0-255 RGB."""
    rgb = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)
    return tuple(int(round(v)) for v in rgb * (1 - white) + 255 * white)


def render_animation(s: Sample, paint: Painter, out: Path, max_frames: int = 90, fps: int = GIF_FPS) -> Path:
    """An animation (1000 x 500 px, `fps` frames a second, looping; GIF, or WebP / APNG by
    the suffix of `out`): the S2I image with white
    cursors on the current frame's rows beside the moving skeleton (actor 2 lighter); at
    most `max_frames` frames, evenly spread over the sequence.

    Matplotlib draws the still parts once (at 2x); each frame's stick figures and cursors
    are drawn on a copy with Pillow through the axes' transforms, then scaled down
    (anti-aliasing) and mapped to one shared palette: seconds, not minutes."""
    from matplotlib import font_manager
    from PIL import Image, ImageDraw, ImageFont

    plt = _mpl()
    T = len(s.seq)
    if T == 0:
        raise ShowError(f"sample {s.name} has no skeleton frames to animate")
    frames = np.unique(np.round(np.linspace(0, T - 1, min(T, max_frames))).astype(np.int64))
    ss = 2  # supersampling
    h, w = s.image.shape[1:]
    W, H = int(GIF_FIGSIZE[0] * GIF_DPI), int(GIF_FIGSIZE[1] * GIF_DPI)
    fig = plt.figure(figsize=GIF_FIGSIZE, dpi=GIF_DPI * ss, facecolor=BG)
    box = 390
    ax_img = fig.add_axes((60 / W, 40 / H, box / W, box / H))
    paint.draw_image(ax_img, fontsize=10)
    ax = fig.add_axes((540 / W, 40 / H, 420 / W, 400 / H))
    paint.setup_frame_axes(ax)
    ax.set_anchor("C")
    fig.text(40 / W, 1 - 12 / H, f"{s.name}  ·  {s.class_name}", fontsize=13, va="top", ha="left", color="#111111")
    who = "  ·  actor 2 lighter" if s.actors > 1 else ""
    fig.text(750 / W, 14 / H, f"skeleton/  ·  {paint.plane}{who}", fontsize=9, ha="center", va="bottom",
             color="#555555")
    fig.canvas.draw()
    big = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    height_px = big.size[1]
    to_px = ax.transData
    img_to_px = ax_img.transData
    img_x0, img_x1 = img_to_px.transform([(0, 0), (w, 0)])[:, 0] / ss
    bb = ax.get_window_extent()  # the skeleton panel, drawn at 2x and scaled down (anti-aliased)
    panel = tuple(int(v) // ss * ss for v in (bb.x0 + ss, height_px - bb.y1 + ss, bb.x1 - ss, height_px - bb.y0 - ss))
    panel_bg = big.crop(panel)
    background = big.reduce(ss)
    plt.close(fig)

    font = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), 13 * GIF_DPI // 72)
    halves = frame_rows(T, h, s.header.persons, s.actors)
    colors = [[_mix(paint.color(j), 0.0) for j in range(paint.joints)],
              [_mix(paint.color(j), 0.45) for j in range(paint.joints)]]
    lw, r = int(round(3.0 * ss * GIF_DPI / 72)), 2.6 * ss * GIF_DPI / 72
    rgb_frames = []
    for t in frames:
        im = background.copy()
        draw = ImageDraw.Draw(im)
        for start, pos in halves:
            y = (height_px - img_to_px.transform([(0, start + pos[t] + 0.5)])[0, 1]) / ss
            draw.line([(img_x0, y), (img_x1, y)], fill=(255, 255, 255), width=1)
        draw.text((W - 40, 12), f"frame {t + 1} / {T}", fill=(17, 17, 17), font=font, anchor="ra")
        layer = panel_bg.copy()
        draw = ImageDraw.Draw(layer)
        for a in reversed(range(min(max(s.actors, 1), 2))):  # actor 1 on top
            ok = paint.ok[t, a]
            if not ok.any():
                continue
            px = to_px.transform(s.seq[t, a, :, :2].astype(np.float64))
            px[:, 1] = height_px - px[:, 1]
            px -= panel[:2]
            for c, p in paint.bones:
                if ok[c] and ok[p]:
                    draw.line([tuple(px[c]), tuple(px[p])], fill=colors[a][c], width=lw, joint="curve")
            for j in np.flatnonzero(ok):
                x, y = px[j]
                draw.ellipse([x - r, y - r, x + r, y + r], fill=colors[a][j])
        im.paste(layer.reduce(ss), (panel[0] // ss, panel[1] // ss))
        rgb_frames.append(im)
    out.parent.mkdir(parents=True, exist_ok=True)
    duration = int(round(1000 / fps))
    if out.suffix.lower() != ".gif":  # .webp, .png (APNG): full colour, Pillow picks the format
        rgb_frames[0].save(out, save_all=True, append_images=rgb_frames[1:], duration=duration, loop=0)
        return out
    # one palette for every frame (from a few frames side by side): the still parts stay identical
    sample = [rgb_frames[i] for i in np.unique(np.linspace(0, len(rgb_frames) - 1, 3).astype(int))]
    strip = Image.new("RGB", (W, H * len(sample)))
    for k, f in enumerate(sample):
        strip.paste(f, (0, k * H))
    fixed = {(255, 255, 255), _mix(BG, 0.0), *(_mix(g, 0.0) for g in ("#111111", "#222222", "#3b3b3b", "#555555",
                                                                      "#777777", "#999999", "#cccccc"))}
    fixed |= {_mix(c, m) for c in PART_COLORS for m in (0.0, 0.45)}  # text and bones keep their colours
    fixed = sorted(fixed)
    free = strip.quantize(colors=256 - len(fixed), method=Image.Quantize.MEDIANCUT).getpalette()
    palette = Image.new("P", (1, 1))
    palette.putpalette(free[:3 * (256 - len(fixed))] + [v for c in fixed for v in c])
    gif = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in rgb_frames]
    gif[0].save(out, save_all=True, append_images=gif[1:], duration=duration, loop=0)
    return out
