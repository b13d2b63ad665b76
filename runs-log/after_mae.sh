# after MAE pretraining: fine-tune (same recipe as random init, layer decay 0.75), stopping at 5 epochs to record the curve
set -x
while pgrep -f "run-dir exp/runs/mae-base-s0" > /dev/null; do sleep 20; done
cp -r exp/runs/mae-base-s0 exp/runs/mae-base-s0-ft
FT="--mode finetune --protocol xview --epochs 10 --batch-size 32 --lr 2e-3 --layer-decay 0.75 --warmup-epochs 1 --augment all --drop-path 0.1 --label-smoothing 0.1 --workers 0 --no-progress"
.venv/bin/s2i evaluate --run exp/runs/mae-base-s0-ft $FT --max-steps 155
.venv/bin/s2i evaluate --run exp/runs/mae-base-s0-ft $FT --resume
