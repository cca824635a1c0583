package tests

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"dfs/cluster"
)

// attrTimeout is the mounts' attribute and entry cache time: what the
// design promises as the bound on seeing another mount's namespace change.
const attrTimeout = time.Second

var (
	baseDir string // every cluster of this run lives below it

	sharedOnce sync.Once
	sharedC    *cluster.Cluster
	sharedErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		// A test run that was killed (a -timeout panic, say) can leave
		// mounts whose server died behind: detach them.
		old, _ := filepath.Glob(filepath.Join(os.TempDir(), "dfs-tests-*"))
		for _, dir := range old {
			if cleaned, err := cluster.CleanStaleMounts(dir); len(cleaned) > 0 || err != nil {
				fmt.Fprintf(os.Stderr, "detached stale mounts of an earlier run: %v %v\n", cleaned, err)
			}
		}
		var err error
		baseDir, err = os.MkdirTemp("", "dfs-tests-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		code := m.Run()
		if sharedC != nil {
			if err := sharedC.StopAll(); err != nil {
				fmt.Fprintf(os.Stderr, "stopping the shared cluster: %v\n", err)
				code = 1
			}
			if code != 0 {
				fmt.Fprintf(os.Stderr, "shared cluster logs (%s):\n%s", sharedC.LogDir(), sharedC.LogTails(25))
			}
		}
		if os.Getenv("DFS_KEEP") != "" {
			fmt.Fprintf(os.Stderr, "kept %s\n", baseDir)
		} else {
			os.RemoveAll(baseDir)
		}
		if dir, err := cluster.BuildOnce(context.Background()); dir != "" && err == nil {
			os.RemoveAll(dir)
		}
		return code
	}()
	os.Exit(code)
}

// binaries returns the directory of freshly built dfs binaries, built once
// per test run.
func binaries(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := cluster.BuildOnce(ctx)
	if err != nil {
		t.Fatalf("building the binaries: %v", err)
	}
	return dir
}

// requireFUSE skips tests that mount when the machine cannot.
func requireFUSE(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: integration tests mount FUSE filesystems and must run as root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("skipping: /dev/fuse is missing (load the fuse module or run the container with --device /dev/fuse)")
	}
}

// shared returns the package's cluster (3 masters, 4 chunkservers, 2
// mounts), starting it on first use.
func shared(t testing.TB) *cluster.Cluster {
	t.Helper()
	requireFUSE(t)
	bin := binaries(t)
	first := false
	sharedOnce.Do(func() {
		first = true
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		sharedC, sharedErr = cluster.Start(ctx, cluster.Config{
			Masters: 3, ChunkServers: 4, Mounts: 2,
			Dir:            filepath.Join(baseDir, "shared"),
			Bin:            bin,
			ExtraMountArgs: mountOpts(),
		})
	})
	if sharedErr != nil {
		if first {
			t.Fatalf("starting the shared cluster: %v", sharedErr)
		}
		t.Fatal("the shared cluster did not start (see the first failing test)")
	}
	return sharedC
}

func mountOpts() []string {
	s := attrTimeout.Seconds()
	return []string{"-o", fmt.Sprintf("attr_timeout=%g,entry_timeout=%g", s, s)}
}

// startCluster starts a private cluster for a test that restarts or kills
// processes, and stops it when the test ends.
func startCluster(t *testing.T, cfg cluster.Config) *cluster.Cluster {
	t.Helper()
	requireFUSE(t)
	cfg.Bin = binaries(t)
	if cfg.Dir == "" {
		// A fresh directory also when go test -count runs the test again.
		cfg.Dir = filepath.Join(baseDir, t.Name())
		for i := 2; ; i++ {
			if _, err := os.Stat(cfg.Dir); errors.Is(err, fs.ErrNotExist) {
				break
			}
			cfg.Dir = filepath.Join(baseDir, fmt.Sprintf("%s.%d", t.Name(), i))
		}
	}
	if cfg.ExtraMountArgs == nil {
		cfg.ExtraMountArgs = mountOpts()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("starting a cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cluster logs (%s):\n%s", c.LogDir(), c.LogTails(25))
		}
		if err := c.StopAll(); err != nil {
			t.Errorf("stopping the cluster: %v", err)
		}
	})
	return c
}

// within runs f and fails the test if it does not return within d: a
// file system call that never returns is a failure, not a reason to wait
// for the package timeout. f must not call t's methods.
func within(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(d):
		t.Fatalf("%s: did not finish within %v", what, d)
	}
}

// testDir makes a fresh directory for t on mount i of the shared cluster.
func testDir(t *testing.T, i int) string {
	t.Helper()
	c := shared(t)
	dir := filepath.Join(c.MountDir(i), t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("mkdir on the mount: %v", err)
	}
	return dir
}
