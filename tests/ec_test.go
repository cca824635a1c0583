package tests

// Erasure-coded files (issue 7): round trips of many sizes, overwrites
// against a local reference, degraded reads with chunkservers killed,
// rebuilds, fsck and space accounting. Each test boots its own cluster
// with enough chunkservers for the layouts it uses.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"dfs/api"
	"dfs/cluster"
	"dfs/ec"

	"golang.org/x/sys/unix"
)

// ecDir makes a directory with the given layout on mount 0.
func ecDir(t *testing.T, c *cluster.Cluster, name, layout string) string {
	t.Helper()
	dir := filepath.Join(c.MountDir(0), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(dir, "dfs.layout", []byte(layout), 0); err != nil {
		t.Fatalf("setxattr dfs.layout=%s on %s: %v", layout, dir, err)
	}
	return dir
}

// onMount maps a path under mount 0 to the same file under mount i.
func onMount(t *testing.T, c *cluster.Cluster, i int, path string) string {
	t.Helper()
	rel, err := filepath.Rel(c.MountDir(0), path)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(c.MountDir(i), rel)
}

// ecSizes are file sizes around the stripe geometry of a K-data-shard
// layout whose chunks hold chunk bytes.
func ecSizes(k int, chunk int64) []int64 {
	stripe := int64(k) * ec.CellSize
	return []int64{0, 1, 4095, ec.CellSize - 1, ec.CellSize, ec.CellSize + 1, stripe - 1, stripe, stripe + 1,
		3*stripe + 12345, chunk - 1, chunk, chunk + 1, 2*chunk + 3*stripe + 777}
}

// TestECRoundTrip writes files of many sizes (below one stripe, exactly
// one, many plus a tail, across chunks) into ec:4+2 and ec:3+2
// directories on one mount and reads them back byte for byte on another,
// which has none of them cached.
func TestECRoundTrip(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 6, Mounts: 2})
	for _, l := range []struct {
		layout string
		k      int
		chunk  int64
	}{
		{"ec:4+2,chunk=1048576", 4, 1 << 20},
		{"ec:3+2,chunk=786432", 3, 786432},
		{"ec:2+1", 2, 64 << 20},
	} {
		dir := ecDir(t, c, fmt.Sprintf("k%d", l.k), l.layout)
		sizes := ecSizes(l.k, l.chunk)
		if l.chunk > 8<<20 {
			sizes = sizes[:10]
		}
		for i, n := range sizes {
			writeFile(t, filepath.Join(dir, fmt.Sprint(i)), uint64(i), n)
		}
		buf := make([]byte, 128)
		n, err := unix.Getxattr(filepath.Join(dir, "0"), "dfs.layout", buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:n]); got != l.layout {
			t.Errorf("getxattr dfs.layout on a new file: %q, want %q (inherited)", got, l.layout)
		}
		for i, n := range sizes {
			checkFile(t, onMount(t, c, 1, filepath.Join(dir, fmt.Sprint(i))), uint64(i), n)
		}
	}
}

// refFile applies the same operations to a file on the mount and to a
// local reference, and compares them through another mount.
type refFile struct {
	t    *testing.T
	f    *os.File
	ref  []byte
	path string
}

func (r *refFile) pwrite(off int64, b []byte) {
	r.t.Helper()
	if _, err := r.f.WriteAt(b, off); err != nil {
		r.t.Fatalf("pwrite %d bytes at %d: %v", len(b), off, err)
	}
	if end := off + int64(len(b)); end > int64(len(r.ref)) {
		r.ref = append(r.ref, make([]byte, end-int64(len(r.ref)))...)
	}
	copy(r.ref[off:], b)
}

func (r *refFile) truncate(n int64) {
	r.t.Helper()
	if err := r.f.Truncate(n); err != nil {
		r.t.Fatalf("truncate to %d: %v", n, err)
	}
	if n < int64(len(r.ref)) {
		r.ref = r.ref[:n]
	} else {
		r.ref = append(r.ref, make([]byte, n-int64(len(r.ref)))...)
	}
}

// check closes-to-open: fsync, then read the whole file on readPath.
func (r *refFile) check(readPath, what string) {
	r.t.Helper()
	if err := r.f.Sync(); err != nil {
		r.t.Fatalf("%s: fsync: %v", what, err)
	}
	got, err := os.ReadFile(readPath)
	if err != nil {
		r.t.Fatalf("%s: read: %v", what, err)
	}
	if len(got) != len(r.ref) {
		r.t.Fatalf("%s: %d bytes, want %d", what, len(got), len(r.ref))
	}
	if i := firstMismatch(r.ref, got); i >= 0 {
		r.t.Fatalf("%s: byte %d is %#x, want %#x", what, i, got[i], r.ref[i])
	}
}

// TestECOverwrites: random pwrites of random sizes at random offsets,
// truncates down and up, and appends on an ec:4+2 file (small chunks, so
// that writes cross chunks), compared with a local reference file after
// every few operations through a second mount.
func TestECOverwrites(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 6, Mounts: 2})
	dir := ecDir(t, c, "ow", "ec:4+2,chunk=524288")
	path := filepath.Join(dir, "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &refFile{t: t, f: f, path: path}
	rnd := rand.New(rand.NewPCG(7, 11))
	const maxSize = 3 << 20
	rounds := 60
	if soak() {
		rounds = 600
	}
	for round := range rounds {
		var what string
		switch op := rnd.IntN(10); {
		case op < 6:
			n := 1 + rnd.IntN([]int{100, 5000, 70000, 600000}[rnd.IntN(4)])
			off := rnd.Int64N(maxSize - int64(n))
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rnd.Uint32() | 1)
			}
			r.pwrite(off, b)
			what = fmt.Sprintf("pwrite [%d,+%d)", off, n)
		case op < 8:
			n := rnd.Int64N(maxSize)
			r.truncate(n)
			what = fmt.Sprintf("truncate %d", n)
		default:
			b := bytes.Repeat([]byte{byte(round) | 0x80}, 1+rnd.IntN(200000))
			r.pwrite(int64(len(r.ref)), b)
			what = fmt.Sprintf("append %d", len(b))
		}
		if round%3 == 2 {
			r.check(onMount(t, c, 1, path), fmt.Sprintf("round %d after %s", round, what))
		}
	}
	r.check(onMount(t, c, 1, path), "end")
}

// TestECDegradedRead: with M chunkservers killed (-9), among them those
// holding data shards, every ec:4+2 file reads back byte for byte on a
// mount that has none of it cached; overwrites and new files still work
// and read back.
func TestECDegradedRead(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 8, Mounts: 2})
	dir := ecDir(t, c, "deg", "ec:4+2,chunk=1048576")
	sizes := ecSizes(4, 1<<20)
	for i, n := range sizes {
		writeFile(t, filepath.Join(dir, fmt.Sprint(i)), uint64(i), n)
	}
	ch := chunkOf(t, c, filepath.Join(dir, fmt.Sprint(len(sizes)-1)))
	if len(ch.Replicas) != 6 {
		t.Fatalf("ec:4+2 chunk has %d shards: %v", len(ch.Replicas), ch.Replicas)
	}
	servers := map[string]bool{}
	for i, r := range ch.Replicas {
		if r.Shard != uint32(i) || servers[r.Server] {
			t.Fatalf("shards not on distinct servers in order: %v", ch.Replicas)
		}
		servers[r.Server] = true
	}
	// Kill the servers of data shards 0 and 1.
	for _, r := range ch.Replicas[:2] {
		c.KillChunk(serverIndex(t, c, r))
	}
	for i, n := range sizes {
		checkFile(t, onMount(t, c, 1, filepath.Join(dir, fmt.Sprint(i))), uint64(i), n)
	}
	// Writes go on: overwrite the middle of the big file, add a new one.
	big := filepath.Join(dir, fmt.Sprint(len(sizes)-1))
	want, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(big, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	patch := bytes.Repeat([]byte("degraded"), 40000)
	if _, err := f.WriteAt(patch, 100000); err != nil {
		t.Fatalf("overwrite with 2 shards down: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after a degraded overwrite: %v", err)
	}
	copy(want[100000:], patch)
	got, err := os.ReadFile(onMount(t, c, 1, big))
	if err != nil {
		t.Fatal(err)
	}
	if i := firstMismatch(want, got); i >= 0 || len(got) != len(want) {
		t.Fatalf("after a degraded overwrite: %d bytes, first difference at %d", len(got), i)
	}
	writeFile(t, filepath.Join(dir, "new"), 99, 3<<20+5)
	checkFile(t, onMount(t, c, 1, filepath.Join(dir, "new")), 99, 3<<20+5)
}

// ecChunks returns every chunk of the files at paths, from the leader.
func ecChunks(t *testing.T, c *cluster.Cluster, paths []string) []*api.Chunk {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*api.Chunk
	for _, p := range paths {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if err := onLeader(ctx, c, func(m api.MasterClient) error {
			resp, err := m.GetChunks(ctx, &api.GetChunksRequest{Ino: st.Ino, Count: 1024})
			if err == nil {
				out = append(out, resp.Chunks...)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestECRebuild: two chunkservers holding shards are killed for good; the
// master's repair loop rebuilds their shards onto the other servers,
// fsck reports the files degraded meanwhile and healthy after, and then
// two further failures are survived: every file still reads back.
func TestECRebuild(t *testing.T) {
	const deadAfter = 5 * time.Second
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 8, Mounts: 2,
		ExtraMasterArgs: []string{"-dead-after", deadAfter.String(), "-server-dead-after", "2s", "-full-report-interval", "3s"}})
	dir := ecDir(t, c, "rb", "ec:4+2,chunk=1048576")
	var paths []string
	sizes := []int64{5000, 300000, 1 << 20, 3<<20 + 4321}
	for i, n := range sizes {
		p := filepath.Join(dir, fmt.Sprint(i))
		writeFile(t, p, uint64(i+10), n)
		paths = append(paths, p)
	}
	if out, code := dfsctl(t, c, "fsck"); code != 0 {
		t.Fatalf("fsck of healthy EC files: exit %d\n%s", code, out)
	}
	// kill stops the servers of shards 0 and 1 of the last file's first
	// chunk and returns their ids.
	kill := func() map[string]bool {
		chunks := ecChunks(t, c, paths[len(paths)-1:])
		gone := map[string]bool{}
		for _, r := range chunks[0].Replicas[:2] {
			c.KillChunk(serverIndex(t, c, r))
			gone[r.Server] = true
		}
		return gone
	}
	gone := kill()
	killed := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		down := 0
		for _, s := range st.Servers {
			if gone[s.Id] && !s.Alive {
				down++
			}
		}
		if down == len(gone) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if time.Since(killed) < deadAfter-2*time.Second {
		out, code := dfsctl(t, c, "fsck")
		if code != 4 || !strings.Contains(out, "degraded") {
			t.Errorf("fsck with 2 shard servers down: exit %d, want 4 and degraded chunks:\n%s", code, out)
		}
	}
	rebuilt := func() bool {
		for _, ch := range ecChunks(t, c, paths) {
			if len(ch.Replicas) != 6 {
				return false
			}
			for _, r := range ch.Replicas {
				if gone[r.Server] {
					return false
				}
			}
		}
		return true
	}
	for !rebuilt() {
		if time.Since(killed) > 2*time.Minute {
			t.Fatalf("shards not rebuilt 2 minutes after the kill: %v", ecChunks(t, c, paths))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("EC shards of 2 lost servers rebuilt %v after the kill", time.Since(killed).Round(time.Millisecond))
	waitHealthy(t, c, 2*time.Minute)
	for i, n := range sizes {
		checkFile(t, onMount(t, c, 1, paths[i]), uint64(i+10), n)
	}
	// Two more failures: the rebuilt shards are among what is left.
	kill()
	if err := c.RestartMount(1); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for i, n := range sizes {
		checkFile(t, onMount(t, c, 1, paths[i]), uint64(i+10), n)
	}
}
