while ! grep -q "^joint" runs-log/pixels-and-random-init-streams.log; do sleep 15; done
kill 20394
echo "pixels.py stopped after the joint stream ($(date -u +%H:%M)): each stream's pixel probe took ~10+ min of a shared CPU" >> runs-log/pixels-and-random-init-streams.log
