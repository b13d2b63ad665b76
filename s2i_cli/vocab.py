"""The vocabulary: every choice an option of `s2i` takes, its default and its help text,
declared once (docs/design.md §5).

The command line (cli.py, through the `Annotated` option declarations of options.py) shows
these choices in --help, completes them in the shell and refuses any other value before any
work starts; the library (convert, encoding, streams, layout, masking, mae, evaluate) takes
its choice lists and defaults from here, so no two places can disagree. A choice is a
`StrEnum`: its members are plain strings too ("isotropic" == Norm.ISOTROPIC), so they go into
JSON, store attributes and f-strings as their value.

Two options are open-ended and keep plain strings: --protocol (a store's protocols come from
its dataset, and a pyskl file names its own) and --model (a short name here, or any timm
`vit_*` name). Their known values are declared here for --help and completion; the store or
timm checks them.

Imports nothing but the standard library: no torch, numba, zarr or typer."""
from __future__ import annotations

from enum import StrEnum


def values(choice: type[StrEnum]) -> tuple[str, ...]:
    """The plain string values of a choice, in declaration order."""
    return tuple(member.value for member in choice)


def plain(value):
    """An enum member as its plain string (anything else as it is): what the library stores."""
    return value.value if isinstance(value, StrEnum) else value


# --------------------------------------------------------------------------- conversion

class Dataset(StrEnum):
    NTU60 = "ntu60"
    NTU120 = "ntu120"
    PKUMMD = "pkummd"
    PKUMMD2 = "pkummd2"
    NWUCLA = "nwucla"
    KINETICS = "kinetics"
    TOYOTA = "toyota"
    PYSKL = "pyskl"
    CTRGCN = "ctrgcn"


DATASET_HELP = (
    "ntu60 | ntu120: NTU RGB+D .skeleton files (protocols xsub, xview / xsub, xset). "
    "pkummd: PKU-MMD phase 1, skeleton + label NNNN-V.txt, one sample per labelled interval (xsub, xview from the "
    "official split files). "
    "pkummd2: PKU-MMD phase 2, AxxNyy-V.txt (xsub, xview only if the release's split files are under RAW; none "
    "are derived). "
    "nwucla: NW-UCLA all_sqe JSON (xview: views 1, 2 train, 3 test). "
    "kinetics: Kinetics-skeleton kinetics_{train,val}/*.json + kinetics_{train,val}_label*.json, 2D + confidence "
    "(release: train vs val). "
    "toyota: Toyota Smarthome LCR-Net JSON, pose3d, planar vectors unless reader option vectors=interleaved "
    "(xsub, xview1, xview2). "
    "pyskl: a pyskl annotation pickle as RAW (NTU 3D or HRNet COCO-17 2D; protocols from its split lists, e.g. "
    "xsub_train/xsub_val -> xsub). "
    "ctrgcn: a CTR-GCN NTU .npz as RAW (x_train/x_test; protocol from the file name: NTU60_CS xsub, NTU60_CV "
    "xview, NTU120_CSet xset; else release). docs/formats.md has the layouts")


class Layout(StrEnum):
    PARTS = "parts"
    ALIGNED = "aligned"
    CONCAT = "concat"


LAYOUT_DEFAULT = Layout.PARTS
LAYOUT_HELP = ("parts: each body part resized into its own band of columns (formats interchangeable); aligned: parts "
               "with band edges on the 16-px patch grid and equal limbs (part masking, mirroring); concat: the parts' "
               "joints side by side, resized as a whole")


class Persons(StrEnum):
    STACKED = "stacked"
    MAIN = "main"


PERSONS_DEFAULT = None  # the dataset's (DatasetFormat.persons: stacked for NTU)
PERSONS_HELP = ("stacked: actor 1 in the top half, actor 2 in the bottom half; main: actor 1 only. Default: the "
                "dataset's (stacked for NTU)")


class Fill(StrEnum):
    ZERO = "zero"
    REPEAT = "repeat"


FILL_DEFAULT = Fill.REPEAT
FILL_HELP = ("stacked with one actor: repeat (actor 1 again in the bottom half) or zero (an empty body at the origin, "
             "as CTR-GCN's NTU60 files pad; its NTU120 files repeat the actor, which `convert ctrgcn` reads as one actor)")


class Norm(StrEnum):
    """The joint stream's scaling (docs/design.md §2)."""
    CHANNEL = "channel"  # per-sample min-max of each channel
    ISOTROPIC = "isotropic"  # per sample one scale for the coordinate channels: the body keeps its proportions
    DATASET = "dataset"  # fixed limits from the training split


NORM_DEFAULT = Norm.ISOTROPIC  # the ablation (README)
NORM_HELP = ("channel: each of x, y, z min-max scaled per sample; isotropic: one per-sample scale for x, y, z (keeps "
             "the body's proportions); dataset: fixed limits from the training split (central 99.9 %), the same scale "
             "for every sample. Each decodes back to metres. Default isotropic: the ablation (README)")


class Stream(StrEnum):
    JOINT = "joint"
    BONE = "bone"
    MOTION = "motion"
    BONE_MOTION = "bone-motion"


STREAM_DEFAULT = Stream.JOINT
STREAMS_CONVERT_DEFAULT = "joint"  # --streams of `s2i convert`: joint is always stored
STREAMS_ENCODE_DEFAULT = "bone,motion,bone-motion"  # --streams of `s2i encode`
STREAMS_HELP = ("comma-separated, from joint (always stored), bone (each joint minus its parent), motion (frame t+1 "
                "minus frame t), bone-motion")


class StreamError(ValueError):
    """An unknown or empty stream list; the message is one line."""


def parse_streams(text: str) -> tuple[str, ...]:
    """"joint,bone" -> ("joint", "bone"): known names, each once, in the order given. The one
    parser of every --streams."""
    names = tuple(dict.fromkeys(s.strip() for s in str(text).split(",") if s.strip()))
    known = values(Stream)
    unknown = [s for s in names if s not in known]
    if unknown or not names:
        raise StreamError(f"unknown stream {', '.join(unknown) or repr(text)}: choose from {', '.join(known)}")
    return names


class Export(StrEnum):
    """The formats `s2i export` writes (export/: Target)."""
    ctrgcn = "ctrgcn"  # CTR-GCN's NTU .npz per protocol
    pyskl = "pyskl"  # pyskl's / MMAction2's annotation pickle


EXPORT_DEFAULT = Export.ctrgcn
EXPORT_HELP = ("ctrgcn: CTR-GCN's NTU .npz per protocol (NTU60_CS.npz ...: x_train, y_train, x_test, y_test), read by "
               "CTR-GCN, InfoGCN, HD-GCN, MAMP. pyskl: pyskl's / MMAction2's annotation pickle (split + annotations)")


# --------------------------------------------------------------------------- training

def parse_crop(text: str | float | None) -> tuple[float, float] | None:
    """--temporal-crop MIN or MIN,MAX (fractions of the frames) -> (MIN, MAX); MIN alone means
    MIN..1. ValueError for anything else (0 < MIN <= MAX <= 1 is the loader's check)."""
    if text is None or text == "" or text == 0:  # 0: no crop (evaluate's old float)
        return None
    if isinstance(text, (int, float)):
        return float(text), 1.0
    if isinstance(text, (tuple, list)):
        parts = [float(v) for v in text]
    else:
        try:
            parts = [float(v) for v in str(text).split(",")]
        except ValueError:
            parts = []
    if len(parts) == 1:
        parts = [parts[0], 1.0]
    if len(parts) != 2:
        raise ValueError(f"--temporal-crop {text!r}: give MIN or MIN,MAX fractions of the frames, e.g. 0.5,1.0")
    return parts[0], parts[1]



class Augment(StrEnum):
    """Skeleton-space augmentations (augment.py); an option takes none, all or a comma list."""
    ROTATE = "rotate"
    SCALE = "scale"
    CROP = "crop"
    MIRROR = "mirror"


AUGMENT_DEFAULT = "none"
AUGMENT_HELP = ("skeleton-space augmentation, re-encoded on the fly from the stored skeletons: none, all, or a comma "
                "list of rotate (±0.3 rad), scale (±10 %), crop (50-100 % of the frames, at least 64 where the clip has them), mirror (swap left/right, "
                "negate x)")


def parse_augment(text) -> tuple[str, ...]:
    """'none' | 'all' | a comma list of Augment -> the ops, in declaration order (ValueError otherwise)."""
    if text is None:
        return ()
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if str(t).strip()]
    known = values(Augment)
    if names in (["none"], []):
        return ()
    if names == ["all"]:
        return known
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}: choose none, all or a comma list of "
                         f"{', '.join(known)}")
    return tuple(a for a in known if a in names)


class Masking(StrEnum):
    RANDOM = "random"
    TUBE = "tube"
    FRAMES = "frames"
    PARTS = "parts"


MASKING_DEFAULT = Masking.RANDOM
MASKING_HELP = ("which patches are removed: random (MAE's); tube (whole joint columns through all of time); frames (a "
                "block of whole rows: a stretch of time); parts (whole body-part bands over a block of rows; best with "
                "a store converted with --layout aligned). The ratio is exact for each")


class Objective(StrEnum):
    MAE = "mae"
    DIFFMAE = "diffmae"


OBJECTIVE_DEFAULT = Objective.MAE
OBJECTIVE_HELP = "mae (pixel reconstruction) or diffmae (denoise the masked patches at a random diffusion step)"

# short model names -> timm's; --model also takes any timm vit_* name (checked by timm)
MODELS = {"vit_tiny": "vit_tiny_patch16_224", "vit_small": "vit_small_patch16_224",
          "vit_base": "vit_base_patch16_224"}
MODEL_DEFAULT = "vit_base"
MODEL_HELP = "encoder: vit_tiny, vit_small or vit_base (patch 16), or any timm vit_* name"


def check_model(name: str | None) -> str | None:
    """A short name or a timm vit_* name (timm checks the latter); ValueError otherwise."""
    if name is None or name in MODELS or name.startswith("vit_"):
        return name
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)} (or a timm vit_* name)")


# --------------------------------------------------------------------------- evaluation

class Mode(StrEnum):
    LINEAR = "linear"  # frozen features + a linear head
    KNN = "knn"
    FINETUNE = "finetune"


MODE_DEFAULT = Mode.LINEAR


class Pool(StrEnum):
    TOKEN = "token"  # the class token
    AVG = "avg"  # the mean of the patch tokens


# protocols a store may have: the datasets' own (docs/formats.md); a pyskl file names its own
PROTOCOLS = ("xsub", "xview", "xset", "xview1", "xview2", "release")
PROTOCOL_DEFAULT = "xsub"  # evaluation: xsub, else the store's first
