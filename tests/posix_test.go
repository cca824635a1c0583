package tests

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// posixSkipped are the posixtest cases that expect what Linux does not
// do:
//   - FcntlFlockLocksFile: expects two descriptors of one process to
//     conflict, which POSIX locks never do (it fails on ext4 and tmpfs
//     too). Cross-mount lock conflicts are tested in locks_test.go.
var posixSkipped = map[string]string{
	"FcntlFlockLocksFile": "two descriptors of one process to conflict, unlike Linux",
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
