package tests

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	seedFlag = flag.Uint64("seed", 0, "seed of the randomized differential test (0: time-based)")
	opsFlag  = flag.Int("ops", 400, "operations in the randomized differential test")
)

// utimesEpoch and utimesSpan bound the times the test sets with utimes:
// far in the past, so that any mtime from before 2010 must have been set
// by the test and not since changed by a write, and so must match exactly.
var (
	utimesEpoch = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	utimesSpan  = 5 * 365 * 24 * time.Hour
	setByTest   = time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
)

// TestRandomOps applies one random sequence of namespace and data
// operations to a directory on the mount and to one on local disk, checks
// that every operation fails or succeeds alike (same errno), then compares
// the two trees entry by entry: mode, size, nlink, mtime (where set by the
// test), symlink target and content.
func TestRandomOps(t *testing.T) {
	mnt := testDir(t, 0)
	local := t.TempDir()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	replay := fmt.Sprintf("seed %d (replay: go test ./tests -run TestRandomOps -seed %d -ops %d)", seed, seed, *opsFlag)
	t.Log(replay)
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s\nafter %d ops:\n  %s", fmt.Sprintf(format, args...), len(log), strings.Join(log, "\n  "))
		t.Fatal(replay)
	}
	for i := range *opsFlag {
		o := randomOp(r, local)
		el := o.apply(local)
		em := o.apply(mnt)
		log = append(log, fmt.Sprintf("%3d %s -> %v", i, o, errnoString(el)))
		if errno(el) != errno(em) {
			fail("op %d %s: local %v, mount %v", i, o, el, em)
		}
		if i%100 == 99 {
			compareRandomTrees(t, local, mnt, fail)
		}
	}
	compareRandomTrees(t, local, mnt, fail)
}

func compareRandomTrees(t *testing.T, local, mnt string, fail func(string, ...any)) {
	t.Helper()
	want, err := scanTree(local)
	if err != nil {
		t.Fatal(err)
	}
	got, err := scanTree(mnt)
	if err != nil {
		fail("scanning the mount: %v", err)
	}
	diffs := diffTrees(want, got, local, mnt, compareOpts{
		mtime:    func(_ string, e entry) bool { return e.mtime.Before(setByTest) },
		skipRoot: true,
	})
	// Where the reference's mtime moved on from a time the test set, the
	// mount's must have too.
	for rel, w := range want {
		if g, ok := got[rel]; ok && rel != "." && !w.mtime.Before(setByTest) && g.mtime.Before(setByTest) {
			diffs = append(diffs, fmt.Sprintf("%s: mtime %s was not updated by a later change", rel, g.mtime.Format(time.RFC3339Nano)))
		}
	}
	if len(diffs) > 0 {
		fail("trees differ:\n  %s", strings.Join(diffs, "\n  "))
	}
}

func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

func errnoString(err error) string {
	if err == nil {
		return "ok"
	}
	return unix.ErrnoName(errno(err))
}

// op is one operation with paths relative to the root it is applied to.
type op struct {
	kind       string
	path, dest string
	off, size  int64
	data       []byte
	mode       uint32
	atime      time.Time
	mtime      time.Time
	target     string
}

func (o op) String() string {
	switch o.kind {
	case "write":
		return fmt.Sprintf("write %s off=%d len=%d", o.path, o.off, len(o.data))
	case "truncate":
		return fmt.Sprintf("truncate %s %d", o.path, o.size)
	case "rename", "link":
		return fmt.Sprintf("%s %s %s", o.kind, o.path, o.dest)
	case "symlink":
		return fmt.Sprintf("symlink %q %s", o.target, o.path)
	case "mkdir", "chmod":
		return fmt.Sprintf("%s %s %#o", o.kind, o.path, o.mode)
	case "utimes":
		return fmt.Sprintf("utimes %s %s", o.path, o.mtime.Format(time.RFC3339Nano))
	}
	return o.kind + " " + o.path
}

func (o op) apply(root string) error {
	p := filepath.Join(root, o.path)
	switch o.kind {
	case "write":
		fd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_CREAT, 0o644)
		if err != nil {
			return err
		}
		_, werr := syscall.Pwrite(fd, o.data, o.off)
		cerr := syscall.Close(fd)
		return errors.Join(werr, cerr)
	case "truncate":
		return syscall.Truncate(p, o.size)
	case "rename":
		return syscall.Rename(p, filepath.Join(root, o.dest))
	case "link":
		return syscall.Link(p, filepath.Join(root, o.dest))
	case "unlink":
		return syscall.Unlink(p)
	case "mkdir":
		return syscall.Mkdir(p, o.mode)
	case "rmdir":
		return syscall.Rmdir(p)
	case "chmod":
		return syscall.Chmod(p, o.mode)
	case "utimes":
		ts := []unix.Timespec{unix.NsecToTimespec(o.atime.UnixNano()), unix.NsecToTimespec(o.mtime.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	case "symlink":
		return syscall.Symlink(o.target, p)
	}
	panic("unknown op " + o.kind)
}

// randomOp picks an operation, mostly on paths that exist in the
// reference tree at root so that most operations do something.
func randomOp(r *rand.Rand, root string) op {
	var files, dirs, all []string
	dirs = append(dirs, ".")
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || path == root {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		all = append(all, rel)
		switch {
		case d.IsDir():
			dirs = append(dirs, rel)
		case d.Type().IsRegular():
			files = append(files, rel)
		}
		return nil
	})
	sort.Strings(all)
	pick := func(s []string) string {
		if len(s) == 0 {
			return "nothing"
		}
		return s[r.IntN(len(s))]
	}
	names := []string{"a", "b", "c", "d", "e", "long-" + strings.Repeat("n", 200)}
	fresh := func() string { return filepath.Join(pick(dirs), pick(names)) }
	existingFile := func() string {
		if len(files) == 0 || r.IntN(10) == 0 {
			return fresh()
		}
		return pick(files)
	}
	anything := func() string {
		if len(all) == 0 || r.IntN(8) == 0 {
			return fresh()
		}
		return pick(all)
	}
	switch n := r.IntN(100); {
	case n < 30:
		o := op{kind: "write", path: existingFile()}
		switch r.IntN(20) {
		case 0: // across the first chunk boundary
			o.off = 64<<20 - int64(r.IntN(8192))
		case 1, 2:
			o.off = int64(r.IntN(4 << 20))
		default:
			o.off = int64(r.IntN(256 << 10))
		}
		o.data = make([]byte, 1+r.IntN(128<<10))
		for i := range o.data {
			o.data[i] = byte(r.Uint32())
		}
		return o
	case n < 38:
		return op{kind: "truncate", path: existingFile(), size: int64(r.IntN(512 << 10))}
	case n < 50:
		dest := fresh()
		if r.IntN(3) == 0 {
			dest = anything()
		}
		return op{kind: "rename", path: anything(), dest: dest}
	case n < 56:
		return op{kind: "link", path: existingFile(), dest: fresh()}
	case n < 64:
		return op{kind: "unlink", path: anything()}
	case n < 74:
		return op{kind: "mkdir", path: fresh(), mode: uint32(0o700 + r.IntN(0o100))}
	case n < 79:
		return op{kind: "rmdir", path: pick(dirs[1:])}
	case n < 86:
		mode := uint32(r.IntN(0o1000))
		if r.IntN(10) == 0 {
			mode |= uint32(r.IntN(8)) << 9 // setuid, setgid, sticky
		}
		return op{kind: "chmod", path: anything(), mode: mode}
	case n < 93:
		at := utimesEpoch.Add(time.Duration(r.Int64N(int64(utimesSpan))))
		mt := utimesEpoch.Add(time.Duration(r.Int64N(int64(utimesSpan))))
		return op{kind: "utimes", path: anything(), atime: at, mtime: mt}
	default:
		target := pick(all)
		if r.IntN(3) == 0 {
			target = "/no/such/" + pick(names)
		}
		return op{kind: "symlink", path: fresh(), target: target}
	}
}
