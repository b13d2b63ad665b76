"""The Python API: an s2i store and runs in a researcher's own code, in a few calls.

    import s2i_cli as s2i
    store = s2i.open_store("out.zarr")          # a typed view: header, protocols, splits, streams
    data = s2i.dataset(store, "xsub", "train")  # a torch Dataset of (image, label, index)
    seq = store.skeleton(0)                     # one sample's selected, centred skeleton
    encoder = s2i.load_encoder("runs/NAME")     # a pretraining run's ViT, for features
    features = encoder(s2i.normalize(images))   # images: a batch of the dataset's uint8 images

Each is a thin front over what the commands use (`store.open_store` and the header for
`s2i info`, `train.loader.BlockDataset` for pretraining and evaluation, `train.mae` for the
encoder `s2i evaluate` builds), so the commands' tests test it too; `tests/test_api.py`
runs the README's example as written. The names here are the stable interface; the modules
behind them may move."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from . import store as _store
from .encoder.encoding import store_encoding
from .store.header import StoreHeader
from .vocab import parse_augment

if TYPE_CHECKING:
    import torch
    import zarr
    from timm.models.vision_transformer import VisionTransformer

    from .train.loader import BlockDataset


@dataclass(frozen=True)
class Store:
    """An open, finished s2i store: its Zarr group, its header (every attribute, typed), and
    what a training script asks of it."""

    location: str
    root: "zarr.Group"
    header: StoreHeader

    def __len__(self) -> int:
        """Slots, rejected files' included (`valid` says which hold a sample)."""
        return int(self.root["valid"].shape[0])

    @property
    def protocols(self) -> tuple[str, ...]:
        return tuple(self.header.protocols)

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(self.header.streams)

    @property
    def class_names(self) -> list[str]:
        return _store.class_names(self.root)

    def split(self, protocol: str | None, side: str = "train") -> np.ndarray:
        """Sorted sample indices of a protocol's `train` or `test` side; None: every valid sample."""
        return _store.split_indices(self.root, protocol, side)

    def index(self, name: str) -> int:
        """The slot of the sample called `name`; KeyError if there is none."""
        hits = np.flatnonzero(np.asarray(self.root["name"][:]) == name)
        if not len(hits):
            raise KeyError(f"no sample named {name!r} in {self.location}")
        return int(hits[0])

    def skeleton(self, sample: int | str) -> np.ndarray:
        """One sample's selected, centred sequence (T, 2, V, C) float32, by index or name."""
        i = self.index(sample) if isinstance(sample, str) else int(sample)
        _store.check_sample(self.root, i)
        return _store.read_skeleton(self.root, i)

    def image(self, sample: int | str, stream: str = "joint") -> np.ndarray:
        """One sample's stored S2I image (3, H, W) uint8 of `stream`."""
        i = self.index(sample) if isinstance(sample, str) else int(sample)
        return np.asarray(_store.stream_arrays(self.root, stream)[0][i])


def open_store(location: str | Path, storage_options: dict | None = None) -> Store:
    """Open a finished store (a folder or a URL such as s3://bucket/out.zarr); StoreError, one
    line, if it is missing, unfinished or not an s2i store."""
    root = _store.open_store(location, storage_options)
    return Store(_store.absolute(location), root, _store.read_header(root))


def dataset(store: Store | str | Path, protocol: str | None = None, side: str = "train", *, stream: str = "joint",
            augment: Sequence[str] = (), shuffle: bool = False, seed: int = 0,
            temporal_crop: tuple[float, float] | None = None) -> "BlockDataset":
    """A torch IterableDataset of (image uint8 (3, H, W), label, index) over one side of a
    protocol, as `s2i pretrain` and `s2i evaluate` read it: block reads with a shuffle buffer
    (call `set_epoch(e)` each epoch when shuffling). `augment` takes the CLI's `--augment` names
    (skeleton-space augmentation, then re-encoding with the store's own encoding);
    `temporal_crop` (min, max) the fraction of rows kept. Batch it with a DataLoader."""
    from .train.loader import BlockDataset

    view = store if isinstance(store, Store) else open_store(store)
    ops = parse_augment(list(augment))
    encoding = replace(store_encoding(view.header), stream=stream) if ops else None
    return BlockDataset(view.location, view.split(protocol, side), shuffle=shuffle, seed=seed,
                        temporal_crop=temporal_crop, encoding=encoding, augment=ops, stream=stream)


def normalize(images: "torch.Tensor") -> "torch.Tensor":
    """uint8 images (B, 3, H, W) -> float32 with the ImageNet mean and std, as the encoder saw them."""
    from .train.loader import normalize as _normalize

    return _normalize(images)


def load_encoder(run: str | Path, num_classes: int = 0, device: str = "cpu") -> "VisionTransformer":
    """A pretraining run's encoder (timm VisionTransformer) with its weights, in eval mode; with
    `num_classes` 0 its forward gives the pooled features (the class token, as the linear probe
    uses). The model and image size come from the run's config.json."""
    from .train import runs
    from .train.mae import build_encoder, load_weights

    run_dir = Path(run)
    config = runs.read_config(run_dir)
    encoder = build_encoder(config["model"], config["img_size"], num_classes=num_classes)
    load_weights(encoder, run_dir / runs.CHECKPOINT, fix=runs.damaged_checkpoint_fix(run_dir))
    return encoder.to(device).eval()


__all__ = ["Store", "dataset", "load_encoder", "normalize", "open_store"]
