#!/bin/bash
# bench/run.sh: the body of `make bench`, run by `dfsctl dev -- bench/run.sh`
# inside a fresh cluster ($DFS_MOUNT and $DFS_MASTERS set). Prints the
# shared comparison against the loopback FUSE reference for each layout
# ($BENCH_LAYOUTS), file locks, the master alone through the client
# library, and the namespace at scale.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$HERE/../bin}
COMPARE=${COMPARE:-$HERE/../../shared/bench/compare.sh}
LAYOUTS=${BENCH_LAYOUTS:-replicated:1 replicated:3}
status=0
for l in $LAYOUTS; do
	d="$DFS_MOUNT/bench-${l/:/-}"
	mkdir -p "$d" && setfattr -n dfs.layout -v "$l" "$d" || { status=1; continue; }
	echo "## compare.sh, layout $l (ratio = dfs / refloop, above 1 is faster)"
	"$COMPARE" "$d" "dfs-$l" || status=1
	rm -rf "$d"
done
# BENCH_PARTS=compare: the comparison alone (make bench's erasure-coded
# run, on a cluster with enough chunkservers for the layout).
[ "${BENCH_PARTS:-all}" = compare ] && exit $status
echo "## file locks: flock through the mount, uncontended and 8 workers on 2 mounts"
m2=$(mktemp -d -t dfs-bench-mnt2.XXXXXX)
"$BIN/dfsmount" -masters "$DFS_MASTERS" "$m2" 2>"$m2.log" &
m2pid=$!
for _ in $(seq 1 80); do grep -q " $m2 " /proc/mounts && break; sleep 0.25; done
if grep -q " $m2 " /proc/mounts; then
	mkdir -p "$DFS_MOUNT/lockbench"
	"$BIN/lockbench" -dirs "$DFS_MOUNT/lockbench,$m2/lockbench" -n 500 -workers 8 -for 10s || status=1
	rm -rf "$DFS_MOUNT/lockbench"
else
	echo "second mount did not come up: $(tail -3 "$m2.log")"; status=1
fi
kill -TERM $m2pid; wait $m2pid 2>/dev/null; rmdir "$m2"; rm -f "$m2.log"
echo "## master through the client library, no FUSE"
"$BIN/metabench" -masters "$DFS_MASTERS" -workers 1,64 -n "${METABENCH_N:-2000}" || status=1
echo "## namespace of ${NSBENCH_N:-1000000} files, in-process state machine"
"$BIN/nsbench" -n "${NSBENCH_N:-1000000}" || status=1
exit $status
