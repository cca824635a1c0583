package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"dfs/chunk"
)

func TestBadInput(t *testing.T) {
	held := t.TempDir()
	s, err := chunk.OpenDisk(held, chunk.DiskOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o644)

	for _, tc := range []struct {
		args []string
		env  string // NAME=VALUE or ""
		code int
		want string
	}{
		{[]string{"-bogus"}, "", 2, "flag provided but not defined: -bogus"},
		{[]string{"-capacity", "12X"}, "", 2, `invalid value "12X" for flag -capacity`},
		{[]string{"-capacity", "-5"}, "", 2, "-capacity"},
		{[]string{"extra"}, "", 2, `unexpected argument "extra"`},
		{[]string{"-log-level", "loud"}, "", 2, "-log-level loud"},
		{[]string{"-heartbeat", "0s"}, "", 2, "-heartbeat 0s"},
		{[]string{"-masters", " , "}, "", 2, "-masters"},
		{[]string{"-data", ""}, "", 2, "-data"},
		{nil, "DFSCHUNK_CAPACITY=zz", 2, "DFSCHUNK_CAPACITY=zz"},
		{[]string{"-data", held, "-listen", "127.0.0.1:0"}, "", 1, "-data " + held + ": already in use by another dfschunk (pid "},
		{[]string{"-data", file, "-listen", "127.0.0.1:0"}, "", 1, "-data " + file + ": not a directory"},
		{[]string{"-data", t.TempDir(), "-listen", ln.Addr().String()}, "", 1, "-listen " + ln.Addr().String() + ": bind: address already in use"},
		{[]string{"-listen", ln.Addr().String()}, "DFSCHUNK_DATA=" + held, 1, "already in use by another dfschunk"},
	} {
		if tc.env != "" {
			name, val, _ := strings.Cut(tc.env, "=")
			t.Setenv(name, val)
		}
		var stderr bytes.Buffer
		code := run(tc.args, io.Discard, &stderr)
		out := stderr.String()
		if code != tc.code || !strings.HasPrefix(out, "dfschunk: ") || strings.Count(out, "\n") != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("dfschunk %q (%s): exit %d, stderr %q; want exit %d and one line containing %q", tc.args, tc.env, code, out, tc.code, tc.want)
		}
		if tc.env != "" {
			name, _, _ := strings.Cut(tc.env, "=")
			os.Unsetenv(name)
		}
	}
	// The held directory was left alone.
	if list, _ := s.List(); len(list) != 0 {
		t.Fatal("held store changed")
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "123": 123, "4K": 4 << 10, "2g": 2 << 30, "1TiB": 1 << 40, "3GB": 3 << 30, "5 M": 5 << 20} {
		var b byteSize
		if err := b.Set(in); err != nil || uint64(b) != want {
			t.Errorf("%q: %d %v, want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1.5G", "99999999999P", "G"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("%q accepted as %d", in, b)
		}
	}
}
