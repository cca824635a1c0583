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
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"dfs/api"
	"dfs/cluster"
	"dfs/ec"
	"dfs/metrics/metricstest"

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
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 6, Mounts: 2,
		ExtraMountArgs: []string{"-debug-addr", "127.0.0.1:0"}})
	// More shards than chunkservers, or a malformed layout: EINVAL.
	for _, bad := range []string{"ec:6+3", "ec:4+0", "ec:4"} {
		if err := unix.Setxattr(c.MountDir(0), "dfs.layout", []byte(bad), 0); err != unix.EINVAL {
			t.Errorf("setxattr dfs.layout=%s with 6 chunkservers: %v, want EINVAL", bad, err)
		}
	}
	if out, code := dfsctl(t, c, "layout", "set", c.MountDir(0), "ec:6+3"); code == 0 || !strings.Contains(out, "rejected") {
		t.Errorf("dfsctl layout set ec:6+3 with 6 chunkservers: exit %d\n%s", code, out)
	}
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
	// The shards are on this machine: the second mount read their files
	// directly (the chunkservers answer in TestECDegradedRead).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := scrape(ctx, t, adminAddrFromLog(ctx, t, filepath.Join(c.LogDir(), "mount2.log")))
	if n := sumOver([]metricstest.Families{m}, "dfs_client_short_circuit_reads_total", "result=local"); n < 1 {
		t.Errorf("the second mount read %v shards from their files, want some", n)
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
// truncates down and up, and appends on an ec:4+2 file and an ec:3+2
// file whose chunks end inside a stripe (small chunks, so that writes
// cross chunks), compared with a local reference file after every few
// operations through a second mount.
func TestECOverwrites(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 6, Mounts: 2})
	for i, layout := range []string{"ec:4+2,chunk=524288", "ec:3+2,chunk=524288"} {
		t.Run(layout, func(t *testing.T) {
			overwrites(t, c, ecDir(t, c, fmt.Sprint("ow", i), layout), uint64(i))
		})
	}
}

func overwrites(t *testing.T, c *cluster.Cluster, dir string, seed uint64) {
	path := filepath.Join(dir, "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &refFile{t: t, f: f, path: path}
	rnd := rand.New(rand.NewPCG(7, 11+seed))
	const maxSize = 3 << 20
	rounds := 150
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

// TestECManySmallWrites: flushes of thousands of scattered 4 KiB writes
// over written data of one erasure-coded chunk (as fio randwrite makes:
// each is a read-modify-write of its stripe on the primary) succeed and
// read back byte for byte. Every extent of a flush used to be sent to
// the chunk's primary at once; those still queued there when the
// client's call timeout (-attempt-timeout, short here so that a queue of
// any length on this machine outlasts it) ended failed the flush with
// EINTR.
func TestECManySmallWrites(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 6, Mounts: 2,
		ExtraMountArgs: append(mountOpts(), "-attempt-timeout", "300ms")})
	path := filepath.Join(ecDir(t, c, "small", "ec:4+2"), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &refFile{t: t, f: f, path: path}
	const size = 64 << 20
	b := make([]byte, 1<<20)
	for off := 0; off < size; off += len(b) {
		for j := range b {
			b[j] = byte(off>>20 + j>>9)
		}
		r.pwrite(int64(off), b)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(3, 5))
	b = b[:4096]
	for i := range 16000 {
		for j := range b {
			b[j] = byte(i + j | 1)
		}
		// Every other page: writes do not merge into long extents.
		r.pwrite(rnd.Int64N(size/8192)*8192, b)
	}
	r.check(onMount(t, c, 1, path), "after 16,000 scattered 4 KiB writes")
}

// TestECDegradedRead: with M chunkservers killed (-9), among them those
// holding data shards, every ec:4+2 file reads back byte for byte on a
// mount that has none of it cached, and fsck reports the chunks degraded;
// overwrites and new files still work and read back.
func TestECDegradedRead(t *testing.T) {
	// Without -no-local-reads the mounts would read the killed servers'
	// shard files directly, which is right but decodes nothing.
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 8, Mounts: 2,
		ExtraMasterArgs: []string{"-server-dead-after", "2s"}, ExtraMountArgs: []string{"-no-local-reads"}})
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
	waitFor(t, 30*time.Second, "the master seeing 2 servers down", func() bool {
		st, err := c.Status(context.Background())
		down := 0
		for _, s := range st.GetServers() {
			if !s.Alive {
				down++
			}
		}
		return err == nil && down == 2
	})
	if out, code := dfsctl(t, c, "fsck"); code != 4 || !strings.Contains(out, "degraded, 4 of 6 copies good") {
		t.Errorf("fsck with 2 shard servers down: exit %d, want 4 and degraded chunks with 4 of 6 shards:\n%s", code, out)
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
			resp, err := m.GetChunks(ctx, &api.GetChunksRequest{Ino: st.Ino, Count: 1024, Caller: &api.Caller{}})
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

// readFresh restarts mount i (dropping everything it cached) and reads
// the file at path (a path under mount 0) through it.
func readFresh(t *testing.T, c *cluster.Cluster, i int, path string) []byte {
	t.Helper()
	restartMount(t, c, i)
	b, err := os.ReadFile(onMount(t, c, i, path))
	if err != nil {
		t.Fatalf("read %s on a fresh mount: %v", path, err)
	}
	return b
}

func restartMount(t *testing.T, c *cluster.Cluster, i int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.RestartMount(i); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// killDataShards kills the servers of data shards 0..k-1 of the file's
// first chunk, so that reads must decode from parity alone.
func killDataShards(t *testing.T, c *cluster.Cluster, path string, k int) {
	t.Helper()
	for _, r := range chunkOf(t, c, path).Replicas {
		if int(r.Shard) < k {
			c.KillChunk(serverIndex(t, c, r))
		}
	}
}

// TestECConcurrentWriters: two mounts write overlapping random ranges of
// one ec:2+2 file at once, several writers each. Whatever order the
// primary applied them in, data and parity must agree: the file read
// from the data shards equals the file decoded from the parity shards
// alone (both data shard servers killed).
func TestECConcurrentWriters(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 4, Mounts: 2})
	dir := ecDir(t, c, "cw", "ec:2+2")
	path := filepath.Join(dir, "f")
	const size = 2 << 20
	writeFile(t, path, 1, size)
	waitFor(t, 3*attrTimeout, "the file on mount 1", func() bool {
		_, err := os.Stat(onMount(t, c, 1, path))
		return err == nil
	})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for m := range 2 {
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f, err := os.OpenFile(onMount(t, c, m, path), os.O_RDWR, 0)
				if err != nil {
					errs <- err
					return
				}
				defer f.Close()
				rnd := rand.New(rand.NewPCG(uint64(m), uint64(w)))
				for i := range 40 {
					n := 1 + rnd.IntN(200000)
					b := bytes.Repeat([]byte{byte(m*64 + w*16 + i%16)}, n)
					if _, err := f.WriteAt(b, rnd.Int64N(size-int64(n))); err != nil {
						errs <- err
						return
					}
					if i%5 == 4 {
						if err := f.Sync(); err != nil {
							errs <- err
							return
						}
					}
				}
				if err := f.Close(); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fromData := readFresh(t, c, 1, path)
	if len(fromData) != size {
		t.Fatalf("file has %d bytes, want %d", len(fromData), size)
	}
	killDataShards(t, c, path, 2)
	fromParity := readFresh(t, c, 1, path)
	if i := firstMismatch(fromData, fromParity); i >= 0 || len(fromParity) != size {
		t.Fatalf("data and parity disagree: decoded file differs at byte %d (len %d)", i, len(fromParity))
	}
}

// TestECPrimaryDies: the primary of an ec:2+3 chunk is killed (-9) in
// the middle of a stream of overwrites and fsyncs. Writing goes on
// without an error, the file matches a local reference, and it still
// does when decoded from the surviving parity shards alone, so the new
// primary left data and parity agreeing.
func TestECPrimaryDies(t *testing.T) { ecPrimaryDies(t, false) }

// TestECPrimaryAndDataShardDie: as TestECPrimaryDies, but the server of
// data shard 0 is killed with the primary, at a random moment while the
// writes are under way, so that a write is likely cut short between
// shards with a data shard gone: the write hole that the shards' undo
// records close (docs/ec.md). Shard 0 must come back from the survivors
// right, also where the cut write never reached.
func TestECPrimaryAndDataShardDie(t *testing.T) { ecPrimaryDies(t, true) }

func ecPrimaryDies(t *testing.T, withData bool) {
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 6, Mounts: 2})
	dir := ecDir(t, c, "pd", "ec:2+3")
	path := filepath.Join(dir, "f")
	const size = 2 << 20
	writeFile(t, path, 2, size)
	ref, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &refFile{t: t, f: f, path: path, ref: ref}
	rnd := rand.New(rand.NewPCG(9, 9))
	killed := make(chan struct{})
	for i := range 120 {
		if i == 40 {
			ch := chunkOf(t, c, path)
			p := slices.IndexFunc(ch.Replicas, func(rep *api.Replica) bool { return rep.Server == ch.Primary })
			if p < 0 {
				t.Fatalf("chunk has no primary among its shards: %v", ch)
			}
			if ch.Replicas[p].Shard < 2 {
				t.Errorf("primary holds data shard %d; parity shards should lead", ch.Replicas[p].Shard)
			}
			victims := []int{serverIndex(t, c, ch.Replicas[p])}
			if withData {
				d := slices.IndexFunc(ch.Replicas, func(rep *api.Replica) bool { return rep.Shard == 0 })
				victims = append(victims, serverIndex(t, c, ch.Replicas[d]))
			}
			// While the next writes are on their way.
			delay := time.Duration(rnd.IntN(30)) * time.Millisecond
			go func() {
				defer close(killed)
				time.Sleep(delay)
				for _, v := range victims {
					c.KillChunk(v)
				}
			}()
		}
		n := 1 + rnd.IntN(300000)
		b := bytes.Repeat([]byte{byte(i) | 1}, n)
		r.pwrite(rnd.Int64N(size-int64(n)), b)
		if i%4 == 3 {
			if err := f.Sync(); err != nil {
				t.Fatalf("fsync %d: %v", i, err)
			}
		}
	}
	<-killed
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := readFresh(t, c, 1, path); firstMismatch(r.ref, got) >= 0 || len(got) != size {
		t.Fatalf("after the primary died: file differs from the reference at %d", firstMismatch(r.ref, got))
	}
	t.Logf("shard pieces rolled back: %d, writes settled: %d", logLines(t, c, "EC write cut short by its primary rolled back"),
		logLines(t, c, "rolling back an EC write"))
	killDataShards(t, c, path, 2)
	if got := readFresh(t, c, 1, path); firstMismatch(r.ref, got) >= 0 || len(got) != size {
		t.Fatalf("decoded from parity: file differs from the reference at %d", firstMismatch(r.ref, got))
	}
}

// logLines counts the lines of the cluster's logs that contain s.
func logLines(t *testing.T, c *cluster.Cluster, s string) int {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(c.LogDir(), "*.log"))
	n := 0
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		n += bytes.Count(b, []byte(s))
	}
	return n
}

// TestECSpace: an ec:4+2 file takes about 1.5 times its size in raw
// chunkserver space, a replicated:3 file 3 times, and dfsctl status shows
// raw and logical usage.
func TestECSpace(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 6, Mounts: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	raw := func() uint64 {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, s := range st.Servers {
			n += s.Used
		}
		return n
	}
	const size = 24 << 20
	for _, l := range []struct {
		layout   string
		min, max float64
	}{
		{"ec:4+2", 1.45, 1.6},
		{"replicated:3", 2.9, 3.1},
	} {
		dir := ecDir(t, c, strings.NewReplacer(":", "", "+", "_").Replace(l.layout), l.layout)
		before := raw()
		writeFile(t, filepath.Join(dir, "f"), 5, size)
		// Chunkservers report their usage in heartbeats (every second).
		var ratio float64
		deadline := time.Now().Add(30 * time.Second)
		for {
			ratio = float64(raw()-before) / size
			if (ratio >= l.min && ratio <= l.max) || time.Now().After(deadline) {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		if ratio < l.min || ratio > l.max {
			t.Errorf("%s: a %d MiB file uses %.2f times its size in raw space, want %.2f..%.2f", l.layout, size>>20, ratio, l.min, l.max)
		}
		t.Logf("%s: raw/logical %.3f", l.layout, ratio)
	}
	out, code := dfsctl(t, c, "status")
	if code != 0 || !strings.Contains(out, "raw bytes used") || !strings.Contains(out, "logical bytes 48.0 MiB") {
		t.Errorf("dfsctl status: exit %d, want raw and logical usage:\n%s", code, out)
	}
	// df counts file data once: through an ec:4+2 directory the
	// cluster's raw space holds twice what it holds through a
	// replicated:3 one.
	var ec, r3 unix.Statfs_t
	if err := unix.Statfs(filepath.Join(c.MountDir(0), "ec4_2"), &ec); err != nil {
		t.Fatal(err)
	}
	if err := unix.Statfs(filepath.Join(c.MountDir(0), "replicated3"), &r3); err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		what   string
		ec, r3 uint64
	}{{"capacity", ec.Blocks, r3.Blocks}, {"free", ec.Bfree, r3.Bfree}} {
		if ratio := float64(v.ec) / float64(v.r3); ratio < 1.98 || ratio > 2.02 {
			t.Errorf("statfs %s: ec:4+2 %d blocks, replicated:3 %d: ratio %.3f, want 2 (1.5 vs 3 raw bytes per byte)", v.what, v.ec, v.r3, ratio)
		}
	}
}

// layoutOf reads a path's dfs.layout attribute.
func layoutOf(t *testing.T, path string) string {
	t.Helper()
	buf := make([]byte, 128)
	n, err := unix.Getxattr(path, "dfs.layout", buf)
	if err != nil {
		t.Fatalf("getxattr dfs.layout %s: %v", path, err)
	}
	return string(buf[:n])
}

// TestECConvert: `dfsctl layout convert` rewrites a replicated tree into
// ec:4+2 while another mount keeps reading one of its files: every read
// returns the whole, right content; afterwards every file and directory
// has the new layout, files are striped over 6 servers, and their data,
// modes and times are unchanged. Converting back works too.
func TestECConvert(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 6, Mounts: 2})
	root := ecDir(t, c, "tree", "replicated:3")
	sub := filepath.Join(root, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]int64{
		filepath.Join(root, "a"): 5 << 20, filepath.Join(root, "b"): 1000,
		filepath.Join(sub, "c"): 300000, filepath.Join(sub, "empty"): 0,
	}
	for p, n := range files {
		writeFile(t, p, uint64(n), n)
	}
	if err := os.Chmod(filepath.Join(root, "b"), 0o640); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(1_700_000_000, 123456789)
	if err := os.Chtimes(filepath.Join(sub, "c"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(root, "a")
	want, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*attrTimeout, "the tree on mount 1", func() bool {
		_, err := os.Stat(onMount(t, c, 1, big))
		return err == nil
	})
	stop := make(chan struct{})
	readErr := make(chan error, 1)
	reads := 0
	go func() {
		defer close(readErr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := os.ReadFile(onMount(t, c, 1, big))
			if err == nil && !bytes.Equal(got, want) {
				err = fmt.Errorf("read %d bytes, first difference at %d", len(got), firstMismatch(want, got))
			}
			if err != nil {
				readErr <- err
				return
			}
			reads++
		}
	}()
	out, code := dfsctl(t, c, "layout", "convert", root, "ec:4+2")
	close(stop)
	if err := <-readErr; err != nil {
		t.Errorf("a reader during the conversion: %v", err)
	}
	if code != 0 {
		t.Fatalf("layout convert: exit %d\n%s", code, out)
	}
	t.Logf("%d whole reads during the conversion", reads)
	for _, d := range []string{root, sub} {
		if l := layoutOf(t, d); l != "ec:4+2" {
			t.Errorf("%s: layout %q after convert", d, l)
		}
	}
	for p, n := range files {
		if l := layoutOf(t, p); l != "ec:4+2" {
			t.Errorf("%s: layout %q after convert", p, l)
		}
		checkFile(t, onMount(t, c, 1, p), uint64(n), n)
	}
	if ch := chunkOf(t, c, big); len(ch.Replicas) != 6 {
		t.Errorf("converted file's chunk has %d shards, want 6", len(ch.Replicas))
	}
	if fi, err := os.Stat(filepath.Join(root, "b")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode after convert: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(sub, "c")); err != nil || !fi.ModTime().Equal(mtime) {
		t.Errorf("mtime after convert: %v %v, want %v", fi.ModTime(), err, mtime)
	}
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) != 3 {
		t.Errorf("tree after convert: %v %v (temporary copies left?)", entries, err)
	}
	if out, code := dfsctl(t, c, "layout", "convert", big, "replicated:2"); code != 0 {
		t.Fatalf("convert back: exit %d\n%s", code, out)
	}
	if l := layoutOf(t, big); l != "replicated:2" {
		t.Errorf("layout %q after converting back", l)
	}
	checkFile(t, onMount(t, c, 1, big), 5<<20, 5<<20)
}

// TestFsxEC runs the fsx-style exerciser (TestFsx) on an ec:2+2 file with
// 256 KiB chunks on the shared cluster's four chunkservers, so that its
// writes, truncates, fallocates and mapped writes cross cells, stripes
// and chunks.
func TestFsxEC(t *testing.T) {
	dir := testDir(t, 0)
	if err := unix.Setxattr(dir, "dfs.layout", []byte("ec:2+2,chunk=262144"), 0); err != nil {
		t.Fatal(err)
	}
	runFsx(t, dir)
	if l := layoutOf(t, filepath.Join(dir, "fsx")); l != "ec:2+2,chunk=262144" {
		t.Fatalf("the exerciser's file has layout %q", l)
	}
}

// shardFile is where chunkserver i keeps shard s of chunk id.
func shardFile(c *cluster.Cluster, i int, id uint64, s uint32) string {
	return filepath.Join(c.Dir(), fmt.Sprintf("c%d", i+1), "chunks", fmt.Sprintf("%02x", id&0xff), fmt.Sprintf("%016x-%d.chunk", id, s))
}

// TestECBitFlip: a flipped byte in a data shard's file. The read decodes
// around it and returns the right bytes; the reader reports the shard,
// and the repair loop rebuilds it (re-encoding the chunk first) so that
// the shard holds the right bytes again and fsck is clean.
func TestECBitFlip(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 6, Mounts: 1,
		ExtraMasterArgs: []string{"-full-report-interval", "3s"}})
	dir := ecDir(t, c, "bf", "ec:4+2")
	p := filepath.Join(dir, "f")
	writeFile(t, p, 3, 2<<20)
	ch := chunkOf(t, c, p)
	path := shardFile(c, serverIndex(t, c, ch.Replicas[0]), ch.Id, 0)
	shardBytes := func(path string) []byte {
		b := make([]byte, 4096)
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		if _, err := f.ReadAt(b, dataOff); err != nil {
			return nil
		}
		return b
	}
	want := shardBytes(path)
	if want == nil {
		t.Fatalf("no shard 0 file at %s", path)
	}
	flipByte(t, path, dataOff+100)
	if bytes.Equal(shardBytes(path), want) {
		t.Fatal("the flipped byte is not on disk")
	}
	restartMount(t, c, 0)
	checkFile(t, p, 3, 2<<20)
	start := time.Now()
	for {
		ch := chunkOf(t, c, p)
		if len(ch.Replicas) == 6 && ch.Replicas[0].Shard == 0 {
			if got := shardBytes(shardFile(c, serverIndex(t, c, ch.Replicas[0]), ch.Id, 0)); bytes.Equal(got, want) {
				break
			}
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("the corrupt shard was not rebuilt: %v", ch.Replicas)
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("corrupt shard rebuilt %v after the read", time.Since(start).Round(time.Millisecond))
	waitHealthy(t, c, 2*time.Minute)
	restartMount(t, c, 0)
	checkFile(t, p, 3, 2<<20)
}
