package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// run runs a program in dir and returns its combined output, failing the
// test with that output if it fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed (make test installs it): %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// sourceTree builds, on local disk, a tree of source files and documents
// with symlinks, a hard link, empty files and directories and assorted
// modes and nanosecond times, and returns its root.
func sourceTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, root, nil, "cp", "-a", filepath.Join(goroot(t), "src", "net", "http"), "http")
	for _, d := range []string{"fuse3", "sqlite3", "tar", "g++", "libtsan2", "git"} {
		p := filepath.Join("/usr/share/doc", d)
		if _, err := os.Lstat(p); err == nil {
			run(t, root, nil, "cp", "-a", p, "doc-"+d)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(root, "empty-dir"), 0o700))
	must(os.WriteFile(filepath.Join(root, "empty-file"), nil, 0o600))
	must(os.WriteFile(filepath.Join(root, "script.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(os.Link(filepath.Join(root, "script.sh"), filepath.Join(root, "hardlink.sh")))
	must(os.Symlink("http/server.go", filepath.Join(root, "server-link")))
	must(os.Symlink("/nonexistent/target", filepath.Join(root, "dangling")))
	ts := time.Date(2020, 2, 29, 12, 34, 56, 123456789, time.UTC)
	must(os.Chtimes(filepath.Join(root, "empty-file"), ts, ts))
	must(os.Chtimes(root, ts, ts))
	return root
}

func goroot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func compareTrees(t *testing.T, wantRoot, gotRoot string, o compareOpts) {
	t.Helper()
	want, err := scanTree(wantRoot)
	if err != nil {
		t.Fatal(err)
	}
	got, err := scanTree(gotRoot)
	if err != nil {
		t.Fatalf("scanning %s: %v", gotRoot, err)
	}
	if diffs := diffTrees(want, got, wantRoot, gotRoot, o); len(diffs) > 0 {
		if len(diffs) > 40 {
			diffs = append(diffs[:40], "...")
		}
		t.Errorf("%s differs from %s:\n  %s", gotRoot, wantRoot, strings.Join(diffs, "\n  "))
	}
}

func TestCpA(t *testing.T) {
	dir := testDir(t, 0)
	src := sourceTree(t)
	dst := filepath.Join(dir, "copy")
	run(t, dir, nil, "cp", "-a", src, dst)
	run(t, dir, nil, "diff", "-r", "--no-dereference", src, dst)
	compareTrees(t, src, dst, compareOpts{})
	// And back out again: what the mount gives cp must be complete too.
	back := filepath.Join(t.TempDir(), "back")
	run(t, dir, nil, "cp", "-a", dst, back)
	compareTrees(t, src, back, compareOpts{})
}

func TestTar(t *testing.T) {
	dir := testDir(t, 0)
	src := sourceTree(t)
	archive := filepath.Join(t.TempDir(), "src.tar")
	// POSIX (pax) format keeps nanosecond mtimes; GNU format rounds them
	// to seconds.
	run(t, src, nil, "tar", "--format=posix", "-cf", archive, ".")
	dst := filepath.Join(dir, "x")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, dst, nil, "tar", "-xpf", archive)
	// tar sets the extraction root's mode and times from "./" only
	// sometimes, depending on version and order: the root is not compared.
	compareTrees(t, src, dst, compareOpts{skipRoot: true})
	// tar reading the mount lists the same archive members, in its own
	// readdir order.
	list := func(a string) string {
		lines := strings.Split(run(t, dir, nil, "tar", "--full-time", "-tvf", a), "\n")
		sort.Strings(lines)
		return strings.Join(lines, "\n")
	}
	again := filepath.Join(t.TempDir(), "again.tar")
	run(t, dst, nil, "tar", "--format=posix", "-cf", again, ".")
	if a, b := list(archive), list(again); a != b {
		t.Errorf("archive of the extracted tree differs from the original:\n%s\nvs\n%s", firstLines(a, 10), firstLines(b, 10))
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

func TestGit(t *testing.T) {
	dir := testDir(t, 0)
	home := t.TempDir()
	env := []string{"HOME=" + home, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=dfs", "GIT_AUTHOR_EMAIL=dfs@example.com",
		"GIT_COMMITTER_NAME=dfs", "GIT_COMMITTER_EMAIL=dfs@example.com"}
	repo := filepath.Join(dir, "repo")
	run(t, dir, env, "git", "init", "-q", repo)
	run(t, repo, env, "cp", "-a", filepath.Join(goroot(t), "src", "net", "http"), "http")
	run(t, repo, env, "git", "add", ".")
	run(t, repo, env, "git", "commit", "-q", "-m", "first")
	if out := run(t, repo, env, "git", "status", "--porcelain"); out != "" {
		t.Errorf("git status after commit shows changes:\n%s", out)
	}
	f := filepath.Join(repo, "http", "server.go")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, append(b, "\n// changed on dfs\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run(t, repo, env, "git", "status", "--porcelain"); strings.TrimSpace(out) != "M http/server.go" {
		t.Errorf("git status after an edit: %q, want \" M http/server.go\"", out)
	}
	run(t, repo, env, "git", "commit", "-q", "-a", "-m", "second")
	run(t, repo, env, "git", "gc", "-q")
	run(t, repo, env, "git", "fsck", "--strict", "--no-progress")
	if out := run(t, repo, env, "git", "log", "--oneline"); strings.Count(out, "\n") != 2 {
		t.Errorf("git log: %q, want two commits", out)
	}
	if out := run(t, repo, env, "git", "status", "--porcelain"); out != "" {
		t.Errorf("git status after gc shows changes:\n%s", out)
	}
}

func TestSQLite(t *testing.T) {
	dir := testDir(t, 0)
	for _, mode := range []string{"delete", "wal"} {
		t.Run(mode, func(t *testing.T) {
			db := filepath.Join(dir, mode+".db")
			run(t, dir, nil, "sqlite3", db, "PRAGMA journal_mode="+mode+";"+`
				CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER);
				WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 20000)
					INSERT INTO t SELECT i, printf('row %d %s', i, hex(randomblob(20))), i*7 FROM c;
				CREATE INDEX tn ON t(n);
				BEGIN; UPDATE t SET n = n + 1 WHERE id % 3 = 0; DELETE FROM t WHERE id % 5 = 0; COMMIT;
				BEGIN; DELETE FROM t; ROLLBACK;`)
			out := run(t, dir, nil, "sqlite3", db, "PRAGMA integrity_check; SELECT count(*), sum(n) FROM t;")
			// 20000 rows less the 4000 multiples of 5; sum of 7i over the
			// rest, plus one for every remaining multiple of 3.
			var sum, threes int64
			for i := int64(1); i <= 20000; i++ {
				if i%5 == 0 {
					continue
				}
				sum += 7 * i
				if i%3 == 0 {
					threes++
				}
			}
			want := "ok\n16000|" + strconv.FormatInt(sum+threes, 10) + "\n"
			if out != want {
				t.Errorf("sqlite3 query: %q, want %q", out, want)
			}
		})
	}
}

func TestGoBuild(t *testing.T) {
	dir := testDir(t, 0)
	mod := filepath.Join(dir, "hello")
	files := map[string]string{
		"go.mod":     "module hello\n\ngo 1.21\n",
		"main.go":    "package main\n\nimport \"hello/lib\"\n\nfunc main() { println(lib.Greeting()) }\n",
		"lib/lib.go": "package lib\n\n// Greeting is built on dfs.\nfunc Greeting() string { return \"hello from dfs\" }\n",
	}
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
	run(t, mod, env, "go", "vet", "./...")
	run(t, mod, env, "go", "build", "-o", "hello", ".")
	// The binary is executed from the mount: exec maps it from dfs.
	if out := run(t, mod, nil, filepath.Join(mod, "hello")); out != "hello from dfs\n" {
		t.Errorf("built program printed %q", out)
	}
}
