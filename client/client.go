// Package client is the Go library that mounts and tools use to talk to a
// dfs cluster: it finds the master leader and retries across failovers,
// keeps the client session alive, numbers mutations so retries have one
// effect, and moves file data directly to and from chunkservers.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"dfs/api"
	"dfs/mtls"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Config says how to reach the cluster. Only Masters is required.
type Config struct {
	// Masters are master client addresses (any subset of the group).
	Masters []string
	// Name identifies the session to operators, e.g. "host:/mnt/dfs".
	Name string
	// SessionTTL is the session lease; keepalives go every TTL/3.
	// Default 10 s.
	SessionTTL time.Duration
	// CallTimeout bounds one master call including retries across
	// failovers. Default 30 s.
	CallTimeout time.Duration
	// AttemptTimeout bounds one attempt against one master or
	// chunkserver. Default 10 s.
	AttemptTimeout time.Duration
	// DataTimeout bounds one chunk read or write including new leases
	// and replica changes after failures. Default 60 s.
	DataTimeout time.Duration
	// Logf receives diagnostics; nil means log.Printf.
	Logf func(format string, args ...any)
	// NoLocalReads turns off reading the chunk files of chunkservers on
	// the same machine directly.
	NoLocalReads bool
	// TLS, if set, secures every connection to masters and chunkservers
	// with mutual TLS; nil is plaintext.
	TLS *mtls.Identity
}

// Client is a connection to one dfs cluster with one session. It is safe
// for concurrent use.
type Client struct {
	cfg   Config
	conns *connPool
	local *localReads

	mu      sync.Mutex
	masters []string // known master addresses, hint order
	leader  string   // last known leader, "" if unknown
	session uint64
	nextSeq uint64
	pending map[uint64]int // seq -> in-flight count: acked = lowest pending
	// validUntil is when the session may expire on the masters, by this
	// host's clock: the send time of the last renewal they answered plus
	// the TTL (the masters start counting later).
	validUntil time.Time
	// reported: bad chunk copies already reported to the master
	reported map[badKey]bool
	// releases are opens of session releasesOf ended and not yet sent
	// (release.go).
	releases    []uint64
	releasesOf  uint64
	releaseKick chan struct{}
	acc         *accesses // access-time updates waiting (access.go)
	// held lists the inodes opened with OpenUnrecorded and not yet
	// closed; keepalives report it, naming the leader's last answer
	// (heldEpoch, heldToken).
	held      func() []uint64
	heldEpoch int64
	heldToken uint64

	// changes counts the mutations this client sent whose answers are
	// in (or lost): a cache filled before one may miss its effect.
	changes atomic.Uint64

	closed chan struct{}
	wg     sync.WaitGroup
}

// New connects to the masters, opens a session and starts keeping it
// alive. It fails if no master answers before ctx ends.
func New(ctx context.Context, cfg Config) (*Client, error) {
	var masters []string
	for _, m := range cfg.Masters {
		if m = strings.TrimSpace(m); m != "" {
			masters = append(masters, m)
		}
	}
	if len(masters) == 0 {
		return nil, errors.New("client: no master addresses")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 10 * time.Second
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 10 * time.Second
	}
	if cfg.DataTimeout <= 0 {
		cfg.DataTimeout = 60 * time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	if cfg.Name == "" {
		host, _ := os.Hostname()
		cfg.Name = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	c := &Client{
		cfg:         cfg,
		conns:       newConnPool(cfg.TLS.ClientConfig()),
		local:       newLocalReads(!cfg.NoLocalReads),
		masters:     masters,
		pending:     map[uint64]int{},
		closed:      make(chan struct{}),
		releaseKick: make(chan struct{}, 1),
		acc:         newAccesses(),
	}
	if err := c.openSession(ctx); err != nil {
		c.conns.close()
		return nil, fmt.Errorf("client: open session with masters %s: %w", strings.Join(masters, ","), err)
	}
	c.wg.Add(3)
	go c.keepAlive()
	go c.releaser()
	go c.accesser()
	return c, nil
}

// Close ends the session (releasing its open-file records) and drops
// every connection. The client must not be used afterwards.
func (c *Client) Close(ctx context.Context) error {
	select {
	case <-c.closed:
		return nil
	default:
	}
	c.acc.closing = ctx // the last access times go within Close's time
	close(c.closed)
	c.wg.Wait()
	_, err := c.mutate(ctx, &api.Op{Op: &api.Op_CloseSession{CloseSession: &api.CloseSessionOp{}}})
	c.conns.close()
	c.local.close()
	return err
}

// Session returns the current session id.
func (c *Client) Session() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

func (c *Client) openSession(ctx context.Context) error {
	op := &api.Op{Op: &api.Op_OpenSession{OpenSession: &api.OpenSessionOp{
		Client: c.cfg.Name, TtlNs: int64(c.cfg.SessionTTL),
	}}}
	var resp *api.MutateResponse
	var sent time.Time
	err := c.callMaster(ctx, func(ctx context.Context, m api.MasterClient) error {
		var err error
		sent = time.Now()
		resp, err = m.Mutate(ctx, &api.MutateRequest{Op: op})
		return err
	})
	if err != nil {
		return err
	}
	if err := resp.Errno.Err(); err != nil {
		return fmt.Errorf("%w: %s", err, resp.Message)
	}
	c.mu.Lock()
	c.session = resp.Session
	c.validUntil = sent.Add(c.cfg.SessionTTL)
	c.heldEpoch, c.heldToken = 0, 0
	c.nextSeq = 1
	clear(c.pending)
	c.mu.Unlock()
	return nil
}

// keepAlive renews the session every TTL/3 and opens a new one if the
// masters say it expired.
func (c *Client) keepAlive() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.SessionTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.SessionTTL)
		go func() {
			select {
			case <-c.closed:
				cancel()
			case <-ctx.Done():
			}
		}()
		sess := c.Session()
		var resp *api.KeepAliveResponse
		var sent time.Time
		err := c.callMaster(ctx, func(ctx context.Context, m api.MasterClient) error {
			var err error
			sent = time.Now()
			resp, err = m.KeepAlive(ctx, c.keepAliveRequest(sess))
			return err
		})
		if err == nil && resp.Errno == api.Errno_OK {
			c.renewed(sess, sent)
			c.mu.Lock()
			if c.session == sess {
				c.heldEpoch, c.heldToken = resp.Epoch, resp.Token
			}
			c.mu.Unlock()
		}
		if err == nil && resp.Errno == api.Errno_ENOENT {
			c.cfg.Logf("dfs client: session %d expired; opening a new one", sess)
			err = c.openSession(ctx)
		}
		if err != nil {
			select {
			case <-c.closed:
			default:
				c.cfg.Logf("dfs client: keepalive: %v", err)
			}
		}
		cancel()
	}
}

// callMaster runs f against the leader, following NotLeader hints and
// retrying with backoff on unavailability until ctx or the call timeout
// ends. f must be safe to repeat (reads, or mutations carrying a fixed
// seq).
func (c *Client) callMaster(ctx context.Context, f func(context.Context, api.MasterClient) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	backoff := 20 * time.Millisecond
	next := 0 // round-robin position when the leader is unknown
	var lastErr error
	for attempt := 0; ; attempt++ {
		addr := c.pickMaster(&next)
		conn, err := c.conns.get(addr)
		if err == nil {
			actx, acancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
			err = f(actx, api.NewMasterClient(conn))
			acancel()
			if err == nil {
				c.mu.Lock()
				c.leader = addr
				c.mu.Unlock()
				return nil
			}
		}
		lastErr = err
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), lastErr)
		}
		hint, isHint := api.LeaderHint(err)
		c.mu.Lock()
		if isHint {
			c.learnMasters(hint.Masters)
			c.leader = hint.LeaderAddr
		} else {
			c.leader = ""
		}
		leaderKnown := c.leader != "" && c.leader != addr
		c.mu.Unlock()
		if !retryable(err) {
			return err
		}
		if leaderKnown {
			continue // go straight to the named leader
		}
		// No leader (election) or this master is unreachable: wait a
		// little so a failover can finish, then try the next one.
		d := backoff/2 + rand.N(backoff)
		// Capped low: on a LAN a new leader is ready well under a
		// second after the election, and waiting longer than that
		// is what users would see of a failover.
		backoff = min(2*backoff, 250*time.Millisecond)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), lastErr)
		}
	}
}

// pickMaster returns the leader if known, else the next master round-robin.
func (c *Client) pickMaster(next *int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader != "" {
		return c.leader
	}
	addr := c.masters[*next%len(c.masters)]
	*next++
	return addr
}

func (c *Client) learnMasters(ms []string) {
	for _, m := range ms {
		found := false
		for _, k := range c.masters {
			if k == m {
				found = true
				break
			}
		}
		if !found && m != "" {
			c.masters = append(c.masters, m)
		}
	}
}

// retryable says whether a transport error may go away by trying again
// (or elsewhere).
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted, codes.Canceled, codes.Unknown, codes.Internal:
		return true
	}
	return false
}

// mutate sends one mutation with a fresh seq, retrying with that same seq
// until it gets an answer.
func (c *Client) mutate(ctx context.Context, op *api.Op) (*api.MutateResponse, error) {
	return c.mutateWith(ctx, op, nil)
}

// mutateWith is mutate carrying the session's waiting releases and more.
func (c *Client) mutateWith(ctx context.Context, op *api.Op, releases []uint64) (*api.MutateResponse, error) {
	sess, seq, done := c.reserveSeq()
	defer done()
	req := &api.MutateRequest{Session: sess, Seq: seq, Caller: callerOf(ctx), Op: op,
		Releases: append(c.takeReleases(sess), releases...)}
	return c.send(ctx, req)
}

// Changes is a number that moves on whenever a mutation this client sent
// may have taken effect: what was read before it moved may predate one.
func (c *Client) Changes() uint64 { return c.changes.Load() }

// reserveSeq takes the next request identity of the session. The seq
// stays pending, so the master keeps its answer, until done is called.
func (c *Client) reserveSeq() (sess, seq uint64, done func()) {
	c.mu.Lock()
	sess, seq = c.session, c.nextSeq
	c.nextSeq++
	c.pending[seq]++
	c.mu.Unlock()
	return sess, seq, func() {
		c.mu.Lock()
		if c.session == sess {
			if c.pending[seq]--; c.pending[seq] <= 0 {
				delete(c.pending, seq)
			}
		}
		c.mu.Unlock()
	}
}

// send delivers req to the leader, retrying it unchanged until answered.
func (c *Client) send(ctx context.Context, req *api.MutateRequest) (*api.MutateResponse, error) {
	switch req.Op.GetOp().(type) {
	case *api.Op_Release:
		// Releases of opens (sent in the background, in batches) change
		// nothing a lookup or stat shows.
	case *api.Op_Access:
		// Access times: the caller keeps track of those it changed.
	default:
		defer c.changes.Add(1)
	}
	var resp *api.MutateResponse
	err := c.callMaster(ctx, func(ctx context.Context, m api.MasterClient) error {
		req.Acked = c.lowestPending(req.Session, req.Seq)
		var err error
		resp, err = m.Mutate(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (c *Client) lowestPending(sess, seq uint64) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	low := seq
	if c.session != sess {
		return low
	}
	for s := range c.pending {
		if s < low {
			low = s
		}
	}
	return low
}

type callerKey struct{}

// WithCaller returns a context whose calls are made on behalf of the
// given caller: new inodes take its uid and gid, and the master checks
// every namespace call against its uid, gid and groups. Without one,
// calls are made as this process (its real uid, gid and groups).
func WithCaller(ctx context.Context, caller *api.Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, caller)
}

func callerOf(ctx context.Context) *api.Caller {
	if c, ok := ctx.Value(callerKey{}).(*api.Caller); ok {
		return c
	}
	return processCaller()
}

// processCaller is this process as a caller, read once.
var processCaller = sync.OnceValue(func() *api.Caller {
	c := &api.Caller{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), Pid: uint32(os.Getpid())}
	gs, _ := os.Getgroups()
	for _, g := range gs {
		c.Groups = append(c.Groups, uint32(g))
	}
	return c
})

// connPool keeps one gRPC connection per address.
type connPool struct {
	tls   *tls.Config // nil: plaintext
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newConnPool(conf *tls.Config) *connPool {
	return &connPool{tls: conf, conns: map[string]*grpc.ClientConn{}}
}

func (p *connPool) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc, ok := p.conns[addr]; ok {
		return cc, nil
	}
	cc, err := api.DialData(addr, p.tls, grpc.WithUnaryInterceptor(rpcs.ClientInterceptor))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dial %s: %v", addr, err)
	}
	p.conns[addr] = cc
	return cc, nil
}

func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, cc := range p.conns {
		cc.Close()
		delete(p.conns, a)
	}
}
