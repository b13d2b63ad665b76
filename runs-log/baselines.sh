set -x
for seed in 0 1 2; do
  base=exp/abl-ucla/baselines/repeat-isotropic-joint-s$seed
  for extra in "" "--fraction 0.1"; do
    .venv/bin/s2i evaluate --run none --store exp/ucla80.zarr --model vit_tiny --stream joint --epochs 100 --runs-dir $base --mode linear --protocol xview --seed $seed --no-progress --workers 0 $extra
  done
  .venv/bin/s2i evaluate --run none --store exp/ucla80.zarr --model vit_tiny --stream joint --epochs 100 --runs-dir $base --mode knn --protocol xview --seed $seed --no-progress --workers 0
done
