package tests

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// entry is what the tests compare of one file, directory or symlink.
type entry struct {
	mode   uint32 // type and permission bits, st_mode
	size   int64
	nlink  uint64
	mtime  time.Time
	target string   // symlink target
	sum    [32]byte // SHA-256 of a regular file's content
}

func (e entry) isDir() bool  { return e.mode&syscall.S_IFMT == syscall.S_IFDIR }
func (e entry) isReg() bool  { return e.mode&syscall.S_IFMT == syscall.S_IFREG }
func (e entry) isLink() bool { return e.mode&syscall.S_IFMT == syscall.S_IFLNK }

// scanTree lstats everything below root (root itself as "."), reading
// regular files and symlinks.
func scanTree(root string) (map[string]entry, error) {
	tree := map[string]entry{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", path, err)
		}
		e := entry{
			mode:  st.Mode,
			size:  st.Size,
			nlink: uint64(st.Nlink),
			mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		}
		switch {
		case e.isLink():
			if e.target, err = os.Readlink(path); err != nil {
				return err
			}
		case e.isReg():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			h := sha256.New()
			n, err := io.Copy(h, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			if n != e.size {
				return fmt.Errorf("read %s: got %d bytes, stat says %d", path, n, e.size)
			}
			copy(e.sum[:], h.Sum(nil))
		}
		tree[rel] = e
		return nil
	})
	return tree, err
}

// compareOpts says which attributes a comparison trusts.
type compareOpts struct {
	// mtime reports whether the mtime of want's entry at rel must match;
	// nil means always.
	mtime func(rel string, want entry) bool
	// dirSize compares directories' st_size, which differs between
	// filesystems.
	dirSize bool
	// skipRoot ignores the root's own attributes.
	skipRoot bool
}

// diffTrees lists every difference between want (the reference) and got,
// with paths relative to the roots. For files whose contents differ it
// names the first differing offset, read from wantRoot and gotRoot.
func diffTrees(want, got map[string]entry, wantRoot, gotRoot string, o compareOpts) []string {
	var diffs []string
	add := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	var names []string
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		w, inWant := want[n]
		g, inGot := got[n]
		switch {
		case !inGot:
			add("%s: missing (want mode %o)", n, w.mode)
			continue
		case !inWant:
			add("%s: unexpected (mode %o size %d)", n, g.mode, g.size)
			continue
		}
		if n == "." && o.skipRoot {
			continue
		}
		if w.mode != g.mode {
			add("%s: mode %o, want %o", n, g.mode, w.mode)
			continue
		}
		if w.nlink != g.nlink {
			add("%s: nlink %d, want %d", n, g.nlink, w.nlink)
		}
		if (!w.isDir() || o.dirSize) && w.size != g.size {
			add("%s: size %d, want %d", n, g.size, w.size)
		}
		if (o.mtime == nil || o.mtime(n, w)) && !w.mtime.Equal(g.mtime) {
			add("%s: mtime %s, want %s", n, g.mtime.Format(time.RFC3339Nano), w.mtime.Format(time.RFC3339Nano))
		}
		if w.target != g.target {
			add("%s: symlink target %q, want %q", n, g.target, w.target)
		}
		if w.sum != g.sum {
			add("%s: content differs%s", n, firstDiff(filepath.Join(wantRoot, n), filepath.Join(gotRoot, n)))
		}
	}
	return diffs
}

// firstDiff finds where two files' contents part.
func firstDiff(a, b string) string {
	fa, err := os.Open(a)
	if err != nil {
		return ""
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return ""
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	var off int64
	for {
		na, _ := io.ReadFull(fa, ba)
		nb, _ := io.ReadFull(fb, bb)
		n := min(na, nb)
		for i := range n {
			if ba[i] != bb[i] {
				return fmt.Sprintf(" from offset %d (%#x, want %#x)", off+int64(i), bb[i], ba[i])
			}
		}
		if na != nb {
			return fmt.Sprintf(": one ends at %d", off+int64(n))
		}
		if na == 0 {
			return ""
		}
		off += int64(n)
	}
}

// firstMismatch returns the first offset where a and b differ, or -1.
func firstMismatch(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return n
	}
	return -1
}
