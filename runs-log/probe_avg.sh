# the same probes with --pool avg (mean patch token) on a run dir, and on random init seeds 0-2
set -x
run=$1
.venv/bin/s2i evaluate --run $run --mode linear --pool avg --protocol xview --epochs 100 --seed 0 --no-progress --workers 0
.venv/bin/s2i evaluate --run $run --mode knn --pool avg --protocol xview --seed 0 --no-progress --workers 0
for seed in 0 1 2; do
  .venv/bin/s2i evaluate --run $run --mode linear --pool avg --protocol xview --epochs 100 --fraction 0.1 --seed $seed --no-progress --workers 0
done
if [ -n "$2" ]; then
for seed in 0 1 2; do
  base=exp/abl-ucla/baselines-avg/joint-s$seed
  for extra in "" "--fraction 0.1"; do
    .venv/bin/s2i evaluate --run none --store exp/ucla80.zarr --model vit_tiny --pool avg --epochs 100 --runs-dir $base --mode linear --protocol xview --seed $seed --no-progress --workers 0 $extra
  done
  .venv/bin/s2i evaluate --run none --store exp/ucla80.zarr --model vit_tiny --pool avg --runs-dir $base --mode knn --protocol xview --seed $seed --no-progress --workers 0
done
fi
