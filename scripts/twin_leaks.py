"""How many hidden patches the loss asks for could be copied from their visible identical twin
(the same place in the other actor half), on 32 single-actor `stacked` `repeat` images, 10
mask seeds, before (no actor flags) and with mirrored masking (docs/design.md §7).

    .venv/bin/python scripts/twin_leaks.py [SIZE]      (default 224)"""
import sys
from pathlib import Path

import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_masking import single_actor_images, hidden_and_loss, copied_from_a_visible_twin
from s2i_cli.train.mae import MaskedAutoencoder
from s2i_cli.encoder import skeletons as layout
torch.set_num_threads(1)
size = int(sys.argv[1]) if len(sys.argv) > 1 else 224
images = single_actor_images(size, n=32)
n = len(images)
for strategy in ("random", "tube", "frames", "parts"):
    net = MaskedAutoencoder("vit_tiny", size, decoder_dim=32, decoder_depth=1, decoder_heads=4, masking=strategy,
                            column_parts=layout.patch_column_parts(layout.NTU25, "aligned", size))
    row = []
    for flags in ({}, dict(halves=torch.ones(n, dtype=torch.bool), copies=torch.ones(n, dtype=torch.bool))):
        leak = tot = 0
        for seed in range(10):
            hidden, loss = hidden_and_loss(net, n, seed, **flags)
            leak += copied_from_a_visible_twin(net, images, hidden, loss)
            tot += int(loss.sum())
        row.append(f"{100 * leak / tot:.1f} % of {tot}")
    print(f"{size} px {strategy:7s} old: {row[0]:>16s}   mirrored: {row[1]:>16s}")
