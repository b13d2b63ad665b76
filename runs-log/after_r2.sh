# after the random-init 100 % fine-tune: the random-init 10 % fine-tune (seed 0), same recipe, 30 epochs (3 steps each)
set -x
while pgrep -f "runs-dir exp/ft-rand-r2" > /dev/null; do sleep 20; done
.venv/bin/s2i evaluate --run none --store exp/ucla80.zarr --model vit_tiny --mode finetune --protocol xview --fraction 0.1 --seed 0 --epochs 30 --batch-size 32 --lr 8e-3 --layer-decay 1.0 --warmup-epochs 3 --augment all --drop-path 0.1 --label-smoothing 0.1 --workers 0 --no-progress --runs-dir exp/ft-rand-r2-f01
