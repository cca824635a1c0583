#!/bin/bash
# profile.sh CMD...: runs CMD (a shell command) inside a fresh dev cluster,
# in a directory of layout $LAYOUT (default replicated:1) on $CS
# chunkservers (default 3), while taking a $SECS s (default 8) CPU profile
# of every process; the Prometheus metrics of every process are saved
# just before and just after CMD. $PRE runs in the same directory before
# any of that (to lay out a file, say). Everything is kept in the printed
# directory: NAME.prof (go tool pprof BIN NAME.prof), before.NAME and
# after.NAME (bench/metricdiff.py before.NAME after.NAME [PREFIX...]),
# out (CMD's output) and the cluster's logs under dfs/logs.
#
#   LAYOUT=ec:4+2 CS=6 PRE='fio --name=l --rw=write --bs=1M --size=1G --filename=f' \
#     bench/profile.sh 'fio --name=r --rw=randwrite --bs=4k --size=1G --filename=f --direct=1 --runtime=10 --time_based'
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
B=${BIN:-$HERE/../bin}
[ $# -gt 0 ] || { echo "usage: profile.sh CMD..." >&2; exit 2; }
d=$(mktemp -d -t dfs-profile.XXXX)
export DFSMASTER_DEBUG_ADDR=127.0.0.1:0 DFSCHUNK_DEBUG_ADDR=127.0.0.1:0 DFSMOUNT_DEBUG_ADDR=127.0.0.1:0
export D=$d SECS=${SECS:-8} LAYOUT=${LAYOUT:-replicated:1} PRE=${PRE:-true} CMD="$*"
"$B/dfsctl" dev -bin "$B" -dir "$d/dfs" -mnt "$d/mnt" -chunkservers "${CS:-3}" -- bash -c '
  mkdir -p "$DFS_MOUNT/w" && setfattr -n dfs.layout -v "$LAYOUT" "$DFS_MOUNT/w" || exit 1
  cd "$DFS_MOUNT/w" && eval "$PRE" || exit 1
  for f in "$D"/dfs/logs/*.log; do
    a=$(grep -h "admin listener" "$f" | grep -o "127.0.0.1:[0-9]*" | head -1)
    [ -n "$a" ] && echo "$(basename "$f" .log) $a" >>"$D/addrs"
  done
  snap() { while read -r n a; do curl -s -o "$D/$1.$n" "http://$a/metrics"; done <"$D/addrs"; }
  snap before
  while read -r n a; do curl -s -o "$D/$n.prof" "http://$a/debug/pprof/profile?seconds=$SECS" & done <"$D/addrs"
  sleep 0.3
  eval "$CMD" >"$D/out" 2>&1; status=$?
  snap after
  wait
  exit $status' || echo "profile.sh: the cluster or CMD failed (see $d/out and $d/dfs/logs)" >&2
cat "$d/out"
for f in "$d"/*.prof; do
  n=$(basename "$f" .prof); b=$B/dfschunk
  case $n in mount*) b=$B/dfsmount ;; m*) b=$B/dfsmaster ;; esac
  echo "cpu $n $(go tool pprof -top "$b" "$f" 2>/dev/null | grep -o 'Total samples = [0-9.]*m\?s' | grep -o '[0-9.]*m\?s$')"
done
echo "kept in $d"
