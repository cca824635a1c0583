package main

import (
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
)

func TestOpsArgs(t *testing.T) {
	var ue usageError
	for _, c := range []struct {
		run  func([]string) error
		args []string
	}{
		{func(a []string) error { return runChunkservers("127.0.0.1:1", false, a) }, []string{"frob"}},
		{func(a []string) error { return runChunkservers("127.0.0.1:1", false, a) }, []string{"list", "x"}},
		{func(a []string) error { return runChunkservers("127.0.0.1:1", false, a) }, []string{"drain"}},
		{func(a []string) error { return runChunkservers("127.0.0.1:1", false, a) }, []string{"drain", "a", "b"}},
		{func(a []string) error { return runChunkservers("127.0.0.1:1", false, a) }, []string{"undrain", "-bogus", "a"}},
		{func(a []string) error { return runRelease("127.0.0.1:1", "sessions", a) }, []string{"-yes"}},
		{func(a []string) error { return runRelease("127.0.0.1:1", "sessions", a) }, []string{"0", "-yes"}},
		{func(a []string) error { return runRelease("127.0.0.1:1", "sessions", a) }, []string{"abc", "-yes"}},
		{func(a []string) error { return runRelease("127.0.0.1:1", "sessions", a) }, []string{"5", "-session", "3", "-yes"}},
		{func(a []string) error { return runRelease("127.0.0.1:1", "locks", a) }, []string{"5", "-owner", "0x1", "-yes"}},
		{func(a []string) error { return runRelease("127.0.0.1:1", "locks", a) }, []string{"5", "-session", "2", "-owner", "zz", "-yes"}},
		{func(a []string) error { return runSnapshot("127.0.0.1:1", false, a) }, nil},
		{func(a []string) error { return runSnapshot("127.0.0.1:1", false, a) }, []string{"load", "f"}},
		{func(a []string) error { return runSnapshot("127.0.0.1:1", false, a) }, []string{"save"}},
	} {
		if err := c.run(c.args); !errors.As(err, &ue) {
			t.Errorf("%q: %v, want a usage error", c.args, err)
		}
	}
	if !isTerminal(os.Stdin) {
		err := runRelease("127.0.0.1:1", "sessions", []string{"5"})
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "-yes") {
			t.Errorf("release without a terminal or -yes: %v, want a usage error naming -yes", err)
		}
	}
}

func TestParseArgsAnywhere(t *testing.T) {
	fl := flag.NewFlagSet("x", flag.ContinueOnError)
	yes := fl.Bool("yes", false, "")
	n := fl.Int("n", 0, "")
	pos, err := parseArgs(fl, []string{"a", "-yes", "b", "-n", "3", "c"})
	if err != nil || strings.Join(pos, ",") != "a,b,c" || !*yes || *n != 3 {
		t.Fatalf("parseArgs: %q %v yes=%v n=%d", pos, err, *yes, *n)
	}
}

func TestProgressBar(t *testing.T) {
	for _, c := range []struct {
		p    drainProgress
		want string
	}{
		{drainProgress{Server: "cs1", Remaining: 40, Total: 40}, "[..............................] 0/40 chunks moved off cs1"},
		{drainProgress{Server: "cs1", Remaining: 10, Total: 40}, "[######################........] 30/40 chunks moved off cs1"},
		{drainProgress{Server: "cs1"}, "[##############################] 0/0 chunks moved off cs1"},
	} {
		if got := progressBar(c.p); got != c.want {
			t.Errorf("progressBar(%+v) = %q, want %q", c.p, got, c.want)
		}
	}
}
