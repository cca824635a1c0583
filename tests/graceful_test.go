package tests

// The rolling restart: every master and then every chunkserver is
// stopped with SIGTERM and started again, one at a time, while writers on
// two mounts create, write, fsync, verify, append, rename, unlink and take
// flocks. Not one system call may fail, and afterwards everything that was
// fsynced reads back byte for byte and fsck is clean. DFS_SOAK=1 (make
// soak) runs more rounds with more writers.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"dfs/cluster"

	"golang.org/x/sys/unix"
)

// rollingFile is a file a writer fsynced and closed: its content is
// pattern seed of size bytes.
type rollingFile struct {
	seed uint64
	size int64
}

// rollingWriter is one goroutine's workload and what it has made durable.
type rollingWriter struct {
	id      int
	dir     string // its directory on its mount
	counter string // the flock-protected counter, shared by every writer

	files   map[string]rollingFile // name in dir -> content
	order   []string               // names in creation order (for unlinks)
	log     bytes.Buffer           // what the append log must hold
	counted int                    // increments of the counter it made
	err     error                  // the first failed call; the writer stops there
}

// rollingStalls records, per phase of the test, the longest single step
// any writer took: file steps and flock steps apart, since a flock also
// waits for the other writers' turns.
type rollingStalls struct {
	mu    sync.Mutex
	phase int
	worst [][2]time.Duration
	what  [][2]string
}

// next starts a new phase and returns its number.
func (s *rollingStalls) next() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.worst = append(s.worst, [2]time.Duration{})
	s.what = append(s.what, [2]string{})
	s.phase = len(s.worst) - 1
	return s.phase
}

// time runs step and charges its duration to the phases current when it
// started and when it ended.
func (s *rollingStalls) time(flock bool, what string, step func() error) error {
	k := 0
	if flock {
		k = 1
	}
	s.mu.Lock()
	p0 := s.phase
	s.mu.Unlock()
	start := time.Now()
	err := step()
	d := time.Since(start)
	s.mu.Lock()
	for _, p := range []int{p0, s.phase} {
		if d > s.worst[p][k] {
			s.worst[p][k], s.what[p][k] = d, what
		}
	}
	s.mu.Unlock()
	return err
}

// describe says what phase p's longest steps were.
func (s *rollingStalls) describe(p int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("longest file step %v (%s), longest flock %v",
		s.worst[p][0].Round(time.Millisecond), s.what[p][0], s.worst[p][1].Round(time.Millisecond))
}

// rollingSize is the size of a writer's file: 1 byte to about 300 KB,
// so that files end mid-block and mid-stripe.
func rollingSize(seed uint64) int64 { return 1 + int64(seed*7919%300_000) }

// writeSynced creates path with n bytes of pattern seed, fsyncs and
// closes it; a short write is an error.
func writeSynced(path string, seed uint64, n int64) error {
	buf, err := io.ReadAll(patternReader(seed, n))
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if w, err := f.Write(buf); err != nil || int64(w) != n {
		f.Close()
		return fmt.Errorf("write %s: wrote %d of %d: %v", path, w, n, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// appendLine appends line to the writer's log with O_APPEND and fsyncs.
func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if w, err := f.WriteString(line); err != nil || w != len(line) {
		f.Close()
		return fmt.Errorf("append to %s: wrote %d of %d: %v", path, w, len(line), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return f.Close()
}

// counterWidth is the counter file's fixed record size, so that an
// increment never has to truncate.
const counterWidth = 20

// incrementCounter adds one to the number in path under an exclusive
// flock, read-modify-write through the mount: exact only if the lock
// excludes every other writer on both mounts.
func incrementCounter(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fd := int(f.Fd())
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return fmt.Errorf("flock %s: %w", path, err)
	}
	buf := make([]byte, counterWidth)
	if n, err := f.ReadAt(buf, 0); err != nil || n != counterWidth {
		return fmt.Errorf("read %s: %d bytes: %v", path, n, err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(buf)), 10, 64)
	if err != nil {
		return fmt.Errorf("%s holds %q: %v", path, buf, err)
	}
	if n, err := f.WriteAt(fmt.Appendf(nil, "%*d", counterWidth, v+1), 0); err != nil || n != counterWidth {
		return fmt.Errorf("write %s: %d bytes: %v", path, n, err)
	}
	if err := unix.Flock(fd, unix.LOCK_UN); err != nil {
		return fmt.Errorf("unlock %s: %w", path, err)
	}
	return f.Close()
}

// run loops over the workload until stop is closed or a call fails.
func (w *rollingWriter) run(stop <-chan struct{}, stalls *rollingStalls) {
	w.files = map[string]rollingFile{}
	logPath := filepath.Join(w.dir, fmt.Sprintf("log%d", w.id))
	step := func(what string, f func() error) bool {
		if err := stalls.time(strings.HasPrefix(what, "flock"), what, f); err != nil {
			w.err = fmt.Errorf("writer %d: %s: %w", w.id, what, err)
			return false
		}
		return true
	}
	for i := uint64(0); ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		seed := uint64(w.id)<<32 | i
		name := fmt.Sprintf("w%d-%d", w.id, i)
		path := filepath.Join(w.dir, name)
		size := rollingSize(seed)
		if !step("create, write, fsync and close "+name, func() error { return writeSynced(path, seed, size) }) {
			return
		}
		w.files[name] = rollingFile{seed, size}
		w.order = append(w.order, name)
		if !step("reopen and verify "+name, func() error { return verifyFile(path, seed, size) }) {
			return
		}
		line := fmt.Sprintf("writer %d step %d wrote %s (%d bytes)\n", w.id, i, name, size)
		if !step("append to "+logPath, func() error { return appendLine(logPath, line) }) {
			return
		}
		w.log.WriteString(line)
		if !step("flock and increment the counter", func() error { return incrementCounter(w.counter) }) {
			return
		}
		w.counted++
		if i%3 == 2 {
			to := "r" + name
			if !step("rename "+name, func() error { return os.Rename(path, filepath.Join(w.dir, to)) }) {
				return
			}
			w.files[to] = w.files[name]
			delete(w.files, name)
			w.order[len(w.order)-1] = to
		}
		if i%5 == 4 && len(w.order) > 3 {
			old := w.order[0]
			if !step("unlink "+old, func() error { return os.Remove(filepath.Join(w.dir, old)) }) {
				return
			}
			delete(w.files, old)
			w.order = w.order[1:]
		}
	}
}

// TestGracefulRollingRestart restarts every master (followers first, the
// leader last; in the soak variant also leader first) and then every
// chunkserver, one at a time with SIGTERM, waiting for the cluster to be
// healthy again before the next, while writers on two mounts work on a
// replicated:3 and an ec:2+1 directory. No writer may see an error; the
// test logs, per restart, how long the daemon took to stop and the
// longest single step any writer took meanwhile.
func TestGracefulRollingRestart(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 3, ChunkServers: 4, Mounts: 2})
	dirs := map[string]string{"rep": "", "ec": "ec:2+1"}
	for name, layout := range dirs {
		dir := filepath.Join(c.MountDir(0), name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if layout != "" {
			if err := unix.Setxattr(dir, "dfs.layout", []byte(layout), 0); err != nil {
				t.Fatalf("setxattr dfs.layout=%s on %s: %v", layout, dir, err)
			}
		}
	}
	counter := filepath.Join(c.MountDir(0), "counter")
	if err := os.WriteFile(counter, fmt.Appendf(nil, "%*d", counterWidth, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(attrTimeout) // mount 1 sees the directories

	perMountDir := 1
	rounds := []bool{true} // leader last
	if soak() {
		perMountDir = 2
		rounds = []bool{true, false, true}
	}
	var writers []*rollingWriter
	for m := range c.NumMounts() {
		for _, d := range []string{"rep", "ec"} {
			for range perMountDir {
				id := len(writers)
				dir := filepath.Join(c.MountDir(m), d, fmt.Sprintf("writer%d", id))
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				writers = append(writers, &rollingWriter{id: id, dir: dir,
					counter: filepath.Join(c.MountDir(m), "counter")})
			}
		}
	}
	stalls := &rollingStalls{}
	stalls.next()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Go(func() { w.run(stop, stalls) })
	}
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriters()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	time.Sleep(3 * time.Second) // the writers get going

	var report []string
	// restartOne runs one restart, do, which returns how long the daemon
	// took to exit and a note, and reports what the writers saw meanwhile.
	restartOne := func(name string, do func() (stopped time.Duration, note string, err error)) {
		t.Helper()
		p := stalls.next()
		start := time.Now()
		stopped, note, err := do()
		if err != nil {
			t.Fatalf("restarting %s: %v", name, err)
		}
		ready := time.Since(start)
		time.Sleep(time.Second) // writers run on the healthy cluster again
		line := fmt.Sprintf("%-22s exited in %6v,%s healthy again after %6v; %s",
			name, stopped.Round(time.Millisecond), note, ready.Round(time.Millisecond), stalls.describe(p))
		t.Log(line)
		report = append(report, line)
		if dead := c.Dead(); len(dead) > 0 {
			t.Fatalf("processes exited: %v", dead)
		}
	}
	// What the writers see with no restart, for comparison.
	report = append(report, fmt.Sprintf("%-22s %s", "before any restart", stalls.describe(0)))
	t.Log(report[0])
	for round, leaderLast := range rounds {
		leader, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		order := []int{}
		for i := range 3 {
			if i != leader {
				order = append(order, i)
			}
		}
		if leaderLast {
			order = append(order, leader)
		} else {
			order = append([]int{leader}, order...)
		}
		for _, i := range order {
			role := "follower"
			if i == leader {
				role = "leader"
			}
			restartOne(fmt.Sprintf("round %d m%d (%s)", round+1, i+1, role), func() (time.Duration, string, error) {
				start := time.Now()
				if err := c.StopMaster(i); err != nil {
					return 0, "", err
				}
				stopped := time.Since(start)
				// With the leadership handed over before the exit, the
				// others have a leader at once, without an election.
				if err := awaitLeader(ctx, c); err != nil {
					return stopped, "", err
				}
				note := fmt.Sprintf(" a leader answering %6v after SIGTERM,", time.Since(start).Round(time.Millisecond))
				if err := c.RestartMaster(i); err != nil {
					return stopped, note, err
				}
				if err := c.WaitReady(ctx); err != nil {
					return stopped, note, err
				}
				return stopped, note, waitMasterCaughtUp(ctx, c, i)
			})
		}
		for i := range 4 {
			restartOne(fmt.Sprintf("round %d c%d", round+1, i+1), func() (time.Duration, string, error) {
				start := time.Now()
				if err := c.StopChunk(i); err != nil {
					return 0, "", err
				}
				stopped := time.Since(start)
				if err := c.RestartChunk(i); err != nil {
					return stopped, "", err
				}
				if err := c.WaitReady(ctx); err != nil {
					return stopped, "", err
				}
				// No chunk may be left short of a copy before the
				// next server goes.
				waitHealthy(t, c, 3*time.Minute)
				return stopped, "", nil
			})
		}
	}
	stopWriters()

	failed := false
	for _, w := range writers {
		if w.err != nil {
			t.Errorf("%v", w.err)
			failed = true
		}
	}
	if failed {
		t.Fatalf("a writer saw an error during the rolling restart")
	}
	waitHealthy(t, c, 3*time.Minute)

	// Everything reads back through the other mount (close-to-open).
	total, files := 0, 0
	for _, w := range writers {
		rel, err := filepath.Rel(c.MountDir(0), w.dir)
		m := 0
		if err != nil || strings.HasPrefix(rel, "..") {
			rel, _ = filepath.Rel(c.MountDir(1), w.dir)
			m = 1
		}
		other := filepath.Join(c.MountDir(1-m), rel)
		ents, err := os.ReadDir(other)
		if err != nil {
			t.Fatal(err)
		}
		want := len(w.files) + 1 // and the log
		if len(ents) != want {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("%s: %d entries, want %d: %v", other, len(ents), want, names)
		}
		for name, f := range w.files {
			checkFile(t, filepath.Join(other, name), f.seed, f.size)
			files++
		}
		got, err := os.ReadFile(filepath.Join(other, fmt.Sprintf("log%d", w.id)))
		if err != nil {
			t.Error(err)
		} else if !bytes.Equal(got, w.log.Bytes()) {
			t.Errorf("writer %d's log: %d bytes, want %d", w.id, len(got), w.log.Len())
		}
		total += w.counted
	}
	got, err := os.ReadFile(filepath.Join(c.MountDir(1), "counter"))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := strconv.Atoi(strings.TrimSpace(string(got))); err != nil || v != total {
		t.Errorf("counter holds %q, want %d increments", got, total)
	}
	if resp, err := fsck(ctx, c); err != nil {
		t.Fatal(err)
	} else if resp.ProblemCount != 0 || !resp.Complete {
		t.Errorf("fsck: %d problems, complete=%v: %v", resp.ProblemCount, resp.Complete, resp.Problems)
	}
	t.Logf("%d writers, %d files checked, %d counter increments under flock; per restart:\n%s",
		len(writers), files, total, strings.Join(report, "\n"))
}

// awaitLeader polls until a master answers as the leader.
func awaitLeader(ctx context.Context, c *cluster.Cluster) error {
	for {
		_, err := c.Leader(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no leader: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitMasterCaughtUp waits until master i answers, knows the leader and
// has applied everything the leader had applied when the wait began.
func waitMasterCaughtUp(ctx context.Context, c *cluster.Cluster, i int) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	target := st.AppliedIndex
	addr := c.MasterAddrs()[i]
	var last error
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		own, err := cluster.AskMaster(sctx, addr)
		cancel()
		switch {
		case err != nil:
			last = err
		case own.Leader == "":
			last = errors.New("knows no leader")
		case own.AppliedIndex < target:
			last = fmt.Errorf("applied %d of %d", own.AppliedIndex, target)
		default:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("m%d did not catch up: %v", i+1, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestGracefulBadDrainTimeout: -drain-timeout refuses what is not a
// positive duration, naming the flag.
func TestGracefulBadDrainTimeout(t *testing.T) {
	master := filepath.Join(binaries(t), cluster.MasterBinary)
	chunk := filepath.Join(binaries(t), cluster.ChunkBinary)
	data := func() string { return filepath.Join(t.TempDir(), "d") }
	for _, v := range []string{"0s", "-1s", "soon"} {
		expectRefusal(t, master, append(masterArgs(data(), freeAddr(t), freeAddr(t)), "-drain-timeout", v), "drain-timeout")
		expectRefusal(t, chunk, []string{"-data", data(), "-listen", freeAddr(t), "-drain-timeout", v}, "drain-timeout")
	}
}

// TestGracefulMountSIGTERM: SIGTERM to a dfsmount with a file open and
// written but neither closed nor fsynced detaches the mount point at
// once, keeps serving the open file until it is closed, with the data
// reaching the cluster, and then exits.
func TestGracefulMountSIGTERM(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 3, Mounts: 2})
	path := filepath.Join(c.MountDir(0), "open")
	const half = 200_000
	want, err := io.ReadAll(patternReader(7, 2*half))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(want[:half]); err != nil {
		t.Fatal(err)
	}
	if err := c.SignalMount(0, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// The mount point stops being the dfs mount.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(c.MountDir(0), &st); err == nil && st.Type != unix.FUSE_SUPER_MAGIC {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still a FUSE mount 30s after SIGTERM", c.MountDir(0))
		}
		time.Sleep(50 * time.Millisecond)
	}
	detached := time.Since(start)
	if dead := c.Dead(); len(dead) > 0 {
		t.Fatalf("dfsmount exited with a file still open: %v", dead)
	}
	// The open file still works, and its close flushes it.
	within(t, time.Minute, "writing and closing the open file after SIGTERM", func() error {
		if _, err := f.Write(want[half:]); err != nil {
			return err
		}
		return f.Close()
	})
	closed := time.Now()
	deadline = time.Now().Add(30 * time.Second)
	for len(c.Dead()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("dfsmount still running 30s after its last open file was closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("detached %v after SIGTERM; exited %v after the last close", detached.Round(time.Millisecond), time.Since(closed).Round(time.Millisecond))
	checkFile(t, filepath.Join(c.MountDir(1), "open"), 7, 2*half)
}
