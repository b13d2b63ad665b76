"""The model (s2i_cli/train/mae.py): MAE and DiffMAE shapes and gradients, what weight decay
applies to, MAE's conventions (sin-cos position table, LayerNorm eps). CPU, tiny models."""
from __future__ import annotations

import pytest
import torch

from s2i_cli.train.mae import MaskedAutoencoder
from tests.helpers import TINY_DECODER


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mae_shapes_and_diffmae_gradients():
    torch.manual_seed(0)
    net = MaskedAutoencoder("vit_tiny", (32, 48), **TINY_DECODER, objective="diffmae")
    x = torch.randn(3, 3, 32, 48)
    assert torch.equal(net.unpatchify(net.patchify(x)), x)
    loss, pred, mask = net(x)
    assert pred.shape == (3, 6, 16 * 16 * 3) and mask.sum(1).tolist() == [5.0, 5.0, 5.0]
    loss.backward()
    assert net.noise_embed.weight.grad.abs().sum() > 0 and net.time_embed[0].weight.grad.abs().sum() > 0
    assert not net.encoder.pos_embed.requires_grad  # MAE's fixed sin-cos table
    with pytest.raises(ValueError, match="multiple of the patch size"):
        MaskedAutoencoder("vit_tiny", 40)

def test_param_groups_decay_what_mae_decays():
    """MAE's main_pretrain.py groups with timm 0.3.2's add_weight_decay(model, wd) and no skip list:
    only 1-D parameters (biases, norms) go undecayed, so the class and mask tokens are decayed;
    the position tables are frozen, in neither group. decay_tokens=False: the rule of older runs."""
    net = MaskedAutoencoder("vit_tiny", 32, decoder_dim=64, decoder_depth=1, decoder_heads=4)
    decay, no_decay = net.param_groups(0.05)
    names = {id(p): n for n, p in net.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    undecayed = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert {"encoder.cls_token", "mask_token"} <= decayed
    assert {"encoder.blocks.0.norm1.weight", "decoder_embed.bias"} <= undecayed
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert not {"encoder.pos_embed", "decoder_pos_embed"} & (decayed | undecayed)  # frozen: in neither
    old_decay, old_no_decay = net.param_groups(0.05, decay_tokens=False)
    assert {"encoder.cls_token", "mask_token"} <= {names[id(p)] for p in old_no_decay["params"]}

def test_mae_conventions_as_released():
    """MAE's util/pos_embed.py: the first half of the channels encodes the column (x), the second
    the row; every LayerNorm (encoder, decoder blocks, decoder_norm) has eps 1e-6."""
    from s2i_cli.train.mae import sincos_pos_embed
    emb = sincos_pos_embed(8, (2, 3))[0]  # dim 8: each axis 4 channels, omega = (1, 1/100)
    assert emb.shape == (7, 8) and torch.equal(emb[0], torch.zeros(8))
    for r in range(2):
        for c in range(3):
            x = emb[1 + r * 3 + c]
            om = torch.tensor([1.0, 0.01])
            col = torch.cat([torch.sin(c * om), torch.cos(c * om)])
            row = torch.cat([torch.sin(r * om), torch.cos(r * om)])
            assert torch.allclose(x, torch.cat([col, row]), atol=1e-6), (r, c)
    net = MaskedAutoencoder("vit_tiny", 32, decoder_dim=64, decoder_depth=2, decoder_heads=4)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 2 * 12 + 1 + 2 * 2 + 1 and {m.eps for m in norms} == {1e-6}
