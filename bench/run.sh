#!/bin/bash
# bench/run.sh: the body of `make bench`, run by `dfsctl dev -- bench/run.sh`
# inside a fresh cluster ($DFS_MOUNT and $DFS_MASTERS set). Prints the
# shared comparison against the loopback FUSE reference for each layout,
# the master alone through the client library, and the namespace at scale.
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
echo "## master through the client library, no FUSE"
"$BIN/metabench" -masters "$DFS_MASTERS" -workers 1,64 -n "${METABENCH_N:-2000}" || status=1
echo "## namespace of ${NSBENCH_N:-1000000} files, in-process state machine"
"$BIN/nsbench" -n "${NSBENCH_N:-1000000}" || status=1
exit $status
