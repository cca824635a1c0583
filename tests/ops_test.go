package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"dfs/api"
	"dfs/cluster"

	"google.golang.org/protobuf/encoding/protojson"
)

// opsFile is a file written for an ops test, to be read back later.
type opsFile struct {
	path string
	seed uint64
	size int64
}

// writeOpsFiles writes files of several sizes into each directory.
func writeOpsFiles(t *testing.T, dirs ...string) []opsFile {
	var files []opsFile
	for _, dir := range dirs {
		for i, size := range []int64{0, 1, 100 << 10, 1 << 20, 3<<20 + 12345} {
			f := opsFile{filepath.Join(dir, fmt.Sprintf("f%d", i)), uint64(len(files) + 1), size}
			writeFile(t, f.path, f.seed, f.size)
			files = append(files, f)
		}
	}
	return files
}

// checkOpsFiles reads every file back byte for byte through mount i.
func checkOpsFiles(t *testing.T, c *cluster.Cluster, i int, files []opsFile) {
	t.Helper()
	for _, f := range files {
		checkFile(t, onMount(t, c, i, f.path), f.seed, f.size)
	}
}

// chunkServerList runs `dfsctl chunkservers -json`.
func chunkServerList(t *testing.T, c *cluster.Cluster) *api.ChunkServersResponse {
	t.Helper()
	out, code := dfsctl(t, c, "chunkservers", "-json")
	var resp api.ChunkServersResponse
	if code != 0 {
		t.Fatalf("dfsctl chunkservers -json: exit %d\n%s", code, out)
	}
	if err := protojson.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("dfsctl chunkservers -json: %v\n%s", err, out)
	}
	return &resp
}

// TestOpsDrainChunkServer drains a chunkserver holding replicated and EC
// chunks, across a restart of the master, checks that a second drain the
// rest cannot hold is refused, that fsck is clean, and that every file
// reads back byte for byte with the drained server killed.
func TestOpsDrainChunkServer(t *testing.T) {
	// Copies are throttled as re-replication is, so that the drain is
	// still going when the master restarts.
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 4, Mounts: 2,
		ExtraMasterArgs: []string{"-repair-rate", "262144", "-repair-concurrency", "2"}})
	files := writeOpsFiles(t,
		ecDir(t, c, "rep", "replicated:3,chunk=1048576"),
		ecDir(t, c, "ec", "ec:2+1,chunk=1048576"))

	var id string
	for _, s := range chunkServerList(t, c).Servers {
		if s.Info.Addr == c.ChunkAddrs()[0] {
			id = s.Info.Id
		}
		if s.State != "live" || s.Draining {
			t.Errorf("before any drain: %v", s)
		}
	}
	if id == "" {
		t.Fatalf("chunkserver at %s not listed", c.ChunkAddrs()[0])
	}
	out, code := dfsctl(t, c, "chunkservers")
	if code != 0 || !strings.Contains(out, "LAST HEARTBEAT") || !strings.Contains(out, id) {
		t.Fatalf("dfsctl chunkservers: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{"chunkservers", "drain", "nosuch"}, {"chunkservers", "undrain", "nosuch"}} {
		if out, code := dfsctl(t, c, args...); code != 3 || !strings.Contains(out, `"nosuch"`) {
			t.Errorf("dfsctl %v: exit %d, want 3 naming the server\n%s", args, code, out)
		}
	}
	if out, code := dfsctl(t, c, "chunkservers", "drain"); code != 2 {
		t.Errorf("drain without an id: exit %d, want 2\n%s", code, out)
	}

	start := time.Now()
	out, code = dfsctl(t, c, "chunkservers", "drain", id, "-no-wait")
	if code != 0 || !strings.Contains(out, id+": draining") {
		t.Fatalf("drain -no-wait: exit %d\n%s", code, out)
	}
	// The drain is in the Raft state: a restarted master carries it on.
	if err := c.StopMaster(0); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartMaster(0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range chunkServerList(t, c).Servers {
		if s.Info.Id == id && (!s.Draining || s.Referenced == 0 || s.DrainTotal < s.Referenced) {
			t.Fatalf("after a master restart the drain should be going on: %v", s)
		}
	}
	// Waiting on a drain already going on shows its progress to the end.
	out, code = dfsctl(t, c, "chunkservers", "drain", id, "-json")
	if code != 0 {
		t.Fatalf("dfsctl chunkservers drain: exit %d\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var first, last struct {
		State            string
		Remaining, Total uint64
		Done             bool
	}
	if json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[len(lines)-1]), &last) != nil {
		t.Fatalf("drain -json output is not JSON lines:\n%s", out)
	}
	if first.Total == 0 || !last.Done || last.Remaining != 0 || last.State != "drained" {
		t.Fatalf("drain progress: first %+v, last %+v\n%s", first, last, out)
	}
	t.Logf("drained %d chunks in %v (%d progress lines)", first.Total, time.Since(start).Round(time.Millisecond), len(lines))

	// Three servers left: replicated:3 and ec:2+1 need all three.
	if out, code := dfsctl(t, c, "chunkservers", "drain", serverAt(t, c, 1)); code != 3 || !strings.Contains(out, "cannot drain") {
		t.Errorf("second drain with 3 servers for replicated:3: exit %d, want 3\n%s", code, out)
	}
	for _, s := range chunkServerList(t, c).Servers {
		if want := s.Info.Id == id; s.Draining != want || (want && (s.State != "drained" || s.Referenced != 0)) {
			t.Errorf("after the drain: %v", s)
		}
	}
	if out, code := dfsctl(t, c, "fsck"); code != 0 {
		t.Fatalf("fsck after the drain: exit %d\n%s", code, out)
	}
	if out, code := dfsctl(t, c, "status"); code != 0 || !strings.Contains(out, "true (draining)") {
		t.Errorf("dfsctl status does not show the drained server draining: exit %d\n%s", code, out)
	}
	out, _ = dfsctl(t, c, "chunkservers")
	t.Logf("dfsctl chunkservers after the drain:\n%s", out)
	// Nothing depends on the drained server: kill it and read everything
	// through the other mount (whose page cache never saw these files).
	c.KillChunk(0)
	checkOpsFiles(t, c, 1, files)
	if out, code := dfsctl(t, c, "fsck"); code != 0 {
		t.Errorf("fsck with the drained server dead: exit %d\n%s", code, out)
	}
	// New chunks avoid it: while it is dead and drained, a write that
	// needs three servers succeeds on the other three.
	more := writeOpsFiles(t, ecDir(t, c, "after", "replicated:3,chunk=1048576"))
	checkOpsFiles(t, c, 1, more)
	if out, code := dfsctl(t, c, "chunkservers", "undrain", id); code != 0 || !strings.Contains(out, id) {
		t.Errorf("undrain: exit %d\n%s", code, out)
	}
}

// serverAt returns the id of chunkserver i.
func serverAt(t *testing.T, c *cluster.Cluster, i int) string {
	t.Helper()
	for _, s := range chunkServerList(t, c).Servers {
		if s.Info.Addr == c.ChunkAddrs()[i] {
			return s.Info.Id
		}
	}
	t.Fatalf("chunkserver %d not listed", i)
	return ""
}

// flockHolder runs flock(1) holding an exclusive lock on path until the
// test ends, and returns its pid.
func flockHolder(t *testing.T, path string) uint32 {
	t.Helper()
	cmd := exec.Command("flock", "-x", path, "sleep", "600")
	// Its own process group: sleep inherits the locked descriptor, and
	// both must go before the mount can be unmounted.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return uint32(cmd.Process.Pid)
}

// tryFlock says whether flock -n takes the lock on path at once.
func tryFlock(t *testing.T, path string) bool {
	t.Helper()
	err := exec.Command("flock", "-n", "-x", path, "true").Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return err == nil
}

// heldLock waits until dfsctl locks lists a lock held by process pid
// and returns it. (A lock of a flock -n that just exited may still be
// listed for a moment: the kernel releases it asynchronously.)
func heldLock(t *testing.T, c *cluster.Cluster, pid uint32) *api.LockStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, code := dfsctl(t, c, "locks", "-json")
		var raw []json.RawMessage
		if code != 0 || json.Unmarshal([]byte(out), &raw) != nil {
			t.Fatalf("dfsctl locks -json: exit %d\n%s", code, out)
		}
		for _, r := range raw {
			var l api.LockStatus
			if err := protojson.Unmarshal(r, &l); err != nil {
				t.Fatal(err)
			}
			if !l.Waiting && l.Lock.GetPid() == pid {
				return &l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no held lock listed:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestOpsForceRelease ends a session that holds a flock from one mount
// and shows the other mount can then take the lock; then releases one
// lock by inode the same way.
func TestOpsForceRelease(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 1, Mounts: 2})
	p0 := filepath.Join(c.MountDir(0), "lockfile")
	if err := os.WriteFile(p0, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	p1 := onMount(t, c, 1, p0)

	l := heldLock(t, c, flockHolder(t, p0))
	if tryFlock(t, p1) {
		t.Fatal("mount 2 took a lock mount 1 holds")
	}
	sess := fmt.Sprint(l.Lock.Session)
	// Without a terminal and without -yes: refused, nothing done.
	if out, code := dfsctl(t, c, "sessions", "release", sess); code != 2 || !strings.Contains(out, "-yes") {
		t.Fatalf("release without -yes and no terminal: exit %d, want 2\n%s", code, out)
	}
	if tryFlock(t, p1) {
		t.Fatal("the lock was released without confirmation")
	}
	if out, code := dfsctl(t, c, "sessions", "release", sess, "-yes"); code != 0 || !strings.Contains(out, "released") {
		t.Fatalf("sessions release -yes: exit %d\n%s", code, out)
	}
	if !tryFlock(t, p1) {
		t.Fatal("mount 2 cannot take the lock after its holder's session was released")
	}
	if out, code := dfsctl(t, c, "sessions", "release", sess, "-yes"); code != 3 || !strings.Contains(out, "no session") {
		t.Errorf("second release: exit %d, want 3\n%s", code, out)
	}
	for _, args := range [][]string{{"sessions", "release", "x", "-yes"}, {"locks", "release", "-yes"}, {"locks", "release", "5", "-owner", "1", "-yes"}} {
		if out, code := dfsctl(t, c, args...); code != 2 {
			t.Errorf("dfsctl %v: exit %d, want 2\n%s", args, code, out)
		}
	}

	// Mount 1 learns at its next keepalive that its session ended and
	// opens a new one; until then its lock calls fail.
	for deadline := time.Now().Add(time.Minute); !tryFlock(t, p0); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("mount 1 never locks again after its session was released")
		}
	}
	// Now mount 2 holds it; release that one lock by inode and owner
	// session, and mount 1 takes it.
	l = heldLock(t, c, flockHolder(t, p1))
	if tryFlock(t, p0) {
		t.Fatal("mount 1 took a lock mount 2 holds")
	}
	ino := fmt.Sprint(l.Ino)
	if out, code := dfsctl(t, c, "locks", "release", ino, "-session", fmt.Sprint(l.Lock.Session+1000), "-yes"); code != 3 {
		t.Errorf("release of another session's locks: exit %d, want 3\n%s", code, out)
	}
	if out, code := dfsctl(t, c, "locks", "release", ino, "-session", fmt.Sprint(l.Lock.Session), "-yes"); code != 0 || !strings.Contains(out, "1 locks") {
		t.Fatalf("locks release: exit %d\n%s", code, out)
	}
	if !tryFlock(t, p0) {
		t.Fatal("mount 1 cannot take the lock after it was released")
	}
}

// TestOpsSnapshotSaveRestore saves a backup, wipes every master's data
// directory, restores all three from it and reads the files back; a file
// made after the save is gone, and the restored cluster takes new files.
func TestOpsSnapshotSaveRestore(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 3, ChunkServers: 3, Mounts: 2})
	dir := filepath.Join(c.MountDir(0), "tree", "sub")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := writeOpsFiles(t, dir)
	if err := os.Symlink("sub/f1", filepath.Join(c.MountDir(0), "tree", "link")); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "master.backup")
	out, code := dfsctl(t, c, "snapshot", "save", backup)
	if code != 0 || !strings.Contains(out, "saved") {
		t.Fatalf("snapshot save: exit %d\n%s", code, out)
	}
	if out, code := dfsctl(t, c, "snapshot", "save"); code != 2 {
		t.Errorf("snapshot save without a file: exit %d, want 2\n%s", code, out)
	}
	writeFile(t, filepath.Join(c.MountDir(0), "later"), 99, 1000)

	for i := range 3 {
		if err := c.StopMaster(i); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(c.Dir(), fmt.Sprintf("m%d", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	// A damaged backup is refused, naming the problem.
	bad := filepath.Join(t.TempDir(), "bad.backup")
	raw, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-10] ^= 0xff
	os.WriteFile(bad, raw, 0o644)
	cmd := exec.Command(filepath.Join(binaries(t), cluster.MasterBinary), "-restore", bad, "-data", t.TempDir(),
		"-listen", "127.0.0.1:0", "-raft", "127.0.0.1:0", "-id", "x")
	if out, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "checksum mismatch") {
		t.Errorf("dfsmaster -restore of a damaged backup: %v\n%s", err, out)
	}

	// The harness starts masters with the environment of the test, and
	// dfsmaster reads -restore from $DFSMASTER_RESTORE.
	t.Setenv("DFSMASTER_RESTORE", backup)
	for i := range 3 {
		if err := c.RestartMaster(i); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("restored cluster: %v", err)
	}
	os.Unsetenv("DFSMASTER_RESTORE")

	// A chunk whose version moved in the masters without reaching its
	// replicas yet (a lease being granted) is restored that way; the
	// leader pushes the version once their reports show it, as after any
	// failover. Then every chunk is healthy.
	t.Logf("healthy %v after the restore", waitHealthy(t, c, 2*time.Minute).Round(time.Millisecond))
	checkOpsFiles(t, c, 1, files)
	if target, err := os.Readlink(onMount(t, c, 1, filepath.Join(c.MountDir(0), "tree", "link"))); err != nil || target != "sub/f1" {
		t.Errorf("symlink after restore: %q, %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(c.MountDir(1), "later")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file made after the save: %v, want it gone", err)
	}
	more := writeOpsFiles(t, filepath.Join(c.MountDir(1), "tree"))
	checkOpsFiles(t, c, 1, more)
	if out, code := dfsctl(t, c, "fsck"); code != 0 {
		t.Errorf("fsck after restore: exit %d\n%s", code, out)
	}
}
