package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"dfs/cluster"

	"golang.org/x/sys/unix"
)

// TestRestart: every closed file and namespace change survives a clean
// restart of the whole cluster and then a crash (SIGKILL) of every server.
func TestRestart(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 3, ChunkServers: 3, Mounts: 1})
	root := filepath.Join(c.MountDir(0), "r")
	p := func(name string) string { return filepath.Join(root, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(p("a/b/c"), 0o755))
	must(os.Mkdir(p("gone"), 0o700))
	writeFile(t, p("a/empty"), 0, 0)
	writeFile(t, p("a/one"), 1, 1)
	writeFile(t, p("a/b/mid"), 2, 5<<20+3)
	writeFile(t, p("a/b/c/two-chunks"), 3, 64<<20+100)
	writeFile(t, p("moved"), 4, 1000)
	writeFile(t, p("deleted"), 5, 1000)
	writeFile(t, p("trunc"), 6, 300<<10)
	must(os.Rename(p("moved"), p("a/b/renamed")))
	must(os.Remove(p("deleted")))
	must(os.Remove(p("gone")))
	must(os.Truncate(p("trunc"), 100<<10+1))
	must(os.Link(p("a/one"), p("a/one-link")))
	must(os.Symlink("b/mid", p("a/mid-link")))
	must(os.Chmod(p("a/b/mid"), 0o640))
	ts := time.Date(2003, 4, 5, 6, 7, 8, 987654321, time.UTC)
	must(os.Chtimes(p("a/b/c"), ts, ts))
	must(unix.Setxattr(p("a/one"), "user.dfs-test", []byte("kept"), 0))
	setfacl := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("setfacl", args...).CombinedOutput(); err != nil {
			t.Fatalf("setfacl %v: %v\n%s", args, err, out)
		}
	}
	setfacl("-m", "u:1002:rw", p("a/one"))
	setfacl("-d", "-m", "u:1002:rx", p("a/b"))
	getfacl := func() string {
		out, err := exec.Command("getfacl", "-n", p("a/one"), p("a/b")).CombinedOutput()
		if err != nil {
			t.Fatalf("getfacl: %v\n%s", err, out)
		}
		return string(out)
	}
	acls := getfacl()

	want, err := scanTree(root)
	must(err)
	check := func(when string) {
		t.Helper()
		got, err := scanTree(root)
		if err != nil {
			t.Fatalf("%s: scanning the mount: %v", when, err)
		}
		if diffs := diffTrees(want, got, "", root, compareOpts{dirSize: true}); len(diffs) > 0 {
			t.Errorf("%s: the tree changed:\n  %s", when, strings.Join(diffs, "\n  "))
		}
		buf := make([]byte, 64)
		n, err := unix.Getxattr(p("a/one"), "user.dfs-test", buf)
		if err != nil || string(buf[:n]) != "kept" {
			t.Errorf("%s: xattr user.dfs-test = %q, %v; want \"kept\"", when, buf[:max(n, 0)], err)
		}
		if got := getfacl(); got != acls {
			t.Errorf("%s: ACLs changed:\n%s\nwant\n%s", when, got, acls)
		}
	}
	check("before restart")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	check("after a clean restart")

	// The restarted cluster takes writes, and they survive a crash too.
	writeFile(t, p("after-restart"), 7, 2<<20)
	must(os.Rename(p("a/b/renamed"), p("renamed-again")))
	want, err = scanTree(root)
	must(err)
	if err := c.CrashRestart(ctx); err != nil {
		t.Fatalf("CrashRestart: %v", err)
	}
	check("after every server was killed")
	checkFile(t, p("a/b/c/two-chunks"), 3, 64<<20+100)
}

// TestFollowerRestart: killing and restarting a follower master or a
// chunkserver is invisible to a mount writing files.
func TestFollowerRestart(t *testing.T) {
	c := startCluster(t, cluster.Config{Masters: 3, ChunkServers: 4, Mounts: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	follower := (leader + 1) % 3
	dir := c.MountDir(0)
	c.KillMaster(follower)
	c.KillChunk(0)
	// The dead chunkserver may still count as alive at the master, and
	// be picked for these files (one chunk each, 3 replicas of 4 servers:
	// it is in almost every run): the writes must finish on the others.
	within(t, time.Minute, "writing with a follower and a chunkserver down", func() error {
		for i := range 8 {
			if err := createFile(filepath.Join(dir, "f"+string(rune('0'+i))), uint64(i), 3<<20); err != nil {
				return err
			}
		}
		return nil
	})
	if err := c.RestartMaster(follower); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartChunk(0); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		checkFile(t, filepath.Join(dir, "f"+string(rune('0'+i))), uint64(i), 3<<20)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Errorf("statfs: %v", err)
	}
}
