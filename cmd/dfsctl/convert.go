package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// convertTree rewrites the file at path, or every file in the tree at
// path, into layout, and sets layout on every directory so that new
// files inherit it. Each file is copied into a new file of the new
// layout beside it and renamed over it: a reader opens either the old
// file or the new one, each whole, never a mix. A file that changes
// while it is copied is copied again (up to three times), then skipped
// with an error.
func convertTree(path, layout string, out io.Writer) error {
	var failed []string
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := setLayout(p, layout); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if strings.Contains(d.Name(), convertMark) {
				return nil // a copy another convert is making
			}
			converted, err := convertFile(p, layout)
			switch {
			case err != nil:
				fmt.Fprintf(out, "%s: %v\n", p, err)
				failed = append(failed, p)
			case converted:
				fmt.Fprintf(out, "%s: converted to %s\n", p, layout)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("layout convert: %d file(s) not converted", len(failed))
	}
	return nil
}

// convertMark names the temporary copies convert makes.
const convertMark = ".dfs-convert-"

// convertFile converts one file; it reports false for a file already in
// layout.
func convertFile(path, layout string) (bool, error) {
	cur, err := getLayout(path)
	if err != nil {
		return false, err
	}
	if cur == layout {
		return false, nil
	}
	for range 3 {
		done, err := copyOnce(path, layout)
		if err != nil || done {
			return done, err
		}
	}
	return false, errors.New("kept changing while being copied; not converted")
}

// copyOnce copies path into a new file of the given layout and renames
// it over path, unless path changed meanwhile (then it answers false).
func copyOnce(path, layout string) (bool, error) {
	var before unix.Stat_t
	if err := unix.Stat(path, &before); err != nil {
		return false, err
	}
	if before.Nlink > 1 {
		return false, fmt.Errorf("has %d hard links; a converted copy would split them", before.Nlink)
	}
	src, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer src.Close()
	r := make([]byte, 6)
	rand.Read(r)
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+convertMark+hex.EncodeToString(r))
	// The layout of an empty file can be set only while nobody has it
	// open: make it with mknod, set the layout, then open it.
	if err := unix.Mknod(tmp, unix.S_IFREG|0o600, 0); err != nil {
		return false, err
	}
	var dst *os.File
	ok := false
	defer func() {
		if !ok {
			if dst != nil {
				dst.Close()
			}
			os.Remove(tmp)
		}
	}()
	if err := setLayout(tmp, layout); err != nil {
		return false, err
	}
	if dst, err = os.OpenFile(tmp, os.O_RDWR, 0); err != nil {
		return false, err
	}
	if err := copySparse(dst, src, before.Size); err != nil {
		return false, err
	}
	if err := copyMeta(path, tmp, dst, &before); err != nil {
		return false, err
	}
	if err := dst.Sync(); err != nil {
		return false, err
	}
	if err := dst.Close(); err != nil {
		return false, err
	}
	var after unix.Stat_t
	if err := unix.Stat(path, &after); err != nil {
		return false, err
	}
	if after.Size != before.Size || after.Mtim != before.Mtim || after.Ctim != before.Ctim || after.Ino != before.Ino {
		return false, nil // written meanwhile: start again
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, err
	}
	ok = true
	return true, nil
}

// copySparse copies size bytes, leaving blocks of zeros as holes.
func copySparse(dst, src *os.File, size int64) error {
	buf := make([]byte, 4<<20)
	zero := make([]byte, 64<<10)
	var off int64
	for off < size {
		n, err := src.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if n == 0 && err != nil {
			return fmt.Errorf("reading at %d: %w", off, err)
		}
		for pos := 0; pos < n; pos += len(zero) {
			part := buf[pos:min(pos+len(zero), n)]
			if bytes.Equal(part, zero[:len(part)]) {
				continue
			}
			if _, err := dst.WriteAt(part, off+int64(pos)); err != nil {
				return err
			}
		}
		off += int64(n)
	}
	return dst.Truncate(size)
}

// copyMeta gives the copy the original's owner, extended attributes and
// times (the layout attribute excepted).
func copyMeta(path, tmp string, dst *os.File, st *unix.Stat_t) error {
	if err := dst.Chown(int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, unix.EPERM) {
		return err
	}
	if err := dst.Chmod(os.FileMode(st.Mode & 0o777)); err != nil {
		return err
	}
	names := make([]byte, 64<<10)
	n, err := unix.Listxattr(path, names)
	if err != nil && !errors.Is(err, unix.ENOTSUP) {
		return err
	}
	for _, name := range strings.Split(string(names[:max(n, 0)]), "\x00") {
		if name == "" || name == layoutXattr {
			continue
		}
		val := make([]byte, 64<<10)
		m, err := unix.Getxattr(path, name, val)
		if err != nil {
			return fmt.Errorf("xattr %s: %w", name, err)
		}
		if err := unix.Setxattr(tmp, name, val[:m], 0); err != nil {
			return fmt.Errorf("xattr %s: %w", name, err)
		}
	}
	if err := dst.Sync(); err != nil {
		return err
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, tmp, []unix.Timespec{st.Atim, st.Mtim}, 0)
}
