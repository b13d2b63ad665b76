"""The Python API as the README documents it: its example block runs as written."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import s2i_cli as s2i
from s2i_cli.train.pretrain import pretrain

from s2i_cli.convert.flow import convert

from tests.helpers import shared_data

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = dict(model="vit_tiny", decoder_dim=32, decoder_depth=1, decoder_heads=2, workers=0)


def readme_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md has no API example block"
    return match.group(1)


@pytest.fixture(scope="module")
def api_folder(tmp_path_factory) -> Path:
    """A folder holding a store `out.zarr` and a pretraining run `runs/demo`, as the example expects."""
    root = tmp_path_factory.mktemp("api")
    convert("ntu60", shared_data("ntu"), root / "out.zarr", size=32, progress=False)  # the real NTU files
    pretrain(root / "out.zarr", root / "runs" / "demo", epochs=1, batch_size=4, max_steps=1, protocol="xsub",
             progress=False, **TINY)
    return root


def test_readme_example_runs_as_written(api_folder, monkeypatch, one_torch_thread):
    monkeypatch.chdir(api_folder)
    scope: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), scope)
    assert scope["features"].shape == (len(scope["images"]), 192)  # ViT-Tiny's width
    assert scope["skeleton"].ndim == 4 and scope["skeleton"].dtype == np.float32


def test_api_agrees_with_the_store_functions(api_folder):
    store = s2i.open_store(api_folder / "out.zarr")
    assert len(store) == 16 and store.protocols == ("xsub", "xview") and store.streams == ("joint",)
    train = store.split("xsub", "train")
    images = [image for image, _, _ in s2i.dataset(store, "xsub", "train")]
    assert len(images) == len(train)
    assert np.array_equal(images[0].numpy(), store.image(int(train[0])))
    name = str(store.root["name"][3])
    assert store.index(name) == 3 and np.array_equal(store.skeleton(name), store.skeleton(3))
    with pytest.raises(KeyError):
        store.index("no such sample")
    encoder = s2i.load_encoder(api_folder / "runs" / "demo")
    assert not encoder.training and encoder(torch.zeros(1, 3, 32, 32)).shape == (1, 192)
