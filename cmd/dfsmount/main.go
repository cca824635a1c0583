// Command dfsmount mounts a dfs cluster as a directory and serves it in
// the foreground until SIGINT or SIGTERM, which unmount it and close the
// session.
//
//	dfsmount [-o opts] -masters ADDR,ADDR,ADDR MOUNTPOINT
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"dfs/admin"
	"dfs/client"
	dfsconfig "dfs/config"
	"dfs/fs"
	"dfs/metrics"
	"dfs/mtls"
	"dfs/sdnotify"
)

func main() {
	if isHelper(os.Args[0]) {
		os.Exit(mountHelper(os.Args[1:], os.Stderr))
	}
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "dfsmount: %v\n", err)
		os.Exit(1)
	}
}

// config is everything the command line and environment decide.
type config struct {
	masters    []string
	mountpoint string
	opts       fs.Options
	sessionTTL time.Duration
	timeout    time.Duration
	attempt    time.Duration
	debugAddr  string
	noLocal    bool
	logLevel   slog.Level
	tls        *mtls.Identity
	settings   *dfsconfig.Settings // non-nil: only print the settings
}

// flagValues are dfsmount's flags, apart from -config and -print-config.
type flagValues struct {
	masters   *string
	o         multiFlag
	attr      *time.Duration
	entry     *time.Duration
	ttl       *time.Duration
	debug     *bool
	timeout   *time.Duration
	attempt   *time.Duration
	noLocal   *bool
	debugAddr *string
	logLevel  *string
	tls       *mtls.Flags
}

// defineFlags defines dfsmount's flags on fl; the mount helper reads their
// names from it too.
func defineFlags(fl *flag.FlagSet) *flagValues {
	v := &flagValues{}
	v.masters = fl.String("masters", "", "master client addresses, comma-separated (env DFSMOUNT_MASTERS)")
	fl.Var(&v.o, "o", "mount options, comma-separated: attr_timeout=SECONDS, entry_timeout=SECONDS, allow_other, ro, debug, fsname=NAME, noatime, statfs=logical|raw")
	v.attr = fl.Duration("attr-timeout", time.Second, "how long the kernel caches attributes")
	v.entry = fl.Duration("entry-timeout", time.Second, "how long the kernel caches names")
	v.ttl = fl.Duration("session-ttl", 10*time.Second, "session lease")
	v.debug = fl.Bool("debug", false, "log every FUSE request")
	v.timeout = fl.Duration("timeout", 15*time.Second, "how long to wait for the masters at start")
	v.attempt = fl.Duration("attempt-timeout", 10*time.Second, "deadline of one call to a master or chunkserver, after which it is tried again")
	v.noLocal = fl.Bool("no-local-reads", false, "always read through the chunkservers, never their chunk files on this machine directly (env DFSMOUNT_NO_LOCAL_READS=true)")
	v.debugAddr = fl.String("debug-addr", "", "HOST:PORT to serve /metrics and /debug/pprof on (env DFSMOUNT_DEBUG_ADDR; empty: off)")
	v.logLevel = fl.String("log-level", "info", "debug, info, warn or error (env DFSMOUNT_LOG_LEVEL)")
	v.tls = mtls.RegisterFlags(fl)
	return v
}

func parseArgs(args []string, stderr io.Writer) (*config, error) {
	fl := flag.NewFlagSet("dfsmount", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	v := defineFlags(fl)
	settings := dfsconfig.Register(fl, "dfsmount", "DFSMOUNT_")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: dfsmount [-o opts] -masters ADDR,ADDR,ADDR MOUNTPOINT")
		fl.SetOutput(stderr)
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return nil, err // Parse has shown the usage for -h
	}
	// Flags after the mount point, as mount(8) passes them.
	rest := fl.Args()
	if len(rest) > 1 {
		if err := fl.Parse(rest[1:]); err != nil {
			return nil, err
		}
		if len(fl.Args()) > 0 {
			return nil, fmt.Errorf("unexpected argument %q", fl.Args()[0])
		}
		rest = rest[:1]
	}
	if err := settings.Load(); err != nil {
		return nil, err
	}
	if settings.PrintRequested() {
		return &config{settings: settings}, nil
	}
	if len(rest) != 1 {
		return nil, errors.New("missing MOUNTPOINT (usage: dfsmount [-o opts] -masters ADDR,ADDR,ADDR MOUNTPOINT)")
	}
	if *v.attempt <= 0 {
		return nil, fmt.Errorf("-attempt-timeout %v: must be positive", *v.attempt)
	}
	c := &config{mountpoint: rest[0], sessionTTL: *v.ttl, timeout: *v.timeout, attempt: *v.attempt, debugAddr: *v.debugAddr, noLocal: *v.noLocal}
	for _, m := range strings.Split(*v.masters, ",") {
		if m = strings.TrimSpace(m); m != "" {
			c.masters = append(c.masters, m)
		}
	}
	if len(c.masters) == 0 {
		return nil, errors.New("no masters: give -masters ADDR,... or set DFSMOUNT_MASTERS")
	}
	var err error
	if c.tls, err = v.tls.Load(); err != nil {
		return nil, err
	}
	c.opts = fs.DefaultOptions()
	c.opts.AttrTimeout, c.opts.EntryTimeout, c.opts.Debug = *v.attr, *v.entry, *v.debug
	for _, opt := range v.o {
		if err := applyOption(&c.opts, opt); err != nil {
			return nil, err
		}
	}
	if err := c.logLevel.UnmarshalText([]byte(*v.logLevel)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", *v.logLevel)
	}
	if *v.ttl <= 0 {
		return nil, fmt.Errorf("-session-ttl %v: must be positive", *v.ttl)
	}
	if c.opts.AttrTimeout < 0 || c.opts.EntryTimeout < 0 {
		return nil, errors.New("attr and entry timeouts must not be negative")
	}
	return c, nil
}

var errUnknownOption = errors.New("unknown mount option")

// applyOption applies one -o option.
func applyOption(o *fs.Options, opt string) error {
	key, val, hasVal := strings.Cut(opt, "=")
	seconds := func() (time.Duration, error) {
		f, err := strconv.ParseFloat(val, 64)
		if err != nil || !hasVal || f < 0 {
			return 0, fmt.Errorf("-o %s: want a number of seconds", opt)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	var err error
	switch key {
	case "attr_timeout":
		o.AttrTimeout, err = seconds()
	case "entry_timeout":
		o.EntryTimeout, err = seconds()
	case "allow_other":
		o.AllowOther = true
	case "ro":
		o.ReadOnly = true
	case "rw":
		o.ReadOnly = false
	case "debug":
		o.Debug = true
	case "fsname":
		if !hasVal || val == "" {
			return fmt.Errorf("-o %s: want fsname=NAME", opt)
		}
		o.FsName = val
	case "noatime":
		o.NoAtime = true
	case "atime", "relatime":
		o.NoAtime = false
	case "statfs":
		switch val {
		case "logical":
			o.StatfsRaw = false
		case "raw":
			o.StatfsRaw = true
		default:
			return fmt.Errorf("-o %s: want statfs=logical or statfs=raw", opt)
		}
	case "", "defaults", "_netdev", "auto", "noauto", "user", "nouser", "users", "nofail",
		"exec", "noexec", "suid", "nosuid", "dev", "nodev",
		"async", "sync", "x-systemd.automount", "default_permissions":
		// Standard options that mean nothing here or are always on.
	default:
		if strings.HasPrefix(key, "x-") || strings.HasPrefix(key, "comment") {
			return nil
		}
		return fmt.Errorf("-o %s: %w", opt, errUnknownOption)
	}
	return err
}

// multiFlag collects every -o, split at commas; a comma inside a value
// is written \, (fsname=a:1\,b:2), as in libfuse.
type multiFlag []string

func (m *multiFlag) String() string {
	esc := make([]string, len(*m))
	for i, o := range *m {
		esc[i] = strings.ReplaceAll(o, ",", `\,`)
	}
	return strings.Join(esc, ",")
}

func (m *multiFlag) Set(s string) error {
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' && (i == 0 || s[i-1] != '\\') {
			o := strings.ReplaceAll(s[start:i], `\,`, ",")
			*m = append(*m, strings.TrimSpace(o))
			start = i + 1
		}
	}
	return nil
}

func run(args []string, stderr io.Writer) error {
	cfg, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	if cfg.settings != nil {
		cfg.settings.Print(os.Stdout)
		return nil
	}
	if st, err := os.Stat(cfg.mountpoint); err != nil {
		return fmt.Errorf("mount point: %v", err)
	} else if !st.IsDir() {
		return fmt.Errorf("mount point %s is not a directory", cfg.mountpoint)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	// What the client and the file system report is worth a warning.
	logf := func(format string, a ...any) { logger.Warn(fmt.Sprintf(format, a...)) }
	reg := metrics.NewRegistry()
	reg.MustRegister(client.Collectors()...)
	reg.MustRegister(fs.Collectors()...)
	if _, err := admin.Serve(cfg.debugAddr, logger, admin.Metrics(reg)); err != nil {
		return err
	}
	if cfg.tls == nil {
		logger.Warn(mtls.PlaintextWarning)
	}
	host, _ := os.Hostname()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	c, err := client.New(ctx, client.Config{
		Masters:        cfg.masters,
		Name:           host + ":" + cfg.mountpoint,
		SessionTTL:     cfg.sessionTTL,
		AttemptTimeout: cfg.attempt,
		NoLocalReads:   cfg.noLocal,
		Logf:           logf,
		TLS:            cfg.tls,
	})
	if err != nil {
		return fmt.Errorf("masters %s unreachable: %v", strings.Join(cfg.masters, ","), err)
	}
	cfg.opts.Logf = logf
	server, err := fs.Mount(ctx, cfg.mountpoint, c, cfg.opts)
	if err != nil {
		c.Close(context.Background())
		return err
	}
	logger.Info("mounted from "+strings.Join(cfg.masters, ","), "mountpoint", cfg.mountpoint)
	// The mount helper (mount.dfs) and systemd wait for this.
	if err := sdnotify.Ready("serving " + cfg.mountpoint); err != nil {
		logger.Warn("telling the service manager we are ready", "err", err)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		server.Wait()
		close(done)
	}()
	select {
	case s := <-sig:
		logger.Info("unmounting", "signal", s.String(), "mountpoint", cfg.mountpoint)
		sdnotify.Stopping()
		if err := server.Unmount(); err != nil {
			// Busy: detach it from the namespace now and keep serving the
			// files still open until they close (or a second signal).
			logger.Warn("unmount failed; detaching lazily", "err", err)
			if derr := detach(cfg.mountpoint); derr != nil {
				logger.Warn("lazy unmount", "err", derr)
			}
			select {
			case <-sig:
				return fmt.Errorf("unmount %s: %v", cfg.mountpoint, err)
			case <-done:
			}
		} else {
			<-done
		}
	case <-done: // unmounted from outside (fusermount -u, umount)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if err := c.Close(cctx); err != nil {
		logger.Warn("closing the session", "err", err)
	}
	return nil
}

// detach lazily unmounts dir (MNT_DETACH as root, fusermount3 -uz
// otherwise).
func detach(dir string) error {
	if os.Geteuid() == 0 {
		return syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	out, err := exec.Command("fusermount3", "-u", "-z", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusermount3 -u -z: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
