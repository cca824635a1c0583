// Package master is the dfs metadata service: a Raft-replicated state
// machine (FSM) holding the namespace, file-to-chunk maps, layouts and
// client sessions, and the gRPC service that proposes mutations, serves
// linearizable reads, places chunks and tracks chunkservers.
package master

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"dfs/api"
	"dfs/mtls"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
)

// DefaultSessionTTL is a session's lifetime without keepalives.
const DefaultSessionTTL = 10 * time.Second

// Config configures one master.
type Config struct {
	ID       string            // Raft server id, e.g. m1
	DataDir  string            // Raft log, stable store and snapshots
	Listen   string            // gRPC address for clients and chunkservers
	RaftAddr string            // Raft transport address
	Cluster  map[string]string // initial members: id -> Raft address

	HeartbeatTimeout  time.Duration // Raft; 0: 500ms (tuned for a LAN)
	ElectionTimeout   time.Duration // Raft; 0: 500ms
	SnapshotInterval  time.Duration // 0: 30s
	SnapshotThreshold uint64        // log entries between snapshots; 0: 8192
	SessionGrace      time.Duration // added to every session by a new leader; 0: 5s
	ChunkLease        time.Duration // primary lease; 0: 60s
	ServerDeadAfter   time.Duration // chunkserver considered down after; 0: 10s
	// DeadAfter is how long a chunkserver may be silent before its
	// copies count as lost and are re-replicated elsewhere; 0: 5m.
	DeadAfter time.Duration
	// RepairConcurrency bounds the chunk copies in flight; 0: 4.
	RepairConcurrency int
	// RepairRate bounds each copy's bytes per second; 0: no limit.
	RepairRate uint64
	// FullReportInterval is how often each chunkserver lists every chunk
	// it holds (and so how soon deleted files free space); 0: 30s.
	FullReportInterval time.Duration
	// ChunkTokenLifetime is how long a chunk token the master hands out
	// stays valid; 0: 10m. ChunkKeyRotation is how often the leader
	// replaces the key tokens are signed with; 0: 24h. It must be at
	// least twice the lifetime (see CheckChunkTokenTimes).
	ChunkTokenLifetime time.Duration
	ChunkKeyRotation   time.Duration
	// Join makes a master with no state wait to be added to an existing
	// group (dfsctl members add) instead of bootstrapping one.
	Join bool
	// Restore is a backup file (dfsctl snapshot save) to start from: the
	// data directory must hold no Raft state, and every master of the
	// new group restores the same file with the same Cluster.
	Restore string
	Logger  *slog.Logger
	// Metrics, if set, receives the master's Prometheus metrics (Raft,
	// namespace, chunk health, RPCs): the process's registry, which
	// takes one Server (New registers fixed names).
	Metrics prometheus.Registerer
	// TLS, if set, secures the client listener, the Raft transport and
	// this master's own calls with mutual TLS: only holders of the
	// cluster CA's certificates are served. nil is plaintext.
	TLS *mtls.Identity
}

// ParseCluster parses "m1=HOST:PORT,m2=HOST:PORT".
func ParseCluster(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, found := strings.Cut(part, "=")
		if !found || id == "" || addr == "" {
			return nil, fmt.Errorf("-cluster: %q is not ID=HOST:PORT", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("-cluster: member %s: %v", id, err)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("-cluster: member %s listed twice", id)
		}
		out[id] = addr
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-cluster: no members")
	}
	return out, nil
}

// Server is one running master.
type Server struct {
	cfg   Config
	log   *slog.Logger
	fsm   *FSM
	raft  *raft.Raft
	trans *raft.NetworkTransport
	store *raftboltdb.BoltStore
	grpc  *grpc.Server
	lis   net.Listener
	lock  *os.File
	svc   *service

	metrics *masterMetrics

	adminAddr atomic.Pointer[string] // admin HTTP listener, for Status

	notify chan bool // Raft leadership changes
	stop   chan struct{}
	// draining is closed when Shutdown begins: long waits (WaitLock)
	// answer at once so that the drain does not wait for them.
	draining  chan struct{}
	drainOnce sync.Once
	wg        sync.WaitGroup
}

// New opens (or creates) a master's state under cfg.DataDir, starts Raft
// and binds the client listener. Call Serve to start answering.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	setDefaults(&cfg)
	if cfg.ID == "" {
		return nil, errors.New("-id: empty")
	}
	if cfg.Join && cfg.Restore != "" {
		return nil, errors.New("-join and -restore exclude each other: a joining master gets its state from the leader")
	}
	if err := CheckChunkTokenTimes(cfg.ChunkTokenLifetime, cfg.ChunkKeyRotation); err != nil {
		return nil, err
	}
	if cfg.Join && len(cfg.Cluster) > 0 {
		return nil, errors.New("-join and -cluster exclude each other: a joining master learns the members from the leader")
	}
	if len(cfg.Cluster) == 0 && !cfg.Join {
		cfg.Cluster = map[string]string{cfg.ID: cfg.RaftAddr}
	}
	if cfg.Join {
		// Nothing to check: the group's leader adds this master.
	} else if addr, found := cfg.Cluster[cfg.ID]; !found {
		return nil, fmt.Errorf("-cluster does not list this master's -id %q", cfg.ID)
	} else if addr != cfg.RaftAddr {
		return nil, fmt.Errorf("-cluster gives %s the Raft address %s but -raft is %s", cfg.ID, addr, cfg.RaftAddr)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, fsm: NewFSM(), lock: lock, stop: make(chan struct{}), draining: make(chan struct{})}
	// Bind before touching Raft state, so a busy port changes nothing on disk.
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		s.closeStores()
		return nil, fmt.Errorf("-listen %s: %w", cfg.Listen, err)
	}
	s.lis = lis
	if err := s.openRaft(); err != nil {
		lis.Close()
		s.closeStores()
		return nil, err
	}
	s.metrics = newMasterMetrics(cfg.Metrics)
	s.svc = newService(s)
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(collector{s.svc})
	}
	s.grpc = grpc.NewServer(api.ServerCredentials(cfg.TLS.ServerConfig()), grpc.MaxRecvMsgSize(api.MaxMessage), grpc.MaxSendMsgSize(api.MaxMessage),
		grpc.UnaryInterceptor(s.metrics.rpcs.ServerInterceptor))
	api.RegisterMasterServer(s.grpc, s.svc)
	s.wg.Add(1)
	go s.svc.leaderLoop()
	return s, nil
}

func setDefaults(c *Config) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, 500*time.Millisecond)
	def(&c.ElectionTimeout, 500*time.Millisecond)
	def(&c.SnapshotInterval, 30*time.Second)
	def(&c.SessionGrace, 5*time.Second)
	def(&c.ChunkLease, 60*time.Second)
	def(&c.ServerDeadAfter, 10*time.Second)
	def(&c.DeadAfter, 5*time.Minute)
	def(&c.FullReportInterval, 30*time.Second)
	def(&c.ChunkTokenLifetime, DefaultChunkTokenLifetime)
	def(&c.ChunkKeyRotation, DefaultChunkKeyRotation)
	if c.RepairConcurrency <= 0 {
		c.RepairConcurrency = 4
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
}

// lockDataDir creates dir if needed and takes an exclusive lock on it for
// the life of the process.
func lockDataDir(dir string) (*os.File, error) {
	if dir == "" {
		return nil, errors.New("-data: empty")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("-data %s: %w", dir, err)
	}
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("-data %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		pid, _ := io.ReadAll(io.LimitReader(f, 32))
		f.Close()
		return nil, fmt.Errorf("-data %s: already in use by another dfsmaster (pid %s)", dir, strings.TrimSpace(string(pid)))
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return f, nil
}

func (s *Server) openRaft() error {
	cfg := s.cfg
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = min(cfg.HeartbeatTimeout, 500*time.Millisecond)
	rc.CommitTimeout = 5 * time.Millisecond
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = 10240
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: os.Stderr})
	notify := make(chan bool, 16)
	rc.NotifyCh = notify

	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db")})
	if err != nil {
		return fmt.Errorf("-data %s: raft store: %w", cfg.DataDir, err)
	}
	s.store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 3, rc.Logger)
	if err != nil {
		return fmt.Errorf("-data %s: snapshots: %w", cfg.DataDir, err)
	}
	// Bind first with the exact address so a port in use is reported as such.
	advertise, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("-raft %s: %w", cfg.RaftAddr, err)
	}
	var trans *raft.NetworkTransport
	if cfg.TLS == nil {
		trans, err = raft.NewTCPTransportWithLogger(cfg.RaftAddr, advertise, 3, 5*time.Second, rc.Logger)
	} else {
		var stream *tlsStream
		if stream, err = newTLSStream(cfg.RaftAddr, advertise, cfg.TLS.ServerConfig(), cfg.TLS.ClientConfig()); err == nil {
			trans = raft.NewNetworkTransportWithLogger(stream, 3, 5*time.Second, rc.Logger)
		}
	}
	if err != nil {
		return fmt.Errorf("-raft %s: %w", cfg.RaftAddr, err)
	}
	s.trans = trans
	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("-data %s: %w", cfg.DataDir, err)
	}
	if !existing && cfg.Join {
		s.log.Info("no Raft state: waiting to be added to a group (dfsctl members add)", "id", cfg.ID, "raft", cfg.RaftAddr)
	}
	if existing && cfg.Restore != "" {
		return fmt.Errorf("-restore: -data %s already holds Raft state; restore into an empty data directory", cfg.DataDir)
	}
	if !existing && !cfg.Join {
		var servers []raft.Server
		for id, addr := range cfg.Cluster {
			servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr), Suffrage: raft.Voter})
		}
		sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
		conf := raft.Configuration{Servers: servers}
		if cfg.Restore != "" {
			if err := restoreBackup(cfg.Restore, snaps, trans, conf); err != nil {
				return err
			}
			s.log.Info("restored from backup", "file", cfg.Restore)
		} else if err := raft.BootstrapCluster(rc, store, store, snaps, trans, conf); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	// Recent entries are kept in memory: replicating them to followers
	// then reads no bolt pages and decodes nothing. Writes still go to
	// the store before Raft counts them.
	logs, err := raft.NewLogCache(logCacheSize, store)
	if err != nil {
		return fmt.Errorf("raft log cache: %w", err)
	}
	if existing {
		// Before it restarted, this master may have answered a leader's
		// heartbeat that granted that leader a read lease; having
		// forgotten its leader, it would vote at once. Waiting out the
		// lease keeps the leader's promise (see verifier).
		time.Sleep(readLease(cfg))
	}
	r, err := raft.NewRaft(rc, s.fsm, logs, store, snaps, trans)
	if err != nil {
		return fmt.Errorf("raft: %w", err)
	}
	s.raft = r
	s.notify = notify
	return nil
}

// readLease is how long a confirmed leadership round vouches for reads:
// half the heartbeat timeout, a wide margin for clocks that run at
// slightly different rates.
func readLease(cfg Config) time.Duration { return cfg.HeartbeatTimeout / 2 }

// logCacheSize is how many recent Raft entries the leader keeps in memory
// for replication (each entry is one batch of commands).
const logCacheSize = 1024

// Serve answers gRPC calls until Close.
func (s *Server) Serve() error {
	err := s.grpc.Serve(s.lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Addr is the client listener's address.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Shutdown stops the master gracefully within about drain: a leader first
// starts no new chunk repairs and lets those running finish (for up to
// half of drain), then hands its leadership to another voter (so clients fail over at once
// instead of waiting for an election timeout), then the gRPC server stops
// taking calls and lets those in flight finish; whatever is still running
// when drain is up is cut off. Then it closes as Close does.
func (s *Server) Shutdown(drain time.Duration) error {
	deadline := time.Now().Add(drain)
	s.drainOnce.Do(func() { close(s.draining) })
	if s.raft != nil && s.raft.State() == raft.Leader && s.voters() > 1 {
		// Repairs in flight finish first (none start now), within half
		// the drain time.
		if s.svc != nil && !s.svc.repair.awaitIdle(time.Now().Add(drain/2)) {
			s.log.Warn("repairs still running at half the drain timeout; handing leadership over anyway")
		}
		start := time.Now()
		if s.svc != nil {
			s.svc.verify.endLeases() // the target may be elected at once
		}
		f := s.raft.LeadershipTransfer()
		done := make(chan error, 1)
		go func() { done <- f.Error() }()
		select {
		case err := <-done:
			if err != nil {
				s.log.Warn("leadership transfer failed; stopping anyway", "err", err)
			} else {
				// Wait to hear from the new leader, so that calls
				// refused while draining name it as the leader.
				id := s.awaitOtherLeader(deadline)
				s.log.Info("handed leadership over", "to", id, "took", time.Since(start).Round(time.Millisecond))
			}
		case <-time.After(time.Until(deadline)):
			s.log.Warn("leadership transfer did not finish within the drain timeout; stopping anyway")
		}
	}
	if s.grpc != nil {
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(time.Until(deadline)):
			s.log.Warn("calls still running at the drain timeout; cutting them off", "drain-timeout", drain)
			s.grpc.Stop()
			<-stopped
		}
	}
	return s.Close()
}

// awaitOtherLeader waits, until deadline or for at most a few election
// timeouts, to learn of a leader other than this master, and returns its
// id ("" if none was heard of in time).
func (s *Server) awaitOtherLeader(deadline time.Time) string {
	limit := time.Now().Add(4 * s.cfg.ElectionTimeout)
	if deadline.Before(limit) {
		limit = deadline
	}
	for {
		if _, id := s.raft.LeaderWithID(); id != "" && string(id) != s.cfg.ID {
			return string(id)
		}
		if time.Now().After(limit) {
			return ""
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// voters counts the voting members of the Raft configuration.
func (s *Server) voters() int {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	n := 0
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}

// Close stops the master at once, cutting off calls in flight; its state
// stays on disk.
func (s *Server) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	if s.grpc != nil {
		s.grpc.Stop()
	}
	s.wg.Wait()
	if s.svc != nil {
		s.svc.close()
	}
	if s.raft != nil {
		if err := s.raft.Shutdown().Error(); err != nil {
			s.log.Warn("raft shutdown", "err", err)
		}
	}
	s.closeStores()
	return nil
}

func (s *Server) closeStores() {
	if s.trans != nil {
		s.trans.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
	if s.lock != nil {
		s.lock.Close()
	}
}

// Raft exposes the Raft node for tests and admin tooling.
func (s *Server) Raft() *raft.Raft { return s.raft }
