package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"dfs/api"
	"dfs/ec"
)

// erasure is the chunkIO of ec:K+M layouts. Writes go, in chunk bytes,
// to the chunk's primary, which encodes stripes and updates every shard
// (chunk/ecwrite.go). Reads go straight to the data shards, and decode
// from parity shards around any that cannot serve (docs/ec.md).
//
// It does not embed replicated: chunkIO extensions found by type
// assertion (vectored writes, say) must not reach EC chunks through
// replicated's methods.
type erasure struct {
	rep       replicated // for connections
	c         *Client
	ino       uint64
	codec     *ec.Codec
	chunkSize uint64 // file bytes per chunk
	capacity  uint64 // chunk bytes the shards can hold: whole stripes, >= chunkSize
}

func newErasure(c *Client, attr *api.Attr) (erasure, error) {
	l := attr.GetLayout()
	codec, err := ec.New(int(l.DataShards), int(l.ParityShards))
	if err != nil {
		return erasure{}, fmt.Errorf("layout %s: %v: %w", api.FormatLayout(l), err, api.Errno_EINVAL)
	}
	cs := ChunkSize(attr)
	return erasure{rep: replicated{c: c, ino: attr.Ino}, c: c, ino: attr.Ino, codec: codec,
		chunkSize: cs, capacity: ec.ShardSize(cs, codec.K) * uint64(codec.K)}, nil
}

func (e erasure) send(ctx context.Context, ch *api.Chunk, req *api.WriteRequest) error {
	p, _ := primary(ch)
	if p == nil {
		return fmt.Errorf("chunk %d has no primary: %w", ch.Id, api.Errno_EAGAIN)
	}
	cs, err := e.rep.chunkServer(p.Addr)
	if err != nil {
		return &replicaFailure{failed: []string{p.Server}, err: err}
	}
	req.Id, req.Shard, req.Version, req.Forward, req.Token = ch.Id, p.Shard, ch.Version, ch.Replicas, ch.Token
	req.DataShards, req.ParityShards = uint32(e.codec.K), uint32(e.codec.M)
	actx, cancel := context.WithTimeout(ctx, e.c.cfg.AttemptTimeout)
	defer cancel()
	resp, err := cs.Write(actx, req)
	return primaryOutcome(ctx, p, resp, err)
}

// write encodes the whole stripes data covers itself and sends them, as
// every shard's bytes, in one request; the partial stripes at either end
// go as plain data, for the primary to merge with what the stripe holds.
func (e erasure) write(ctx context.Context, ch *api.Chunk, off uint64, data []byte) error {
	ss := e.codec.StripeSize()
	lo := min((off+ss-1)/ss*ss, off+uint64(len(data)))
	hi := max((off+uint64(len(data)))/ss*ss, lo)
	// Encoded, the stripes grow by (K+M)/K: keep them within a message.
	if hi-lo < ss || (hi-lo)/uint64(e.codec.K)*uint64(e.codec.Shards()) > api.MaxWrite*3/2 {
		return e.send(ctx, ch, &api.WriteRequest{Offset: off, Data: data})
	}
	if lo > off {
		if err := e.send(ctx, ch, &api.WriteRequest{Offset: off, Data: data[:lo-off]}); err != nil {
			return err
		}
	}
	shards := e.codec.Split(data[lo-off : hi-off])
	if err := e.codec.Encode(shards); err != nil {
		return err
	}
	if err := e.send(ctx, ch, &api.WriteRequest{Offset: lo, ShardData: shards}); err != nil {
		return err
	}
	if end := off + uint64(len(data)); hi < end {
		return e.send(ctx, ch, &api.WriteRequest{Offset: hi, Data: data[hi-off:]})
	}
	return nil
}

func (e erasure) zero(ctx context.Context, ch *api.Chunk, off, n uint64) error {
	if n == 0 {
		return nil
	}
	if off+n >= e.chunkSize {
		// To the chunk's end: include the last stripe's padding, so that
		// the primary zeroes whole stripes (shortening the shards)
		// instead of writing zeros into a partial last stripe.
		n = max(n, e.capacity-off)
	}
	return e.send(ctx, ch, &api.WriteRequest{Offset: off, ZeroLength: n})
}

// read reads each data shard's part of [off, off+len(dest)) in parallel;
// if any part fails it decodes the stripes the range touches instead.
func (e erasure) read(ctx context.Context, ch *api.Chunk, off uint64, dest []byte) error {
	c := e.codec
	n := uint64(len(dest))
	reps := e.shards(ch)
	errs := make([]error, c.K)
	var wg sync.WaitGroup
	for d := range c.K {
		so, l := c.DataRange(d, off, n)
		if l == 0 {
			continue
		}
		if reps[d] == nil {
			errs[d] = fmt.Errorf("shard %d has no server", d)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := e.readShard(ctx, ch, reps[d], so, l)
			if err != nil {
				errs[d] = err
				return
			}
			scatter(c, d, so, l, b, off, dest)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if tokenRetry(err) {
			return err // every shard would refuse it: no use decoding
		}
	}
	for _, err := range errs {
		if err != nil {
			return e.readDegraded(ctx, ch, reps, off, dest)
		}
	}
	return nil
}

// scatter copies shard d's bytes b (read from shard offset so, l bytes
// asked; short means zeros) to their places in dest, which holds chunk
// bytes from off.
func scatter(c *ec.Codec, d int, so, l uint64, b []byte, off uint64, dest []byte) {
	ss := c.StripeSize()
	for pos := uint64(0); pos < l; {
		x := so + pos
		s, in := x/ec.CellSize, x%ec.CellSize
		run := min(ec.CellSize-in, l-pos)
		at := s*ss + uint64(d)*ec.CellSize + in - off
		part := dest[at : at+run]
		if pos < uint64(len(b)) {
			m := copy(part, b[pos:])
			clear(part[m:])
		} else {
			clear(part)
		}
		pos += run
	}
}

// readDegraded fills dest by decoding whole stripes from any K shards,
// and reports the shards whose servers answered that their copy is bad
// (unreachable servers are the master's to judge, as for replicas).
func (e erasure) readDegraded(ctx context.Context, ch *api.Chunk, reps []*api.Replica, off uint64, dest []byte) error {
	c := e.codec
	n := uint64(len(dest))
	first, end := c.Stripes(off, n)
	have := make([]bool, len(reps))
	for i, r := range reps {
		have[i] = r != nil
	}
	var mu sync.Mutex
	var bad []string
	shards, _, err := c.Fetch(ctx, first*ec.CellSize, (end-first)*ec.CellSize, have,
		func(ctx context.Context, i int, so, l uint64) ([]byte, error) {
			b, err := e.readShard(ctx, ch, reps[i], so, l)
			if err != nil && badCopy(api.ErrnoOf(err)) && !isTransport(err) {
				mu.Lock()
				bad = append(bad, reps[i].Server)
				mu.Unlock()
			}
			return b, err
		})
	if len(bad) > 0 {
		e.c.reportBadCopies(e.ino, ch, bad)
	}
	if err != nil {
		return fmt.Errorf("read chunk %d: %v: %w", ch.Id, err, api.Errno_EIO)
	}
	buf := make([]byte, (end-first)*c.StripeSize())
	c.Join(shards, buf)
	copy(dest, buf[off-first*c.StripeSize():])
	return nil
}

// shards indexes a chunk's replicas by shard; nil where none.
func (e erasure) shards(ch *api.Chunk) []*api.Replica {
	out := make([]*api.Replica, e.codec.Shards())
	for _, r := range ch.Replicas {
		if int(r.Shard) < len(out) {
			out[r.Shard] = r
		}
	}
	return out
}

// readShard reads [off, off+n) of one shard, in pieces of at most
// api.MaxWrite; a short answer means the rest is zeros.
func (e erasure) readShard(ctx context.Context, ch *api.Chunk, r *api.Replica, off, n uint64) ([]byte, error) {
	if n <= api.MaxWrite && e.c.local.mayRead(r.Server) {
		// A shard is a chunk file like any other: read it directly when
		// its server shares this machine (client/local.go).
		b := make([]byte, n)
		if e.c.local.read(ctx, e.rep, r, ch, off, b) {
			return b, nil
		}
	}
	cs, err := e.rep.chunkServer(r.Addr)
	if err != nil {
		return nil, err
	}
	b, err := api.ReadRange(ctx, cs, ch.Id, r.Shard, ch.Version, off, n, ch.Token, e.c.cfg.AttemptTimeout)
	if err != nil {
		return nil, fmt.Errorf("%s shard %d: %w", r.Addr, r.Shard, err)
	}
	return b, nil
}

// sync asks every shard's server to sync its own shard (a primary
// forwards syncs for one shard number only), and names the servers that
// could not.
func (e erasure) sync(ctx context.Context, ch *api.Chunk) error {
	errs := make([]error, len(ch.Replicas))
	var wg sync.WaitGroup
	for i, r := range ch.Replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs, err := e.rep.chunkServer(r.Addr)
			if err != nil {
				errs[i] = err
				return
			}
			actx, cancel := context.WithTimeout(ctx, e.c.cfg.AttemptTimeout)
			defer cancel()
			resp, err := cs.Sync(actx, &api.SyncRequest{Id: ch.Id, Shard: r.Shard, Token: ch.Token})
			if err == nil {
				err = errnoErr(resp.Errno, resp.Message)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	var failed []string
	for i, err := range errs {
		if tokenRetry(err) {
			return err // the token's fault, not the servers'
		}
		if err != nil {
			failed = append(failed, ch.Replicas[i].Server)
		}
	}
	if len(failed) == 0 || ctx.Err() != nil {
		return errors.Join(errs...)
	}
	return &replicaFailure{failed: failed, err: errors.Join(errs...)}
}
