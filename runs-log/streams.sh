set -x
while pgrep -f "exp/baselines.sh" > /dev/null; do sleep 20; done
.venv/bin/python exp/pixels.py
for stream in bone motion bone-motion; do
for seed in 0 1 2; do
  base=exp/abl-ucla/baselines/repeat-isotropic-$stream-s$seed
  for extra in "" "--fraction 0.1"; do
    .venv/bin/s2i evaluate --run none --store exp/ucla80.zarr --model vit_tiny --stream $stream --epochs 100 --runs-dir $base --mode linear --protocol xview --seed $seed --no-progress --workers 0 $extra
  done
  .venv/bin/s2i evaluate --run none --store exp/ucla80.zarr --model vit_tiny --stream $stream --epochs 100 --runs-dir $base --mode knn --protocol xview --seed $seed --no-progress --workers 0
done; done
