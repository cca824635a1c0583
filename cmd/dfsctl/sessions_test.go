package main

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"dfs/api"
)

func TestSessionsAndLocksTables(t *testing.T) {
	now := time.Unix(1000, 0)
	st := &api.StatusResponse{Sessions: 3, Locks: 1, LockWaiters: 1,
		SessionList: []*api.SessionStatus{{Id: 4, Client: "host:/mnt", TtlNs: int64(10 * time.Second), ExpiresInNs: int64(9500 * time.Millisecond), OpenFiles: 2, Locks: 1}},
		LockList: []*api.LockStatus{
			{Ino: 7, Path: "/a/b", SinceNs: now.Add(-2 * time.Second).UnixNano(),
				Lock: &api.LockInfo{Kind: api.LockKind_POSIX, Type: api.LockType_WRITE, Start: 10, End: 19, Session: 4, Owner: 0xab, Pid: 42}},
			{Ino: 8, Waiting: true, SinceNs: now.Add(-time.Second).UnixNano(),
				Lock: &api.LockInfo{Kind: api.LockKind_FLOCK, Type: api.LockType_READ, End: math.MaxUint64, Session: 5, Owner: 1, Pid: 43}},
		}}
	var b bytes.Buffer
	printSessions(&b, st)
	want := `SESSION  CLIENT     TTL  EXPIRES IN  OPEN FILES  LOCKS
4        host:/mnt  10s  9.5s        2           1
(1 of 3 sessions shown)
`
	if b.String() != want {
		t.Errorf("sessions:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	printLocks(&b, st, now)
	want = `FILE       INO  KIND   TYPE   RANGE  SESSION  OWNER  PID  STATE    SINCE
/a/b       7    POSIX  WRITE  10-19  4        0xab   42   held     2s ago
(unnamed)  8    FLOCK  READ   0-EOF  5        0x1    43   waiting  1s ago
`
	if b.String() != want {
		t.Errorf("locks:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestSessionsAndLocksArgs(t *testing.T) {
	var ue usageError
	for _, run := range []func(string, bool, []string) error{runSessions, runLocks} {
		for _, args := range [][]string{{"extra"}, {"-bogus"}} {
			if err := run("127.0.0.1:1", false, args); !errors.As(err, &ue) {
				t.Errorf("%q: %v, want a usage error", args, err)
			}
		}
	}
}
