package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"dfs/fs"
)

// The same binary is the mount helper that mount(8) runs for file system
// type dfs (and fuse.dfs), installed as /sbin/mount.dfs and
// /sbin/mount.fuse.dfs:
//
//	mount.dfs SPEC DIR [-sfnv] [-N NAMESPACE] [-o OPTIONS] [-t TYPE]
//
// SPEC is the masters' addresses, comma-separated. The helper turns the
// options into dfsmount arguments, starts dfsmount in the background and
// exits 0 once it has mounted, or with its error.

// helperNames are the names the helper is installed under.
var helperNames = []string{"mount.dfs", "mount.fuse.dfs"}

func isHelper(argv0 string) bool {
	base := filepath.Base(argv0)
	for _, n := range helperNames {
		if base == n {
			return true
		}
	}
	return false
}

// Exit codes of mount(8) helpers.
const (
	exitUsage = 1  // incorrect invocation
	exitMount = 32 // mount failure
)

// helperArgs is a mount(8) helper invocation.
type helperArgs struct {
	spec, dir string
	opts      []string
	sloppy    bool // -s: drop options dfsmount does not know
	fake      bool // -f: check everything but mount nothing
	verbose   bool
}

// parseHelperArgs reads the helper's command line: two positional
// arguments, short flags before, between or after them.
func parseHelperArgs(args []string) (*helperArgs, error) {
	h := &helperArgs{}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		for j := 1; j < len(a); j++ {
			switch c := a[j]; c {
			case 's':
				h.sloppy = true
			case 'f':
				h.fake = true
			case 'v':
				h.verbose = true
			case 'n': // no mtab: the kernel's table is the only one
			case 'o', 'N', 't':
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return nil, fmt.Errorf("-%c needs a value", c)
					}
					i++
					val = args[i]
				}
				if c == 'o' {
					h.opts = append(h.opts, strings.Split(val, ",")...)
				} else if c == 'N' {
					return nil, errors.New("-N: mounting in another mount namespace is not supported")
				}
				j = len(a)
			default:
				return nil, fmt.Errorf("unknown flag -%c", c)
			}
		}
	}
	if len(pos) != 2 {
		return nil, fmt.Errorf("want MASTERS DIR, got %d arguments", len(pos))
	}
	h.spec, h.dir = pos[0], pos[1]
	return h, nil
}

// mountOnly are options for mount(8) and fstab that mean nothing to the
// mount itself.
var mountOnly = map[string]bool{
	"": true, "defaults": true, "_netdev": true, "auto": true, "noauto": true,
	"user": true, "nouser": true, "users": true, "owner": true, "group": true,
	"nofail": true, "rw": true,
}

// translate turns the helper's options into dfsmount's command line and
// the file dfsmount logs to.
func translate(h *helperArgs) (args []string, logFile string, err error) {
	flags := flag.NewFlagSet("dfsmount", flag.ContinueOnError)
	defineFlags(flags)
	var mopts []string
	fsname := false
	for _, opt := range h.opts {
		opt = strings.TrimSpace(opt)
		key, val, hasVal := strings.Cut(opt, "=")
		var scratch fs.Options
		optErr := applyOption(&scratch, opt)
		switch {
		case mountOnly[key] || strings.HasPrefix(key, "x-") || strings.HasPrefix(key, "comment"):
		case key == "log":
			if !hasVal || val == "" {
				return nil, "", fmt.Errorf("-o %s: want log=FILE", opt)
			}
			logFile = val
		case key == "config":
			if !hasVal || val == "" {
				return nil, "", fmt.Errorf("-o %s: want config=FILE", opt)
			}
			args = append(args, "-config", val)
		case optErr == nil:
			mopts = append(mopts, strings.ReplaceAll(opt, ",", `\,`))
			fsname = fsname || key == "fsname"
		case !errors.Is(optErr, errUnknownOption):
			return nil, "", optErr
		case isFlagOption(flags, key):
			name := strings.ReplaceAll(key, "_", "-")
			if hasVal {
				args = append(args, "-"+name+"="+val)
			} else {
				args = append(args, "-"+name)
			}
		case h.sloppy:
		default:
			return nil, "", optErr
		}
	}
	if !fsname {
		// /proc/mounts then shows the fstab spec, so mount -a and systemd
		// see the entry as mounted.
		mopts = append(mopts, "fsname="+strings.ReplaceAll(h.spec, ",", `\,`))
	}
	args = append(args, "-masters", h.spec, "-o", strings.Join(mopts, ","), h.dir)
	if logFile == "" {
		logFile = defaultLog(h.dir)
	}
	return args, logFile, nil
}

// isFlagOption reports whether a mount option names a dfsmount flag that
// mount options may set (session_ttl=20s, no_local_reads, ...).
func isFlagOption(flags *flag.FlagSet, key string) bool {
	name := strings.ReplaceAll(key, "_", "-")
	switch name {
	case "o", "masters", "config", "print-config":
		return false
	}
	return flags.Lookup(name) != nil
}

// defaultLog is where a helper-started dfsmount logs: one file per mount
// point, named as systemd names the mount unit (/mnt/dfs: mnt-dfs.log).
func defaultLog(dir string) string {
	name := strings.ReplaceAll(strings.Trim(filepath.Clean(dir), "/"), "/", "-")
	if name == "" {
		name = "root"
	}
	return filepath.Join("/var/log/dfs", "mount-"+name+".log")
}

// mountHelper runs the helper and returns its exit code.
func mountHelper(args []string, stderr io.Writer) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "mount.dfs: "+format+"\n", a...)
		return code
	}
	h, err := parseHelperArgs(args)
	if err != nil {
		return fail(exitUsage, "%v (usage: mount.dfs MASTERS DIR [-o OPTIONS])", err)
	}
	dargs, logFile, err := translate(h)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	// Check the whole command line now, so that bad options fail here.
	if _, err := parseArgs(dargs, io.Discard); err != nil {
		return fail(exitUsage, "%v", err)
	}
	if h.verbose {
		fmt.Fprintf(stderr, "mount.dfs: dfsmount %s (log %s)\n", strings.Join(dargs, " "), logFile)
	}
	if h.fake {
		return 0
	}
	if err := startMount(dargs, logFile); err != nil {
		return fail(exitMount, "%v", err)
	}
	return 0
}

// startMount runs dfsmount in the background, in a session of its own
// and logging to logFile, and waits until it says it has mounted (READY=1
// over a notify socket) or exits.
func startMount(args []string, logFile string) error {
	if err := os.MkdirAll(filepath.Dir(logFile), 0o750); err != nil {
		return fmt.Errorf("log directory: %w", err)
	}
	lf, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	defer lf.Close()
	start, _ := lf.Seek(0, io.SeekEnd)

	tmp, err := os.MkdirTemp("", "dfs-mount-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	sock := filepath.Join(tmp, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, args...)
	cmd.Args[0] = "dfsmount" // not the helper again
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = lf, lf
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "NOTIFY_SOCKET=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ready := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			for _, l := range strings.Split(string(buf[:n]), "\n") {
				if l == "READY=1" {
					close(ready)
					return
				}
			}
		}
	}()
	// dfsmount gives up on the masters after its -timeout; this bounds a
	// mount that hangs in the kernel.
	limit := time.NewTimer(2 * time.Minute)
	defer limit.Stop()
	select {
	case <-ready:
		return nil // dfsmount carries on, reparented to init
	case err := <-exited:
		return fmt.Errorf("dfsmount exited (%v): %s", err, logSince(logFile, start))
	case <-limit.C:
		cmd.Process.Kill()
		return fmt.Errorf("dfsmount did not mount within 2m; killed it: %s", logSince(logFile, start))
	}
}

// logSince returns the lines dfsmount wrote to its log from offset on,
// the last few if there are many.
func logSince(file string, offset int64) string {
	f, err := os.Open(file)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	f.Seek(offset, io.SeekStart)
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "\n") + " (log " + file + ")"
}
