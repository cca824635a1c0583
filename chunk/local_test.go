package chunk

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"

	"dfs/api"
)

func TestLocalChunkReads(t *testing.T) {
	s := openDisk(t, t.TempDir())
	k := Key{ID: 7}
	if err := s.Create(k, 3, 1<<20); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 200_000)
	for i := range data {
		data[i] = byte(i*31 + 1)
	}
	if err := s.WriteAt(k, data, 1000); err != nil {
		t.Fatal(err)
	}
	lc, err := OpenLocal(s.Path(k), k, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	// Ranges inside, across block edges and past the end.
	for _, r := range [][2]int64{{0, 4096}, {1000, 200_000}, {65_000, 70_000}, {199_000, 5000}, {300_000, 10}} {
		got := make([]byte, r[1])
		want := make([]byte, r[1])
		wn, werr := s.ReadAt(k, want, r[0])
		n, err := lc.ReadAt(got, r[0])
		if n != wn || (err == nil) != (werr == nil) || !bytes.Equal(got[:n], want[:wn]) {
			t.Errorf("read [%d,+%d): local %d %v, chunkserver %d %v", r[0], r[1], n, err, wn, werr)
		}
		if n < len(got) && !errors.Is(err, io.EOF) {
			t.Errorf("short local read without io.EOF: %v", err)
		}
	}
	// The file grows: reads see it without reopening.
	if err := s.WriteAt(k, []byte("tail"), 300_000); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if n, err := lc.ReadAt(got, 300_000); n != 4 || err != nil || string(got) != "tail" {
		t.Errorf("after growth: %d %v %q", n, err, got)
	}

	// A version newer than the file's is refused.
	if _, err := OpenLocal(s.Path(k), k, 4); !errors.Is(err, api.Errno_ESTALE) {
		t.Errorf("open for a newer version: %v, want ESTALE", err)
	}
	// A flipped byte fails the read instead of returning bad data.
	f, err := os.OpenFile(s.Path(k), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	off := int64(dataOffset(1<<20)) + 70_000
	f.ReadAt(b[:], off)
	b[0] ^= 0x10
	f.WriteAt(b[:], off)
	f.Close()
	var ce *CorruptError
	if _, err := lc.ReadAt(make([]byte, 100), 69_990); !errors.As(err, &ce) {
		t.Errorf("read over a flipped byte: %v, want a CorruptError", err)
	}
}
