// Command dfsmaster runs one dfs metadata server, a member of the masters'
// Raft group. Flags and wiring only; the service lives in package master.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"dfs/admin"
	"dfs/config"
	"dfs/master"
	"dfs/metrics"
	"dfs/mtls"
	"dfs/sdnotify"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("dfsmaster", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line below
	id := fs.String("id", "m1", "this master's Raft server id")
	data := fs.String("data", "./dfsmaster-data", "directory for the Raft log, stable store and snapshots")
	listen := fs.String("listen", "127.0.0.1:9400", "gRPC address for clients and chunkservers")
	raftAddr := fs.String("raft", "127.0.0.1:9500", "Raft transport address")
	cluster := fs.String("cluster", "", "initial members, ID=RAFTADDR,... (default: this master alone)")
	hb := fs.Duration("heartbeat-timeout", 500*time.Millisecond, "Raft heartbeat timeout (followers start an election after 1-2x this without the leader)")
	election := fs.Duration("election-timeout", 500*time.Millisecond, "Raft election timeout")
	snapInt := fs.Duration("snapshot-interval", 30*time.Second, "how often to consider a snapshot")
	snapThr := fs.Uint64("snapshot-threshold", 8192, "log entries between snapshots")
	grace := fs.Duration("session-grace", 5*time.Second, "extension every session gets from a new leader")
	chunkLease := fs.Duration("chunk-lease", 60*time.Second, "primary write lease on a chunk")
	deadAfter := fs.Duration("server-dead-after", 10*time.Second, "a chunkserver silent this long takes no new chunks")
	lostAfter := fs.Duration("dead-after", 5*time.Minute, "a chunkserver silent this long has its chunks re-replicated elsewhere")
	repairConc := fs.Int("repair-concurrency", 4, "chunk copies the leader runs at once when re-replicating")
	repairRate := fs.Uint64("repair-rate", 0, "bytes per second of each re-replication copy (0: no limit)")
	fullReport := fs.Duration("full-report-interval", 30*time.Second, "how often chunkservers list all their chunks (bounds how soon deleted data frees space)")
	tokenLife := fs.Duration("chunk-token-lifetime", master.DefaultChunkTokenLifetime, "how long a chunk token (a client's leave to read or write one chunk on its chunkservers) stays valid")
	keyRotation := fs.Duration("chunk-key-rotation", master.DefaultChunkKeyRotation, "how often the leader replaces the key chunk tokens are signed with (at least twice -chunk-token-lifetime)")
	join := fs.Bool("join", false, "start without Raft state and wait to be added to an existing group (dfsctl members add) instead of bootstrapping")
	restore := fs.String("restore", "", "start a new group from this backup (dfsctl snapshot save); -data must be empty")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	debugAddr := fs.String("debug-addr", "", "HOST:PORT to serve /metrics, /debug/pprof and the status page on (empty: off)")
	drain := fs.Duration("drain-timeout", 5*time.Second, "on SIGTERM, how long to wait for a leadership hand-over and the calls in flight before cutting them off (keep it well below systemd's TimeoutStopSec)")
	tlsFlags := mtls.RegisterFlags(fs)
	settings := config.Register(fs, "dfsmaster", "DFSMASTER_")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Println("usage: dfsmaster -id m1 -data DIR -listen HOST:PORT -raft HOST:PORT -cluster m1=RAFTADDR,...")
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(os.Stderr, "dfsmaster: %v (see dfsmaster -h)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "dfsmaster: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := settings.Load(); err != nil {
		fmt.Fprintf(os.Stderr, "dfsmaster: %v\n", err)
		return 2
	}
	if settings.PrintRequested() {
		settings.Print(os.Stdout)
		return 0
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "dfsmaster: -log-level %q: want debug, info, warn or error\n", *level)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	tlsID, err := tlsFlags.Load()
	if err != nil {
		fmt.Fprintf(os.Stderr, "dfsmaster: %v\n", err)
		return 2
	}
	if tlsID == nil {
		log.Warn(mtls.PlaintextWarning)
	}
	reg := metrics.NewRegistry()
	cfg := master.Config{
		ID: *id, DataDir: *data, Listen: *listen, RaftAddr: *raftAddr,
		HeartbeatTimeout: *hb, ElectionTimeout: *election,
		SnapshotInterval: *snapInt, SnapshotThreshold: *snapThr,
		SessionGrace: *grace, ChunkLease: *chunkLease, ServerDeadAfter: *deadAfter,
		DeadAfter: *lostAfter, RepairConcurrency: *repairConc, RepairRate: *repairRate,
		FullReportInterval: *fullReport, Join: *join, Restore: *restore,
		ChunkTokenLifetime: *tokenLife, ChunkKeyRotation: *keyRotation,
		Logger: log, TLS: tlsID, Metrics: reg,
	}
	for name, d := range map[string]time.Duration{"dead-after": *lostAfter, "full-report-interval": *fullReport,
		"chunk-token-lifetime": *tokenLife, "chunk-key-rotation": *keyRotation, "drain-timeout": *drain} {
		if d <= 0 {
			fmt.Fprintf(os.Stderr, "dfsmaster: -%s %v: must be positive\n", name, d)
			return 2
		}
	}
	if err := master.CheckChunkTokenTimes(*tokenLife, *keyRotation); err != nil {
		fmt.Fprintf(os.Stderr, "dfsmaster: %v\n", err)
		return 2
	}
	if *repairConc <= 0 {
		fmt.Fprintf(os.Stderr, "dfsmaster: -repair-concurrency %d: must be positive\n", *repairConc)
		return 2
	}
	if *cluster != "" {
		m, err := master.ParseCluster(*cluster)
		if err != nil {
			fmt.Fprintf(os.Stderr, "dfsmaster: %v\n", err)
			return 2
		}
		cfg.Cluster = m
	}
	srv, err := master.New(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dfsmaster: %v\n", err)
		return 1
	}
	log.Info("dfsmaster started", "id", *id, "listen", srv.Addr(), "raft", *raftAddr, "data", *data)
	if err := serveAdmin(*debugAddr, log, srv, reg); err != nil {
		srv.Close()
		fmt.Fprintf(os.Stderr, "dfsmaster: -debug-addr: %v\n", err)
		return 2
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	// New has loaded the Raft state and bound the listener: calls queue
	// there until Serve takes them.
	if err := sdnotify.Ready("serving on " + srv.Addr()); err != nil {
		log.Warn("telling the service manager we are ready", "err", err)
	}
	select {
	case s := <-sig:
		log.Info("stopping: draining calls in flight", "signal", s.String(), "drain-timeout", *drain)
		sdnotify.Stopping()
		start := time.Now()
		defer admin.Watchdog(*drain+2*time.Second, log)()
		srv.Shutdown(*drain)
		log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
		return 0
	case err := <-done:
		srv.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "dfsmaster: %v\n", err)
			return 1
		}
		return 0
	}
}
