package tests

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Checks of behaviour ext4 on this machine cannot serve as the reference
// for (its limits differ) or that need the mount's own numbers.

// TestPosixXattrLarge: values up to the VFS limit of 64 KiB are stored
// whole; one byte more is E2BIG; a short buffer gets ERANGE and a size
// query the exact length.
func TestPosixXattrLarge(t *testing.T) {
	f := filepath.Join(testDir(t, 0), "f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	if err := unix.Setxattr(f, "user.big", big, 0); err != nil {
		t.Fatalf("setxattr 64 KiB: %v", err)
	}
	if err := unix.Setxattr(f, "trusted.big", big, unix.XATTR_CREATE); err != nil {
		t.Fatalf("setxattr trusted 64 KiB: %v", err)
	}
	if n, err := unix.Getxattr(f, "user.big", nil); n != len(big) || err != nil {
		t.Errorf("size query: %d %v, want %d", n, err, len(big))
	}
	buf := make([]byte, len(big))
	if n, err := unix.Getxattr(f, "user.big", buf); err != nil || !bytes.Equal(buf[:n], big) {
		t.Errorf("getxattr 64 KiB: %d bytes, %v; equal %v", n, err, bytes.Equal(buf[:max(n, 0)], big))
	}
	if _, err := unix.Getxattr(f, "user.big", buf[:100]); err != unix.ERANGE {
		t.Errorf("getxattr into 100 bytes: %v, want ERANGE", err)
	}
	if err := unix.Setxattr(f, "user.big2", append(big, 'x'), 0); err != unix.E2BIG {
		t.Errorf("setxattr 64 KiB + 1: %v, want E2BIG", err)
	}
	if _, err := unix.Getxattr(f, "user.none", buf); err != unix.ENODATA {
		t.Errorf("getxattr missing: %v, want ENODATA", err)
	}
}

// TestPosixSeekHole: SEEK_DATA and SEEK_HOLE see the chunks written; a
// file with data only at its start and past 128 MiB has a hole between.
func TestPosixSeekHole(t *testing.T) {
	path := filepath.Join(testDir(t, 0), "sparse")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const mib = 1 << 20
	if _, err := f.WriteAt([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tail"), 200*mib); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(300 * mib); err != nil {
		t.Fatal(err)
	}
	fd := int(f.Fd())
	seek := func(off int64, whence int) (int64, error) { return unix.Seek(fd, off, whence) }
	hole, err := seek(0, unix.SEEK_HOLE)
	if err != nil || hole <= 4 || hole > 200*mib {
		t.Errorf("SEEK_HOLE from 0: %d %v, want a hole after the head and before 200 MiB", hole, err)
	}
	data, err := seek(hole, unix.SEEK_DATA)
	if err != nil || data <= hole || data > 200*mib {
		t.Errorf("SEEK_DATA from %d: %d %v, want data again at or before 200 MiB", hole, data, err)
	}
	if got, err := seek(5, unix.SEEK_DATA); err != nil || got != 5 {
		t.Errorf("SEEK_DATA inside data: %d %v, want 5", got, err)
	}
	if got, err := seek(299*mib, unix.SEEK_HOLE); err != nil || got != 299*mib {
		t.Errorf("SEEK_HOLE in the trailing hole: %d %v, want %d", got, err, 299*mib)
	}
	if got, err := seek(299*mib, unix.SEEK_DATA); err != unix.ENXIO {
		t.Errorf("SEEK_DATA in the trailing hole: %d %v, want ENXIO", got, err)
	}
	if got, err := seek(300*mib, unix.SEEK_HOLE); err != unix.ENXIO {
		t.Errorf("SEEK_HOLE at EOF: %d %v, want ENXIO", got, err)
	}
	// What lies in a reported hole reads as zeros.
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, hole); err != nil || !bytes.Equal(buf, make([]byte, 4096)) {
		t.Errorf("reading the hole at %d: %v, zeros %v", hole, err, bytes.Equal(buf, make([]byte, 4096)))
	}
}

// TestPosixTmpfile: O_TMPFILE makes a nameless file that linkat can name;
// with O_EXCL it can never be named; closed unnamed, it is gone.
func TestPosixTmpfile(t *testing.T) {
	dir := testDir(t, 0)
	inodes := func() uint64 {
		var s unix.Statfs_t
		if err := unix.Statfs(dir, &s); err != nil {
			t.Fatal(err)
		}
		return s.Files - s.Ffree
	}
	before := inodes()
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR, 0o640)
	if err != nil {
		t.Fatalf("open O_TMPFILE: %v", err)
	}
	if _, err := unix.Write(fd, []byte("temporary")); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Nlink != 0 || st.Mode != unix.S_IFREG|0o640 || st.Size != 9 {
		t.Errorf("fstat: nlink %d mode %o size %d %v; want 0, 100640, 9", st.Nlink, st.Mode, st.Size, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the directory lists %d entries with only a temporary file in it", len(ents))
	}
	name := filepath.Join(dir, "named")
	if err := unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW); err != nil {
		t.Fatalf("linkat: %v", err)
	}
	unix.Close(fd)
	if got, err := os.ReadFile(name); err != nil || string(got) != "temporary" {
		t.Errorf("the linked file reads %q %v", got, err)
	}
	fd, err = unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_EXCL, 0o600)
	if err != nil {
		t.Fatalf("open O_TMPFILE|O_EXCL: %v", err)
	}
	err = unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, name+"2", unix.AT_SYMLINK_FOLLOW)
	if err != unix.ENOENT {
		t.Errorf("linkat of an O_EXCL temporary file: %v, want ENOENT", err)
	}
	unix.Close(fd)
	// One inode more than before: the named file; the other is freed.
	deadline := time.Now().Add(10 * time.Second)
	for inodes() != before+1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := inodes(); got != before+1 {
		t.Errorf("inodes in use: %d, want %d (an unnamed temporary file was not freed at close)", got, before+1)
	}
}

// TestPosixUnlinkOpen: an unlinked open file keeps working, and its inode
// and space are freed at its last close.
func TestPosixUnlinkOpen(t *testing.T) {
	dir := testDir(t, 0)
	var s0, s unix.Statfs_t
	unix.Statfs(dir, &s0)
	path := filepath.Join(dir, "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 1<<20)
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("more"), 1<<20); err != nil {
		t.Errorf("write after unlink: %v", err)
	}
	got := make([]byte, 4)
	if _, err := f.ReadAt(got, 1<<20); err != nil || string(got) != "more" {
		t.Errorf("read after unlink: %q %v", got, err)
	}
	unix.Statfs(dir, &s)
	if s.Files-s.Ffree != s0.Files-s0.Ffree+1 {
		t.Errorf("inodes in use while open: %d, want %d", s.Files-s.Ffree, s0.Files-s0.Ffree+1)
	}
	f.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		unix.Statfs(dir, &s)
		if s.Files-s.Ffree == s0.Files-s0.Ffree || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s.Files-s.Ffree != s0.Files-s0.Ffree {
		t.Errorf("inodes in use after the last close: %d, want %d", s.Files-s.Ffree, s0.Files-s0.Ffree)
	}
}

// TestPosixStatfs: statfs reports the cluster's space in consistent units
// and the name limit.
func TestPosixStatfs(t *testing.T) {
	dir := testDir(t, 0)
	var s unix.Statfs_t
	if err := unix.Statfs(dir, &s); err != nil {
		t.Fatal(err)
	}
	var local unix.Statfs_t
	unix.Statfs(shared(t).Dir(), &local) // the chunkservers' disk
	switch {
	case s.Blocks == 0 || s.Bfree > s.Blocks || s.Bavail > s.Bfree:
		t.Errorf("blocks %d, free %d, available %d: inconsistent", s.Blocks, s.Bfree, s.Bavail)
	case s.Namelen != 255:
		t.Errorf("namelen %d, want 255", s.Namelen)
	case s.Files <= s.Ffree:
		t.Errorf("files %d, free %d: no inode counted as used", s.Files, s.Ffree)
	}
	// Four chunkservers share one local disk here: the cluster's
	// capacity is theirs together.
	capacity, disk := uint64(s.Blocks)*uint64(s.Bsize), uint64(local.Blocks)*uint64(local.Bsize)
	if capacity < disk || capacity > 4*disk {
		t.Errorf("capacity %d bytes; the chunkservers' disk has %d (4 servers on it)", capacity, disk)
	}
}

// TestPosixReaddirLarge: a directory of many entries is listed with every
// entry exactly once while other entries are created and removed.
func TestPosixReaddirLarge(t *testing.T) {
	// 100,000 entries take minutes to make on a busy two-core machine:
	// DFS_LONG=1 asks for them, make test makes 10,000.
	n := 10000
	if os.Getenv("DFS_LONG") != "" {
		n = 100000
	}
	dir := testDir(t, 0)
	start := time.Now()
	parallelDo(t, n, 16, func(i int) error {
		return unix.Mknod(filepath.Join(dir, fmt.Sprintf("e%06d", i)), unix.S_IFREG|0o644, 0)
	})
	t.Logf("created %d entries in %v", n, time.Since(start).Round(time.Millisecond))
	// Churn: other names come and go during the listing.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := filepath.Join(dir, fmt.Sprintf("churn%d", i%50))
			os.WriteFile(p, nil, 0o644)
			if i%2 == 1 {
				os.Remove(filepath.Join(dir, fmt.Sprintf("churn%d", (i+25)%50)))
			}
		}
	}()
	start = time.Now()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	ents := readDirents(fd)
	unix.Close(fd)
	close(stop)
	wg.Wait()
	t.Logf("listed %d entries in %v", len(ents), time.Since(start).Round(time.Millisecond))
	seen := make(map[string]int, n)
	for _, e := range ents {
		seen[e.name]++
	}
	var missing, twice []string
	for i := range n {
		name := fmt.Sprintf("e%06d", i)
		if seen[name] != 1 {
			missing = append(missing, fmt.Sprintf("%s×%d", name, seen[name]))
		}
	}
	for name, c := range seen {
		if c > 1 {
			twice = append(twice, name)
		}
	}
	if len(missing) > 0 || len(twice) > 0 || seen["."] != 1 || seen[".."] != 1 {
		t.Errorf("survivors not seen exactly once: %d (%s); names listed twice: %d (%s); . %d .. %d",
			len(missing), strings.Join(missing[:min(len(missing), 10)], " "),
			len(twice), strings.Join(twice[:min(len(twice), 10)], " "), seen["."], seen[".."])
	}
}

// parallelDo runs f(0..n-1) on workers goroutines and fails on the first
// error.
func parallelDo(t *testing.T, n, workers int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range n {
		select {
		case next <- i:
		case err := <-errs:
			close(next)
			wg.Wait()
			t.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// TestPosixSizeWhileBuffered: a file extended by a buffered write, after
// mapped writes near its old end, is read whole through a second
// descriptor opened by path. (A lookup once answered the size from a
// node other than the one holding the buffered data; the kernel then
// cut the read at the old size.)
func TestPosixSizeWhileBuffered(t *testing.T) {
	dir := testDir(t, 0)
	const old, end = 2833683, 3145728
	for i := range 12 {
		p := filepath.Join(dir, "f")
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt(make([]byte, old), 0)
		f.ReadAt(make([]byte, 4096), old-4096)
		page := int64(2707472) &^ 4095
		m, err := unix.Mmap(int(f.Fd()), page, int(old-page), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		for j := range m {
			m[j] = 1
		}
		unix.Munmap(m)
		f.WriteAt(make([]byte, 55088), end-55088)
		st, _ := f.Stat()
		got, err := os.ReadFile(p)
		if len(got) != end || st.Size() != end {
			t.Errorf("round %d: fstat %d, reading by path %d bytes (%v), want %d", i, st.Size(), len(got), err, end)
		}
		f.Close()
	}
}

// TestPosixConcurrentAppend: O_APPEND writes from several processes'
// descriptors at once never overwrite each other: every line lands whole.
func TestPosixConcurrentAppend(t *testing.T) {
	path := filepath.Join(testDir(t, 0), "log")
	const writers, lines = 6, 150
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			for i := range lines {
				if _, err := fmt.Fprintf(f, "writer %d line %03d %s\n", w, i, strings.Repeat("x", 40+w)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	seen := map[string]bool{}
	for _, l := range got {
		var w, i int
		if _, err := fmt.Sscanf(l, "writer %d line %d", &w, &i); err != nil || l != fmt.Sprintf("writer %d line %03d %s", w, i, strings.Repeat("x", 40+w)) {
			t.Fatalf("a torn line: %q", l)
		}
		seen[l] = true
	}
	if len(got) != writers*lines || len(seen) != writers*lines {
		t.Errorf("%d lines (%d distinct), want %d", len(got), len(seen), writers*lines)
	}
}
