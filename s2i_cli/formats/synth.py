"""Synthetic NTU RGB+D datasets: learnable skeleton motion written as real `.skeleton` files.

The files follow formats.md §1.2 field for field (10 body-info values, 25 joints of 12
values, numbers printed like the Kinect exporter: 7 significant digits, integers without a
dot, `E-05` exponents, 64-bit body IDs above 2**53), so every reader and every protocol of
the real dataset can be exercised without the real data.

What is fixed and what is drawn:
- each action class has its own motion (posture, which joints swing, how far, how often),
  drawn from a generator seeded by the class number only, so every seed shows the same
  classes and a model trained on one seed's files can be tested on another's;
- each subject has its own body proportions, seeded by the subject number only;
- the seed draws everything per sample: names within the protocol constraints, length,
  amplitudes, phases, position in front of the camera, tracking noise.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ..kernels.text_format import write_frames

from s2i_cli.formats.ntu import VARIANTS, Variant, parse_name, sample_name
from s2i_cli.formats.ntu_names import NTU_TWO_PERSON_ACTIONS


# Stream tags keep the class, subject and sample generators independent of one another.
_CLASS_STREAM, _SUBJECT_STREAM, _SAMPLE_STREAM, _NAME_STREAM = 1, 2, 3, 4

_MIN_FRAMES, _MAX_FRAMES = 40, 120
_BODY_ID_BASE = 2**56  # real IDs look like 2**56 + a few thousand (formats.md §1.2)

# ---------------------------------------------------------------------------------------
# The skeleton: Kinect v2 joint order (0-based), parent of each joint and its rest offset
# from that parent in the body frame (metres; +x the subject's right, +y up, the subject
# faces -z, i.e. towards a camera straight in front, as in the real files).
_PARENT = (-1, 0, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 1, 7, 7, 11, 11)
_LEFT_OFFSETS = {  # right-side joints mirror these in x
    4: (-0.17, -0.04, 0.0), 5: (0.0, -0.27, 0.0), 6: (0.0, -0.25, 0.0), 7: (0.0, -0.06, 0.0),
    21: (0.0, -0.08, 0.0), 22: (0.02, -0.03, -0.04),
    12: (-0.08, -0.05, 0.0), 13: (0.0, -0.42, 0.0), 14: (0.0, -0.40, 0.0), 15: (0.0, -0.05, -0.12),
}
_MIRROR = {4: 8, 5: 9, 6: 10, 7: 11, 21: 23, 22: 24, 12: 16, 13: 17, 14: 18, 15: 19}
_CENTRE_OFFSETS = {1: (0.0, 0.27, 0.0), 20: (0.0, 0.23, 0.0), 2: (0.0, 0.08, 0.0), 3: (0.0, 0.13, 0.0)}
# Head, feet, hand tips, thumbs: the exporter writes their orientation as `0 0 0 0`.
_LEAF_JOINTS = (3, 15, 19, 21, 22, 23, 24)
# Per-joint chance of trackingState 1 (inferred): hands and feet are lost more often.
_INFERRED_RATE = np.where(np.isin(np.arange(25), [7, 11, 15, 19, 21, 22, 23, 24]), 0.15, 0.03)

# Joints a class may move, with the largest swing (radians) each can take. Elbows and
# knees are hinges: they only flex, about the body x axis, forwards (+) or backwards (-).
_BALL_JOINTS = {0: 0.3, 1: 0.6, 2: 0.5, 4: 1.6, 8: 1.6, 6: 0.5, 10: 0.5, 12: 0.9, 16: 0.9}
_HINGE_JOINTS = {5: 1.6, 9: 1.6, 13: -1.3, 17: -1.3}
_IS_HINGE = np.isin(np.arange(25), list(_HINGE_JOINTS))
_POSTURE_JOINTS = (1, 2, 4, 8, 5, 9, 12, 16)
_MIRRORED_JOINT = {4: 8, 8: 4, 6: 10, 10: 6, 12: 16, 16: 12, 5: 9, 9: 5, 13: 17, 17: 13}
# Arms hang slightly away from the body in the rest pose.
_REST_ROTVEC = np.zeros((25, 3))
_REST_ROTVEC[4, 2], _REST_ROTVEC[8, 2] = -0.15, 0.15

# Cameras 1, 2, 3 see the scene from -45°, 0° and +45° about the vertical axis.
_CAMERA_YAW = {1: -np.pi / 4, 2: 0.0, 3: np.pi / 4}
# Kinect v2 projections fitted to the real sample files (formats.md §1.2).
_DEPTH_F, _DEPTH_CX, _DEPTH_CY = 366.0, 256.0, 209.0
_COLOR_F, _COLOR_CX, _COLOR_CY, _COLOR_BASELINE = 1060.0, 960.0, 567.0, 0.055


@dataclass(frozen=True)
class _Motion:
    """One person's part of a class: local joint rotations over normalised time t in [0, 1]."""
    posture: np.ndarray    # (25, 3) constant rotation vector per joint
    amplitude: np.ndarray  # (25, 3) swing rotation vector per joint
    cycles: np.ndarray     # (25,) swings per sequence
    phase: np.ndarray      # (25,)
    bounce: float          # vertical root oscillation (m): jumps, squats
    sway: float            # sideways root oscillation (m)
    root_cycles: float


@dataclass(frozen=True)
class _ClassSpec:
    actors: tuple[_Motion, ...]
    # Two-person classes: distance between the actors at the start and its change.
    distance: float = 0.0
    approach: float = 0.0
    approach_is_ramp: bool = True


# --------------------------------------------------------------------------- public API

def synthesize(dataset: str, out_dir: Path, samples: int, seed: int = 0, classes: int | None = None,
               progress: Callable[[int], None] | None = None) -> list[Path]:
    """Write `samples` synthetic `.skeleton` files into `out_dir` and return their paths.

    `dataset` is "ntu60" or "ntu120"; `classes` restricts the actions to that many, spread
    over the dataset's range (the last action, a two-person one, is always included).
    Samples go round-robin over the classes, and names are chosen so that every benchmark
    protocol (X-Sub, X-View, X-Set) has training and test samples from the second sample on.
    """
    limits = _check_arguments(dataset, samples, seed, classes)
    actions = _chosen_actions(limits.actions, classes)
    names = _sample_names(dataset, limits, actions, samples, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    class_specs = {a: _class_spec(a) for a in actions}
    paths = []
    for index, name in enumerate(names):
        fields = parse_name(name)
        camera, subject, action = fields["camera"], fields["subject"], fields["action"]
        rng = np.random.default_rng([seed, _SAMPLE_STREAM, index])
        path = out_dir / f"{name}.skeleton"
        path.write_bytes(_sample_bytes(class_specs[action], _body_offsets(subject), camera, rng))
        paths.append(path)
        if progress is not None:
            progress(1)
    return paths


def _check_arguments(dataset: str, samples: int, seed: int, classes: int | None) -> Variant:
    if dataset not in VARIANTS:
        raise ValueError(f"unknown dataset {dataset!r}: synthetic data exists for {', '.join(VARIANTS)}")
    limits = VARIANTS[dataset]
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if classes is not None and not 1 <= classes <= limits.actions:
        raise ValueError(f"classes must be between 1 and {limits.actions} for {dataset}, got {classes}")
    return limits


def _chosen_actions(n_actions: int, classes: int | None) -> list[int]:
    """K actions evenly spread over 1..n; the last (A060 / A120) is two-person in both datasets."""
    if classes is None:
        return list(range(1, n_actions + 1))
    if classes == 1:
        return [1]
    return [int(a) for a in np.round(np.linspace(1, n_actions, classes))]


# --------------------------------------------------------------------------- names

def _sample_names(dataset: str, limits: Variant, actions: list[int], samples: int, seed: int) -> list[str]:
    """Round-robin classes; each sample's protocol sides follow a fixed 12-step pattern.

    Sample i is the k-th of its class a (position j in `actions`). Pattern p = j + k cycles
    through every (camera, X-Sub side, X-Set side) combination, so consecutive samples fall
    on different sides and each class meets every side as it grows. Within a side the
    setup, subject and replication come from a seeded permutation of all allowed
    combinations, so names are unique without retries.
    """
    train = sorted(limits.xsub_train)
    test = sorted(set(range(1, limits.subjects + 1)) - set(train))
    even = list(range(2, limits.setups + 1, 2))
    odd = list(range(1, limits.setups + 1, 2))
    drawn: dict[tuple[int, int], np.ndarray] = {}
    used: dict[tuple[int, int], int] = {}
    names = []
    for i in range(samples):
        j, k = i % len(actions), i // len(actions)
        action, pattern = actions[j], (j + k) % 12
        camera = 1 + pattern % 3
        subjects = train if pattern % 4 in (0, 2) else test
        setups = even if pattern % 4 in (0, 3) else odd
        key = (action, pattern)
        if key not in drawn:
            drawn[key] = np.random.default_rng([seed, _NAME_STREAM, action, pattern]).permutation(
                len(setups) * len(subjects) * 2)
        n = used.get(key, 0)
        if n == len(drawn[key]):
            raise ValueError(f"{samples} samples is more than {dataset} has distinct names for "
                             f"{len(actions)} classes; ask for fewer samples or more classes")
        used[key] = n + 1
        combo = int(drawn[key][n])
        setup = setups[combo % len(setups)]
        subject = subjects[combo // len(setups) % len(subjects)]
        replication = 1 + combo // (len(setups) * len(subjects))
        names.append(sample_name(setup, camera, subject, replication, action))
    return names


# --------------------------------------------------------------------------- classes and bodies

def _class_spec(action: int) -> _ClassSpec:
    rng = np.random.default_rng([_CLASS_STREAM, action])
    if action not in NTU_TWO_PERSON_ACTIONS:
        return _ClassSpec(actors=(_class_motion(rng),))
    return _ClassSpec(actors=(_class_motion(rng), _class_motion(rng)),
                      distance=rng.uniform(0.8, 1.6), approach=rng.uniform(-0.7, 0.7),
                      approach_is_ramp=bool(rng.random() < 0.5))


def _class_motion(rng: np.random.Generator) -> _Motion:
    """A class's movement: a held posture on 1-2 joints plus 2-4 swinging joints.

    Swings are large (a good part of each joint's range) and frequencies come from a small
    set of clearly different values, so that two classes rarely share both the moving joints
    and their rhythm.
    """
    posture = np.zeros((25, 3))
    for joint in rng.choice(_POSTURE_JOINTS, size=rng.integers(1, 3), replace=False):
        posture[joint] = _joint_rotation(rng, joint, rng.uniform(0.35, 0.8))
    amplitude = np.zeros((25, 3))
    cycles = np.zeros(25)
    phase = np.zeros(25)
    movable = list(_BALL_JOINTS) + list(_HINGE_JOINTS)
    for joint in rng.choice(movable, size=rng.integers(2, 5), replace=False):
        amplitude[joint] = _joint_rotation(rng, joint, rng.uniform(0.5, 1.0))
        cycles[joint] = rng.choice([0.5, 1.0, 1.5, 2.0, 3.0, 4.0])
        phase[joint] = rng.uniform(0, 2 * np.pi)
        # Some classes are symmetric (clapping, arm circles): the other side moves too.
        if joint in _MIRRORED_JOINT and rng.random() < 0.3:
            other = _MIRRORED_JOINT[joint]
            amplitude[other] = amplitude[joint] * (1, -1, -1)
            cycles[other], phase[other] = cycles[joint], phase[joint] + rng.choice([0.0, np.pi])
    moves_root = rng.random() < 0.3
    return _Motion(posture=posture, amplitude=amplitude, cycles=cycles, phase=phase,
                   bounce=rng.uniform(0.05, 0.15) if moves_root else 0.0,
                   sway=rng.uniform(0.0, 0.15) if moves_root else 0.0,
                   root_cycles=float(rng.choice([1.0, 2.0, 3.0])))


def _joint_rotation(rng: np.random.Generator, joint: int, fraction: float) -> np.ndarray:
    """A rotation vector using `fraction` of the joint's range: hinges about x, balls any axis."""
    if joint in _HINGE_JOINTS:
        return np.array([_HINGE_JOINTS[joint] * fraction, 0.0, 0.0])
    axis = rng.normal(size=3)
    return axis / np.linalg.norm(axis) * _BALL_JOINTS[joint] * fraction


def _body_offsets(subject: int) -> np.ndarray:
    """(25, 3) rest offsets of one subject: overall height and limb ratios vary per subject."""
    rng = np.random.default_rng([_SUBJECT_STREAM, subject])
    height = np.clip(rng.normal(1.0, 0.06), 0.85, 1.15)
    offsets = np.zeros((25, 3))
    for joint, offset in _CENTRE_OFFSETS.items():
        offsets[joint] = np.array(offset) * rng.uniform(0.93, 1.07)
    for joint, offset in _LEFT_OFFSETS.items():
        offsets[joint] = np.array(offset) * rng.uniform(0.93, 1.07)
        offsets[_MIRROR[joint]] = offsets[joint] * (-1, 1, 1)
    return offsets * height


# --------------------------------------------------------------------------- motion

def _sample_bytes(spec: _ClassSpec, offsets: np.ndarray, camera: int, rng: np.random.Generator) -> bytes:
    frames = int(rng.integers(_MIN_FRAMES, _MAX_FRAMES + 1))
    t = np.linspace(0.0, 1.0, frames)
    placements = _actor_placements(spec, t, rng)
    camera_yaw = _CAMERA_YAW[camera] + rng.normal(0, 0.05)
    camera_shift = np.array([rng.uniform(-0.4, 0.4), -rng.uniform(0.6, 0.9), rng.uniform(2.9, 3.5)])
    # Distinct IDs: two bodies sharing one would be read as a single body.
    body_ids = (_BODY_ID_BASE + 1000 + rng.choice(9000, size=len(spec.actors), replace=False)).tolist()
    bodies = []
    for motion, (yaw, position) in zip(spec.actors, placements):
        local = _local_rotations(motion, t, rng)
        joints, orientation = _forward_kinematics(local, offsets)
        joints += _root_trajectory(motion, offsets, t, rng)[:, None, :]
        lean = _lean(joints)
        joints, orientation = _to_camera(joints, orientation, yaw, position, camera_yaw, camera_shift)
        bodies.append(_kinect_values(joints, orientation, lean, rng))
    return _format_sample(body_ids, np.stack(bodies, axis=1))


def _actor_placements(spec: _ClassSpec, t: np.ndarray, rng: np.random.Generator) -> list[tuple[float, np.ndarray]]:
    """Yaw and floor position (frames, 3) of each actor in the scene.

    One actor faces the camera. Two actors face each other along x, the gap between them
    shrinking or growing (a ramp: walking towards/apart; a bump: stepping in and back).
    """
    jitter = rng.normal(0, 0.15)
    if len(spec.actors) == 1:
        return [(jitter, np.zeros((len(t), 3)))]
    shape = t if spec.approach_is_ramp else np.sin(np.pi * t)
    gap = np.maximum(spec.distance + spec.approach * rng.uniform(0.8, 1.2) * shape, 0.35)
    first, second = np.zeros((len(t), 3)), np.zeros((len(t), 3))
    first[:, 0], second[:, 0] = -gap / 2, gap / 2
    return [(-np.pi / 2 + jitter, first), (np.pi / 2 + rng.normal(0, 0.15), second)]


def _local_rotations(motion: _Motion, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(frames, 25, 4) local joint quaternions: rest + posture + this sample's swings."""
    scale = rng.uniform(0.8, 1.2)
    cycles = motion.cycles * rng.uniform(0.9, 1.1)
    angle = 2 * np.pi * cycles[None, :] * t[:, None] + motion.phase + rng.normal(0, 0.25)
    # Hinges flex one way and come back to the posture; ball joints swing both ways.
    wave = np.where(_IS_HINGE, (1 - np.cos(angle)) / 2, np.sin(angle))
    rotvec = (_REST_ROTVEC + motion.posture * scale + rng.normal(0, 0.04, (25, 3)))[None] \
        + motion.amplitude[None] * scale * wave[:, :, None]
    return _rotvec_to_quat(rotvec)


def _tree_levels() -> tuple[np.ndarray, ...]:
    """Non-root joints grouped by depth in the tree, so FK can move a whole level at once."""
    depth = [0] * 25
    for joint in range(1, 25):
        parent = _PARENT[joint]
        while parent != -1:
            depth[joint] += 1
            parent = _PARENT[parent]
    return tuple(np.array([j for j in range(25) if depth[j] == d]) for d in range(1, max(depth) + 1))


_TREE_LEVELS = _tree_levels()
_PARENTS = np.array(_PARENT)


def _forward_kinematics(local: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body-frame joint positions (frames, 25, 3) and global orientations (frames, 25, 4)."""
    frames = local.shape[0]
    position = np.zeros((frames, 25, 3))
    orientation = np.zeros((frames, 25, 4))
    orientation[:, 0] = local[:, 0]
    for joints in _TREE_LEVELS:
        parents = _PARENTS[joints]
        position[:, joints] = position[:, parents] + _rotate(orientation[:, parents], offsets[joints])
        orientation[:, joints] = _quat_multiply(orientation[:, parents], local[:, joints])
    return position, orientation


def _root_trajectory(motion: _Motion, offsets: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(frames, 3) spine-base position: feet on the floor (y = 0) at rest, plus the class's bounce and sway."""
    angle = 2 * np.pi * motion.root_cycles * t
    root = np.zeros((len(t), 3))
    root[:, 0] = motion.sway * np.sin(angle + rng.uniform(0, 2 * np.pi))
    root[:, 1] = -offsets[[12, 13, 14, 15], 1].sum() + 0.02 + motion.bounce * (1 - np.cos(angle)) / 2
    return root


def _lean(joints: np.ndarray) -> np.ndarray:
    """(frames, 2) Kinect leanX/leanY in -1..1: spine tilt sideways and forwards, in the body frame."""
    spine = joints[:, 20] - joints[:, 0]
    length = np.linalg.norm(spine, axis=1)
    return np.clip(np.stack([spine[:, 0], -spine[:, 2]], axis=1) / length[:, None] * 2, -1, 1)


def _to_camera(joints: np.ndarray, orientation: np.ndarray, yaw: float, position: np.ndarray,
               camera_yaw: float, camera_shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Place the body in the scene, then view the scene from the camera."""
    body_q = _yaw_quat(yaw)
    camera_q = _yaw_quat(camera_yaw)
    scene = _rotate(body_q, joints) + position[:, None, :]
    viewed = _rotate(camera_q, scene) + camera_shift
    return viewed, _quat_multiply(_quat_multiply(camera_q, body_q), orientation)


# --------------------------------------------------------------------------- Kinect fields

def _kinect_values(joints: np.ndarray, orientation: np.ndarray, lean: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """(frames, 306) values of one body: 6 body-info numbers, then 25 × 12 joint values."""
    frames = joints.shape[0]
    tracking = np.where(rng.random((frames, 25)) < _INFERRED_RATE, 1.0, 2.0)
    # Tracking noise, larger where the sensor only inferred the joint.
    noise = rng.normal(0, 0.006, joints.shape) * np.where(tracking == 1, 3.0, 1.0)[:, :, None]
    joints = joints + noise
    x, y, z = joints[..., 0], joints[..., 1], joints[..., 2]
    values = np.empty((frames, 25, 12))
    values[..., :3] = joints
    values[..., 3] = _DEPTH_CX + _DEPTH_F * x / z
    values[..., 4] = _DEPTH_CY - _DEPTH_F * y / z
    values[..., 5] = _COLOR_CX + _COLOR_F * (x + _COLOR_BASELINE) / z
    values[..., 6] = _COLOR_CY - _COLOR_F * y / z
    values[..., 7:11] = orientation
    values[:, _LEAF_JOINTS, 7:11] = 0.0
    values[..., 11] = tracking
    hands = _hand_fields(frames, rng)
    info = np.concatenate([hands, lean], axis=1)
    return np.concatenate([info, values.reshape(frames, 300)], axis=1)


def _hand_fields(frames: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, 4) handLeftConfidence, handLeftState, handRightConfidence, handRightState."""
    confidence = (rng.random((frames, 2)) < 0.8).astype(float)
    # Mostly "not tracked" (1), otherwise open/closed/lasso/unknown, as in the real files.
    state = rng.choice([1.0, 2.0, 3.0, 4.0, 0.0], p=[0.6, 0.15, 0.15, 0.05, 0.05], size=(frames, 2))
    return np.stack([confidence[:, 0], state[:, 0], confidence[:, 1], state[:, 1]], axis=1)


def _format_sample(body_ids: list[int], values: np.ndarray) -> bytes:
    """The file's bytes from the 64-bit body IDs and (frames, bodies, 306) values.

    Each body line starts with its ID and clipedEdges as ASCII text, so the IDs never pass
    through float64, which would round them (formats.md §1.2).
    """
    prefixes = np.array([np.frombuffer(f"{body_id} 0 ".encode("ascii"), np.uint8) for body_id in body_ids])
    frames = write_frames(values, prefixes, _SEPARATORS, _SEPARATOR_LENGTHS)
    return f"{values.shape[0]}\n".encode("ascii") + frames.tobytes()


def _separator_table() -> tuple[np.ndarray, np.ndarray]:
    """What follows each of a body's 306 values in the file, constant fields included."""
    info = [" ", " ", " ", " 0 ", " ", " 2\n25\n"]  # isResticted 0 after handRightState; trackingState 2
    joint = [" "] * 11 + ["\n"]
    texts = info + joint * 25
    table = np.zeros((len(texts), max(map(len, texts))), np.uint8)
    for i, text in enumerate(texts):
        table[i, :len(text)] = np.frombuffer(text.encode("ascii"), np.uint8)
    return table, np.array([len(text) for text in texts])


_SEPARATORS, _SEPARATOR_LENGTHS = _separator_table()

# --------------------------------------------------------------------------- quaternions (w, x, y, z)

def _rotvec_to_quat(rotvec: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(rotvec, axis=-1, keepdims=True)
    safe = np.where(angle > 1e-12, angle, 1.0)
    return np.concatenate([np.cos(angle / 2), rotvec / safe * np.sin(angle / 2)], axis=-1)


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, np.sin(yaw / 2), 0.0])


def _quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def _rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4), broadcasting over the rest."""
    w, u = q[..., :1], q[..., 1:]
    uv = _cross(u, v)
    return v + 2 * w * uv + 2 * _cross(u, uv)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.cross without its per-call overhead, which dominated FK on short arrays."""
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], axis=-1)
