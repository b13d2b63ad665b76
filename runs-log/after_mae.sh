# after MAE pretraining: fine-tune with recipe R3 over 5 epochs (layer decay 0.75; random init: 1.0)
set -x
while pgrep -f "run-dir exp/runs/mae-base-s0 " > /dev/null; do sleep 20; done
cp -r exp/runs/mae-base-s0 exp/runs/mae-base-s0-ft
.venv/bin/s2i evaluate --run exp/runs/mae-base-s0-ft --mode finetune --protocol xview --epochs 5 --batch-size 32 --lr 2e-3 --layer-decay 0.75 --warmup-epochs 1 --augment all --drop-path 0.1 --label-smoothing 0.1 --workers 0 --no-progress
