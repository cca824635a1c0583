// Package tests holds dfs's integration tests: they build the binaries,
// boot a real cluster of processes on loopback through package cluster
// (3 masters, 4 chunkservers, 2 FUSE mounts, shared by the package's
// tests), and drive it through system calls and real programs (cp, tar,
// git, sqlite3, go build). They need root and /dev/fuse and skip without.
//
// Flags: -seed and -ops replay the randomized differential test;
// DFS_LONG=1 adds the 1 GiB round trip; DFS_KEEP=1 keeps the cluster's
// directory (data and logs) after the run.
package tests
