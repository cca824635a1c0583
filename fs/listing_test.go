package fs

import (
	"testing"
	"time"

	"dfs/api"
)

// A listing answers with the access times this mount set after it was
// fetched, and only those.
func TestAtimeLogPatch(t *testing.T) {
	var l atimeLog
	l.set(7, 500, 10, time.Minute)
	l.set(8, 500, 10, 0) // no listings: nothing to remember
	cases := []struct {
		ino      uint64
		atime    int64
		seq      uint64 // the listing's
		want     int64
		patching bool
	}{
		{7, 100, 9, 500, true},   // fetched before the update
		{7, 100, 10, 100, false}, // fetched after it began: has it, or adopt keeps the node's
		{7, 600, 9, 600, false},  // a later time than ours (another mount's read)
		{8, 100, 9, 100, false},
		{9, 100, 9, 100, false},
	}
	for _, c := range cases {
		a := &api.Attr{Ino: c.ino, AtimeNs: c.atime, MtimeNs: 50}
		got := l.patch(a, c.seq)
		if got.AtimeNs != c.want || (got != a) != c.patching || a.AtimeNs != c.atime || got.MtimeNs != 50 {
			t.Errorf("ino %d atime %d listing seq %d: got atime %d (copy %v), want %d (copy %v); original now %d",
				c.ino, c.atime, c.seq, got.AtimeNs, got != a, c.want, c.patching, a.AtimeNs)
		}
	}
}

// The log forgets what no listing can need any more, once it is big.
func TestAtimeLogPrunes(t *testing.T) {
	var l atimeLog
	for i := range maxAtimes {
		l.set(uint64(i), 1, 1, time.Millisecond)
	}
	time.Sleep(5 * time.Millisecond)
	l.set(1<<40, 1, 1, time.Hour)
	if len(l.m) != 1 {
		t.Errorf("%d entries after %d expired ones and a fresh one, want 1", len(l.m), maxAtimes)
	}
}
