package tests

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	fsxOps  = flag.Int("fsx.ops", 1500, "operations of the fsx-style integrity exerciser")
	fsxSeed = flag.Uint64("fsx.seed", 0, "seed of the fsx-style exerciser (0: time-based)")
	fsxTime = flag.Duration("fsx.duration", 0, "run the fsx-style exerciser this long instead of -fsx.ops operations (make soak)")
	fsxMax  = flag.Int64("fsx.maxsize", 3<<20, "largest file size the fsx-style exerciser makes")
)

// TestFsx is a file-integrity exerciser in the spirit of fsx: one file
// takes a random sequence of writes, mapped writes and reads, truncates,
// fallocates, reads and reopens, and after every step what the mount
// shows (size, and the bytes read) must equal an in-memory model. The
// seed is printed; -fsx.seed replays a run.
func TestFsx(t *testing.T) { runFsx(t, testDir(t, 0)) }

// runFsx runs the exerciser on a file in dir.
func runFsx(t *testing.T, dir string) {
	seed := *fsxSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	replay := fmt.Sprintf("seed %d (replay: go test ./tests -run '^%s$' -fsx.seed %d -fsx.ops %d)", seed, t.Name(), seed, *fsxOps)
	t.Log(replay)
	x := &fsx{t: t, path: filepath.Join(dir, "fsx"), r: rand.New(rand.NewPCG(seed, seed^0xf5c)), max: *fsxMax}
	defer x.close()
	x.open(true)
	end := time.Now().Add(*fsxTime)
	for i := 0; ; i++ {
		if *fsxTime > 0 && time.Now().After(end) || *fsxTime == 0 && i >= *fsxOps {
			t.Logf("%d operations", i)
			break
		}
		x.step()
		if x.failed != "" {
			t.Fatalf("%s\nafter %d operations, the last ones:\n  %s\n%s", x.failed, i+1,
				strings.Join(x.log[max(0, len(x.log)-20):], "\n  "), replay)
		}
	}
	x.close()
	x.open(false)
	x.checkAll("final reopen")
	if x.failed != "" {
		t.Fatalf("%s\n%s", x.failed, replay)
	}
}

type fsx struct {
	t      *testing.T
	path   string
	r      *rand.Rand
	max    int64
	f      *os.File
	model  []byte
	log    []string
	failed string
}

func (x *fsx) fail(format string, args ...any) {
	if x.failed == "" {
		x.failed = fmt.Sprintf(format, args...)
	}
}

func (x *fsx) note(format string, args ...any) {
	x.log = append(x.log, fmt.Sprintf(format, args...))
	if len(x.log) > 200 {
		x.log = x.log[100:]
	}
}

func (x *fsx) open(create bool) {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(x.path, flags, 0o644)
	if err != nil {
		x.t.Fatal(err)
	}
	x.f = f
}

func (x *fsx) close() {
	if x.f != nil {
		if err := x.f.Close(); err != nil {
			x.fail("close: %v", err)
		}
		x.f = nil
	}
}

// resize changes the model's size, zero-filling growth.
func (x *fsx) resize(n int64) {
	if n <= int64(len(x.model)) {
		x.model = x.model[:n]
		return
	}
	x.model = append(x.model, make([]byte, n-int64(len(x.model)))...)
}

// span picks a random range, mostly small, starting below limit.
func (x *fsx) span(limit int64) (off, n int64) {
	off = x.r.Int64N(max(limit, 1))
	switch x.r.IntN(4) {
	case 0:
		n = 1 + x.r.Int64N(16)
	case 1:
		n = 1 + x.r.Int64N(4096)
	default:
		n = 1 + x.r.Int64N(256<<10)
	}
	return off, n
}

func (x *fsx) step() {
	size := int64(len(x.model))
	switch k := x.r.IntN(100); {
	case k < 30: // write
		off, n := x.span(x.max)
		n = min(n, x.max-off)
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(x.r.Uint32())
		}
		x.note("write %d+%d", off, n)
		if _, err := x.f.WriteAt(data, off); err != nil {
			x.fail("write %d+%d: %v", off, n, err)
			return
		}
		if off+n > size {
			x.resize(off + n)
		}
		copy(x.model[off:], data)
	case k < 45: // mapped write (within the size: a mapping cannot grow a file)
		if size == 0 {
			return
		}
		off, n := x.span(size)
		n = min(n, size-off)
		x.note("mapwrite %d+%d", off, n)
		page := off &^ 4095
		m, err := unix.Mmap(int(x.f.Fd()), page, int(off+n-page), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			x.fail("mmap %d+%d: %v", page, off+n-page, err)
			return
		}
		b := byte(x.r.Uint32())
		for i := off; i < off+n; i++ {
			m[i-page] = b + byte(i)
			x.model[i] = b + byte(i)
		}
		if x.r.IntN(2) == 0 {
			if err := unix.Msync(m, unix.MS_SYNC); err != nil {
				x.fail("msync: %v", err)
			}
		}
		if err := unix.Munmap(m); err != nil {
			x.fail("munmap: %v", err)
		}
	case k < 55: // mapped read
		if size == 0 {
			return
		}
		off, n := x.span(size)
		n = min(n, size-off)
		x.note("mapread %d+%d", off, n)
		page := off &^ 4095
		m, err := unix.Mmap(int(x.f.Fd()), page, int(off+n-page), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			x.fail("mmap read %d+%d: %v", page, off+n-page, err)
			return
		}
		if i := firstMismatch(m[off-page:], x.model[off:off+n]); i >= 0 {
			x.fail("mapread %d+%d: byte %d is %#x, want %#x", off, n, off+int64(i), m[off-page+int64(i)], x.model[off+int64(i)])
		}
		unix.Munmap(m)
	case k < 75: // read, sometimes across EOF
		off, n := x.span(size + 4096)
		x.note("read %d+%d", off, n)
		buf := make([]byte, n)
		got, err := x.f.ReadAt(buf, off)
		want := max(0, min(n, size-off))
		if int64(got) != want || err != nil && int64(got) == n {
			x.fail("read %d+%d: %d bytes (%v), want %d", off, n, got, err, want)
			return
		}
		if i := firstMismatch(buf[:got], x.model[min(off, size):min(off+n, size)]); i >= 0 {
			x.fail("read %d+%d: byte %d is %#x, want %#x", off, n, off+int64(i), buf[i], x.model[off+int64(i)])
		}
	case k < 83: // truncate
		n := x.r.Int64N(x.max)
		if x.r.IntN(3) == 0 {
			n = size / 2
		}
		x.note("truncate %d", n)
		if err := x.f.Truncate(n); err != nil {
			x.fail("truncate %d: %v", n, err)
			return
		}
		x.resize(n)
	case k < 91: // fallocate
		off, n := x.span(x.max)
		n = min(n, x.max-off)
		modes := []uint32{0, unix.FALLOC_FL_KEEP_SIZE, unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE,
			unix.FALLOC_FL_ZERO_RANGE, unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE}
		mode := modes[x.r.IntN(len(modes))]
		x.note("fallocate mode=%#x %d+%d", mode, off, n)
		if err := unix.Fallocate(int(x.f.Fd()), mode, off, n); err != nil {
			x.fail("fallocate mode=%#x %d+%d: %v", mode, off, n, err)
			return
		}
		if mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE) != 0 && off < size {
			clear(x.model[off:min(off+n, size)])
		}
		if mode&unix.FALLOC_FL_KEEP_SIZE == 0 && off+n > size {
			x.resize(off + n)
		}
	case k < 95: // close and reopen: close-to-open must keep it all
		x.note("reopen")
		x.close()
		x.open(false)
	case k < 97:
		x.note("fsync")
		if err := x.f.Sync(); err != nil {
			x.fail("fsync: %v", err)
		}
	default:
		x.checkAll("full check")
		return
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(x.f.Fd()), &st); err != nil || st.Size != int64(len(x.model)) {
		x.fail("fstat: size %d (%v), want %d", st.Size, err, len(x.model))
	}
}

// checkAll reads the whole file through a fresh descriptor.
func (x *fsx) checkAll(what string) {
	x.note("%s", what)
	got, err := os.ReadFile(x.path)
	if err != nil {
		x.fail("%s: %v", what, err)
		return
	}
	if len(got) != len(x.model) {
		x.fail("%s: %d bytes, want %d", what, len(got), len(x.model))
		return
	}
	if !bytes.Equal(got, x.model) {
		i := firstMismatch(got, x.model)
		x.fail("%s: byte %d is %#x, want %#x", what, i, got[i], x.model[i])
	}
}
