package tests

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// busyAddr returns a loopback address held by a listener for the test.
func busyAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// expectRefusal runs a binary that must refuse to start: it must exit
// non-zero within seconds, without a panic, and say what is wrong on a
// line of its own that contains one of words (case-insensitive).
func expectRefusal(t *testing.T, bin string, args []string, words ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	name := filepath.Base(bin) + " " + strings.Join(args, " ")
	if ctx.Err() != nil {
		t.Errorf("%s: still running after 15s; want a refusal naming %q. Output:\n%s", name, words, out.String())
		return
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Errorf("%s: exit %v, want a non-zero status. Output:\n%s", name, err, out.String())
		return
	}
	text := out.String()
	if strings.Contains(text, "panic:") || strings.Contains(text, "goroutine ") {
		t.Errorf("%s: panicked instead of refusing:\n%s", name, text)
		return
	}
	for _, line := range strings.Split(text, "\n") {
		for _, w := range words {
			if strings.Contains(strings.ToLower(line), strings.ToLower(w)) {
				if len(line) > 400 {
					t.Errorf("%s: error line is %d bytes long: %.400s...", name, len(line), line)
				}
				t.Logf("%s: exit %d: %s", name, ee.ExitCode(), line)
				return
			}
		}
	}
	t.Errorf("%s: exit %d, but no line of its output names the problem (want one of %q). Output:\n%s", name, ee.ExitCode(), words, text)
}

// readOnlyDir returns a directory on a read-only tmpfs, so that it is
// unwritable even for root.
func readOnlyDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to mount a read-only tmpfs")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_RDONLY, "size=1m"); err != nil {
		t.Skipf("skipping: cannot mount a read-only tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// notADir returns a path whose parent is a regular file.
func notADir(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(f, "data")
}

func masterArgs(data, listen, raft string) []string {
	return []string{"-id", "m1", "-data", data, "-listen", listen, "-raft", raft, "-cluster", "m1=" + raft}
}

func TestBadInputMaster(t *testing.T) {
	bin := filepath.Join(binaries(t), "dfsmaster")
	data := func() string { return filepath.Join(t.TempDir(), "m1") }
	t.Run("UnknownFlag", func(t *testing.T) {
		expectRefusal(t, bin, append(masterArgs(data(), freeAddr(t), freeAddr(t)), "-bogus-flag"), "bogus-flag")
	})
	t.Run("DataUnderAFile", func(t *testing.T) {
		d := notADir(t)
		expectRefusal(t, bin, masterArgs(d, freeAddr(t), freeAddr(t)), d, "not a directory")
	})
	t.Run("DataReadOnly", func(t *testing.T) {
		d := readOnlyDir(t)
		expectRefusal(t, bin, masterArgs(d, freeAddr(t), freeAddr(t)), d, "read-only")
	})
	t.Run("DataReadOnlyMissing", func(t *testing.T) {
		d := filepath.Join(readOnlyDir(t), "m1")
		expectRefusal(t, bin, masterArgs(d, freeAddr(t), freeAddr(t)), d, "read-only")
	})
	t.Run("DataEmpty", func(t *testing.T) {
		expectRefusal(t, bin, masterArgs("", freeAddr(t), freeAddr(t)), "-data", "data")
	})
	t.Run("ListenInUse", func(t *testing.T) {
		busy := busyAddr(t)
		expectRefusal(t, bin, masterArgs(data(), busy, freeAddr(t)), portOf(busy), "address already in use")
	})
	t.Run("RaftInUse", func(t *testing.T) {
		busy := busyAddr(t)
		expectRefusal(t, bin, masterArgs(data(), freeAddr(t), busy), portOf(busy), "address already in use")
	})
	for _, bad := range []struct{ name, cluster string }{
		{"NoEquals", "m1"},
		{"NoAddress", "m1="},
		{"BadPort", "m1=127.0.0.1:notaport"},
		{"Duplicate", "m1=127.0.0.1:1001,m1=127.0.0.1:1002"},
		{"SelfMissing", "m2=127.0.0.1:1001,m3=127.0.0.1:1002"},
	} {
		t.Run("Cluster"+bad.name, func(t *testing.T) {
			args := []string{"-id", "m1", "-data", data(), "-listen", freeAddr(t), "-raft", freeAddr(t), "-cluster", bad.cluster}
			expectRefusal(t, bin, args, "-cluster", "cluster")
		})
	}
	t.Run("DataInUse", func(t *testing.T) {
		d := data()
		startDaemon(t, bin, masterArgs(d, freeAddr(t), freeAddr(t)))
		expectRefusal(t, bin, masterArgs(d, freeAddr(t), freeAddr(t)), "in use", "lock", "already", d)
	})
}

func TestBadInputChunk(t *testing.T) {
	bin := filepath.Join(binaries(t), "dfschunk")
	args := func(data, listen string) []string {
		// The masters need not exist: a chunkserver keeps trying them.
		return []string{"-data", data, "-listen", listen, "-masters", freeAddr(t)}
	}
	data := func() string { return filepath.Join(t.TempDir(), "c1") }
	t.Run("UnknownFlag", func(t *testing.T) {
		expectRefusal(t, bin, append(args(data(), freeAddr(t)), "-bogus-flag"), "bogus-flag")
	})
	t.Run("DataUnderAFile", func(t *testing.T) {
		d := notADir(t)
		expectRefusal(t, bin, args(d, freeAddr(t)), d, "not a directory")
	})
	t.Run("DataReadOnly", func(t *testing.T) {
		d := readOnlyDir(t)
		expectRefusal(t, bin, args(d, freeAddr(t)), d, "read-only")
	})
	t.Run("DataEmpty", func(t *testing.T) {
		expectRefusal(t, bin, args("", freeAddr(t)), "-data", "data")
	})
	t.Run("ListenInUse", func(t *testing.T) {
		busy := busyAddr(t)
		expectRefusal(t, bin, args(data(), busy), portOf(busy), "address already in use")
	})
	t.Run("BadCapacity", func(t *testing.T) {
		expectRefusal(t, bin, append(args(data(), freeAddr(t)), "-capacity", "lots"), "capacity")
	})
	t.Run("DataInUse", func(t *testing.T) {
		d := data()
		startDaemon(t, bin, args(d, freeAddr(t)))
		expectRefusal(t, bin, args(d, freeAddr(t)), "in use", "lock", "already", d)
	})
}

func TestBadInputMount(t *testing.T) {
	bin := filepath.Join(binaries(t), "dfsmount")
	masters := freeAddr(t)
	t.Run("UnknownFlag", func(t *testing.T) {
		expectRefusal(t, bin, []string{"-bogus-flag", "-masters", masters, t.TempDir()}, "bogus-flag")
	})
	t.Run("NoMountPoint", func(t *testing.T) {
		expectRefusal(t, bin, []string{"-masters", masters}, "mount", "usage")
	})
	t.Run("MissingMountPoint", func(t *testing.T) {
		d := filepath.Join(t.TempDir(), "nonexistent")
		expectRefusal(t, bin, []string{"-masters", masters, d}, d, "no such file")
	})
	t.Run("UnknownOption", func(t *testing.T) {
		expectRefusal(t, bin, []string{"-o", "no_such_option=1", "-masters", masters, t.TempDir()}, "no_such_option")
	})
	t.Run("BadAttrTimeout", func(t *testing.T) {
		expectRefusal(t, bin, []string{"-o", "attr_timeout=soon", "-masters", masters, t.TempDir()}, "attr_timeout")
	})
}

// startDaemon starts a process that should keep running, waits until it
// has been up for a second, and kills it when the test ends.
func startDaemon(t *testing.T, bin string, args []string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	select {
	case err := <-done:
		t.Fatalf("%s %s exited: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out.String())
	case <-time.After(time.Second):
	}
}
