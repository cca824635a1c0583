package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"dfs/cluster"
	"dfs/mtls"
)

const defaultDevDir = ".dfs"

func runDev(args []string) error {
	fl := flag.NewFlagSet("dev", flag.ContinueOnError)
	dir := fl.String("dir", defaultDevDir, "base directory for data and logs; a restart on the same directory resumes its data")
	mnt := fl.String("mnt", "mnt", "mount point")
	masters := fl.Int("masters", 3, "number of masters (1, 3 or 5)")
	chunks := fl.Int("chunkservers", 4, "number of chunkservers")
	capacity := fl.Uint64("capacity", 0, "capacity of each chunkserver in bytes (0: the chunkserver's default)")
	mountOpts := fl.String("o", "", "mount options passed to dfsmount -o")
	bin := fl.String("bin", "", "directory of dfsmaster, dfschunk, dfsmount (default: next to dfsctl)")
	useTLS := fl.Bool("tls", false, "run with mutual TLS: a CA and per-process certificates under DIR/tls (dfsctl then finds them itself)")
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), `usage: dfsctl dev [flags] [-- COMMAND ARGS...]

Starts masters and chunkservers on loopback with data and logs under -dir,
mounts the filesystem on -mnt, and runs until Ctrl-C, which unmounts and
stops everything. With a COMMAND, runs it once the cluster is ready (with
$DFS_MOUNT and $DFS_MASTERS set), then stops everything and exits with the
command's status. With -tls, every connection is mutual TLS with a CA and
certificates made under DIR/tls; $DFS_TLS_CA, $DFS_TLS_CERT and
$DFS_TLS_KEY are set for the COMMAND.

flags:
`)
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError(err.Error())
	}
	switch *masters {
	case 1, 3, 5:
	default:
		return usageError(fmt.Sprintf("dev: -masters %d: want 1, 3 or 5", *masters))
	}
	if *chunks < 1 {
		return usageError("dev: -chunkservers must be at least 1")
	}
	if *bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		if exe, err = filepath.EvalSymlinks(exe); err != nil {
			return err
		}
		*bin = filepath.Dir(exe)
	}
	cfg := cluster.Config{
		Masters:       *masters,
		ChunkServers:  *chunks,
		Mounts:        1,
		Dir:           *dir,
		Bin:           *bin,
		MountDirs:     []string{*mnt},
		ChunkCapacity: *capacity,
		TLS:           *useTLS,
	}
	if *mountOpts != "" {
		cfg.ExtraMountArgs = []string{"-o", *mountOpts}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	c, err := cluster.Start(ctx, cfg)
	if err != nil {
		return err
	}
	stopAll := func() error {
		fmt.Fprintln(os.Stderr, "dfsctl dev: unmounting and stopping...")
		if err := c.StopAll(); err != nil {
			return fmt.Errorf("stopped, with problems: %w", err)
		}
		fmt.Fprintln(os.Stderr, "dfsctl dev: stopped")
		return nil
	}
	masterList := strings.Join(c.MasterAddrs(), ",")
	ctlFlags := "-masters " + masterList
	var tlsEnv []string
	if d := c.TLSDir(); d != "" {
		f := func(name string) string { return filepath.Join(d, name) }
		ca, crt, key := f(mtls.CACert), f(cluster.ClientCert+".crt"), f(cluster.ClientCert+".key")
		tlsEnv = []string{"DFS_TLS_CA=" + ca, "DFS_TLS_CERT=" + crt, "DFS_TLS_KEY=" + key}
		ctlFlags += fmt.Sprintf(" -tls-ca %s -tls-cert %s -tls-key %s", ca, crt, key)
	}

	if cmdArgs := fl.Args(); len(cmdArgs) > 0 {
		cmd := exec.CommandContext(ctx, cmdArgs[0], cmdArgs[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), "DFS_MOUNT="+c.MountDir(0), "DFS_MASTERS="+masterList)
		cmd.Env = append(cmd.Env, tlsEnv...)
		runErr := cmd.Run()
		if err := stopAll(); err != nil {
			fmt.Fprintf(os.Stderr, "dfsctl dev: %v\n", err)
		}
		var ee *exec.ExitError
		if errors.As(runErr, &ee) {
			return exitError(max(ee.ExitCode(), 1))
		}
		return runErr
	}

	fmt.Printf(`dfs is running (ready in %v)
  mount:         %s
  masters:       %s
  chunkservers:  %s
  data and logs: %s (logs in %s)
  status:        %s %s status
Press Ctrl-C to unmount and stop everything; run again with the same -dir to resume.
`, time.Since(start).Round(time.Millisecond), c.MountDir(0), masterList,
		strings.Join(c.ChunkAddrs(), ","), c.Dir(), c.LogDir(),
		filepath.Join(*bin, cluster.CtlBinary), ctlFlags)

	reported := map[string]bool{}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return stopAll()
		case <-tick.C:
			for _, name := range c.Dead() {
				if !reported[name] {
					reported[name] = true
					fmt.Fprintf(os.Stderr, "dfsctl dev: %s exited; see %s\n", name, filepath.Join(c.LogDir(), name+".log"))
				}
			}
		}
	}
}
