package client

import (
	"context"
	"errors"
	"fmt"

	"dfs/api"
)

// replicated is the chunkIO of replicated layouts: every replica holds
// the whole chunk; writes go to the primary, which forwards them.
type replicated struct {
	c   *Client
	ino uint64 // the file, for reporting bad copies
}

func (r replicated) chunkServer(addr string) (api.ChunkServerClient, error) {
	cc, err := r.c.conns.get(addr)
	if err != nil {
		return nil, err
	}
	return api.NewChunkServerClient(cc), nil
}

// primary splits a chunk's replicas into its primary and the others.
func primary(ch *api.Chunk) (*api.Replica, []*api.Replica) {
	var p *api.Replica
	var rest []*api.Replica
	for _, r := range ch.Replicas {
		if r.Server == ch.Primary && p == nil {
			p = r
		} else {
			rest = append(rest, r)
		}
	}
	return p, rest
}

func (r replicated) send(ctx context.Context, ch *api.Chunk, req *api.WriteRequest) error {
	p, rest := primary(ch)
	if p == nil {
		return fmt.Errorf("chunk %d has no primary: %w", ch.Id, api.Errno_EAGAIN)
	}
	cs, err := r.chunkServer(p.Addr)
	if err != nil {
		return &replicaFailure{failed: []string{p.Server}, err: err}
	}
	req.Id, req.Version, req.Forward, req.Token = ch.Id, ch.Version, rest, ch.Token
	actx, cancel := context.WithTimeout(ctx, r.c.cfg.AttemptTimeout)
	defer cancel()
	resp, err := cs.Write(actx, req)
	return primaryOutcome(ctx, p, resp, err)
}

// primaryAnswer is what a primary answers to a write or a sync.
type primaryAnswer interface {
	GetErrno() api.Errno
	GetMessage() string
	GetFailed() []string
}

// primaryOutcome turns a primary's answer into the error the writer acts
// on: a replicaFailure names the replicas to drop (the primary itself when
// it is unreachable or could not apply the request).
func primaryOutcome(ctx context.Context, p *api.Replica, resp primaryAnswer, err error) error {
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return &replicaFailure{failed: []string{p.Server}, err: err}
	}
	err = errnoErr(resp.GetErrno(), resp.GetMessage())
	switch {
	case len(resp.GetFailed()) > 0:
		return &replicaFailure{failed: resp.GetFailed(), err: err}
	case resp.GetErrno() == api.Errno_EIO:
		return &replicaFailure{failed: []string{p.Server}, err: err}
	}
	return err
}

// replicaFailure is a write that some replicas of a chunk did not take;
// the writer reports them to the master and retries on the survivors.
type replicaFailure struct {
	failed []string
	err    error
}

func (e *replicaFailure) Error() string {
	return fmt.Sprintf("replicas %v failed: %v", e.failed, e.err)
}

func (e *replicaFailure) Unwrap() error { return e.err }

func (r replicated) write(ctx context.Context, ch *api.Chunk, off uint64, data []byte) error {
	return r.send(ctx, ch, &api.WriteRequest{Offset: off, Data: data})
}

func (r replicated) writev(ctx context.Context, ch *api.Chunk, pieces []*api.Extent) error {
	return r.send(ctx, ch, &api.WriteRequest{Extents: pieces})
}

func (r replicated) zero(ctx context.Context, ch *api.Chunk, off, n uint64) error {
	if n == 0 {
		return nil
	}
	return r.send(ctx, ch, &api.WriteRequest{Offset: off, ZeroLength: n})
}

func (r replicated) read(ctx context.Context, ch *api.Chunk, off uint64, dest []byte) error {
	if len(ch.Replicas) == 0 {
		return fmt.Errorf("chunk %d has no replicas: %w", ch.Id, api.Errno_EIO)
	}
	var errs []error
	var bad []string // replicas that answered they cannot serve this version
	// Start at a replica chosen by offset so concurrent readers spread.
	start := int((off / readSpread) % uint64(len(ch.Replicas)))
	for i := range ch.Replicas {
		rep := ch.Replicas[(start+i)%len(ch.Replicas)]
		if len(bad) == 0 && r.c.local.read(ctx, r, rep, ch, off, dest) {
			return nil
		}
		cs, err := r.chunkServer(rep.Addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		actx, cancel := context.WithTimeout(ctx, r.c.cfg.AttemptTimeout)
		resp, err := cs.Read(actx, &api.ReadRequest{Id: ch.Id, Version: ch.Version, Offset: off, Length: uint64(len(dest)), Token: ch.Token})
		cancel()
		if err == nil {
			err = errnoErr(resp.Errno, resp.Message)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rep.Addr, err))
			if resp != nil && badCopy(resp.Errno) {
				bad = append(bad, rep.Server)
			}
			if ctx.Err() != nil {
				break
			}
			continue
		}
		n := copy(dest, resp.Data)
		clear(dest[n:])
		if len(bad) > 0 {
			// Served from a good copy; have the bad ones replaced.
			r.c.reportBadCopies(r.ino, ch, bad)
		}
		return nil
	}
	return fmt.Errorf("read chunk %d: %w", ch.Id, errors.Join(errs...))
}

// badCopy says whether a replica's answer to a read means its copy of the
// chunk is unusable (corrupt, missing or stale) rather than the server
// being unreachable.
func badCopy(e api.Errno) bool {
	return e == api.Errno_EIO || e == api.Errno_ENOENT || e == api.Errno_ESTALE
}

// reportBadCopies tells the master, in the background, that these
// replicas of ch could not serve a read, so that it drops them and copies
// the chunk again from a good one. Each (chunk, version, replica) is
// reported once per client.
func (c *Client) reportBadCopies(ino uint64, ch *api.Chunk, bad []string) {
	c.mu.Lock()
	if c.reported == nil {
		c.reported = map[badKey]bool{}
	}
	var todo []string
	for _, s := range bad {
		k := badKey{ch.Id, ch.Version, s}
		if !c.reported[k] {
			c.reported[k] = true
			todo = append(todo, s)
		}
	}
	c.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	c.cfg.Logf("dfs client: chunk %d version %d: replicas %v cannot serve it; reporting them", ch.Id, ch.Version, todo)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.CallTimeout)
		defer cancel()
		go func() {
			select {
			case <-c.closed:
				cancel()
			case <-ctx.Done():
			}
		}()
		if _, err := c.ReportFailure(ctx, ino, ch, todo); err != nil {
			c.cfg.Logf("dfs client: reporting bad copies of chunk %d: %v", ch.Id, err)
		}
	}()
}

// badKey names one reported bad copy.
type badKey struct {
	chunk, version uint64
	server         string
}

func (r replicated) sync(ctx context.Context, ch *api.Chunk) error {
	p, rest := primary(ch)
	if p == nil {
		if len(ch.Replicas) == 0 {
			return nil
		}
		p, rest = ch.Replicas[0], ch.Replicas[1:]
	}
	cs, err := r.chunkServer(p.Addr)
	if err != nil {
		return &replicaFailure{failed: []string{p.Server}, err: err}
	}
	actx, cancel := context.WithTimeout(ctx, r.c.cfg.AttemptTimeout)
	defer cancel()
	resp, err := cs.Sync(actx, &api.SyncRequest{Id: ch.Id, Forward: rest, Token: ch.Token})
	return primaryOutcome(ctx, p, resp, err)
}

// readSpread is the span of a chunk read from one replica before the next
// one takes over: a sequential reader's concurrent readahead windows
// (4 MiB in the mount) go to different replicas.
const readSpread = 4 << 20
