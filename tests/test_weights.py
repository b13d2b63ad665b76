"""Loading weights into the model (s2i_cli/train/mae.py load_weights): timm checkpoints (.pth,
.safetensors, resampled position table) and MAE's released checkpoints, by their keys and shapes."""
from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from s2i_cli.train.mae import MaskedAutoencoder, build_encoder, load_weights
from tests.helpers import TINY_DECODER


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_load_weights_from_timm(tmp_path, suffix):
    src = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, num_classes=7)
    sd = src.state_dict()
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save(sd, path)
    else:
        from safetensors.torch import save_file
        save_file(sd, str(path))
    mae = MaskedAutoencoder("vit_tiny", 32, **TINY_DECODER)
    report = load_weights(mae, path)
    assert torch.equal(mae.encoder.blocks[3].attn.qkv.weight, sd["blocks.3.attn.qkv.weight"])
    assert "encoder.pos_embed" in report["loaded"] and {"encoder.head.weight", "encoder.head.bias"} <= set(report["unexpected"])
    expected = timm.layers.resample_abs_pos_embed(sd["pos_embed"], new_size=[2, 2], num_prefix_tokens=1)
    assert torch.allclose(mae.encoder.pos_embed, expected)
    assert all(k.startswith(("mask_token", "decoder_")) for k in report["missing"])
    enc = build_encoder("vit_tiny", 32, num_classes=7)  # a bare encoder with a head of the same shape
    report = load_weights(enc, path)
    assert report["missing"] == [] and torch.equal(enc.head.weight, sd["head.weight"])

# The keys and shapes of MAE's released checkpoints (facebookresearch/mae, README "Pre-trained
# checkpoints"), written out so the test does not derive the "release" from our own model.
# mae_pretrain_vit_base.pth is {"model": encoder state dict}: no head, no fc_norm, no decoder.
_VIT_B_BLOCK = {"norm1.weight": (768,), "norm1.bias": (768,), "attn.qkv.weight": (2304, 768),
                "attn.qkv.bias": (2304,), "attn.proj.weight": (768, 768), "attn.proj.bias": (768,),
                "norm2.weight": (768,), "norm2.bias": (768,), "mlp.fc1.weight": (3072, 768),
                "mlp.fc1.bias": (3072,), "mlp.fc2.weight": (768, 3072), "mlp.fc2.bias": (768,)}

MAE_PRETRAIN_VIT_BASE = {"cls_token": (1, 1, 768), "pos_embed": (1, 197, 768),
                         "patch_embed.proj.weight": (768, 3, 16, 16), "patch_embed.proj.bias": (768,),
                         **{f"blocks.{b}.{k}": s for b in range(12) for k, s in _VIT_B_BLOCK.items()},
                         "norm.weight": (768,), "norm.bias": (768,)}

# mae_visualize_vit_base.pth adds the 512 x 8 decoder under MAE's names.
_DEC_BLOCK = {k.replace("768", "512"): tuple(512 if d == 768 else 1536 if d == 2304 else 2048 if d == 3072 else d
                                             for d in s) for k, s in _VIT_B_BLOCK.items()}

MAE_VISUALIZE_VIT_BASE = {**MAE_PRETRAIN_VIT_BASE, "mask_token": (1, 1, 512), "decoder_pos_embed": (1, 197, 512),
                          "decoder_embed.weight": (512, 768), "decoder_embed.bias": (512,),
                          **{f"decoder_blocks.{b}.{k}": s for b in range(8) for k, s in _DEC_BLOCK.items()},
                          "decoder_norm.weight": (512,), "decoder_norm.bias": (512,),
                          "decoder_pred.weight": (768, 512), "decoder_pred.bias": (768,)}

def _release(keys: dict[str, tuple[int, ...]], path: Path) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(s, generator=g) for k, s in keys.items()}
    torch.save({"model": sd}, path)
    return sd

@pytest.mark.slow
def test_load_weights_mae_pretrain_release(tmp_path):
    assert len(MAE_PRETRAIN_VIT_BASE) == 150
    sd = _release(MAE_PRETRAIN_VIT_BASE, tmp_path / "mae_pretrain_vit_base.pth")
    mae = MaskedAutoencoder("vit_base", 224, **TINY_DECODER)
    report = load_weights(mae, tmp_path / "mae_pretrain_vit_base.pth")
    assert report["unexpected"] == [] and report["mismatched"] == []
    assert len(report["loaded"]) == 150 and all(k.startswith(("mask_token", "decoder_")) for k in report["missing"])
    assert torch.equal(mae.encoder.blocks[11].mlp.fc2.weight, sd["blocks.11.mlp.fc2.weight"])
    assert torch.equal(mae.encoder.pos_embed, sd["pos_embed"])
    with pytest.raises(ValueError, match="no weights file"):
        load_weights(mae, tmp_path / "absent.pth")

@pytest.mark.slow
def test_load_weights_mae_visualize_release(tmp_path):
    sd = _release(MAE_VISUALIZE_VIT_BASE, tmp_path / "mae_visualize_vit_base.pth")
    mae = MaskedAutoencoder("vit_base", 224)  # MAE's decoder: 512 x 8, 16 heads
    report = load_weights(mae, tmp_path / "mae_visualize_vit_base.pth")
    assert report["missing"] == [] and report["unexpected"] == [] and report["mismatched"] == []
    assert torch.equal(mae.decoder_blocks[7].attn.qkv.weight, sd["decoder_blocks.7.attn.qkv.weight"])
    assert torch.equal(mae.decoder_pred.bias, sd["decoder_pred.bias"])
