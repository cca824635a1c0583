package tests

// The fault-injection suite: each test injects a row of DESIGN.md's
// failure matrix into a cluster of real processes and checks what users
// see. DFS_SOAK=1 runs longer variants (more rounds, more data).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"dfs/api"
	"dfs/cluster"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
)

func soak() bool { return os.Getenv("DFS_SOAK") != "" }

// onLeader runs call against the cluster's master leader.
func onLeader(ctx context.Context, c *cluster.Cluster, call func(api.MasterClient) error) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(st.Leader, c.DialOption())
	if err != nil {
		return err
	}
	defer conn.Close()
	return call(api.NewMasterClient(conn))
}

// fsck asks the leader to check every chunk.
func fsck(ctx context.Context, c *cluster.Cluster) (*api.FsckResponse, error) {
	var resp *api.FsckResponse
	err := onLeader(ctx, c, func(m api.MasterClient) error {
		var err error
		resp, err = m.Fsck(ctx, &api.FsckRequest{})
		return err
	})
	return resp, err
}

// waitHealthy polls fsck until no chunk is at risk and every live server
// reported, and returns how long that took.
func waitHealthy(t *testing.T, c *cluster.Cluster, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	for {
		resp, err := fsck(ctx, c)
		if err == nil && resp.ProblemCount == 0 && resp.Complete {
			return time.Since(start)
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d problems, complete=%v: %v", resp.ProblemCount, resp.Complete, resp.Problems)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("data still at risk after %v: %s", timeout, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// dfsctl runs the dfsctl binary against the cluster and returns its
// output and exit status.
func dfsctl(t *testing.T, c *cluster.Cluster, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	argv := append([]string{"-masters", strings.Join(c.MasterAddrs(), ",")}, args...)
	out, err := exec.CommandContext(ctx, filepath.Join(binaries(t), cluster.CtlBinary), argv...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("dfsctl %v: %v\n%s", args, err, out)
	return "", -1
}

// chunkOf returns the first chunk of the file at path, from the leader.
func chunkOf(t *testing.T, c *cluster.Cluster, path string) *api.Chunk {
	t.Helper()
	var resp *api.GetChunksResponse
	askLeader(t, c, path, func(ctx context.Context, m api.MasterClient, ino uint64) (err error) {
		resp, err = m.GetChunks(ctx, &api.GetChunksRequest{Ino: ino, Count: 1, Caller: &api.Caller{}})
		return err
	})
	if resp.Errno != api.Errno_OK || len(resp.Chunks) == 0 {
		t.Fatalf("%s: no chunk (errno %v)", path, resp.Errno)
	}
	return resp.Chunks[0]
}

// askLeader runs ask against the master leader with the inode number of
// the file at path, failing the test if it fails.
func askLeader(t *testing.T, c *cluster.Cluster, path string, ask func(ctx context.Context, m api.MasterClient, ino uint64) error) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := onLeader(ctx, c, func(m api.MasterClient) error { return ask(ctx, m, st.Ino) }); err != nil {
		t.Fatal(err)
	}
}

// chunkFile is where chunkserver i keeps replica 0 of chunk id.
func chunkFile(c *cluster.Cluster, i int, id uint64) string {
	return filepath.Join(c.Dir(), fmt.Sprintf("c%d", i+1), "chunks", fmt.Sprintf("%02x", id&0xff), fmt.Sprintf("%016x-0.chunk", id))
}

// serverIndex maps a replica to its chunkserver's index in the cluster.
func serverIndex(t *testing.T, c *cluster.Cluster, r *api.Replica) int {
	t.Helper()
	i := slices.Index(c.ChunkAddrs(), r.Addr)
	if i < 0 {
		t.Fatalf("replica %s at %s is not one of the cluster's chunkservers %v", r.Server, r.Addr, c.ChunkAddrs())
	}
	return i
}

// TestFaultLeaderKill: kill -9 of the master leader during a stream of
// creates, writes and renames, several times, on a 5-master group. No
// call fails; afterwards every acknowledged operation is present exactly
// once. It measures the time from the kill to the next namespace
// operation finishing on the mount.
func TestFaultLeaderKill(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 5, ChunkServers: 3, Mounts: 1})
	dir := filepath.Join(c.MountDir(0), "stream")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		names  = map[string]uint64{} // acknowledged name -> content seed
		opErr  error
		stop   = make(chan struct{})
		done   = make(chan struct{})
		opsRun int
	)
	go func() {
		defer close(done)
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("f%05d", i)
			if err := createFile(filepath.Join(dir, name), i, int64(1000+i%5000)); err != nil {
				mu.Lock()
				opErr = err
				mu.Unlock()
				return
			}
			mu.Lock()
			names[name] = i
			opsRun++
			mu.Unlock()
			if i%3 == 2 {
				prev := fmt.Sprintf("f%05d", i-1)
				to := fmt.Sprintf("r%05d", i-1)
				if err := os.Rename(filepath.Join(dir, prev), filepath.Join(dir, to)); err != nil {
					mu.Lock()
					opErr = fmt.Errorf("rename %s: %w", prev, err)
					mu.Unlock()
					return
				}
				mu.Lock()
				names[to] = names[prev]
				delete(names, prev)
				opsRun++
				mu.Unlock()
			}
		}
	}()
	rounds := 3
	if soak() {
		rounds = 10
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var took []time.Duration
	for r := range rounds {
		time.Sleep(time.Second)
		leader, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.KillMaster(leader)
		killed := time.Now()
		probe := filepath.Join(c.MountDir(0), fmt.Sprintf("probe%d", r))
		within(t, time.Minute, "mkdir after the leader died", func() error { return os.Mkdir(probe, 0o755) })
		took = append(took, time.Since(killed))
		if err := c.RestartMaster(leader); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Two of five masters down at once: the other three still serve.
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.KillMaster(leader)
	c.KillMaster((leader + 1) % 5)
	within(t, time.Minute, "mkdir with two of five masters dead", func() error {
		return os.Mkdir(filepath.Join(c.MountDir(0), "two-down"), 0o755)
	})
	time.Sleep(time.Second)
	close(stop)
	<-done
	if opErr != nil {
		t.Fatalf("an operation failed across a failover: %v", opErr)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	t.Logf("kill -9 of the leader to the next mkdir done on the mount, %d runs: p50 %v, worst %v (%d file ops acknowledged)",
		len(took), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), opsRun)

	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range ents {
		if seen[e.Name()] {
			t.Errorf("%s listed twice", e.Name())
		}
		seen[e.Name()] = true
		if _, ok := names[e.Name()]; !ok {
			t.Errorf("%s present but never acknowledged (or renamed away)", e.Name())
		}
	}
	for name, seed := range names {
		if !seen[name] {
			t.Errorf("acknowledged %s is missing", name)
			continue
		}
		if err := verifyFile(filepath.Join(dir, name), seed, int64(1000+seed%5000)); err != nil {
			t.Error(err)
		}
	}
}

// TestFaultChunkServerRestarts: each chunkserver in turn is killed and
// restarted while a mount writes and fsyncs files; every fsynced byte
// reads back through a fresh mount.
func TestFaultChunkServerRestarts(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 4, Mounts: 1})
	dir := filepath.Join(c.MountDir(0), "w")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		synced []uint64
		werr   error
		stop   = make(chan struct{})
		done   = make(chan struct{})
	)
	size := func(i uint64) int64 { return 1<<20 + int64(i*4099%(1<<20)) }
	go func() {
		defer close(done)
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := func() error {
				f, err := os.Create(filepath.Join(dir, fmt.Sprint(i)))
				if err != nil {
					return err
				}
				defer f.Close()
				buf := make([]byte, size(i))
				if _, err := patternReader(i, size(i)).Read(buf); err != nil {
					return err
				}
				if _, err := f.Write(buf); err != nil {
					return fmt.Errorf("write %d: %w", i, err)
				}
				if err := f.Sync(); err != nil {
					return fmt.Errorf("fsync %d: %w", i, err)
				}
				return f.Close()
			}()
			mu.Lock()
			if err != nil {
				werr = err
				mu.Unlock()
				return
			}
			synced = append(synced, i)
			mu.Unlock()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i := range 4 {
		time.Sleep(time.Second)
		c.KillChunk(i)
		time.Sleep(1500 * time.Millisecond)
		if err := c.RestartChunk(i); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	close(stop)
	<-done
	if werr != nil {
		t.Fatalf("a write failed while chunkservers restarted: %v", werr)
	}
	// Read through a fresh mount: no page cache stands in for the servers.
	if err := c.RestartMount(0); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, i := range synced {
		checkFile(t, filepath.Join(dir, fmt.Sprint(i)), i, size(i))
	}
	t.Logf("%d files fsynced across 4 chunkserver crashes", len(synced))
}

// TestFaultChunkServerGone: a chunkserver is removed for good; the
// master copies its chunks elsewhere until every chunk has the layout's
// replica count again, without anyone asking. fsck reports the risk
// meanwhile (exit status 4) and a clean state after.
func TestFaultChunkServerGone(t *testing.T) {
	const deadAfter = 8 * time.Second
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 4, Mounts: 1,
		ExtraMasterArgs: []string{"-dead-after", deadAfter.String(), "-server-dead-after", "2s", "-full-report-interval", "5s"}})
	dir := filepath.Join(c.MountDir(0), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files, size := 8, int64(8<<20)
	if soak() {
		files, size = 16, 64<<20 // 1 GiB
	}
	for i := range files {
		writeFile(t, filepath.Join(dir, fmt.Sprint(i)), uint64(i), size)
	}
	if out, code := dfsctl(t, c, "fsck"); code != 0 {
		t.Fatalf("fsck of a healthy cluster: exit %d\n%s", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lost uint64
	var lostID string
	for _, s := range st.Servers {
		if s.Addr == c.ChunkAddrs()[0] {
			lost, lostID = s.Used, s.Id
		}
	}
	var inos []uint64
	for i := range files {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, fmt.Sprint(i)), &st); err != nil {
			t.Fatal(err)
		}
		inos = append(inos, st.Ino)
	}
	// replicated says whether every chunk has 3 copies, none on lostID.
	replicated := func() bool {
		ok := true
		err := onLeader(ctx, c, func(m api.MasterClient) error {
			for _, ino := range inos {
				resp, err := m.GetChunks(ctx, &api.GetChunksRequest{Ino: ino, Count: 1024, Caller: &api.Caller{}})
				if err != nil {
					return err
				}
				for _, ch := range resp.Chunks {
					on := slices.IndexFunc(ch.Replicas, func(r *api.Replica) bool { return r.Server == lostID })
					if len(ch.Replicas) < 3 || on >= 0 {
						ok = false
					}
				}
			}
			return nil
		})
		return err == nil && ok
	}
	c.KillChunk(0)
	killed := time.Now()
	// Once the master sees it down, fsck reports the risk.
	for {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(st.Servers, func(s *api.ChunkServerInfo) bool { return s.Addr == c.ChunkAddrs()[0] }); i >= 0 && !st.Servers[i].Alive {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if time.Since(killed) < deadAfter-2*time.Second {
		out, code := dfsctl(t, c, "fsck")
		if code != 4 || !strings.Contains(out, "under-replicated") {
			t.Errorf("fsck with a server down: exit %d, want 4 and under-replicated chunks:\n%s", code, out)
		}
	}
	for !replicated() {
		if time.Since(killed) > 3*time.Minute {
			t.Fatal("chunks not back to 3 copies after 3 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(killed)
	waitHealthy(t, c, 3*time.Minute)
	copying := took - deadAfter
	t.Logf("chunkserver gone: full replication again %v after the kill (%v after -dead-after); %.1f MiB re-replicated, %.1f MiB/s",
		took.Round(time.Millisecond), copying.Round(time.Millisecond), float64(lost)/(1<<20), float64(lost)/(1<<20)/copying.Seconds())
	if out, code := dfsctl(t, c, "fsck"); code != 0 {
		t.Errorf("fsck after repair: exit %d\n%s", code, out)
	}
	if err := c.RestartMount(0); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range files {
		checkFile(t, filepath.Join(dir, fmt.Sprint(i)), uint64(i), size)
	}
}

// flipByte inverts one data byte of a chunk file.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// dataOff is where data starts in a chunk file of the default chunk size.
const dataOff = 64 << 10

// TestFaultBitFlip: a flipped byte in a chunk file. A read is served
// correctly from another copy and the bad copy is replaced; a flip in a
// chunk nobody reads is found by the scrubber and repaired too.
func TestFaultBitFlip(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 3, Mounts: 1,
		ExtraMasterArgs: []string{"-full-report-interval", "3s"},
		ExtraChunkArgs:  []string{"-scrub-rate", "64M", "-scrub-pause", "1h"}})
	a, b := filepath.Join(c.MountDir(0), "a"), filepath.Join(c.MountDir(0), "b")
	writeFile(t, a, 1, 2<<20)
	writeFile(t, b, 2, 2<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Both look at the 4 KiB of the chunk file's data at off.
	restored := func(path string, off int64, want []byte) bool {
		got := make([]byte, len(want))
		f, err := os.Open(path)
		if err != nil {
			return false // deleted: a new copy comes next
		}
		defer f.Close()
		_, err = f.ReadAt(got, off)
		return err == nil && string(got) == string(want)
	}
	waitRepaired := func(what, path string, off int64, want []byte) {
		t.Helper()
		start := time.Now()
		for !restored(path, off, want) {
			if time.Since(start) > 2*time.Minute {
				t.Fatalf("%s: the corrupt copy %s was not replaced", what, path)
			}
			time.Sleep(300 * time.Millisecond)
		}
		waitHealthy(t, c, 2*time.Minute)
		t.Logf("%s: bad copy replaced after %v", what, time.Since(start).Round(time.Millisecond))
	}
	original := func(path string, off int64) []byte {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 4096)
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		return buf
	}

	// Read repair: corrupt the copy a reader tries first.
	ch := chunkOf(t, c, a)
	i := serverIndex(t, c, ch.Replicas[0])
	path := chunkFile(c, i, ch.Id)
	want := original(path, dataOff)
	flipByte(t, path, dataOff+100)
	// Check the flip landed before anything reads it: read repair may
	// replace the copy as soon as the read below hits it.
	if restored(path, dataOff, want) {
		t.Fatal("the flipped byte is not on disk")
	}
	if err := c.RestartMount(0); err != nil { // no page cache
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	checkFile(t, a, 1, 2<<20)
	waitRepaired("read repair", path, dataOff, want)

	// Scrubber: corrupt a copy nobody reads; the restarted server's first
	// scrub pass finds it.
	ch = chunkOf(t, c, b)
	i = serverIndex(t, c, ch.Replicas[len(ch.Replicas)-1])
	path = chunkFile(c, i, ch.Id)
	off := int64(dataOff + 1<<20)
	want = original(path, off)
	if err := c.StopChunk(i); err != nil {
		t.Fatal(err)
	}
	flipByte(t, path, off+7)
	if restored(path, off, want) {
		t.Fatal("the flipped byte is not on disk")
	}
	if err := c.RestartChunk(i); err != nil {
		t.Fatal(err)
	}
	waitRepaired("scrubber", path, off, want)
	checkFile(t, b, 2, 2<<20)
}

// TestFaultDiskFull: chunkservers on small tmpfs file systems fill up.
// The writer gets ENOSPC, every file closed before reads back intact,
// deleting files frees the space within a bounded time, and writing works
// again.
func TestFaultDiskFull(t *testing.T) {
	requireFUSE(t)
	base := filepath.Join(baseDir, t.Name())
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		disk := filepath.Join(base, fmt.Sprintf("disk%d", i))
		if err := os.Mkdir(disk, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", disk, "tmpfs", 0, "size=24m"); err != nil {
			t.Skipf("cannot mount a tmpfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(disk, unix.MNT_DETACH) })
		// The cluster's data directory for chunkserver i is a link to it.
		if err := os.Symlink(disk, filepath.Join(base, fmt.Sprintf("c%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 3, Mounts: 1, Dir: base,
		ExtraMasterArgs: []string{"-full-report-interval", "3s"}})
	dir := filepath.Join(c.MountDir(0), "full")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(dir, "dfs.layout", []byte("replicated:3,chunk=1048576"), 0); err != nil {
		t.Fatalf("setting a 1 MiB chunk layout: %v", err)
	}
	const size = 2 << 20
	write := func(i int) error {
		f, err := os.Create(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			return err
		}
		buf := make([]byte, size)
		patternReader(uint64(i), size).Read(buf)
		_, err = f.Write(buf)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	var written []int
	var full error
	within(t, 3*time.Minute, "filling the cluster", func() error {
		for i := 0; i < 40; i++ {
			if err := write(i); err != nil {
				full = err
				os.Remove(filepath.Join(dir, fmt.Sprint(i)))
				return nil
			}
			written = append(written, i)
		}
		return nil
	})
	if full == nil {
		t.Fatalf("wrote %d MiB to 3 x 24 MiB of disks without ENOSPC", len(written)*size>>20)
	}
	if !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("the write that did not fit failed with %v, want ENOSPC", full)
	}
	t.Logf("ENOSPC after %d files of %d MiB", len(written), size>>20)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.RestartMount(0); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, i := range written {
		checkFile(t, filepath.Join(dir, fmt.Sprint(i)), uint64(i), size)
	}
	if resp, err := fsck(ctx, c); err != nil {
		t.Fatal(err)
	} else {
		for _, p := range resp.Problems {
			if p.State == "corrupt" || p.State == "missing" {
				t.Errorf("after the disks filled: %s chunk %d %s: %v", p.Path, p.Index, p.State, p.Detail)
			}
		}
	}
	for _, i := range written {
		if err := os.Remove(filepath.Join(dir, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	deleted := time.Now()
	within(t, 2*time.Minute, "writing again after deleting everything", func() error {
		for {
			err := write(1000)
			if err == nil {
				return nil
			}
			if !errors.Is(err, syscall.ENOSPC) {
				return err
			}
			os.Remove(filepath.Join(dir, "1000"))
			time.Sleep(500 * time.Millisecond)
		}
	})
	t.Logf("space freed and writable again %v after the deletes", time.Since(deleted).Round(time.Millisecond))
	checkFile(t, filepath.Join(dir, "1000"), 1000, size)
}

// TestFaultReplaceMaster: a dead master is replaced by a new one on a
// fresh data directory through dfsctl members, and the new group
// survives the loss of its leader.
func TestFaultReplaceMaster(t *testing.T) {
	// The new master starts (waiting to join) before the cluster, so that
	// it stops after the mount: the mount's last call needs a quorum.
	listen, raftAddr := freeAddr(t), freeAddr(t)
	startDaemon(t, filepath.Join(binaries(t), cluster.MasterBinary), []string{
		"-id", "m9", "-data", filepath.Join(t.TempDir(), "m9"), "-listen", listen, "-raft", raftAddr, "-join"})
	c := startCluster(t, cluster.Config{Masters: 3, ChunkServers: 1, Mounts: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dead := (leader + 1) % 3
	c.KillMaster(dead)
	if out, code := dfsctl(t, c, "members", "add", "m9", raftAddr); code != 0 {
		t.Fatalf("members add: exit %d\n%s", code, out)
	}
	if out, code := dfsctl(t, c, "members", "remove", fmt.Sprintf("m%d", dead+1)); code != 0 {
		t.Fatalf("members remove: exit %d\n%s", code, out)
	}
	// The new master registers its client address once it has caught up.
	start := time.Now()
	for {
		out, code := dfsctl(t, c, "members", "list")
		if code == 0 && strings.Contains(out, listen) && !strings.Contains(out, fmt.Sprintf("m%d ", dead+1)) {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("members list never showed m9 at %s without m%d:\n%s", listen, dead+1, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// Without the old leader, the two remaining members (one of them
	// new) elect a leader and the mount carries on.
	c.KillMaster(leader)
	within(t, time.Minute, "mkdir after the old leader died", func() error {
		return os.Mkdir(filepath.Join(c.MountDir(0), "after-replace"), 0o755)
	})
	writeFile(t, filepath.Join(c.MountDir(0), "after-replace", "f"), 9, 100<<10)
	checkFile(t, filepath.Join(c.MountDir(0), "after-replace", "f"), 9, 100<<10)
}

// TestBadInputRepairFlags: the flags this suite relies on refuse
// nonsense with a one-line error.
func TestBadInputRepairFlags(t *testing.T) {
	master := filepath.Join(binaries(t), cluster.MasterBinary)
	chunk := filepath.Join(binaries(t), cluster.ChunkBinary)
	data := func() string { return filepath.Join(t.TempDir(), "d") }
	expectRefusal(t, master, append(masterArgs(data(), freeAddr(t), freeAddr(t)), "-join"), "-join")
	expectRefusal(t, master, append(masterArgs(data(), freeAddr(t), freeAddr(t)), "-dead-after", "0s"), "dead-after")
	expectRefusal(t, master, append(masterArgs(data(), freeAddr(t), freeAddr(t)), "-repair-concurrency", "0"), "repair-concurrency")
	expectRefusal(t, chunk, []string{"-data", data(), "-listen", freeAddr(t), "-scrub-rate", "lots"}, "scrub-rate")
	expectRefusal(t, chunk, []string{"-data", data(), "-listen", freeAddr(t), "-scrub-pause", "0s"}, "scrub-pause")
}

// TestFaultLeaderKillOpenUnlinked: a file held open on one mount and
// unlinked on the other survives the leader's death. Opens have no Raft
// record; the new leader knows nothing of those its predecessor served
// and must wait for the mounts' keepalive reports before reclaiming.
func TestFaultLeaderKillOpenUnlinked(t *testing.T) {
	requireFUSE(t)
	c := startCluster(t, cluster.Config{Masters: 3, ChunkServers: 3, Mounts: 2, ExtraMountArgs: mountOpts()})
	a, b := c.MountDir(0), c.MountDir(1)
	writeFile(t, filepath.Join(a, "f"), 9, 100000)
	var f *os.File
	within(t, time.Minute, "open on mount 1", func() error {
		for {
			var err error
			if f, err = os.OpenFile(filepath.Join(b, "f"), os.O_RDWR|syscall.O_DIRECT, 0); err == nil || !os.IsNotExist(err) {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	defer f.Close()
	if err := os.Remove(filepath.Join(a, "f")); err != nil {
		t.Fatal(err)
	}
	leader := killLeader(t, c)
	within(t, time.Minute, "mkdir after the leader died", func() error { return os.Mkdir(filepath.Join(a, "probe"), 0o755) })
	// Past the new leader's reclaim of files nobody may hold.
	time.Sleep(9 * time.Second)
	want, _ := io.ReadAll(patternReader(9, 100000))
	got := make([]byte, len(want))
	if n, err := f.ReadAt(got, 0); n != len(want) || !bytes.Equal(got, want) {
		t.Fatalf("read of the unlinked file after the failover: %d bytes, %v", n, err)
	}
	if _, err := f.WriteAt([]byte("late"), 100000); err != nil {
		t.Fatalf("write after the failover: %v", err)
	}
	if n, err := f.ReadAt(got[:4], 100000); n != 4 || string(got[:4]) != "late" {
		t.Fatalf("read back after the failover: %q %v", got[:max(n, 0)], err)
	}
	if err := c.RestartMaster(leader); err != nil {
		t.Fatal(err)
	}
}

// killLeader kills the master leader with SIGKILL and returns its index.
func killLeader(t *testing.T, c *cluster.Cluster) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.KillMaster(leader)
	return leader
}
