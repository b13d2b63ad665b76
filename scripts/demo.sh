#!/usr/bin/env bash
# The embedded default, end to end on a CPU in a few minutes: synthesise a small
# NTU120-format dataset, convert it to an S2I store, pretrain a tiny masked autoencoder,
# evaluate the xsub protocol with a linear probe, and say where the pictures are. SIZE and
# EPOCHS are the ablation's CPU setting (docs/ablation.md): the smallest one found
# where the pretrained encoder beats a random-init one at 10 % of the labels.
#
#   bash scripts/demo.sh [OUT]          (make demo runs it with OUT=demo)
# Knobs (environment): SAMPLES CLASSES SIZE EPOCHS LINEAR_EPOCHS BATCH
set -euo pipefail
OUT=${1:-demo}
SAMPLES=${SAMPLES:-600}
CLASSES=${CLASSES:-10}
SIZE=${SIZE:-80}
EPOCHS=${EPOCHS:-80}
LINEAR_EPOCHS=${LINEAR_EPOCHS:-100}
BATCH=${BATCH:-32}
S2I=${S2I:-.venv/bin/s2i}
RUN="$OUT/runs/pretrain"

rm -rf "$OUT/raw" "$RUN"
$S2I synth ntu120 "$OUT/raw" --samples "$SAMPLES" --classes "$CLASSES" --seed 0
$S2I convert ntu120 "$OUT/raw" "$OUT/ntu120.zarr" --size "$SIZE" --overwrite
$S2I info "$OUT/ntu120.zarr"
$S2I show "$OUT/ntu120.zarr" --index 0 --out "$OUT/sample.png"
$S2I pretrain "$OUT/ntu120.zarr" --model vit_tiny --epochs "$EPOCHS" --batch-size "$BATCH" \
    --decoder-dim 128 --decoder-depth 2 --decoder-heads 4 --blr 1.5e-3 --protocol xsub --run-dir "$RUN"
# the linear probe with every label and with 10 % of them (where pretraining shows first)
for FRACTION in 1 0.1; do
    $S2I evaluate --protocol xsub --run "$RUN" --mode linear --epochs "$LINEAR_EPOCHS" --fraction "$FRACTION"
    # the same probe on a randomly initialised encoder: what pretraining adds
    $S2I evaluate --protocol xsub --run none --store "$OUT/ntu120.zarr" --model vit_tiny --mode linear \
        --epochs "$LINEAR_EPOCHS" --fraction "$FRACTION" --runs-dir "$OUT/runs"
done
$S2I evaluate --summary --runs-dir "$OUT/runs"

echo
echo "Pictures:"
echo "  a sample and its skeleton:   $OUT/sample.png"
ls "$RUN"/recon-*.png 2>/dev/null | tail -n 1 | sed 's/^/  MAE reconstructions:         /'
find "$RUN" -name 'confusion*.png' | tail -n 1 | sed 's/^/  confusion matrix (xsub):     /'
echo "  results:                     $(find "$RUN" -name results.json | tail -n 1)"
