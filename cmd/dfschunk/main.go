// Command dfschunk runs a dfs chunkserver: it stores chunk replicas under
// -data, serves them on -listen and heartbeats to the masters.
//
//	dfschunk -data DIR -listen HOST:PORT -masters ADDR,ADDR,ADDR [-zone NAME] [-capacity BYTES]
//
// Every flag can also be set in the environment as DFSCHUNK_<FLAG> (for
// example DFSCHUNK_DATA, DFSCHUNK_LOG_LEVEL) or in the -config file; the
// command line wins over the environment, which wins over the file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"dfs/admin"
	"dfs/chunk"
	"dfs/config"
	"dfs/metrics"
	"dfs/mtls"
	"dfs/sdnotify"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// byteSize is a flag value: a byte count with an optional K, M, G, T or P
// suffix (powers of 1024, "GiB" and "GB" alike).
type byteSize uint64

func (b *byteSize) String() string { return strconv.FormatUint(uint64(*b), 10) }

func (b *byteSize) Set(s string) error {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := uint64(1)
	if i := strings.IndexAny(t, "KMGTP"); i >= 0 && i == len(t)-1 {
		mult = 1 << (10 * (1 + strings.IndexByte("KMGTP", t[i])))
		t = t[:i]
	}
	n, err := strconv.ParseUint(strings.TrimSpace(t), 10, 64)
	if err != nil || n > (1<<64-1)/mult {
		return errors.New("want a byte count such as 500000000000 or 500G")
	}
	*b = byteSize(n * mult)
	return nil
}

func run(args []string, stdout, stderr io.Writer) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "dfschunk: "+format+"\n", a...)
		return code
	}
	fs := flag.NewFlagSet("dfschunk", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line below
	var (
		data      = fs.String("data", "./dfschunk-data", "directory for chunk files, the server id and the LOCK")
		listen    = fs.String("listen", "127.0.0.1:9600", "address to serve chunks on")
		masters   = fs.String("masters", "127.0.0.1:9400", "comma-separated master client addresses (any subset)")
		zone      = fs.String("zone", "", "failure-domain label; replicas go to distinct zones")
		capacity  byteSize
		heartbeat = fs.Duration("heartbeat", time.Second, "interval between heartbeats to the master leader")
		logLevel  = fs.String("log-level", "info", "debug, info, warn or error")
		scrubRate = byteSize(8 << 20)
		scrubGap  = fs.Duration("scrub-pause", time.Hour, "pause between two full passes of the scrubber")
		debugAddr = fs.String("debug-addr", "", "HOST:PORT to serve /metrics and /debug/pprof on (empty: off)")
		drain     = fs.Duration("drain-timeout", chunk.DefaultDrain, "on SIGTERM, how long the reads, writes and forwards in flight may take to finish before they are cut off (keep it well below systemd's TimeoutStopSec)")
	)
	fs.Var(&capacity, "capacity", "bytes offered to the cluster (K, M, G, T suffixes); 0: the file system's size")
	fs.Var(&scrubRate, "scrub-rate", "bytes per second the scrubber re-reads and verifies (K, M, G suffixes); 0: no scrubbing")
	tlsFlags := mtls.RegisterFlags(fs)
	settings := config.Register(fs, "dfschunk", "DFSCHUNK_")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: dfschunk -data DIR -listen HOST:PORT -masters ADDR,ADDR,ADDR [-zone NAME] [-capacity BYTES]")
			fs.PrintDefaults()
			return 0
		}
		return fail(2, "%v (see dfschunk -h)", err)
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected argument %q (see dfschunk -h)", fs.Arg(0))
	}
	if err := settings.Load(); err != nil {
		return fail(2, "%v", err)
	}
	if settings.PrintRequested() {
		settings.Print(stdout)
		return 0
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fail(2, "-log-level %s: want debug, info, warn or error", *logLevel)
	}
	if *scrubGap <= 0 {
		return fail(2, "-scrub-pause %v: must be positive", *scrubGap)
	}
	if *drain <= 0 {
		return fail(2, "-drain-timeout %v: must be positive", *drain)
	}
	if *heartbeat <= 0 {
		return fail(2, "-heartbeat %v: must be positive", *heartbeat)
	}
	var ms []string
	for _, m := range strings.Split(*masters, ",") {
		if m = strings.TrimSpace(m); m != "" {
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		return fail(2, "-masters %q: need at least one master address", *masters)
	}
	if *data == "" {
		return fail(2, "-data: a data directory is required")
	}

	tlsID, err := tlsFlags.Load()
	if err != nil {
		return fail(2, "%v", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if tlsID == nil {
		log.Warn(mtls.PlaintextWarning)
	}
	reg := metrics.NewRegistry()
	if _, err := admin.Serve(*debugAddr, log, admin.Metrics(reg)); err != nil {
		return fail(2, "-debug-addr: %v", err)
	}
	srv, err := chunk.NewServer(chunk.Config{
		DataDir:    *data,
		Listen:     *listen,
		Masters:    ms,
		Zone:       *zone,
		Capacity:   uint64(capacity),
		Heartbeat:  *heartbeat,
		Logger:     log,
		TLS:        tlsID,
		ScrubRate:  uint64(scrubRate),
		ScrubPause: *scrubGap,
		Metrics:    reg,
		Registered: func() {
			sdnotify.Send("STATUS=serving, registered with the master leader")
		},
	})
	if err != nil {
		var ce *chunk.ConfigError
		if errors.As(err, &ce) {
			return fail(1, "-%v", err)
		}
		return fail(1, "%v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The listener is bound and the store open, so calls queue until Serve
	// takes them; heartbeats, started by Serve, then register this server
	// with the master leader (Registered above) whenever one answers.
	if err := sdnotify.Ready("serving on " + srv.Addr() + ", waiting for a master leader"); err != nil {
		log.Warn("telling the service manager we are ready", "err", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	select {
	case err = <-served:
	case <-ctx.Done():
		log.Info("signal received; draining calls in flight", "drain-timeout", *drain)
		sdnotify.Stopping()
	}
	start := time.Now()
	defer admin.Watchdog(*drain+2*time.Second, log)()
	if cerr := srv.Shutdown(*drain); err == nil {
		err = cerr
	}
	log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	if err != nil {
		return fail(1, "%v", err)
	}
	return 0
}
