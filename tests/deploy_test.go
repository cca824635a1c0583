package tests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"dfs/cluster"
)

var (
	installOnce sync.Once
	installRoot string
	installErr  error
)

// installed runs `make install` once per test run into a temporary
// DESTDIR with PREFIX=/usr and returns the DESTDIR. It installs the
// binaries the tests built (make -o build skips rebuilding them).
func installed(t *testing.T) string {
	t.Helper()
	bin := binaries(t)
	installOnce.Do(func() {
		root, err := cluster.ModuleRoot()
		if err != nil {
			installErr = err
			return
		}
		installRoot = filepath.Join(baseDir, "destdir")
		cmd := exec.Command("make", "-s", "-C", root, "-o", "build", "install",
			"DESTDIR="+installRoot, "PREFIX=/usr", "BIN="+bin)
		if out, err := cmd.CombinedOutput(); err != nil {
			installErr = fmt.Errorf("make install: %v\n%s", err, out)
		}
	})
	if installErr != nil {
		t.Fatal(installErr)
	}
	return installRoot
}

// TestInstall checks what make install puts where, that the units pass
// systemd-analyze verify, and that the sample configs are complete and
// accepted by the installed binaries.
func TestInstall(t *testing.T) {
	d := installed(t)
	for path, mode := range map[string]os.FileMode{
		"usr/bin/dfsmaster": 0o755, "usr/bin/dfschunk": 0o755, "usr/bin/dfsmount": 0o755, "usr/bin/dfsctl": 0o755,
		"sbin/mount.dfs": 0o755, "sbin/mount.fuse.dfs": 0o755,
		"lib/systemd/system/dfsmaster.service": 0o644, "lib/systemd/system/dfschunk.service": 0o644,
		"usr/lib/sysusers.d/dfs.conf": 0o644,
		"etc/dfs/dfsmaster.conf":      0o644, "etc/dfs/dfschunk.conf": 0o644, "etc/dfs/dfsmount.conf": 0o644,
		"usr/share/doc/dfs/operations.md": 0o644, "usr/share/doc/dfs/mnt-dfs.mount": 0o644,
	} {
		st, err := os.Stat(filepath.Join(d, path))
		if err != nil {
			t.Errorf("make install: %v", err)
		} else if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), mode)
		}
	}
	for _, prog := range []string{"dfsmaster", "dfschunk"} {
		unit, err := os.ReadFile(filepath.Join(d, "lib/systemd/system", prog+".service"))
		if err != nil {
			t.Fatal(err)
		}
		want := "ExecStart=/usr/bin/" + prog + " -config /etc/dfs/" + prog + ".conf\n"
		if !bytes.Contains(unit, []byte(want)) || !bytes.Contains(unit, []byte("Type=notify\n")) {
			t.Errorf("%s.service lacks %q or Type=notify:\n%s", prog, want, unit)
		}
	}
	verifyUnits(t, d)

	// A config an operator changed survives a second make install.
	conf := filepath.Join(d, "etc/dfs/dfschunk.conf")
	orig, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	edited := append(orig, "zone = rack9\n"...)
	if err := os.WriteFile(conf, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	root, _ := cluster.ModuleRoot()
	if out, err := exec.Command("make", "-s", "-C", root, "-o", "build", "install", "DESTDIR="+d, "PREFIX=/usr", "BIN="+binaries(t)).CombinedOutput(); err != nil {
		t.Fatalf("second make install: %v\n%s", err, out)
	}
	if now, _ := os.ReadFile(conf); !bytes.Equal(now, edited) {
		t.Errorf("make install overwrote an edited %s", conf)
	}
	if err := os.WriteFile(conf, orig, 0o644); err != nil {
		t.Fatal(err)
	}

	// Every setting of every program is in its sample config and in
	// docs/operations.md, and the installed programs accept the samples.
	doc, err := os.ReadFile(filepath.Join(d, "usr/share/doc/dfs/operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, prog := range []string{"dfsmaster", "dfschunk", "dfsmount"} {
		conf := filepath.Join(d, "etc/dfs", prog+".conf")
		out, err := exec.Command(filepath.Join(d, "usr/bin", prog), "-config", conf, "-print-config").Output()
		if err != nil {
			t.Errorf("%s -config %s -print-config: %v", prog, conf, err)
			continue
		}
		sample, _ := os.ReadFile(conf)
		keys := 0
		for _, line := range strings.Split(string(out), "\n") {
			key, _, ok := strings.Cut(line, " = ")
			if !ok || strings.HasPrefix(key, "#") {
				continue
			}
			keys++
			if !regexp.MustCompile(`(?m)^(# )?` + regexp.QuoteMeta(key) + ` = `).Match(sample) {
				t.Errorf("%s: sample config %s lacks %s", prog, conf, key)
			}
			if !bytes.Contains(doc, []byte("| `"+key+"` |")) {
				t.Errorf("docs/operations.md: no table row for %s's `%s`", prog, key)
			}
		}
		if keys < 9 {
			t.Errorf("%s -print-config printed %d settings:\n%s", prog, keys, out)
		}
		if prog != "dfsmount" && !strings.Contains(string(out), "data = /var/lib/dfs/") {
			t.Errorf("%s: the sample config's data directory is not in effect:\n%s", prog, out)
		}
	}
}

// verifyUnits runs systemd-analyze verify on the installed units, with
// ExecStart pointed into the DESTDIR, and wants no complaint at all: it
// only warns about unknown settings and bad values.
func verifyUnits(t *testing.T, d string) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: units not verified")
		return
	}
	dir := t.TempDir()
	units := []string{"dfsmaster.service", "dfschunk.service", "mnt-dfs.mount"}
	for _, u := range units {
		src := filepath.Join(d, "lib/systemd/system", u)
		if strings.HasSuffix(u, ".mount") {
			src = filepath.Join(d, "usr/share/doc/dfs", u)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("ExecStart=/usr/bin/"), []byte("ExecStart="+d+"/usr/bin/"))
		if err := os.WriteFile(filepath.Join(dir, u), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, append([]string{"verify"}, units...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %v: %v\n%s", units, err, out)
	}
}

// TestSdNotify starts a real dfsmaster and dfschunk as systemd would for
// Type=notify units: each must send READY=1 to $NOTIFY_SOCKET once it
// serves, and STOPPING=1 when SIGTERM stops it.
func TestSdNotify(t *testing.T) {
	bin := binaries(t)
	dir := t.TempDir()
	listen := freeAddr(t)
	raft := freeAddr(t)

	// The master's settings come from a config file, one overridden by
	// the environment (a wrong id would not start) and one by a flag.
	conf := filepath.Join(dir, "dfsmaster.conf")
	text := fmt.Sprintf("id = wrong\ndata = %s\nlisten = %s\nraft = %s\ncluster = m1=%s\nlog-level = bogus\n",
		filepath.Join(dir, "m1"), listen, raft, raft)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DFSMASTER_ID", "m1")
	master, mnotes := startNotified(t, filepath.Join(bin, "dfsmaster"), filepath.Join(dir, "m.sock"),
		"-config", conf, "-log-level", "warn")
	if n := mnotes.next(t, 60*time.Second); !strings.Contains(n, "READY=1") {
		t.Fatalf("dfsmaster's first notification is %q, want READY=1", n)
	}
	// Ready means its gRPC listener answers.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cluster.AskMaster(ctx, listen); err != nil {
		t.Errorf("dfsmaster said READY=1 but Status fails: %v", err)
	}

	chunk, cnotes := startNotified(t, filepath.Join(bin, "dfschunk"), filepath.Join(dir, "c.sock"),
		"-data", filepath.Join(dir, "c1"), "-listen", freeAddr(t), "-masters", listen)
	if n := cnotes.next(t, 60*time.Second); !strings.Contains(n, "READY=1") {
		t.Fatalf("dfschunk's first notification is %q, want READY=1", n)
	}
	// Then its status says when the master has accepted it.
	if n := cnotes.next(t, 60*time.Second); n != "STATUS=serving, registered with the master leader" {
		t.Errorf("dfschunk's second notification is %q, want its registration", n)
	}
	for _, p := range []struct {
		name  string
		cmd   *exec.Cmd
		notes *notifySocket
	}{{"dfschunk", chunk, cnotes}, {"dfsmaster", master, mnotes}} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if n := p.notes.next(t, 30*time.Second); n != "STOPPING=1" {
			t.Errorf("%s after SIGTERM: notification %q, want STOPPING=1", p.name, n)
		}
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("%s after SIGTERM: %v", p.name, err)
		}
	}
}

// TestConfigRefusals: a bad config file stops each program
// and one line naming the file, the line and the key.
func TestConfigRefusals(t *testing.T) {
	bin := binaries(t)
	for _, tc := range []struct{ prog, text, want string }{
		{"dfsmaster", "id = m1\n\nsnapshot = 5\n", `:3: unknown key "snapshot"`},
		{"dfsmaster", "# c\nelection-timeout = fast\n", ":2: election-timeout = fast: "},
		{"dfschunk", "masters = 127.0.0.1:1\ncapacity = 12X\n", ":2: capacity = 12X: want a byte count"},
		{"dfschunk", "zone = a\nzone = b\n", ":2: zone: already set on line 1"},
		{"dfsmount", "masters = a:1\nsession_ttl\n", `:2: want KEY = VALUE, got "session_ttl"`},
		{"dfsmount", "no-local-reads = maybe\n", ":1: no-local-reads = maybe: "},
	} {
		conf := filepath.Join(t.TempDir(), tc.prog+".conf")
		if err := os.WriteFile(conf, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"-config", conf}
		if tc.prog == "dfsmount" {
			args = append(args, t.TempDir())
		}
		cmd := exec.Command(filepath.Join(bin, tc.prog), args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		want := tc.prog + ": " + conf + tc.want
		if !errors.As(err, &ee) || ee.ExitCode() == 0 || strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), want) {
			t.Errorf("%s with %q: %v, output %q; want one line containing %q", tc.prog, tc.text, err, out, want)
		}
	}
}

// notifySocket is the service manager's end of $NOTIFY_SOCKET.
type notifySocket struct{ c *net.UnixConn }

func (s *notifySocket) next(t *testing.T, wait time.Duration) string {
	t.Helper()
	buf := make([]byte, 4096)
	s.c.SetReadDeadline(time.Now().Add(wait))
	n, err := s.c.Read(buf)
	if err != nil {
		t.Fatalf("no notification within %v: %v", wait, err)
	}
	return string(buf[:n])
}

// startNotified starts bin with NOTIFY_SOCKET set to a fresh socket at
// sock; the process is killed at the end of the test if still running.
func startNotified(t *testing.T, bin, sock string, args ...string) (*exec.Cmd, *notifySocket) {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), out.String())
		}
	})
	return cmd, &notifySocket{c}
}

// TestMountHelper mounts the shared cluster through the installed
// mount.dfs, called as mount(8) calls it, and through mount -t dfs and
// mount -t fuse.dfs when the helpers can be put in /sbin.
func TestMountHelper(t *testing.T) {
	c := shared(t)
	d := installed(t)
	spec := strings.Join(c.MasterAddrs(), ",")
	helper := filepath.Join(d, "sbin/mount.dfs")
	logs := t.TempDir()

	check := func(t *testing.T, dir string) {
		t.Helper()
		src, fstype := mountEntry(dir)
		if src != spec || fstype != "fuse.dfs" {
			t.Errorf("%s in mountinfo: source %q type %q, want %q fuse.dfs", dir, src, fstype, spec)
		}
		name := "helper-" + filepath.Base(dir) + "-" + fmt.Sprint(time.Now().UnixNano())
		want := []byte("written through " + dir + "\n")
		if err := os.WriteFile(filepath.Join(dir, name), want, 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("read back %q, %v", got, err)
		}
		// The cluster's own mount sees it: the data went to the cluster.
		if got, err := os.ReadFile(filepath.Join(c.MountDir(0), name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("the cluster's mount reads %q, %v", got, err)
		}
		os.Remove(filepath.Join(dir, name))
	}
	unmount := func(t *testing.T, dir string) {
		t.Helper()
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Fatalf("umount %s: %v %s", dir, err, out)
		}
		waitNoDfsmount(t, dir)
	}

	t.Run("AsMountCallsIt", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "mnt")
		os.Mkdir(dir, 0o755)
		log := filepath.Join(logs, "helper.log")
		out, err := exec.Command(helper, spec, dir, "-o", "rw,nodev,nosuid,_netdev,nofail,x-systemd.automount,attr_timeout=1,log="+log).CombinedOutput()
		if err != nil {
			t.Fatalf("mount.dfs: %v\n%s", err, out)
		}
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
		check(t, dir)
		if b, _ := os.ReadFile(log); !bytes.Contains(b, []byte("mounted from "+spec)) {
			t.Errorf("dfsmount's log %s:\n%s", log, b)
		}
		unmount(t, dir)
	})

	t.Run("ReadOnly", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "mnt")
		os.Mkdir(dir, 0o755)
		out, err := exec.Command(helper, spec, dir, "-o", "ro,log="+filepath.Join(logs, "ro.log")).CombinedOutput()
		if err != nil {
			t.Fatalf("mount.dfs -o ro: %v\n%s", err, out)
		}
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
		err = os.WriteFile(filepath.Join(dir, "nope"), nil, 0o644)
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("create on a ro mount: %v, want EROFS", err)
		}
		unmount(t, dir)
	})

	t.Run("Refusals", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "mnt")
		os.Mkdir(dir, 0o755)
		for _, tc := range []struct {
			spec, opts string
			code       int
			want       string
		}{
			{spec, "frobnicate", 1, "-o frobnicate: unknown mount option"},
			{spec, "attr_timeout=soon", 1, "want a number of seconds"},
			{freeAddr(t), "timeout=1s,log=" + filepath.Join(logs, "refused.log"), 32, "unreachable"},
		} {
			cmd := exec.Command(helper, tc.spec, dir, "-o", tc.opts)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code || !strings.HasPrefix(string(out), "mount.dfs: ") || !strings.Contains(string(out), tc.want) {
				t.Errorf("mount.dfs -o %s: %v, output %q; want exit %d and %q", tc.opts, err, out, tc.code, tc.want)
			}
			if src, _ := mountEntry(dir); src != "" {
				t.Fatalf("mount.dfs -o %s failed but mounted %s", tc.opts, dir)
			}
		}
		waitNoDfsmount(t, dir)
	})

	for _, typ := range []string{"dfs", "fuse.dfs"} {
		t.Run("MountT_"+typ, func(t *testing.T) {
			linkHelper(t, d, typ)
			dir := filepath.Join(t.TempDir(), "mnt")
			os.Mkdir(dir, 0o755)
			out, err := exec.Command("mount", "-t", typ, spec, dir, "-o", "_netdev,attr_timeout=1,log="+filepath.Join(logs, typ+".log")).CombinedOutput()
			if err != nil {
				t.Fatalf("mount -t %s: %v\n%s", typ, err, out)
			}
			t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
			check(t, dir)
			unmount(t, dir)
		})
	}

	// An fstab line, mounted as boot does it: mount -a (here with -T, a
	// file of our own). A second mount -a sees it mounted already.
	t.Run("Fstab", func(t *testing.T) {
		linkHelper(t, d, "dfs")
		dir := filepath.Join(t.TempDir(), "mnt")
		os.Mkdir(dir, 0o755)
		fstab := filepath.Join(t.TempDir(), "fstab")
		line := fmt.Sprintf("%s %s dfs _netdev,nofail,attr_timeout=1,log=%s 0 0\n", spec, dir, filepath.Join(logs, "fstab.log"))
		if err := os.WriteFile(fstab, []byte("# test\n"+line), 0o644); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if out, err := exec.Command("mount", "-a", "-T", fstab).CombinedOutput(); err != nil {
				t.Fatalf("mount -a -T %s (%d): %v\n%s", fstab, i+1, err, out)
			}
		}
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
		if n := len(dfsmountsOf(dir)); n != 1 {
			t.Errorf("%d dfsmounts serve %s after mount -a twice, want 1", n, dir)
		}
		check(t, dir)
		unmount(t, dir)
	})
}

// linkHelper puts the installed mount.TYPE in /sbin for the test, where
// mount(8) looks for helpers (not $PATH); it skips the test if one is
// there already.
func linkHelper(t *testing.T, destdir, typ string) {
	t.Helper()
	sbin := "/sbin/mount." + typ
	if target, err := os.Readlink(sbin); err == nil && strings.Contains(target, "/dfs-tests-") {
		if _, err := os.Stat(target); err != nil {
			os.Remove(sbin) // left by a test run that was killed
		}
	}
	if _, err := os.Lstat(sbin); err == nil {
		t.Skipf("%s exists already; not replacing it", sbin)
	}
	if err := os.Symlink(filepath.Join(destdir, "sbin/mount."+typ), sbin); err != nil {
		t.Skipf("cannot install %s: %v", sbin, err)
	}
	t.Cleanup(func() { os.Remove(sbin) })
}

// mountEntry returns the source and type /proc/self/mountinfo gives dir,
// or "" if it is not a mount point.
func mountEntry(dir string) (source, fstype string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - TYPE SOURCE SUPEROPTS
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[4] != dir {
			continue
		}
		for i, f := range fields {
			if f == "-" && i+2 < len(fields) {
				source, fstype = fields[i+2], fields[i+1]
			}
		}
	}
	return source, fstype
}

// waitNoDfsmount waits for every dfsmount serving dir to exit.
func waitNoDfsmount(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pids := dfsmountsOf(dir)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("dfsmount %v still running for %s after it was unmounted", pids, dir)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func dfsmountsOf(dir string) []string {
	var pids []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 1 && filepath.Base(args[0]) == "dfsmount" && args[len(args)-1] == dir {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}
