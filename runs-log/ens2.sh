set -x
while pgrep -f "bash exp/ens.sh" > /dev/null; do sleep 10; done
d="exp/runs/mae-base-s0"; for st in bone motion bone-motion; do d="$d,$(ls -d exp/abl-ucla/baselines/repeat-isotropic-$st-s0/*-scratch-*)"; done
for mode in linear knn; do .venv/bin/s2i evaluate --ensemble $d --protocol xview --mode $mode --runs-dir exp/ens-mae --no-progress; done
