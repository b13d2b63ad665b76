set -x
while pgrep -f "run-dir exp/runs/mae-base-s0 " > /dev/null || pgrep -f "run-dir exp/runs/mae-base-s0$" > /dev/null; do sleep 20; done
sleep 5
mkdir -p exp/runs/mae-base-s0-avg && cp exp/runs/mae-base-s0/config.json exp/runs/mae-base-s0/checkpoint-last.pt exp/runs/mae-base-s0-avg/
bash exp/probe_run.sh exp/runs/mae-base-s0
bash exp/probe_avg.sh exp/runs/mae-base-s0-avg
