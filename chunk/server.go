package chunk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"dfs/api"
	"dfs/chunktoken"
	"dfs/mtls"
)

// Config is what a chunkserver needs. Only DataDir is required.
type Config struct {
	DataDir    string        // holds the server id, LOCK and, for the disk store, the chunks
	Listen     string        // service address; default 127.0.0.1:9600, port 0 picks one
	Masters    []string      // master client addresses; none: no heartbeats
	Zone       string        // failure-domain label reported to the master
	Capacity   uint64        // bytes offered; 0: the size of DataDir's file system
	Heartbeat  time.Duration // interval between heartbeats; default 1s
	RPCTimeout time.Duration // deadline of each outbound call; default 10s
	Logger     *slog.Logger  // default slog.Default()
	// ScrubRate is how many bytes per second the background scrubber
	// re-reads and verifies; 0 turns the scrubber off.
	ScrubRate uint64
	// ScrubPause is the pause between two full scrub passes; default 1h.
	ScrubPause time.Duration
	Store      Store // nil: a DiskStore in DataDir; the Server closes it
	// Registered, if set, is called once, when the master leader first
	// accepts a heartbeat (dfschunk tells systemd).
	Registered func()
	// Metrics, if set, receives the chunkserver's Prometheus metrics
	// (bytes, space, RPCs): the process's registry, which takes one
	// Server (NewServer registers fixed names).
	Metrics prometheus.Registerer
	// TLS, if set, makes the service accept only mutual-TLS connections
	// from holders of the cluster CA's certificates, and secures this
	// server's own calls (heartbeats, forwarding, copies); nil is
	// plaintext.
	TLS *mtls.Identity
}

// ConfigError reports a bad setting; Field is the Config field's flag name
// ("data", "listen", ...), so that a command can name its flag.
type ConfigError struct {
	Field, Value string
	Err          error
}

func (e *ConfigError) Error() string {
	var le *LockedError
	if errors.As(e.Err, &le) {
		return fmt.Sprintf("%s %s: %s", e.Field, e.Value, le.detail())
	}
	return fmt.Sprintf("%s %s: %v", e.Field, e.Value, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Server is a chunkserver: the api.ChunkServer service over a Store, plus
// heartbeats to the master leader.
type Server struct {
	api.UnimplementedChunkServerServer

	cfg    Config
	id     string
	store  Store
	lock   *os.File // DataDir's lock when the Store does not hold it
	bootID string   // this machine's boot id, for short-circuit reads
	ln     net.Listener
	grpc   *grpc.Server
	peers  *peerPool
	keys   chunktoken.Keyring // chunk token keys, from the master's heartbeat answers
	log    *slog.Logger
	cancel context.CancelFunc
	ctx    context.Context
	bg     sync.WaitGroup

	mu      sync.Mutex
	chunks  map[Key]*chunkState
	corrupt corruptSet     // chunks that failed verification, for the master
	ecClean map[Key]uint64 // EC chunks led here -> version at which data and parity agree

	undos   *undoLog      // EC shards' undo records (chunk/ecundo.go)
	undoSeq atomic.Uint64 // ids of the EC writes this server leads

	metrics *serverMetrics

	closeOnce sync.Once
}

var _ api.ChunkServerServer = (*Server)(nil)

// chunkState is the service's per-chunk state; it exists while a call uses
// the chunk or a lease on it is live.
type chunkState struct {
	order chan struct{} // a one-slot lock ordering writes and version changes
	refs  int           // guarded by Server.mu
	lease time.Time     // guarded by Server.mu: our write lease ends here; zero if not primary
	// fresh: this server created the chunk, new (SetChunk's new_chunk)
	// at version 1, as its primary and has not written it since
	// (guarded by order): see ecWrite.
	fresh bool
}

// NewServer opens the data directory and binds the listen address; Serve
// starts serving. The data directory is locked until Close.
func NewServer(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, &ConfigError{"data", `""`, errors.New("a data directory is required")}
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:9600"
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.RPCTimeout <= 0 {
		cfg.RPCTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ScrubPause <= 0 {
		cfg.ScrubPause = time.Hour
	}
	s := &Server{cfg: cfg, log: cfg.Logger, peers: newPeerPool(cfg.TLS.ClientConfig()), chunks: make(map[Key]*chunkState), corrupt: corruptSet{}, bootID: BootID()}
	s.metrics = newServerMetrics(cfg.Metrics)
	if err := s.open(); err != nil {
		s.closeStore()
		return nil, err
	}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(s)
	}
	return s, nil
}

func (s *Server) open() error {
	dataErr := func(err error) error { return &ConfigError{"data", s.cfg.DataDir, err} }
	if fi, err := os.Stat(s.cfg.DataDir); err == nil && !fi.IsDir() {
		return dataErr(errors.New("not a directory"))
	}
	if s.cfg.Store == nil {
		ds, err := OpenDisk(s.cfg.DataDir, DiskOptions{Logger: s.log})
		if err != nil {
			return dataErr(err)
		}
		s.store = ds
	} else {
		if err := os.MkdirAll(s.cfg.DataDir, 0o755); err != nil {
			return dataErr(err)
		}
		l, err := lockDir(s.cfg.DataDir)
		if err != nil {
			return dataErr(err)
		}
		s.lock, s.store = l, s.cfg.Store
	}
	id, err := loadID(s.cfg.DataDir)
	if err != nil {
		return dataErr(err)
	}
	s.id = id
	if s.undos, err = openUndo(s.cfg.DataDir); err != nil {
		return dataErr(err)
	}
	if err := s.undos.prune(func(k Key) bool { _, err := s.store.Stat(k); return !errors.Is(err, ErrNotFound) }); err != nil {
		return dataErr(err)
	}
	// Ids grow across restarts, so that a write led after one sorts after
	// those led before it.
	s.undoSeq.Store(uint64(time.Now().UnixNano()))
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err
		}
		return &ConfigError{"listen", s.cfg.Listen, err}
	}
	s.ln = ln
	s.grpc = grpc.NewServer(append(api.BulkServerOptions(), api.ServerCredentials(s.cfg.TLS.ServerConfig()), grpc.MaxRecvMsgSize(api.MaxMessage), grpc.MaxSendMsgSize(api.MaxMessage),
		grpc.UnaryInterceptor(s.metrics.rpcs.ServerInterceptor))...)
	api.RegisterChunkServerServer(s.grpc, s)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return nil
}

// loadID returns the server id stored in dir/id, creating it on first use.
func loadID(dir string) (string, error) {
	p := filepath.Join(dir, "id")
	b, err := os.ReadFile(p)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id == "" {
			return "", fmt.Errorf("%s: empty server id", p)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	r := make([]byte, 8)
	rand.Read(r)
	id := "cs-" + hex.EncodeToString(r)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", err
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return "", err
	}
	return id, nil
}

// ID is the server's persistent id, as the master knows it.
func (s *Server) ID() string { return s.id }

// Addr is the address the service listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Store is the store the server serves.
func (s *Server) Store() Store { return s.store }

// Serve serves the chunk service and sends heartbeats until Close; it
// returns nil after Close.
func (s *Server) Serve() error {
	if len(s.cfg.Masters) > 0 {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.heartbeatLoop(s.ctx)
		}()
	}
	if s.cfg.ScrubRate > 0 {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.scrubLoop(s.ctx)
		}()
	}
	s.log.Info("chunkserver serving", "id", s.id, "addr", s.Addr(), "data", s.cfg.DataDir)
	err := s.grpc.Serve(s.ln)
	if errors.Is(err, grpc.ErrServerStopped) || s.ctx.Err() != nil {
		return nil
	}
	return err
}

// DefaultDrain is how long Close lets calls in flight finish.
const DefaultDrain = 5 * time.Second

// Close stops the server as Shutdown(DefaultDrain) does.
func (s *Server) Close() error { return s.Shutdown(DefaultDrain) }

// Shutdown stops the server: it takes no new calls, lets the reads,
// writes and forwards in flight finish for up to drain (then cuts them
// off), stops heartbeats and the scrubber, syncs and closes the store and
// unlocks the data directory. Heartbeats go on while calls drain, so the
// master does not count this server as gone before it is.
func (s *Server) Shutdown(drain time.Duration) error {
	var err error
	s.closeOnce.Do(func() {
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(drain):
			s.log.Warn("calls still running at the drain timeout; cutting them off", "drain-timeout", drain)
			s.grpc.Stop()
			<-done
		}
		s.cancel()
		s.ln.Close()
		s.bg.Wait()
		s.peers.close()
		err = s.closeStore()
	})
	return err
}

func (s *Server) closeStore() error {
	var err error
	if s.store != nil {
		err = s.store.Close()
	}
	if s.lock != nil {
		s.lock.Close()
	}
	return err
}

// state pins k's per-chunk state; release with put.
func (s *Server) state(k Key) *chunkState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.chunks[k]
	if st == nil {
		st = &chunkState{order: make(chan struct{}, 1)}
		s.chunks[k] = st
	}
	st.refs++
	return st
}

func (s *Server) put(k Key, st *chunkState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.refs--
	if st.refs == 0 && !time.Now().Before(st.lease) {
		delete(s.chunks, k)
	}
}

// lockChunk pins k's state and takes its order lock, waiting no longer
// than ctx allows. The returned func undoes both.
func (s *Server) lockChunk(ctx context.Context, k Key) (*chunkState, func(), error) {
	st := s.state(k)
	select {
	case st.order <- struct{}{}:
		return st, func() { <-st.order; s.put(k, st) }, nil
	case <-ctx.Done():
		s.put(k, st)
		return nil, nil, fmt.Errorf("%v: waiting for earlier writes: %w", k, api.Errno_EINTR)
	}
}

func (s *Server) leaseOf(st *chunkState) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return st.lease
}

func (s *Server) setLease(st *chunkState, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.lease = until
}

// authorize checks a call's chunk token before the call has any effect
// (docs/operations.md, "Chunk tokens"). Refusals of tokens that were
// never valid are logged as warnings; expired tokens and keys not yet
// known are the normal course of things.
func (s *Server) authorize(call string, t *api.ChunkToken, id uint64, need api.ChunkToken_Access) error {
	err := s.keys.Check(t, id, need)
	if err != nil {
		level := slog.LevelDebug
		if errors.Is(err, api.Errno_EACCES) {
			level = slog.LevelWarn
		}
		s.log.Log(context.Background(), level, "chunk call refused", "call", call, "err", err)
	}
	return err
}

// peerTokenLifetime is the lifetime of the tokens a chunkserver signs for
// its calls to other chunkservers, each made for one call it authorized.
const peerTokenLifetime = time.Minute

// peerToken signs a token for a call to another chunkserver.
func (s *Server) peerToken(id uint64, access api.ChunkToken_Access) *api.ChunkToken {
	return s.keys.Sign(id, access, peerTokenLifetime)
}

// answer turns an error into an errno and a message for the wire.
func answer(err error) (api.Errno, string) {
	if err == nil {
		return api.Errno_OK, ""
	}
	return api.ErrnoOf(err), err.Error()
}

// checkExtents refuses a vectored write that also carries single-write
// fields, holds more than one write's worth of data, or reaches beyond
// any chunk.
func checkExtents(k Key, req *api.WriteRequest) error {
	if len(req.Extents) == 0 {
		return nil
	}
	if len(req.Data) > 0 || req.ZeroLength > 0 || req.Offset > 0 {
		return fmt.Errorf("%v: write carries both extents and offset/data/zero_length: %w", k, ErrInvalid)
	}
	total := 0
	for _, e := range req.Extents {
		total += len(e.Data)
		if _, _, err := offsets(k, e.Offset, uint64(len(e.Data))); err != nil {
			return err
		}
	}
	if total > api.MaxWrite {
		return fmt.Errorf("%v: write of %d bytes in %d extents exceeds %d: %w", k, total, len(req.Extents), api.MaxWrite, ErrInvalid)
	}
	return nil
}

// offsets converts wire offsets, refusing ones no chunk can hold.
func offsets(k Key, off, n uint64) (int64, int64, error) {
	if off > MaxChunkSize || n > MaxChunkSize {
		return 0, 0, fmt.Errorf("%v: range [%d, +%d) beyond any chunk: %w", k, off, n, ErrTooBig)
	}
	return int64(off), int64(n), nil
}

// SetChunk creates the chunk if absent, adopts the version and takes or
// drops the write lease.
func (s *Server) SetChunk(ctx context.Context, req *api.SetChunkRequest) (*api.SetChunkResponse, error) {
	received := time.Now()
	k := Key{req.Id, req.Shard}
	err := s.authorize("SetChunk", req.Token, req.Id, api.ChunkToken_MASTER)
	if err == nil {
		err = s.setChunk(ctx, k, req, received)
	}
	errno, msg := answer(err)
	if errno != api.Errno_OK {
		s.log.Debug("SetChunk refused", "chunk", k, "err", msg)
	}
	return &api.SetChunkResponse{Errno: errno, Message: msg}, nil
}

func (s *Server) setChunk(ctx context.Context, k Key, req *api.SetChunkRequest, received time.Time) error {
	cs := req.ChunkSize
	if cs == 0 {
		cs = api.DefaultChunkSize
	}
	st, unlock, err := s.lockChunk(ctx, k)
	if err != nil {
		return err
	}
	defer unlock()
	info, err := s.store.Stat(k)
	st.fresh = false
	switch {
	case errors.Is(err, ErrNotFound):
		if err = s.roomFor(k, cs); err == nil {
			err = s.store.Create(k, req.Version, cs)
		}
		// Only the master knows the chunk is new: a later push of the
		// same version can reach a server that lost its copy.
		st.fresh = err == nil && req.NewChunk && req.Version == 1 && req.Primary == s.id
	case err != nil:
	case info.Version > req.Version:
		err = fmt.Errorf("%v: holds version %d, newer than %d: %w", k, info.Version, req.Version, ErrStale)
	default:
		err = s.store.SetVersion(k, req.Version)
	}
	if err != nil {
		return err
	}
	s.ecNewVersion(k, info.Version, req.Version, req.Primary == s.id)
	var lease time.Time
	if req.Primary == s.id {
		lease = received.Add(time.Duration(req.LeaseNs))
	}
	s.setLease(st, lease)
	return nil
}

// Write applies a write in the chunk's order and, on the primary, forwards
// it to the other replicas.
func (s *Server) Write(ctx context.Context, req *api.WriteRequest) (*api.WriteResponse, error) {
	k := Key{req.Id, req.Shard}
	need := api.ChunkToken_WRITE
	if req.Reencode {
		need = api.ChunkToken_MASTER
	}
	if err := s.authorize("Write", req.Token, req.Id, need); err != nil {
		errno, msg := answer(err)
		return &api.WriteResponse{Errno: errno, Message: msg}, nil
	}
	failed, err := s.write(ctx, k, req)
	errno, msg := answer(err)
	if errno != api.Errno_OK && errno != api.Errno_EAGAIN && errno != api.Errno_ESTALE {
		s.log.Warn("write failed", "chunk", k, "forwarded", req.Forwarded, "err", msg)
	}
	return &api.WriteResponse{Errno: errno, Message: msg, Failed: failed}, nil
}

func (s *Server) write(ctx context.Context, k Key, req *api.WriteRequest) ([]string, error) {
	if len(req.Data) > api.MaxWrite {
		return nil, fmt.Errorf("%v: write of %d bytes exceeds %d: %w", k, len(req.Data), api.MaxWrite, ErrInvalid)
	}
	if req.ZeroLength > 0 && len(req.Data) > 0 {
		return nil, fmt.Errorf("%v: write carries both data and zero_length: %w", k, ErrInvalid)
	}
	if err := checkExtents(k, req); err != nil {
		return nil, err
	}
	off, zn, err := offsets(k, req.Offset, req.ZeroLength)
	if err != nil {
		return nil, err
	}
	st, unlock, err := s.lockChunk(ctx, k)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if !req.Forwarded && (req.DataShards > 0 || k.Shard > 0) {
		return s.ecWrite(ctx, k, st, req) // chunk/ecwrite.go
	}
	if !req.Forwarded {
		switch lease := s.leaseOf(st); {
		case lease.IsZero():
			return nil, fmt.Errorf("%v: not primary: %w", k, api.Errno_EAGAIN)
		case !time.Now().Before(lease):
			return nil, fmt.Errorf("%v: lease expired: %w", k, api.Errno_EAGAIN)
		}
	}
	info, err := s.store.Stat(k)
	if err != nil {
		return nil, err
	}
	if info.Version != req.Version {
		return nil, fmt.Errorf("%v: holds version %d, write is for %d: %w", k, info.Version, req.Version, ErrStale)
	}
	reason := writePrimary
	if req.Forwarded {
		reason = writeForwarded
	}
	apply := func() error {
		var err error
		switch {
		case len(req.Extents) > 0:
			for _, e := range req.Extents {
				if err = s.writeAt(k, e.Data, int64(e.Offset), reason); err != nil {
					break
				}
			}
		case zn > 0:
			// Zeroing past the chunk's end means "to the end".
			err = s.store.Zero(k, off, min(zn, max(int64(info.ChunkSize)-off, 0)))
		default:
			err = s.writeAt(k, req.Data, off, reason)
		}
		if err == nil && req.Sync {
			err = s.syncChunk(k)
		}
		return err
	}
	if req.Forwarded {
		if err := s.undoBegin(k, info, req); err != nil {
			return nil, err
		}
		if err := apply(); err != nil {
			return nil, err
		}
		return nil, s.undoAdvance(k, req)
	}
	// A write every replica would refuse is refused before it is sent on.
	if zn == 0 {
		if err := checkRange(k, off, int64(len(req.Data)), info.ChunkSize); err != nil {
			return nil, err
		}
	}
	for _, e := range req.Extents {
		if err := checkRange(k, int64(e.Offset), int64(len(e.Data)), info.ChunkSize); err != nil {
			return nil, err
		}
	}
	// The primary applies the write while it forwards it: the replicas'
	// copies and its own proceed at once. The chunk stays locked until
	// both are done, so writes still reach every replica in one order.
	fwd := &api.WriteRequest{Id: req.Id, Shard: req.Shard, Version: req.Version, Offset: req.Offset,
		Data: req.Data, ZeroLength: req.ZeroLength, Forwarded: true, Sync: req.Sync, Extents: req.Extents,
		Token: s.peerToken(req.Id, api.ChunkToken_WRITE)}
	var (
		failed []string
		fwdErr error
		done   = make(chan struct{})
	)
	go func() {
		defer close(done)
		failed, fwdErr = s.forward(ctx, k, req.Forward, "write", func(ctx context.Context, c api.ChunkServerClient) (api.Errno, string, error) {
			r, err := c.Write(ctx, fwd)
			return r.GetErrno(), r.GetMessage(), err
		})
	}()
	err = apply()
	<-done
	if err != nil {
		others := 0
		for _, r := range req.Forward {
			if r.Server != s.id {
				others++
			}
		}
		if len(failed) == others {
			return nil, err // no copy took it: the chunk is as it was
		}
		// Replicas took a write the primary could not apply: it must
		// leave the set rather than diverge from them.
		return append(failed, s.id), fmt.Errorf("%v: primary could not apply the write its replicas took: %v: %w", k, err, api.Errno_EIO)
	}
	return failed, fwdErr
}

// forward runs call on every replica in to except this server, in
// parallel, and returns the ids of those that failed with an EIO naming
// them. Forwarding survives the caller giving up: replicas must not miss
// a write the primary applied.
func (s *Server) forward(ctx context.Context, k Key, to []*api.Replica, what string,
	call func(context.Context, api.ChunkServerClient) (api.Errno, string, error)) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RPCTimeout)
	defer cancel()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []string
		why    []string
	)
	for _, r := range to {
		if r.Server == s.id {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var msg string
			if c, err := s.peers.client(r.Addr); err != nil {
				msg = err.Error()
			} else if errno, m, err := untilKeyed(ctx, c, call); err != nil {
				msg = err.Error()
			} else if errno != api.Errno_OK {
				msg = fmt.Sprintf("%v: %s", errno, m)
			} else {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			failed = append(failed, r.Server)
			why = append(why, fmt.Sprintf("%s (%s): %s", r.Server, r.Addr, msg))
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		return failed, fmt.Errorf("%v: %s failed on %d replica(s): %s: %w", k, what, len(failed), strings.Join(why, "; "), api.Errno_EIO)
	}
	return nil, nil
}

// untilKeyed runs call again while the peer answers ENOKEY, until ctx
// ends: a peer that has just started learns the chunk keys with its first
// heartbeat, and is not to be dropped from a chunk for that.
func untilKeyed(ctx context.Context, c api.ChunkServerClient,
	call func(context.Context, api.ChunkServerClient) (api.Errno, string, error)) (api.Errno, string, error) {
	for {
		errno, msg, err := call(ctx, c)
		if err != nil || errno != api.Errno_ENOKEY {
			return errno, msg, err
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return errno, msg, err
		}
	}
}

// Read returns chunk data after verifying its checksums.
func (s *Server) Read(ctx context.Context, req *api.ReadRequest) (*api.ReadResponse, error) {
	k := Key{req.Id, req.Shard}
	if err := s.authorize("Read", req.Token, req.Id, api.ChunkToken_READ); err != nil {
		errno, msg := answer(err)
		return &api.ReadResponse{Errno: errno, Message: msg}, nil
	}
	data, err := s.read(k, req)
	errno, msg := answer(err)
	var ce *CorruptError
	if errors.As(err, &ce) {
		s.log.Error("corrupt chunk data", "chunk", k, "block", ce.Block, "file", ce.Path, "err", ce.Detail)
		var version uint64
		if info, err := s.store.Stat(k); err == nil {
			version = info.Version
		}
		s.markCorrupt(k, version)
	}
	return &api.ReadResponse{Errno: errno, Data: data, Message: msg}, nil
}

// readable returns what k holds if that is version or newer: an older
// copy missed writes and must not be read.
func (s *Server) readable(k Key, version uint64) (Info, error) {
	info, err := s.store.Stat(k)
	if err == nil && info.Version < version {
		err = fmt.Errorf("%v: holds version %d, older than %d: %w", k, info.Version, version, ErrStale)
	}
	return info, err
}

func (s *Server) read(k Key, req *api.ReadRequest) ([]byte, error) {
	info, err := s.readable(k, req.Version)
	if err != nil {
		return nil, err
	}
	if req.Offset >= info.Length {
		return nil, nil
	}
	n := min(req.Length, api.MaxWrite, info.Length-req.Offset)
	buf := make([]byte, n)
	got, err := s.readAt(k, buf, int64(req.Offset), readRPC)
	if err != nil && got < len(buf) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:got], nil
}

// Sync makes the chunk durable here and on the replicas in forward.
func (s *Server) Sync(ctx context.Context, req *api.SyncRequest) (*api.SyncResponse, error) {
	k := Key{req.Id, req.Shard}
	err := s.authorize("Sync", req.Token, req.Id, api.ChunkToken_READ)
	if err == nil {
		err = s.syncChunk(k)
	}
	var failed []string
	if err == nil && len(req.Forward) > 0 {
		fwd := &api.SyncRequest{Id: req.Id, Shard: req.Shard, Token: s.peerToken(req.Id, api.ChunkToken_READ)}
		failed, err = s.forward(ctx, k, req.Forward, "sync", func(ctx context.Context, c api.ChunkServerClient) (api.Errno, string, error) {
			r, err := c.Sync(ctx, fwd)
			return r.GetErrno(), r.GetMessage(), err
		})
	}
	errno, msg := answer(err)
	return &api.SyncResponse{Errno: errno, Message: msg, Failed: failed}, nil
}
