package tests

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// patternReader yields a reproducible pseudo-random stream, so that large
// files need not be held in memory to be checked.
func patternReader(seed uint64, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)}), n)
}

// writeFile writes n bytes of pattern seed to path and closes it.
func writeFile(t *testing.T, path string, seed uint64, n int64) {
	t.Helper()
	if err := createFile(path, seed, n); err != nil {
		t.Fatal(err)
	}
}

func createFile(path string, seed uint64, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if w, err := io.CopyBuffer(f, patternReader(seed, n), make([]byte, 1<<20)); err != nil || w != n {
		f.Close()
		return fmt.Errorf("write %s: wrote %d of %d: %v", path, w, n, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %v", path, err)
	}
	return nil
}

// checkFile reads path through a fresh open and compares it with the
// pattern, naming the first wrong offset.
func checkFile(t *testing.T, path string, seed uint64, n int64) {
	t.Helper()
	if err := verifyFile(path, seed, n); err != nil {
		t.Error(err)
	}
}

func verifyFile(path string, seed uint64, n int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() != n {
		return fmt.Errorf("%s: size %d, want %d", path, fi.Size(), n)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	want := patternReader(seed, n)
	bw, bg := make([]byte, 1<<20), make([]byte, 1<<20)
	var off int64
	for {
		nw, _ := io.ReadFull(want, bw)
		ng, err := io.ReadFull(f, bg)
		if i := firstMismatch(bw[:nw], bg[:ng]); i >= 0 {
			if i >= ng {
				return fmt.Errorf("%s: data ends at %d, want %d bytes (%v)", path, off+int64(ng), n, err)
			}
			return fmt.Errorf("%s: byte %d is %#x, want %#x", path, off+int64(i), bg[i], bw[i])
		}
		if nw == 0 {
			if ng != 0 {
				return fmt.Errorf("%s: more data than its %d bytes", path, n)
			}
			return nil
		}
		off += int64(nw)
	}
}

func TestFileSizes(t *testing.T) {
	dir := testDir(t, 0)
	sizes := []int64{0, 1, 64<<20 - 1, 64<<20 + 1}
	if os.Getenv("DFS_LONG") != "" {
		sizes = append(sizes, 1<<30)
	}
	for i, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p := filepath.Join(dir, fmt.Sprintf("f%d", n))
			writeFile(t, p, uint64(i), n)
			checkFile(t, p, uint64(i), n)
		})
	}
}

func TestSparseFile(t *testing.T) {
	dir := testDir(t, 0)
	p := filepath.Join(dir, "sparse")
	const off = 1 << 40
	data := []byte("data after a 1 TiB hole")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatalf("pwrite at 1 TiB: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != off+int64(len(data)) {
		t.Fatalf("size %d, want %d", fi.Size(), off+int64(len(data)))
	}
	f, err = os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zeros := make([]byte, 256<<10)
	// The hole at the start, across the first chunk boundary, and just
	// before the data.
	for _, at := range []int64{0, 64<<20 - 4096, off - int64(len(zeros))} {
		buf := bytes.Repeat([]byte{0xff}, len(zeros))
		if n, err := f.ReadAt(buf, at); err != nil || n != len(buf) {
			t.Fatalf("read %d bytes at %d: got %d, %v", len(buf), at, n, err)
		}
		if i := firstMismatch(zeros, buf); i >= 0 {
			t.Errorf("hole at %d has byte %#x", at+int64(i), buf[i])
		}
	}
	buf := make([]byte, 4096+len(data)+100)
	n, err := f.ReadAt(buf, off-4096)
	if n != 4096+len(data) || err != io.EOF {
		t.Fatalf("read across the end: %d bytes, %v; want %d, EOF", n, err, 4096+len(data))
	}
	if !bytes.Equal(buf[:4096], zeros[:4096]) || !bytes.Equal(buf[4096:n], data) {
		t.Errorf("read back %q..., want zeros then %q", buf[4096:n], data)
	}
}
