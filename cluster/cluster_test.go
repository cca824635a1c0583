package cluster

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeBin builds testdata/fakedfs under the three daemon names.
func fakeBin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	exe := filepath.Join(dir, MasterBinary)
	out, err := exec.Command("go", "build", "-o", exe, "./testdata/fakedfs").CombinedOutput()
	if err != nil {
		t.Fatalf("build fake: %v\n%s", err, out)
	}
	for _, name := range []string{ChunkBinary, MountBinary} {
		if err := os.Link(exe, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func needFUSE(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
}

func TestLifecycle(t *testing.T) {
	needFUSE(t)
	ctx := context.Background()
	bin := fakeBin(t)
	dir := t.TempDir()
	cfg := Config{Masters: 3, ChunkServers: 2, Mounts: 1, Dir: dir, Bin: bin, ReadyTimeout: 20 * time.Second}
	c, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.StopAll() })
	if l, err := c.Leader(ctx); err != nil || l != 0 {
		t.Fatalf("Leader = %d, %v; want 0", l, err)
	}
	mnt := c.MountDir(0)
	if !isMounted(mnt) {
		t.Fatalf("%s not mounted", mnt)
	}
	c.KillMaster(1)
	c.KillChunk(1)
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady with c2 killed: %v", err)
	}
	if got := c.Dead(); len(got) != 0 {
		t.Errorf("Dead() = %v after deliberate kill", got)
	}
	if err := c.RestartChunk(1); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartMaster(1); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	addrs := c.MasterAddrs()
	if err := c.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if err := c.CrashRestart(ctx); err != nil {
		t.Fatalf("CrashRestart: %v", err)
	}
	if err := c.StopAll(); err != nil {
		t.Fatalf("StopAll: %v", err)
	}
	if isMounted(mnt) {
		t.Fatalf("%s still mounted after StopAll", mnt)
	}
	// A second start on the same directory reuses the ports Raft knows.
	c2, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.StopAll()
	if got := c2.MasterAddrs(); !slices.Equal(got, addrs) {
		t.Errorf("restarted on %v, first run used %v", got, addrs)
	}
	if got, err := MasterAddrsIn(dir); err != nil || !slices.Equal(got, addrs) {
		t.Errorf("MasterAddrsIn = %v, %v; want %v", got, err, addrs)
	}
}

func TestStartReportsDeadProcess(t *testing.T) {
	bin := fakeBin(t)
	cfg := Config{Masters: 1, Dir: t.TempDir(), Bin: bin, ExtraMasterArgs: []string{"-fail"}, ReadyTimeout: 20 * time.Second}
	_, err := Start(context.Background(), cfg)
	if err == nil {
		t.Fatal("Start succeeded with a master that exits")
	}
	if !strings.Contains(err.Error(), "told to fail") || !strings.Contains(err.Error(), "m1") {
		t.Errorf("error does not name the process and show its log: %v", err)
	}
}

func TestPortsExclusive(t *testing.T) {
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	defer p.release()
	if _, err := lockPort(p.port); err == nil {
		t.Fatalf("port %d locked twice", p.port)
	}
	lo, hi := portRange()
	if p.port < lo || p.port >= hi {
		t.Errorf("port %d outside [%d,%d)", p.port, lo, hi)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	if got := unescapeMountPath(`/tmp/a\040b\134c`); got != `/tmp/a b\c` {
		t.Errorf("got %q", got)
	}
}

func TestCleanStaleMounts(t *testing.T) {
	needFUSE(t)
	bin := fakeBin(t)
	dir := t.TempDir()
	c, err := Start(context.Background(), Config{Masters: 1, Mounts: 2, Dir: dir, Bin: bin, ReadyTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.StopAll()
	// SIGKILL leaves the mount behind, as a killed test process would.
	c.mu.Lock()
	c.mounts[0].wanted = false
	c.mu.Unlock()
	c.mounts[0].kill()
	if !isMounted(c.MountDir(0)) {
		t.Fatal("killing the fake mount unmounted it; the test cannot check cleanup")
	}
	cleaned, err := CleanStaleMounts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cleaned, []string{c.MountDir(0)}) {
		t.Errorf("cleaned %v, want only the dead %s", cleaned, c.MountDir(0))
	}
	if isMounted(c.MountDir(0)) || !isMounted(c.MountDir(1)) {
		t.Errorf("after cleanup: mnt1 mounted=%v (want false), mnt2 mounted=%v (want true)", isMounted(c.MountDir(0)), isMounted(c.MountDir(1)))
	}
}
