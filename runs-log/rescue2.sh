while [ -e /proc/1834 ] || [ -e /proc/1839 ]; do
  [ -e /proc/1834 ] && cat /proc/1834/fd/2 > exp/logs/ft-rand-r3-5.log.new && mv exp/logs/ft-rand-r3-5.log.new exp/logs/ft-rand-r3-5.log
  [ -e /proc/1839 ] && cat /proc/1839/fd/2 > exp/logs/ft-mae.log.new && mv exp/logs/ft-mae.log.new exp/logs/ft-mae.log
  sleep 10
done
