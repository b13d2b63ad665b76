# copy the running pretraining's checkpoint every 10 minutes into its own run dir (epochs-vs-accuracy curve)
while pgrep -f "run-dir exp/runs/mae-base-s0" > /dev/null; do
  sleep 600
  d=exp/snap/t$(date -u +%H%M); mkdir -p $d
  cp exp/runs/mae-base-s0/config.json $d/ && cp exp/runs/mae-base-s0/checkpoint-last.pt $d/
  tail -1 runs-log/mae-base-s0.log > $d/at.txt
done
