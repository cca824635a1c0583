package tests

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"dfs/cluster"
	"dfs/ec"
)

// TestECThroughput measures, in one cluster of 9 chunkservers, sequential
// write and read MB/s (each read on a freshly started mount) through the mount for replicated:3, ec:4+2 and
// ec:6+3, degraded reads of ec:4+2 with 1 and 2 data shards missing, and
// the codec alone (one core), and checks every byte read. It asserts no
// speed; `make bench` runs it with DFS_BENCH=1 and a bigger file.
func TestECThroughput(t *testing.T) {
	size := int64(16 << 20)
	if os.Getenv("DFS_BENCH") != "" {
		size = 256 << 20
	}
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 9, Mounts: 2})
	data := make([]byte, size)
	rnd := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < len(data); i += 8 {
		v := rnd.Uint64()
		for j := 0; j < 8; j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	mbps := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }
	// One chunk per file, so that killing a shard's server degrades every
	// stripe of it.
	chunk := fmt.Sprintf(",chunk=%d", max(size, 64<<20))
	write := func(path string) time.Duration {
		start := time.Now()
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); off += 1 << 20 {
			if _, err := f.Write(data[off : off+1<<20]); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	read := func(path string) time.Duration {
		restartMount(t, c, 1) // nothing cached
		start := time.Now()
		got, err := os.ReadFile(onMount(t, c, 1, path))
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: read back differs at byte %d", path, firstMismatch(data, got))
		}
		return took
	}
	report := func(what string, d time.Duration) {
		t.Logf("ec bench: %-34s %8.1f MB/s", what, mbps(d))
	}
	files := map[string]string{}
	for _, l := range []string{"replicated:3", "ec:4+2", "ec:6+3"} {
		dir := ecDir(t, c, "bench-"+l[:2]+l[len(l)-1:], l+chunk)
		p := filepath.Join(dir, "f")
		files[l] = p
		report("seq write "+l, write(p))
		// The first read after writing runs cold on the chunkservers;
		// the second is the steady state the degraded reads compare to.
		report("seq read (first) "+l, read(p))
		report("seq read (again) "+l, read(p))
	}
	p := files["ec:4+2"]
	ch := chunkOf(t, c, p)
	for _, missing := range []int{1, 2} {
		c.KillChunk(serverIndex(t, c, ch.Replicas[missing-1]))
		report(fmt.Sprintf("degraded read ec:4+2, %d shard(s) lost", missing), read(p))
	}
	for _, km := range [][2]int{{4, 2}, {6, 3}} {
		enc, dec := codecSpeed(t, km[0], km[1])
		t.Logf("ec bench: codec ec:%d+%d one core: encode %.2f GB/s, decode 2 lost %.2f GB/s", km[0], km[1], enc, dec)
	}
}

// codecSpeed measures encoding and decoding (two data shards lost) on one
// core, in data GB per second.
func codecSpeed(t *testing.T, k, m int) (enc, dec float64) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	c, err := ec.New(k, m)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64*int(c.StripeSize()))
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	shards := c.Split(buf)
	rate := func(f func()) float64 {
		start := time.Now()
		n := 0
		for time.Since(start) < 300*time.Millisecond {
			f()
			n++
		}
		return float64(n*len(buf)) / 1e9 / time.Since(start).Seconds()
	}
	enc = rate(func() {
		if err := c.Encode(shards); err != nil {
			t.Fatal(err)
		}
	})
	work := make([][]byte, len(shards))
	dec = rate(func() {
		copy(work, shards)
		work[0], work[1] = nil, nil
		if err := c.ReconstructData(work); err != nil {
			t.Fatal(err)
		}
	})
	return enc, dec
}
