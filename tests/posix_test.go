package tests

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// posixSkipped are the posixtest cases that test locks, which this suite
// does not cover yet (the lock table is tested on its own; cross-mount
// lock tests belong with the session work):
//   - FcntlFlockSetLk: takes F_SETLK/F_SETLKW write locks and reads them
//     back with F_OFD_GETLK.
//   - FcntlFlockLocksFile: expects a conflicting F_SETLK to fail EAGAIN.
var posixSkipped = map[string]string{
	"FcntlFlockSetLk":     "POSIX byte-range locks",
	"FcntlFlockLocksFile": "POSIX byte-range locks",
}

// TestPosix runs go-fuse's conformance suite on mount 0, each case in a
// fresh directory.
func TestPosix(t *testing.T) {
	base := testDir(t, 0)
	var names []string
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if why, ok := posixSkipped[name]; ok {
				t.Skipf("skipped: needs %s", why)
			}
			dir := filepath.Join(base, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			posixtest.All[name](t, dir)
		})
	}
}
