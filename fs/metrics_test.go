package fs

import (
	"bytes"
	"context"
	"testing"

	"dfs/metrics/metricstest"

	"github.com/prometheus/client_golang/prometheus"
)

// memFile is a fileReader over a byte slice.
type memFile []byte

func (m memFile) ReadAt(_ context.Context, p []byte, off int64, size uint64) (int, error) {
	return copy(p, m[off:min(int64(size), int64(len(m)))]), nil
}

// TestReadaheadCounts reads a file sequentially, then far from where it
// stopped: the sequential reads after the first are readahead hits, the
// first and the far one misses, and every byte is right.
func TestReadaheadCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collectors()...)
	count := func() (hit, miss float64) {
		f, err := metricstest.Gather(reg)
		if err != nil {
			t.Fatal(err)
		}
		hit, _ = f.Sum("dfs_mount_cache_total", "cache=readahead", "result=hit")
		miss, _ = f.Sum("dfs_mount_cache_total", "cache=readahead", "result=miss")
		return hit, miss
	}
	data := make(memFile, 8<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	hit0, miss0 := count()
	ra := &readahead{max: 1 << 20}
	ctx := context.Background()
	buf := make([]byte, 128<<10)
	const reads = 16
	for i := range reads {
		off := int64(i) * int64(len(buf))
		n, err := ra.read(ctx, ctx, data, buf, off, uint64(len(data)), 0)
		if err != nil || !bytes.Equal(buf[:n], data[off:off+int64(len(buf))]) {
			t.Fatalf("read %d: %d bytes, %v", i, n, err)
		}
	}
	if _, err := ra.read(ctx, ctx, data, buf, 7<<20, uint64(len(data)), 0); err != nil {
		t.Fatal(err)
	}
	hit, miss := count()
	if hit-hit0 != reads-2 || miss-miss0 != 3 {
		t.Errorf("readahead: %v hits and %v misses, want %d and 3", hit-hit0, miss-miss0, reads-2)
	}
}
