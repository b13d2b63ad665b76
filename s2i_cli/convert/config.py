"""`ConvertConfig`: every option of `s2i convert`, defined once with its default (the
choices' defaults name vocab.py), as `PretrainConfig` and `EvalConfig` are for training and
evaluation (train/config.py). No numba, zarr or torch here."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import vocab
from ..store.header import SHARD

if TYPE_CHECKING:
    from ..encoder.encoding import Encoding
    from ..encoder.skeletons import Skeleton


@dataclass(frozen=True)
class ConvertConfig:
    """Every conversion option, defined once (`s2i convert` builds one; `convert.convert`
    takes the fields as keywords). The image choices (size, layout, persons, fill, norm) make
    the Encoding once the reader knows its skeleton (`encoding`): importers learn it from the
    file at discovery."""
    dataset: str
    raw: Path
    out: str
    size: int = 224
    layout_name: str = vocab.LAYOUT_DEFAULT.value
    persons: str | None = vocab.PERSONS_DEFAULT  # None: the dataset's
    fill: str = vocab.FILL_DEFAULT.value
    norm: str = vocab.NORM_DEFAULT.value
    streams: tuple[str, ...] = ("joint",)  # joint is always stored, first
    workers: int | None = None  # None: every core
    dask_workers: int | None = None
    scheduler: str | None = None
    storage_options: dict[str, str] | None = None
    resume: bool = False
    overwrite: bool = False
    limit: int | None = None
    missing_list: Path | None = None
    shard: int = SHARD
    reader_options: dict[str, str] | None = None
    progress: bool = True
    command: str = ""
    max_file_mb: float | None = None  # None: the format's bound on one raw file's size

    def encoding(self, skeleton: Skeleton, persons: str) -> Encoding:
        """The Encoding of the shards: `--norm dataset` encodes per channel first, then rescales
        every image once the training split's limits are known (convert.apply_dataset_limits)."""
        from ..encoder.encoding import Encoding

        return Encoding(skeleton, self.layout_name, self.size, persons, self.fill,
                        vocab.Norm.CHANNEL.value if self.norm == vocab.Norm.DATASET else self.norm)
