package main

import (
	"errors"
	"strings"
	"testing"
)

func TestBytesString(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 30: "3.0 GiB", 1 << 40: "1.0 TiB"} {
		if got := bytesString(n); got != want {
			t.Errorf("bytesString(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestLayoutArgs(t *testing.T) {
	dir := t.TempDir()
	err := runLayout([]string{"set", dir, "ec:4"})
	if err == nil || !strings.Contains(err.Error(), "invalid layout") {
		t.Errorf("layout set ec:4: %v, want an invalid layout error", err)
	}
	var ue usageError
	if err := runLayout([]string{"convert", dir, "ec:0+1"}); err == nil || !strings.Contains(err.Error(), "invalid layout") {
		t.Errorf("layout convert ec:0+1: %v, want an invalid layout error", err)
	}
	for _, args := range [][]string{nil, {"get"}, {"set", dir}, {"frob", dir}, {"convert", dir}} {
		if err := runLayout(args); !errors.As(err, &ue) {
			t.Errorf("layout %q: %v, want a usage error", args, err)
		}
	}
	// A local directory is not on a dfs mount: the error says so.
	if err := runLayout([]string{"get", dir}); err == nil || !strings.Contains(err.Error(), "dfs mount") {
		t.Errorf("layout get on a local dir: %v", err)
	}
}

func TestMasterAddrs(t *testing.T) {
	t.Setenv("DFS_MASTERS", "")
	got, err := masterAddrs(" 127.0.0.1:1, 127.0.0.1:2 ,")
	if err != nil || strings.Join(got, " ") != "127.0.0.1:1 127.0.0.1:2" {
		t.Errorf("masterAddrs = %q, %v", got, err)
	}
	t.Chdir(t.TempDir()) // no .dfs here
	if _, err := masterAddrs(""); err == nil {
		t.Error("no -masters, no $DFS_MASTERS, no dev cluster: want an error")
	}
}

func TestMembersAndFsckArgs(t *testing.T) {
	var ue usageError
	for _, args := range [][]string{nil, {"frob"}, {"list", "x"}, {"add", "m4"}, {"add", "-bogus", "m4", "h:1"}, {"remove"}, {"remove", "a", "b"}} {
		if err := runMembers("127.0.0.1:1", args); !errors.As(err, &ue) {
			t.Errorf("members %q: %v, want a usage error", args, err)
		}
	}
	for _, args := range [][]string{{"extra"}, {"-limit", "x"}} {
		if err := runFsck("127.0.0.1:1", false, args); !errors.As(err, &ue) {
			t.Errorf("fsck %q: %v, want a usage error", args, err)
		}
	}
}
