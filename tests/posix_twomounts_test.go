package tests

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"dfs/cluster"

	"golang.org/x/sys/unix"
)

// Real programs with one mount writing and the other reading: what one
// machine writes and closes, another sees whole.

// mountPair returns the test's directory on mount 0 and the same
// directory seen through mount 1.
func mountPair(t *testing.T) (a, b string) {
	t.Helper()
	a = testDir(t, 0)
	b = filepath.Join(shared(t).MountDir(1), t.Name())
	// The directory was made through mount 0: wait out mount 1's
	// negative entry cache, if it had looked.
	waitFor(t, 2*attrTimeout+time.Second, "the test directory on mount 1", func() bool {
		_, err := os.Stat(b)
		return err == nil
	})
	return a, b
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEditorSave: a writer on one mount saves a file as editors do (write
// a temporary file, fsync, rename it over the target) again and again;
// a reader on the other mount must only ever see a complete version.
func TestEditorSave(t *testing.T) {
	a, b := mountPair(t)
	version := func(i int) []byte {
		return bytes.Repeat([]byte(fmt.Sprintf("version %06d\n", i)), 2000+i%7*1000)
	}
	target := filepath.Join(a, "doc.txt")
	if err := os.WriteFile(target, version(0), 0o644); err != nil {
		t.Fatal(err)
	}
	const saves = 60
	done := make(chan struct{})
	var writeErr error
	go func() {
		defer close(done)
		for i := 1; i <= saves; i++ {
			tmp := filepath.Join(a, fmt.Sprintf(".doc.txt.swp%d", i))
			f, err := os.Create(tmp)
			if err == nil {
				_, err = f.Write(version(i))
			}
			if err == nil {
				err = f.Sync()
			}
			if f != nil {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err == nil {
				err = os.Rename(tmp, target)
			}
			if err != nil {
				writeErr = err
				return
			}
			time.Sleep(30 * time.Millisecond)
		}
	}()
	reads, last := 0, -1
	readOnce := func() {
		got, err := os.ReadFile(filepath.Join(b, "doc.txt"))
		if err != nil {
			t.Fatalf("read on mount 1: %v", err)
		}
		var n int
		if _, err := fmt.Sscanf(string(got), "version %06d\n", &n); err != nil || !bytes.Equal(got, version(n)) {
			t.Fatalf("mount 1 read a torn or empty file: %d bytes starting %q", len(got), got[:min(len(got), 20)])
		}
		if n < last {
			t.Fatalf("mount 1 read version %d after version %d", n, last)
		}
		last = n
		reads++
	}
loop:
	for {
		select {
		case <-done:
			break loop
		default:
			readOnce()
		}
	}
	if writeErr != nil {
		t.Fatalf("saving on mount 0: %v", writeErr)
	}
	// Within the cache time the last save shows.
	waitFor(t, 2*attrTimeout+time.Second, "the last save on mount 1", func() bool {
		readOnce()
		return last == saves
	})
	t.Logf("%d whole reads on mount 1 during %d saves", reads, saves)
}

// TestTwoMountPrograms: tar, rsync, git, sqlite3 and go build, each
// writing on mount 0 and checked or continued on mount 1.
func TestTwoMountPrograms(t *testing.T) {
	a, b := mountPair(t)
	src := sourceTree(t)
	// TestTar and TestCpA copy the whole tree through one mount; across
	// two, a smaller one says as much in less time.
	if err := os.RemoveAll(filepath.Join(src, "doc-git")); err != nil {
		t.Fatal(err)
	}

	t.Run("tar", func(t *testing.T) {
		archive := filepath.Join(t.TempDir(), "src.tar")
		run(t, src, nil, "tar", "--format=posix", "-cf", archive, ".")
		if err := os.Mkdir(filepath.Join(a, "tar"), 0o755); err != nil {
			t.Fatal(err)
		}
		run(t, filepath.Join(a, "tar"), nil, "tar", "-xpf", archive)
		waitFor(t, 2*attrTimeout+time.Second, "the extracted tree on mount 1", func() bool {
			_, err := os.Stat(filepath.Join(b, "tar", "script.sh"))
			return err == nil
		})
		run(t, b, nil, "diff", "-r", "--no-dereference", src, filepath.Join(b, "tar"))
		out := filepath.Join(t.TempDir(), "out")
		os.Mkdir(out, 0o755)
		run(t, b, nil, "sh", "-c", "tar --format=posix -C tar -cf - . | tar -C "+out+" -xpf -")
		compareTrees(t, src, out, compareOpts{skipRoot: true})
	})

	t.Run("rsync", func(t *testing.T) {
		run(t, a, nil, "rsync", "-aHX", src+"/", filepath.Join(a, "rsync")+"/")
		run(t, a, nil, "diff", "-r", "--no-dereference", src, filepath.Join(a, "rsync"))
		compareTrees(t, src, filepath.Join(a, "rsync"), compareOpts{skipRoot: true})
		// A second run finds nothing to do: sizes and times match.
		if out := run(t, a, nil, "rsync", "-aHXi", src+"/", filepath.Join(a, "rsync")+"/"); strings.TrimSpace(out) != "" {
			t.Errorf("a second rsync still transfers:\n%s", firstLines(out, 10))
		}
		back := filepath.Join(t.TempDir(), "back")
		waitFor(t, 2*attrTimeout+time.Second, "the rsynced tree on mount 1", func() bool {
			_, err := os.Stat(filepath.Join(b, "rsync", "script.sh"))
			return err == nil
		})
		run(t, b, nil, "rsync", "-aHX", filepath.Join(b, "rsync")+"/", back+"/")
		run(t, b, nil, "diff", "-r", "--no-dereference", src, back)
		compareTrees(t, src, back, compareOpts{skipRoot: true})
	})

	t.Run("git", func(t *testing.T) {
		home := t.TempDir()
		env := []string{"HOME=" + home, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=dfs", "GIT_AUTHOR_EMAIL=dfs@example.com",
			"GIT_COMMITTER_NAME=dfs", "GIT_COMMITTER_EMAIL=dfs@example.com"}
		origin := filepath.Join(t.TempDir(), "origin")
		run(t, home, env, "git", "init", "-q", origin)
		run(t, origin, env, "cp", "-a", filepath.Join(src, "http"), "http")
		run(t, origin, env, "git", "add", ".")
		run(t, origin, env, "git", "commit", "-q", "-m", "first")
		run(t, origin, env, "sh", "-c", "echo change >> http/server.go && git commit -qam second")
		run(t, a, env, "git", "clone", "-q", "--no-local", origin, "clone")
		waitFor(t, 2*attrTimeout+time.Second, "the clone on mount 1", func() bool {
			_, err := os.Stat(filepath.Join(b, "clone", ".git", "HEAD"))
			return err == nil
		})
		repoB := filepath.Join(b, "clone")
		run(t, repoB, env, "git", "fsck", "--strict", "--no-progress")
		run(t, repoB, env, "git", "repack", "-a", "-d", "-q")
		run(t, repoB, env, "git", "gc", "-q", "--aggressive")
		run(t, repoB, env, "git", "commit", "-q", "--allow-empty", "-m", "third, on mount 1")
		// Back on mount 0 after the cache time: the repacked repository
		// and the new commit are there.
		time.Sleep(attrTimeout + 200*time.Millisecond)
		repoA := filepath.Join(a, "clone")
		run(t, repoA, env, "git", "fsck", "--strict", "--no-progress")
		if out := run(t, repoA, env, "git", "log", "--oneline"); strings.Count(out, "\n") != 3 {
			t.Errorf("git log on mount 0: %q, want three commits", out)
		}
		if out := run(t, repoA, env, "git", "status", "--porcelain"); out != "" {
			t.Errorf("git status on mount 0 shows changes:\n%s", out)
		}
	})

	t.Run("sqlite", func(t *testing.T) {
		dbA, dbB := filepath.Join(a, "s.db"), filepath.Join(b, "s.db")
		run(t, a, nil, "sqlite3", dbA, `
			CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
			WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 30000)
				INSERT INTO t SELECT i, hex(randomblob(40)) FROM c;
			DELETE FROM t WHERE id % 2 = 0;
			VACUUM;
			PRAGMA integrity_check;`)
		waitFor(t, 2*attrTimeout+time.Second, "the database on mount 1", func() bool {
			_, err := os.Stat(dbB)
			return err == nil
		})
		if out := run(t, b, nil, "sqlite3", dbB, "PRAGMA integrity_check; SELECT count(*) FROM t;"); out != "ok\n15000\n" {
			t.Errorf("mount 1 after VACUUM on mount 0: %q", out)
		}
		run(t, b, nil, "sqlite3", dbB, "DELETE FROM t WHERE id % 3 = 0; VACUUM;")
		if out := run(t, a, nil, "sqlite3", dbA, "PRAGMA integrity_check; SELECT count(*) FROM t;"); out != "ok\n10000\n" {
			t.Errorf("mount 0 after VACUUM on mount 1: %q", out)
		}
	})

	t.Run("gobuild", func(t *testing.T) {
		mod := filepath.Join(a, "multi")
		files := map[string]string{"go.mod": "module multi\n\ngo 1.21\n"}
		for i := range 6 {
			imp := ""
			call := "0"
			if i > 0 {
				imp = fmt.Sprintf("import \"multi/p%d\"\n\n", i-1)
				call = fmt.Sprintf("p%d.N()", i-1)
			}
			files[fmt.Sprintf("p%d/p.go", i)] = fmt.Sprintf("package p%d\n\n%s// N counts the packages below.\nfunc N() int { return %s + 1 }\n", i, imp, call)
		}
		files["main.go"] = "package main\n\nimport (\n\t\"fmt\"\n\t\"multi/p5\"\n)\n\nfunc main() { fmt.Println(p5.N()) }\n"
		for name, content := range files {
			p := filepath.Join(mod, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		tmp := t.TempDir()
		env := []string{"GOFLAGS=-mod=mod", "GOCACHE=" + filepath.Join(tmp, "cache"), "GOPATH=" + filepath.Join(tmp, "gopath"),
			"GOTOOLCHAIN=local", "CGO_ENABLED=0"}
		modB := filepath.Join(b, "multi")
		waitFor(t, 2*attrTimeout+time.Second, "the module on mount 1", func() bool {
			_, err := os.Stat(filepath.Join(modB, "main.go"))
			return err == nil
		})
		run(t, modB, env, "go", "build", "-o", "multi", ".")
		time.Sleep(attrTimeout + 200*time.Millisecond)
		if out := run(t, mod, nil, filepath.Join(mod, "multi")); out != "6\n" {
			t.Errorf("the program built on mount 1 printed %q on mount 0, want 6", out)
		}
	})
}

// TestTwoHostsNoCache: two mounts in network namespaces of their own (two
// hosts, as far as the network goes), with attribute and entry caching
// off: every change one makes is visible to the other at once, and data
// closed on one is read whole on the other.
func TestTwoHostsNoCache(t *testing.T) {
	requireFUSE(t)
	lab := newNetLab(t, []string{"m1", "m2", "m3", "c1", "c2", "c3", "mount1", "mount2"})
	c := startCluster(t, cluster.Config{Masters: 3, ChunkServers: 3, Mounts: 2,
		Host: lab.host, Wrap: lab.wrap,
		ExtraMountArgs: []string{"-o", "attr_timeout=0,entry_timeout=0"}})
	a, b := c.MountDir(0), c.MountDir(1)
	exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }
	for i := range 20 {
		d := filepath.Join(a, fmt.Sprintf("d%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if !exists(filepath.Join(b, fmt.Sprintf("d%d", i))) {
			t.Fatalf("mkdir %d not visible on the other host at once", i)
		}
		writeFile(t, filepath.Join(d, "f"), uint64(i), int64(1000+i*4099))
		checkFile(t, filepath.Join(b, fmt.Sprintf("d%d", i), "f"), uint64(i), int64(1000+i*4099))
		if err := os.Rename(filepath.Join(b, fmt.Sprintf("d%d", i), "f"), filepath.Join(b, fmt.Sprintf("d%d", i), "g")); err != nil {
			t.Fatal(err)
		}
		if exists(filepath.Join(d, "f")) || !exists(filepath.Join(d, "g")) {
			t.Fatalf("rename %d on the other host not visible at once", i)
		}
		if err := os.Chmod(filepath.Join(d, "g"), 0o600); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(filepath.Join(b, fmt.Sprintf("d%d", i), "g")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("chmod %d not visible at once: %v %v", i, fi.Mode(), err)
		}
		// Overwritten on b (shorter), read back on a.
		writeFile(t, filepath.Join(b, fmt.Sprintf("d%d", i), "g"), uint64(i+100), int64(500+i))
		checkFile(t, filepath.Join(d, "g"), uint64(i+100), int64(500+i))
		if err := os.RemoveAll(filepath.Join(b, fmt.Sprintf("d%d", i))); err != nil {
			t.Fatal(err)
		}
		if exists(d) {
			t.Fatalf("removal %d not visible at once", i)
		}
	}
}

// TestTwoMountsUnlinkOpen: a file one mount holds open stays readable and
// writable there after the other mount unlinks it, for longer than the
// master takes to reclaim files nobody holds (opens have no Raft record;
// keepalives report them), and is reclaimed after the last close.
func TestTwoMountsUnlinkOpen(t *testing.T) {
	a, b := mountPair(t)
	var s0, s unix.Statfs_t
	unix.Statfs(a, &s0)
	writeFile(t, filepath.Join(a, "f"), 7, 5000)
	var f *os.File
	waitFor(t, 2*attrTimeout+time.Second, "f on mount 1", func() bool {
		var err error
		f, err = os.OpenFile(filepath.Join(b, "f"), os.O_RDWR|syscall.O_DIRECT, 0)
		return err == nil
	})
	defer f.Close()
	if err := os.Remove(filepath.Join(a, "f")); err != nil {
		t.Fatal(err)
	}
	// Past two keepalive intervals of the default session TTL and the
	// leader's reclaim pass: a file nobody held would be gone by now.
	time.Sleep(9 * time.Second)
	unix.Statfs(a, &s)
	if s.Files-s.Ffree != s0.Files-s0.Ffree+1 {
		t.Errorf("inodes in use while open on mount 1: %d, want %d", s.Files-s.Ffree, s0.Files-s0.Ffree+1)
	}
	want, _ := io.ReadAll(patternReader(7, 5000))
	got := make([]byte, 5000)
	if n, err := f.ReadAt(got, 0); n != 5000 || !bytes.Equal(got, want) {
		t.Fatalf("read on mount 1 after the unlink on mount 0: %d bytes, %v, equal %v", n, err, bytes.Equal(got[:max(n, 0)], want[:max(n, 0)]))
	}
	if _, err := f.WriteAt([]byte("late"), 5000); err != nil {
		t.Fatalf("write after the unlink: %v", err)
	}
	if n, err := f.ReadAt(got[:4], 5000); n != 4 || string(got[:4]) != "late" {
		t.Fatalf("read back after the unlink: %q %v", got[:max(n, 0)], err)
	}
	f.Close()
	waitFor(t, 20*time.Second, "the inode's reclaim after the last close", func() bool {
		unix.Statfs(a, &s)
		return s.Files-s.Ffree == s0.Files-s0.Ffree
	})
}
