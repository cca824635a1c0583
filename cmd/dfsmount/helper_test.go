package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"dfs/mtls"
)

func TestHelperArgs(t *testing.T) {
	for _, tc := range []struct {
		args    string
		spec    string
		dir     string
		opts    string
		sloppy  bool
		fake    bool
		verbose bool
	}{
		{"a:1,b:2 /mnt/dfs -o rw,_netdev", "a:1,b:2", "/mnt/dfs", "rw,_netdev", false, false, false},
		{"-sfnv -o ro a:1 /mnt", "a:1", "/mnt", "ro", true, true, true},
		{"a:1 /mnt -n -oattr_timeout=1 -o ro -t fuse.dfs", "a:1", "/mnt", "attr_timeout=1,ro", false, false, false},
		{"a:1 /mnt", "a:1", "/mnt", "", false, false, false},
	} {
		h, err := parseHelperArgs(strings.Fields(tc.args))
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if h.spec != tc.spec || h.dir != tc.dir || strings.Join(h.opts, ",") != tc.opts || h.sloppy != tc.sloppy || h.fake != tc.fake || h.verbose != tc.verbose {
			t.Errorf("%q: parsed %+v", tc.args, h)
		}
	}
	for _, bad := range []string{"", "a:1", "a:1 /mnt extra", "a:1 /mnt -o", "a:1 /mnt -x", "a:1 /mnt -N /proc/1/ns/mnt"} {
		if h, err := parseHelperArgs(strings.Fields(bad)); err == nil {
			t.Errorf("%q: accepted as %+v", bad, h)
		}
	}
}

func TestHelperOptions(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "dfsmount.conf")
	if err := os.WriteFile(conf, []byte("timeout = 1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opts   string
		sloppy bool
		want   string // dfsmount's arguments
		log    string
	}{
		// fstab's and mount(8)'s own options are dropped; rw is the default.
		{"defaults,_netdev,auto,noauto,user,nouser,users,nofail,rw,x-systemd.automount,x-systemd.mount-timeout=30,comment=x", false,
			"-masters h:1,h:2 -o fsname=h:1\\,h:2 /mnt/dfs", "/var/log/dfs/mount-mnt-dfs.log"},
		{"_netdev,attr_timeout=1,ro,allow_other", false,
			"-masters h:1,h:2 -o attr_timeout=1,ro,allow_other,fsname=h:1\\,h:2 /mnt/dfs", "/var/log/dfs/mount-mnt-dfs.log"},
		// dfsmount's flags, config file and log.
		{"session_ttl=20s,no_local_reads,debug-addr=127.0.0.1:0,config=" + conf + ",log=/tmp/m.log,fsname=mine", false,
			"-session-ttl=20s -no-local-reads -debug-addr=127.0.0.1:0 -config " + conf + " -masters h:1,h:2 -o fsname=mine /mnt/dfs", "/tmp/m.log"},
		{"log_level=debug", false, "-log-level=debug -masters h:1,h:2 -o fsname=h:1\\,h:2 /mnt/dfs", "/var/log/dfs/mount-mnt-dfs.log"},
		// -s drops what dfsmount does not know.
		{"frobnicate,noatime", true, "-masters h:1,h:2 -o noatime,fsname=h:1\\,h:2 /mnt/dfs", "/var/log/dfs/mount-mnt-dfs.log"},
	} {
		h := &helperArgs{spec: "h:1,h:2", dir: "/mnt/dfs", opts: strings.Split(tc.opts, ","), sloppy: tc.sloppy}
		args, log, err := translate(h)
		if err != nil {
			t.Errorf("%q: %v", tc.opts, err)
			continue
		}
		if got := strings.Join(args, " "); got != tc.want || log != tc.log {
			t.Errorf("%q:\n got %s (log %s)\nwant %s (log %s)", tc.opts, got, log, tc.want, tc.log)
		}
		if _, err := parseArgs(args, io.Discard); err != nil {
			t.Errorf("%q: dfsmount refuses %q: %v", tc.opts, args, err)
		}
	}
	for opts, want := range map[string]string{
		"frobnicate":        "-o frobnicate: unknown mount option",
		"attr_timeout=x":    "-o attr_timeout=x: want a number of seconds",
		"log=":              "want log=FILE",
		"config":            "want config=FILE",
		"fsname=":           "want fsname=NAME",
		"masters=elsewhere": "-o masters=elsewhere: unknown mount option",
	} {
		h := &helperArgs{spec: "h:1", dir: "/mnt", opts: strings.Split(opts, ",")}
		if _, _, err := translate(h); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", opts, err, want)
		}
	}
	// A flag with a bad value passes translate and dfsmount refuses it.
	h := &helperArgs{spec: "h:1", dir: "/mnt", opts: []string{"session_ttl=soon"}}
	args, _, err := translate(h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseArgs(args, io.Discard); err == nil || !strings.Contains(err.Error(), "session-ttl") {
		t.Errorf("session_ttl=soon: %v", err)
	}
}

func TestHelperNames(t *testing.T) {
	for argv0, want := range map[string]bool{
		"/sbin/mount.dfs": true, "mount.fuse.dfs": true, "/usr/bin/dfsmount": false, "dfsmount": false, "mount.dfsx": false,
	} {
		if isHelper(argv0) != want {
			t.Errorf("isHelper(%q) = %v", argv0, !want)
		}
	}
	if got := defaultLog("/"); got != "/var/log/dfs/mount-root.log" {
		t.Errorf("defaultLog(/) = %s", got)
	}
}

// TLS files as fstab options become dfsmount's -tls-* flags, and
// dfsmount loads them (or names what is missing).
func TestHelperTLSOptions(t *testing.T) {
	dir := t.TempDir()
	if err := mtls.CreateCA(dir, false); err != nil {
		t.Fatal(err)
	}
	if err := mtls.Issue(dir, "client1", []string{"client1.example.com"}, 10, false); err != nil {
		t.Fatal(err)
	}
	ca, crt, key := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "client1.crt"), filepath.Join(dir, "client1.key")
	h := &helperArgs{spec: "h:1", dir: "/mnt/dfs", opts: []string{"_netdev", "tls_ca=" + ca, "tls_cert=" + crt, "tls_key=" + key}}
	args, _, err := translate(h)
	if err != nil {
		t.Fatal(err)
	}
	want := "-tls-ca=" + ca + " -tls-cert=" + crt + " -tls-key=" + key + " -masters h:1 -o fsname=h:1 /mnt/dfs"
	if got := strings.Join(args, " "); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	cfg, err := parseArgs(args, io.Discard)
	if err != nil || cfg.tls == nil {
		t.Fatalf("dfsmount %q: TLS %v, %v", args, cfg, err)
	}
	h.opts = h.opts[:3]
	args, _, _ = translate(h)
	if _, err := parseArgs(args, io.Discard); err == nil || !strings.Contains(err.Error(), "-tls-key") {
		t.Errorf("without tls_key: %v, want an error naming -tls-key", err)
	}
}
