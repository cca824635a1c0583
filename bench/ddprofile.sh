#!/bin/bash
# ddprofile.sh [BINDIR] [LABEL]: starts a dev cluster (3 masters, 3
# chunkservers) from BINDIR (default: the repository's bin/), writes
# $MIB MiB (default 3072) with dd conv=fsync into a directory of layout
# replicated:$R (default 1) while taking a $SECS s (default 6) CPU profile
# of every process, and prints each process's CPU seconds in that window
# and dd's result. Run two builds alternately and compare: the figures
# are only meaningful next to each other on the same machine.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:-$HERE/../bin}; L=${2:-dfs}
d=$(mktemp -d -t ddprofile.XXXX)
trap 'rm -rf "$d"' EXIT
export DFSMASTER_DEBUG_ADDR=127.0.0.1:0 DFSCHUNK_DEBUG_ADDR=127.0.0.1:0 DFSMOUNT_DEBUG_ADDR=127.0.0.1:0
export D=$d SECS=${SECS:-6} MIB=${MIB:-3072} R=${R:-1}
"$B/dfsctl" dev -bin "$B" -dir "$d/dfs" -mnt "$d/mnt" -chunkservers 3 -- bash -c '
  mkdir -p "$DFS_MOUNT/s" && setfattr -n dfs.layout -v "replicated:$R" "$DFS_MOUNT/s" || exit 1
  for f in "$D"/dfs/logs/*.log; do
    a=$(grep -h "admin listener" "$f" | grep -o "127.0.0.1:[0-9]*" | head -1)
    [ -n "$a" ] && curl -s -o "$D/$(basename "$f" .log).prof" "http://$a/debug/pprof/profile?seconds=$SECS" &
  done
  sleep 0.3
  dd if=/dev/zero of="$DFS_MOUNT/s/big" bs=1M count="$MIB" conv=fsync 2>&1 | tail -1 >"$D/dd"
  wait' >/dev/null 2>&1 || { echo "ddprofile: the cluster or dd failed (logs were in $d)" >&2; exit 1; }
for f in "$d"/*.prof; do
  n=$(basename "$f" .prof); b=$B/dfschunk
  case $n in mount*) b=$B/dfsmount ;; m*) b=$B/dfsmaster ;; esac
  echo "$L $n $(go tool pprof -top "$b" "$f" 2>/dev/null | grep -o 'Total samples = [0-9.]*m\?s' | grep -o '[0-9.]*m\?s$')"
done
echo "$L dd $(cat "$d/dd")"
