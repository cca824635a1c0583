package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// listen opens a unixgram socket as a service manager would.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func receive(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestSend(t *testing.T) {
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify"),
		"@dfs-sdnotify-test-" + filepath.Base(t.TempDir()), // abstract
	} {
		c := listen(t, name)
		t.Setenv("NOTIFY_SOCKET", name)
		if err := Ready("serving on x"); err != nil {
			t.Fatal(err)
		}
		if got := receive(t, c); got != "READY=1\nSTATUS=serving on x" {
			t.Errorf("%s: got %q", name, got)
		}
		if err := Stopping(); err != nil {
			t.Fatal(err)
		}
		if got := receive(t, c); got != "STOPPING=1" {
			t.Errorf("%s: got %q", name, got)
		}
	}
}

func TestUnsetOrMissing(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Ready("x"); err != nil {
		t.Errorf("unset: %v", err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent"))
	if err := Ready("x"); err == nil {
		t.Error("a missing socket gave no error")
	}
}
