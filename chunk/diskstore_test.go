package chunk

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"dfs/api"
)

func openDisk(t *testing.T, dir string) *DiskStore {
	t.Helper()
	s, err := OpenDisk(dir, DiskOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestDiskReopen(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir)
	k := Key{ID: 0x1ff, Shard: 2}
	data := pattern(2*bs+10, 4)
	if err := s.Create(k, 1, 64<<20); err != nil {
		t.Fatal(err)
	}
	for _, v := range []uint64{2, 3, 7} { // both header slots get used
		if err := s.SetVersion(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteAt(k, data, 30<<20); err != nil {
		t.Fatal(err)
	}
	s.Sync(k)
	s.Close()

	s = openDisk(t, dir)
	info, err := s.Stat(k)
	if err != nil || info.Version != 7 || info.Length != 30<<20+uint64(len(data)) || info.ChunkSize != 64<<20 {
		t.Fatalf("after reopen: %+v %v", info, err)
	}
	// Sparse: 30 MiB of hole costs nothing.
	if info.DiskBytes > 1<<20 {
		t.Fatalf("chunk with %d bytes of data takes %d on disk", len(data), info.DiskBytes)
	}
	got := make([]byte, len(data)+5)
	n, _ := s.ReadAt(k, got, 30<<20)
	if n != len(data) || !bytes.Equal(got[:n], data) {
		t.Fatal("data changed across reopen")
	}
	if !strings.HasSuffix(s.Path(k), "/chunks/ff/00000000000001ff-2.chunk") {
		t.Fatalf("chunk file at %s", s.Path(k))
	}
}

func TestDiskLocked(t *testing.T) {
	dir := t.TempDir()
	openDisk(t, dir)
	_, err := OpenDisk(dir, DiskOptions{Logger: quiet})
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("second open: %v", err)
	}
}

// damage creates chunk k with some data in a fresh store, lets fn change
// its file, and reopens the store.
func damage(t *testing.T, k Key, fn func(f *os.File)) (*DiskStore, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := OpenDisk(dir, DiskOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s.Create(k, 3, 4*bs)
	s.SetVersion(k, 4)
	s.WriteAt(k, pattern(bs, 1), 0)
	path := s.Path(k)
	s.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fn(f)
	f.Close()
	return openDisk(t, dir), path
}

func TestDiskDamagedFiles(t *testing.T) {
	k := Key{ID: 5}
	flip := func(off int64) func(*os.File) {
		return func(f *os.File) {
			b := []byte{0}
			f.ReadAt(b, off)
			b[0] ^= 1
			f.WriteAt(b, off)
		}
	}
	for _, tc := range []struct {
		name    string
		fn      func(*os.File)
		want    string // "" : the chunk is still readable
		version uint64
	}{
		{"both header slots", func(f *os.File) { flip(20)(f); flip(slotSize + 20)(f) }, "corrupt header", 0},
		{"torn header update", flip(slotSize + 30), "", 3}, // version 4 went to slot 1; slot 0 still says 3
		{"older header slot", flip(30), "", 4},
		{"truncated header", func(f *os.File) { f.Truncate(100) }, "truncated file", 0},
		{"truncated checksums", func(f *os.File) { f.Truncate(headerSize + 2) }, "truncated file", 0},
		{"empty file", func(f *os.File) { f.Truncate(0) }, "truncated file", 0},
		{"data beyond chunk size", func(f *os.File) { f.Truncate(int64(dataOffset(4*bs)) + 5*bs) }, "exceeds chunk size", 0},
		{"wrong id in header", func(f *os.File) {
			h := header{id: 6, version: 9, chunkSize: 4 * bs, dataOff: dataOffset(4 * bs), seq: 9}
			f.WriteAt(h.encode(), 0)
		}, "names chunk", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, path := damage(t, k, tc.fn)
			_, err := s.Stat(k)
			if tc.want == "" {
				info, err := s.Stat(k)
				if err != nil || info.Version != tc.version {
					t.Fatalf("Stat: %+v %v, want version %d", info, err, tc.version)
				}
				return
			}
			var ce *CorruptError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Stat: %v, want a CorruptError naming %s and %q", err, path, tc.want)
			}
			if api.ErrnoOf(err) != api.Errno_EIO {
				t.Fatalf("errno %v", api.ErrnoOf(err))
			}
			if _, err := s.ReadAt(k, make([]byte, 10), 0); !errors.As(err, &ce) {
				t.Fatalf("ReadAt: %v", err)
			}
			if list, _ := s.List(); len(list) != 0 {
				t.Fatalf("List includes the broken chunk: %+v", list)
			}
			if b := s.Broken(); len(b) != 1 {
				t.Fatalf("Broken: %v", b)
			}
			// The master re-creating the chunk keeps the bad file aside.
			if err := s.Create(k, 5, 4*bs); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path + ".corrupt"); err != nil {
				t.Fatal(err)
			}
			if info, err := s.Stat(k); err != nil || info.Version != 5 || info.Length != 0 {
				t.Fatalf("recreated: %+v %v", info, err)
			}
		})
	}
}

func TestDiskCorruptData(t *testing.T) {
	k := Key{ID: 8}
	for _, tc := range []struct {
		name  string
		fn    func(f *os.File)
		block int64
		want  string
	}{
		{"flipped data byte", func(f *os.File) { f.WriteAt([]byte{0xff}, int64(dataOffset(4*bs))+bs-1) }, 0, "checksum mismatch"},
		{"flipped checksum", func(f *os.File) { f.WriteAt([]byte{1, 2}, headerSize) }, 0, "checksum mismatch"},
		{"data in a hole", func(f *os.File) { f.WriteAt([]byte{1}, int64(dataOffset(4*bs))+bs+5) }, 1, "block recorded as a hole"},
		{"data cut short", func(f *os.File) { f.Truncate(int64(dataOffset(4*bs)) + 100) }, 0, "checksum mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, path := damage(t, k, tc.fn)
			_, err := s.ReadAt(k, make([]byte, 2*bs), 0)
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Block != tc.block || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("ReadAt: %v, want a CorruptError naming %s, block %d and %q", err, path, tc.block, tc.want)
			}
		})
	}
}
