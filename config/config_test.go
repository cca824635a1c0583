package config

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type flags struct {
	fs   *flag.FlagSet
	s    *Settings
	data *string
	hb   *time.Duration
	n    *int
	on   *bool
}

func newFlags() *flags {
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := &flags{fs: fs,
		data: fs.String("data", "./d", ""),
		hb:   fs.Duration("heartbeat", time.Second, ""),
		n:    fs.Int("repair-concurrency", 4, ""),
		on:   fs.Bool("join", false, ""),
	}
	f.s = Register(fs, "prog", "PROG_")
	return f
}

func load(t *testing.T, args ...string) (*flags, error) {
	t.Helper()
	f := newFlags()
	if err := f.fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f, f.s.Load()
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "prog.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "# sample\n\ndata = /from/file\nheartbeat = 3s  # why\nrepair_concurrency = 7\njoin = true\n")
	t.Setenv("PROG_HEARTBEAT", "2s")
	t.Setenv("PROG_REPAIR_CONCURRENCY", "9")
	f, err := load(t, "-config", file, "-repair-concurrency", "11")
	if err != nil {
		t.Fatal(err)
	}
	if *f.data != "/from/file" || *f.hb != 2*time.Second || *f.n != 11 || !*f.on {
		t.Errorf("data %q heartbeat %v n %d join %v", *f.data, *f.hb, *f.n, *f.on)
	}
	for name, want := range map[string]string{
		"data": file + ":3", "heartbeat": "environment $PROG_HEARTBEAT",
		"repair-concurrency": FromCommandLine, "join": file + ":6", "config": FromCommandLine,
	} {
		if got := f.s.Source(name); got != want {
			t.Errorf("%s came from %q, want %q", name, got, want)
		}
	}

	// Without a file, the environment still applies, and -config may come
	// from it too.
	os.Unsetenv("PROG_HEARTBEAT")
	os.Unsetenv("PROG_REPAIR_CONCURRENCY")
	f, err = load(t)
	if err != nil || *f.data != "./d" || f.s.Source("data") != FromDefault {
		t.Errorf("defaults: %q from %q, %v", *f.data, f.s.Source("data"), err)
	}
	t.Setenv("PROG_CONFIG", file)
	f, err = load(t)
	if err != nil || *f.hb != 3*time.Second || f.s.Source("config") != "environment $PROG_CONFIG" {
		t.Errorf("-config from the environment: heartbeat %v, config from %q, %v", *f.hb, f.s.Source("config"), err)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"data = x\nbogus = 1\n", ":2: unknown key \"bogus\" (prog has no -bogus setting)"},
		{"heartbeat = soon\n", `:1: heartbeat = soon: parse error`},
		{"repair-concurrency = 1.5\n", ":1: repair-concurrency = 1.5: "},
		{"\n\njust words\n", `:3: want KEY = VALUE, got "just words"`},
		{"= 5\n", `:1: want KEY = VALUE`},
		{"data = a\ndata = b\n", ":2: data: already set on line 1"},
		{"data = a\ndata_ = b\nheartbeat=1s\nrepair_concurrency = 2\nrepair-concurrency = 3\n", ":5: repair-concurrency: already set on line 4"},
		{"data = \"open\n", ":1: data: unterminated or malformed quoted value"},
		{"data = \"a\" b\n", `:1: data: unexpected "b" after the quoted value`},
		{"config = /other\n", `:1: unknown key "config"`},
		{"print-config = true\n", `:1: unknown key "print-config"`},
	} {
		file := writeFile(t, tc.text)
		_, err := load(t, "-config", file)
		if err == nil || !strings.HasPrefix(err.Error(), file+":") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %s%s", tc.text, err, file, tc.want)
		}
	}
	missing := filepath.Join(t.TempDir(), "absent.conf")
	if _, err := load(t, "-config", missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	t.Setenv("PROG_REPAIR_CONCURRENCY", "many")
	if _, err := load(t); err == nil || !strings.Contains(err.Error(), "PROG_REPAIR_CONCURRENCY=many") {
		t.Errorf("bad environment value: %v", err)
	}
}

func TestValues(t *testing.T) {
	for in, want := range map[string]string{
		`a`:                 "a",
		`a b  # c`:          "a b",
		`a#b`:               "a#b",
		`"x # y"  # z`:      "x # y",
		`" padded "`:        " padded ",
		``:                  "",
		`# only a comment`:  "",
		`m1=h:1,m2=h:2`:     "m1=h:1,m2=h:2",
		`"tab\tand \"q\""`:  "tab\tand \"q\"",
		`attr_timeout=1,ro`: "attr_timeout=1,ro",
	} {
		got, err := value(in)
		if err != nil || got != want {
			t.Errorf("value(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestPrintReadsBack: -print-config's output is itself a config file that
// gives the same settings.
func TestPrintReadsBack(t *testing.T) {
	file := writeFile(t, "data = \" odd # dir \"\nheartbeat = 250ms\n")
	f, err := load(t, "-config", file, "-join")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	f.s.Print(&out)
	text := out.String()
	for _, want := range []string{
		"# config file " + file + " (command line)",
		`data = " odd # dir "`,
		"# " + file + ":1\n",
		"heartbeat = 250ms",
		"join = true",
		"# command line",
		"repair-concurrency = 4",
		"# default",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("-print-config lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "print-config =") {
		t.Errorf("-print-config prints itself:\n%s", text)
	}
	g, err := load(t, "-config", writeFile(t, text))
	if err != nil {
		t.Fatalf("reading -print-config's output back: %v\n%s", err, text)
	}
	if *g.data != *f.data || *g.hb != *f.hb || *g.n != *f.n || *g.on != *f.on {
		t.Errorf("read back %q %v %d %v, printed %q %v %d %v", *g.data, *g.hb, *g.n, *g.on, *f.data, *f.hb, *f.n, *f.on)
	}
}
