package fs

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sync"
	"testing"
)

func TestWbufCoalesces(t *testing.T) {
	var b wbuf
	b.write(0, []byte("hello"))
	b.write(5, []byte(" world")) // adjacent: one extent
	b.write(20, []byte("x"))     // disjoint
	b.write(3, []byte("LO W"))   // overlap inside
	if len(b.exts) != 2 {
		t.Fatalf("%d extents, want 2", len(b.exts))
	}
	if got := string(b.exts[0].data); got != "helLO World" {
		t.Errorf("extent 0 = %q", got)
	}
	b.write(10, bytes.Repeat([]byte("-"), 10)) // bridges both
	exts := b.take()
	if len(exts) != 1 || string(exts[0].data) != "helLO Worl----------x" {
		t.Fatalf("after bridge: %d extents %q", len(exts), exts[0].data)
	}
	if b.size() != 0 || len(b.exts) != 0 {
		t.Error("take left data behind")
	}
}

// TestWbufRandom checks the buffer against a flat model.
func TestWbufRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 200; iter++ {
		var b wbuf
		model := make([]byte, 4096)
		set := make([]bool, 4096)
		for w := 0; w < 30; w++ {
			off := r.IntN(4000)
			p := make([]byte, 1+r.IntN(min(200, 4096-off)))
			for i := range p {
				p[i] = byte(r.IntN(255) + 1)
			}
			b.write(int64(off), p)
			copy(model[off:], p)
			for i := range p {
				set[off+i] = true
			}
		}
		got := make([]byte, 4096)
		gotSet := make([]bool, 4096)
		total := 0
		var prevEnd int64 = -1
		for _, e := range b.exts {
			if e.off <= prevEnd {
				t.Fatalf("extents overlap or touch at %d", e.off)
			}
			prevEnd = e.end()
			copy(got[e.off:], e.data)
			for i := range e.data {
				gotSet[int(e.off)+i] = true
			}
			total += len(e.data)
		}
		if total != b.size() {
			t.Fatalf("size %d, extents hold %d", b.size(), total)
		}
		if !bytes.Equal(got, model) {
			t.Fatal("buffer differs from model")
		}
		for i := range set {
			if set[i] != gotSet[i] {
				t.Fatalf("byte %d buffered=%v, want %v", i, gotSet[i], set[i])
			}
		}
	}
}

// countingReader serves a fixed byte slice and records reads.
type countingReader struct {
	mu    sync.Mutex
	data  []byte
	reads [][2]int64
}

func (c *countingReader) ReadAt(ctx context.Context, p []byte, off int64, size uint64) (int, error) {
	c.mu.Lock()
	c.reads = append(c.reads, [2]int64{off, int64(len(p))})
	c.mu.Unlock()
	n := copy(p, c.data[min(int(off), len(c.data)):min(len(c.data), int(size))])
	return n, nil
}

func (c *countingReader) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.reads)
}

func TestReadaheadSequential(t *testing.T) {
	data := make([]byte, 10<<20+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	f := &countingReader{data: data}
	ra := readahead{max: 1 << 20}
	ctx := context.Background()
	var out []byte
	buf := make([]byte, 128<<10)
	for off := int64(0); ; {
		n, err := ra.read(ctx, ctx, f, buf, off, uint64(len(data)), 0)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		out = append(out, buf[:n]...)
		off += int64(n)
	}
	if !bytes.Equal(out, data) {
		t.Fatal("sequential read through readahead differs")
	}
	// 81 reads of 128 KiB served by about 11 fetches of 1 MiB.
	if n := f.count(); n > 15 {
		t.Errorf("%d backend reads, want readahead windows", n)
	}
	// The first two reads go straight through: fetching starts with the
	// second sequential read in a row.
	for _, r := range f.reads[2:] {
		if r[1] != 1<<20 && r[0]+r[1] != int64(len(data)) {
			t.Errorf("backend read of %d bytes at %d, want 1 MiB windows (or the file's tail)", r[1], r[0])
		}
	}
}

func TestReadaheadRandom(t *testing.T) {
	data := make([]byte, 4<<20)
	f := &countingReader{data: data}
	ra := readahead{max: 1 << 20}
	ctx := context.Background()
	buf := make([]byte, 4096)
	// Some land near the last one; never two in a row.
	for _, off := range []int64{3 << 20, 12345, 2 << 20, 999999, 0, 8192, 3 << 20, 1 << 20} {
		if _, err := ra.read(ctx, ctx, f, buf, off, uint64(len(data)), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range f.reads {
		if r[1] != 4096 {
			t.Errorf("random read fetched %d bytes at %d", r[1], r[0])
		}
	}
	// A change of data drops fetched windows.
	ra.read(ctx, ctx, f, buf, 4096, uint64(len(data)), 0)
	ra.read(ctx, ctx, f, buf, 8192, uint64(len(data)), 0)
	before := f.count()
	data[12288] = 42
	n, _ := ra.read(ctx, ctx, f, buf, 12288, uint64(len(data)), 1)
	if f.count() == before || n != 4096 || buf[0] != 42 {
		t.Error("window not dropped after a data change")
	}
}

// The kernel's readahead requests run concurrently and may arrive out of
// order; they must still be served from windows, not one fetch each.
func TestReadaheadOutOfOrder(t *testing.T) {
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i * 13)
	}
	f := &countingReader{data: data}
	ra := readahead{max: 2 << 20}
	ctx := context.Background()
	const piece = 128 << 10
	for base := int64(0); base < int64(len(data)); base += 2 * piece {
		for _, off := range []int64{base + piece, base} {
			buf := make([]byte, piece)
			n, err := ra.read(ctx, ctx, f, buf, off, uint64(len(data)), 0)
			if err != nil || n != piece || !bytes.Equal(buf, data[off:off+piece]) {
				t.Fatalf("read at %d: n=%d err=%v or wrong data", off, n, err)
			}
		}
	}
	if n := f.count(); n > 8 {
		t.Errorf("%d backend reads for 8 MiB read slightly out of order, want about 4 windows", n)
	}
}

// TestWbufSmallAppendsStaySmall: random writes that happen to touch an
// extent's end double it; only a sequential writer's extent jumps to the
// buffer size.
func TestWbufSmallAppendsStaySmall(t *testing.T) {
	b := wbuf{grow: 9 << 20}
	b.write(0, make([]byte, 4096))
	b.write(4096, make([]byte, 4096))
	if c := cap(b.exts[0].data); c > 64<<10 {
		t.Fatalf("two touching 4 KiB writes made a %d-byte extent", c)
	}
	s := wbuf{grow: 9 << 20}
	s.write(0, make([]byte, 1<<20))
	s.write(1<<20, make([]byte, 1<<20))
	if c := cap(s.exts[0].data); c < 9<<20 {
		t.Fatalf("a sequential writer's extent grew to %d, want the whole buffer", c)
	}
}
