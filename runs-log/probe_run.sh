# linear 100 %, linear 10 % (3 seeds), kNN on a pretraining run dir: bash exp/probe_run.sh RUN
set -x
run=$1
.venv/bin/s2i evaluate --run $run --mode linear --protocol xview --epochs 100 --seed 0 --no-progress --workers 0
.venv/bin/s2i evaluate --run $run --mode knn --protocol xview --seed 0 --no-progress --workers 0
for seed in 0 1 2; do
  .venv/bin/s2i evaluate --run $run --mode linear --protocol xview --epochs 100 --fraction 0.1 --seed $seed --no-progress --workers 0
done
