package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseArgs(t *testing.T) {
	c, err := parseArgs([]string{"-o", "attr_timeout=0,entry_timeout=2.5,rw,_netdev,allow_other", "-masters", "a:1,b:2", "/mnt"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.mountpoint != "/mnt" || len(c.masters) != 2 || c.opts.AttrTimeout != 0 || c.opts.EntryTimeout != 2500*time.Millisecond || !c.opts.AllowOther {
		t.Errorf("parsed %+v", c)
	}
	for _, bad := range [][]string{
		{"-masters", "a:1"},                   // no mount point
		{"-masters", "a:1", "-bogus", "/mnt"}, // unknown flag
		{"-o", "frobnicate", "-masters", "a", "/mnt"},
		{"-o", "attr_timeout=x", "-masters", "a", "/mnt"},
		{"-o", "statfs=cooked", "-masters", "a", "/mnt"},
		{"/mnt"}, // no masters
	} {
		t.Setenv("DFSMOUNT_MASTERS", "")
		if _, err := parseArgs(bad, io.Discard); err == nil {
			t.Errorf("%q: no error", strings.Join(bad, " "))
		}
	}
	if c, err := parseArgs([]string{"-o", `fsname=a:1\,b:2,ro`, "-masters", "a", "/mnt"}, io.Discard); err != nil || c.opts.FsName != "a:1,b:2" || !c.opts.ReadOnly {
		t.Errorf("escaped comma: %+v, %v", c, err)
	}
	if c, err := parseArgs([]string{"-o", "statfs=raw", "-masters", "a", "/mnt"}, io.Discard); err != nil || !c.opts.StatfsRaw {
		t.Errorf("statfs=raw: %+v, %v", c, err)
	}
	t.Setenv("DFSMOUNT_MASTERS", "m:1")
	if c, err := parseArgs([]string{"/mnt", "-o", "ro"}, io.Discard); err != nil || c.masters[0] != "m:1" || !c.opts.ReadOnly {
		t.Errorf("env masters / trailing -o: %+v, %v", c, err)
	}
}

func TestLogLevel(t *testing.T) {
	t.Setenv("DFSMOUNT_LOG_LEVEL", "") // restored after the test
	os.Unsetenv("DFSMOUNT_LOG_LEVEL")
	if c, err := parseArgs([]string{"-masters", "a:1", "/mnt"}, io.Discard); err != nil || c.logLevel != slog.LevelInfo {
		t.Fatalf("default: %+v, %v; want info", c, err)
	}
	conf := filepath.Join(t.TempDir(), "dfsmount.conf")
	if err := os.WriteFile(conf, []byte("log-level = warn\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := parseArgs([]string{"-config", conf, "-masters", "a:1", "/mnt"}, io.Discard); err != nil || c.logLevel != slog.LevelWarn {
		t.Errorf("config file: %v, %v; want warn", c.logLevel, err)
	}
	t.Setenv("DFSMOUNT_LOG_LEVEL", "error")
	if c, err := parseArgs([]string{"-config", conf, "-masters", "a:1", "/mnt"}, io.Discard); err != nil || c.logLevel != slog.LevelError {
		t.Errorf("environment over file: %v, %v; want error", c.logLevel, err)
	}
	if c, err := parseArgs([]string{"-log-level", "debug", "-masters", "a:1", "/mnt"}, io.Discard); err != nil || c.logLevel != slog.LevelDebug {
		t.Errorf("flag over environment: %v, %v; want debug", c.logLevel, err)
	}
	if _, err := parseArgs([]string{"-log-level", "loud", "-masters", "a:1", "/mnt"}, io.Discard); err == nil || !strings.Contains(err.Error(), `-log-level "loud"`) {
		t.Errorf("bad level: %v", err)
	}
}
