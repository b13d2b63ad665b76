set -x
while [ -e /proc/18234 ]; do sleep 10; done
for seed in 0 1 2; do
  d=""; for st in joint bone motion bone-motion; do d="$d,$(ls -d exp/abl-ucla/baselines/repeat-isotropic-$st-s$seed/*-scratch-*)"; done
  for mode in linear knn; do
    .venv/bin/s2i evaluate --ensemble ${d#,} --protocol xview --mode $mode --runs-dir exp/ens-s$seed --no-progress
  done
done
