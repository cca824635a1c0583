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
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" // -pprof
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"dfs/client"
	"dfs/fs"
)

func main() {
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
	pprof      string
}

func parseArgs(args []string, stderr io.Writer) (*config, error) {
	fl := flag.NewFlagSet("dfsmount", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	masters := fl.String("masters", os.Getenv("DFSMOUNT_MASTERS"), "master client addresses, comma-separated (env DFSMOUNT_MASTERS)")
	var o multiFlag
	fl.Var(&o, "o", "mount options, comma-separated: attr_timeout=SECONDS, entry_timeout=SECONDS, allow_other, ro, debug")
	attr := fl.Duration("attr-timeout", time.Second, "how long the kernel caches attributes")
	entry := fl.Duration("entry-timeout", time.Second, "how long the kernel caches names")
	ttl := fl.Duration("session-ttl", 10*time.Second, "session lease")
	debug := fl.Bool("debug", false, "log every FUSE request")
	timeout := fl.Duration("timeout", 15*time.Second, "how long to wait for the masters at start")
	pprofAddr := fl.String("pprof", os.Getenv("DFSMOUNT_PPROF"), "serve Go profiles (net/http/pprof) on this address, e.g. 127.0.0.1:0; empty: off (env DFSMOUNT_PPROF)")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: dfsmount [-o opts] -masters ADDR,ADDR,ADDR MOUNTPOINT")
		fl.SetOutput(stderr)
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fl.Usage()
		}
		return nil, err
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
	if len(rest) != 1 {
		return nil, errors.New("missing MOUNTPOINT (usage: dfsmount [-o opts] -masters ADDR,ADDR,ADDR MOUNTPOINT)")
	}
	c := &config{mountpoint: rest[0], sessionTTL: *ttl, timeout: *timeout, pprof: *pprofAddr}
	for _, m := range strings.Split(*masters, ",") {
		if m = strings.TrimSpace(m); m != "" {
			c.masters = append(c.masters, m)
		}
	}
	if len(c.masters) == 0 {
		return nil, errors.New("no masters: give -masters ADDR,... or set DFSMOUNT_MASTERS")
	}
	c.opts = fs.DefaultOptions()
	c.opts.AttrTimeout, c.opts.EntryTimeout, c.opts.Debug = *attr, *entry, *debug
	for _, opt := range o {
		if err := applyOption(&c.opts, opt); err != nil {
			return nil, err
		}
	}
	if *ttl <= 0 {
		return nil, fmt.Errorf("-session-ttl %v: must be positive", *ttl)
	}
	if c.opts.AttrTimeout < 0 || c.opts.EntryTimeout < 0 {
		return nil, errors.New("attr and entry timeouts must not be negative")
	}
	return c, nil
}

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
	case "noatime":
		o.NoAtime = true
	case "atime", "relatime":
		o.NoAtime = false
	case "", "defaults", "_netdev", "auto", "noauto", "user", "nouser", "users", "nofail",
		"exec", "noexec", "suid", "nosuid", "dev", "nodev",
		"async", "sync", "x-systemd.automount", "default_permissions":
		// Standard options that mean nothing here or are always on.
	default:
		if strings.HasPrefix(key, "x-") || strings.HasPrefix(key, "comment") {
			return nil
		}
		return fmt.Errorf("-o %s: unknown mount option", opt)
	}
	return err
}

// multiFlag collects every -o, comma-split.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error {
	for _, o := range strings.Split(s, ",") {
		*m = append(*m, strings.TrimSpace(o))
	}
	return nil
}

func run(args []string, stderr io.Writer) error {
	cfg, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	if st, err := os.Stat(cfg.mountpoint); err != nil {
		return fmt.Errorf("mount point: %v", err)
	} else if !st.IsDir() {
		return fmt.Errorf("mount point %s is not a directory", cfg.mountpoint)
	}
	if cfg.pprof != "" {
		lis, err := net.Listen("tcp", cfg.pprof)
		if err != nil {
			return fmt.Errorf("-pprof %s: %v", cfg.pprof, err)
		}
		log.Printf("dfsmount: profiles at http://%s/debug/pprof/", lis.Addr())
		go http.Serve(lis, nil)
	}
	host, _ := os.Hostname()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	c, err := client.New(ctx, client.Config{
		Masters:    cfg.masters,
		Name:       host + ":" + cfg.mountpoint,
		SessionTTL: cfg.sessionTTL,
	})
	if err != nil {
		return fmt.Errorf("masters %s unreachable: %v", strings.Join(cfg.masters, ","), err)
	}
	server, err := fs.Mount(ctx, cfg.mountpoint, c, cfg.opts)
	if err != nil {
		c.Close(context.Background())
		return err
	}
	log.Printf("dfsmount: %s mounted from %s", cfg.mountpoint, strings.Join(cfg.masters, ","))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		server.Wait()
		close(done)
	}()
	select {
	case s := <-sig:
		log.Printf("dfsmount: %v: unmounting %s", s, cfg.mountpoint)
		if err := server.Unmount(); err != nil {
			// Busy: detach it from the namespace now and keep serving the
			// files still open until they close (or a second signal).
			log.Printf("dfsmount: unmount: %v; detaching lazily", err)
			if derr := detach(cfg.mountpoint); derr != nil {
				log.Printf("dfsmount: lazy unmount: %v", derr)
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
		log.Printf("dfsmount: close session: %v", err)
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
