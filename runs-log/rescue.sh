# copy logs whose files a rebase replaced while their writers run (the writers keep the deleted inode)
while [ -e /proc/18234 ] || [ -e /proc/7505 ]; do
  [ -e /proc/18234 ] && cat /proc/18234/fd/1 > exp/logs/pixels-and-random-init-streams.log.new && mv exp/logs/pixels-and-random-init-streams.log.new exp/logs/pixels-and-random-init-streams.log
  [ -e /proc/7505 ] && cat /proc/7505/fd/1 > exp/logs/probe-mae.log.new && mv exp/logs/probe-mae.log.new exp/logs/probe-mae.log
  sleep 15
done
