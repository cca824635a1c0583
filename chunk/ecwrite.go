package chunk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"dfs/api"
	"dfs/ec"
)

// Erasure-coded chunks (see docs/ec.md). The primary of an EC chunk is
// the lease holder of one of its shards. A client sends it writes in
// chunk bytes; under the chunk's order lock the primary reads what it
// needs of the stripes the write touches (decoding around missing
// shards), computes their parity from the full new stripe data, and
// writes every shard's new bytes to that shard's server. Parity never
// depends on the old parity, so a retried write converges.

var codecs sync.Map // [2]uint32{K, M} -> *ec.Codec

func codecFor(k, m uint32) (*ec.Codec, error) {
	key := [2]uint32{k, m}
	if c, ok := codecs.Load(key); ok {
		return c.(*ec.Codec), nil
	}
	c, err := ec.New(int(k), int(m))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	codecs.Store(key, c)
	return c, nil
}

// ecChunk is one EC chunk as its primary sees it during a write.
type ecChunk struct {
	s       *Server
	k       Key // the primary's own shard
	c       *ec.Codec
	reps    []*api.Replica // by shard; nil where the shard has no server
	version uint64
	sync    bool
	undo    bool // sends keep undo records: writes do, re-encodes need not
}

// shardSet indexes the chunk's shard servers by shard, checking that
// this server holds the shard the write names.
func (s *Server) shardSet(k Key, c *ec.Codec, fwd []*api.Replica) ([]*api.Replica, error) {
	reps := make([]*api.Replica, c.Shards())
	for _, r := range fwd {
		if int(r.Shard) >= len(reps) || reps[r.Shard] != nil {
			return nil, fmt.Errorf("%v: shard %d out of range or named twice: %w", k, r.Shard, ErrInvalid)
		}
		reps[r.Shard] = r
	}
	if me := reps[k.Shard]; me == nil || me.Server != s.id {
		return nil, fmt.Errorf("%v: the write does not name this server as shard %d: %w", k, k.Shard, ErrInvalid)
	}
	return reps, nil
}

// ecWrite is the primary's side of a write to an EC chunk; the caller
// holds k's order lock. It needs the lease, but for a re-encode from the
// repair loop, which comes with none: the chunk is fenced.
func (s *Server) ecWrite(ctx context.Context, k Key, st *chunkState, req *api.WriteRequest) ([]string, error) {
	if req.DataShards == 0 {
		// Only EC chunks have shards beyond 0: a writer that does not
		// know the layout would write raw bytes into a shard.
		return nil, fmt.Errorf("%v: write to an EC shard without its layout: %w", k, ErrInvalid)
	}
	if lease := s.leaseOf(st); !req.Reencode && !time.Now().Before(lease) {
		return nil, fmt.Errorf("%v: no write lease here: %w", k, api.Errno_EAGAIN)
	}
	info, err := s.store.Stat(k)
	if err != nil {
		return nil, err
	}
	if info.Version != req.Version {
		return nil, fmt.Errorf("%v: holds version %d, EC write is for %d: %w", k, info.Version, req.Version, ErrStale)
	}
	c, err := codecFor(req.DataShards, req.ParityShards)
	if err != nil {
		return nil, err
	}
	reps, err := s.shardSet(k, c, req.Forward)
	if err != nil {
		return nil, err
	}
	e := &ecChunk{s: s, k: k, c: c, reps: reps, version: info.Version, sync: req.Sync}
	capacity := info.ChunkSize * uint64(c.K)
	off := req.Offset
	if off > capacity || (req.ZeroLength == 0 && uint64(len(req.Data)) > capacity-off) {
		return nil, fmt.Errorf("%v: write [%d,+%d) beyond the chunk's %d bytes: %w", k, off, len(req.Data), capacity, ErrTooBig)
	}
	if st.fresh && info.Version == 1 && !req.Reencode {
		// A chunk's first lease comes with its creation at version 1,
		// and every later lease moves the version (ecNewVersion): as
		// the new chunk's first primary, not having written, this
		// server knows that no shard holds anything yet, so there is
		// nothing to settle or re-encode.
		s.ecMarkClean(k, info.Version)
	}
	st.fresh = false
	if req.Reencode || !s.ecIsClean(k, info.Version) {
		// The last primary may have died between shard updates: roll
		// back what it left half done (chunk/ecundo.go), then make sure.
		if failed, err := e.resolve(ctx); err != nil || len(failed) > 0 {
			s.ecMarkDirty(k)
			return failed, err
		}
		if failed, err := e.reencode(ctx, info.ChunkSize); err != nil || len(failed) > 0 {
			s.ecMarkDirty(k)
			return failed, err
		}
		s.ecMarkClean(k, info.Version)
	}
	if req.Reencode {
		return nil, nil
	}
	var failed []string
	e.undo = true
	switch {
	case len(req.ShardData) > 0:
		failed, err = e.writeEncoded(ctx, off, capacity, req.ShardData)
	case req.ZeroLength > 0:
		failed, err = e.zero(ctx, off, min(req.ZeroLength, capacity-off))
	default:
		failed, err = e.write(ctx, off, req.Data)
	}
	if err == nil {
		s.ecMarkClean(k, info.Version)
	} else {
		s.ecMarkDirty(k)
	}
	return failed, err
}

// write stores data at chunk offset off: it rebuilds the stripes the
// range touches (reading the old data of partly covered ones), encodes
// them and sends each shard its part.
func (e *ecChunk) write(ctx context.Context, off uint64, data []byte) ([]string, error) {
	c := e.c
	n := uint64(len(data))
	if n == 0 {
		return nil, nil
	}
	ss := c.StripeSize()
	if off%ec.CellSize+n <= ec.CellSize {
		return e.writeInCell(ctx, off, data)
	}
	first, end := c.Stripes(off, n)
	buf := make([]byte, (end-first)*ss)
	// Old data of the partly covered stripes: the first and the last.
	edges := []uint64{first}
	if end-1 != first {
		edges = append(edges, end-1)
	}
	for _, s := range edges {
		if off <= s*ss && off+n >= (s+1)*ss {
			continue // wholly overwritten
		}
		shards, err := e.fetch(ctx, s*ec.CellSize, ec.CellSize)
		if err != nil {
			return nil, err
		}
		c.Join(shards, buf[(s-first)*ss:(s-first+1)*ss])
	}
	copy(buf[off-first*ss:], data)
	shards := c.Split(buf)
	if err := c.Encode(shards); err != nil {
		return nil, err
	}
	base := first * ec.CellSize
	pieces := make([]piece, c.Shards())
	for d := range c.K {
		so, l := c.DataRange(d, off, n)
		pieces[d] = piece{off: so, data: shards[d][so-base : so-base+l]}
	}
	for p := c.K; p < c.Shards(); p++ {
		pieces[p] = piece{off: base, data: shards[p]}
	}
	return e.send(ctx, pieces)
}

// writeInCell is write for data that lies within one cell. Reed-Solomon
// works byte position by byte position across a stripe's cells, so only
// the same positions of the other data cells are read and only those of
// the parity cells change: a 4 KiB write reads and writes 4 KiB per
// shard, not whole 64 KiB cells.
func (e *ecChunk) writeInCell(ctx context.Context, off uint64, data []byte) ([]string, error) {
	c := e.c
	ss := c.StripeSize()
	d := int(off % ss / ec.CellSize)
	at := off/ss*ec.CellSize + off%ec.CellSize // the shards' offset of the positions
	n := uint64(len(data))
	if pieces := e.deltaPieces(ctx, d, at, data); pieces != nil {
		return e.send(ctx, pieces)
	}
	shards, err := e.fetch(ctx, at, n)
	if err != nil {
		return nil, err
	}
	copy(shards[d], data)
	for p := c.K; p < c.Shards(); p++ {
		shards[p] = make([]byte, n)
	}
	if err := c.Encode(shards); err != nil {
		return nil, err
	}
	pieces := make([]piece, c.Shards())
	pieces[d] = piece{off: at, data: shards[d]}
	for p := c.K; p < c.Shards(); p++ {
		pieces[p] = piece{off: at, data: shards[p]}
	}
	return e.send(ctx, pieces)
}

// deltaPieces computes a write inside one cell of data shard d from the
// old bytes of that shard and of the parity shards at the positions
// (ec.Codec.UpdateParity), reading M+1 shards instead of all K data
// shards; the primary, a parity shard, holds one of them. The chunk is
// clean here, so parity agrees with the data. It returns nil, for the
// caller to re-encode from the data shards (decoding around failures),
// when any of those shards is missing or fails to answer.
func (e *ecChunk) deltaPieces(ctx context.Context, d int, at uint64, data []byte) []piece {
	c := e.c
	n := uint64(len(data))
	need := []int{d}
	for p := c.K; p < c.Shards(); p++ {
		need = append(need, p)
	}
	old := make([][]byte, c.Shards())
	var failed atomic.Bool
	var wg sync.WaitGroup
	for _, i := range need {
		if e.reps[i] == nil {
			return nil
		}
		wg.Go(func() {
			b, err := e.read(ctx, i, at, n)
			if err != nil {
				failed.Store(true)
				return
			}
			if uint64(len(b)) < n { // short: zeros from there
				b = append(b, make([]byte, n-uint64(len(b)))...)
			}
			old[i] = b[:n]
		})
	}
	wg.Wait()
	if failed.Load() {
		return nil
	}
	parity := old[c.K:]
	if err := c.UpdateParity(d, old[d], data, parity); err != nil {
		return nil
	}
	pieces := make([]piece, c.Shards())
	pieces[d] = piece{off: at, data: data}
	for p := c.K; p < c.Shards(); p++ {
		pieces[p] = piece{off: at, data: parity[p-c.K]}
	}
	return pieces
}

// writeEncoded stores whole stripes the writer encoded itself: shards[i]
// is shard i's bytes of the stripes from chunk offset off on.
func (e *ecChunk) writeEncoded(ctx context.Context, off, capacity uint64, shards [][]byte) ([]string, error) {
	c := e.c
	per := len(shards[0])
	if len(shards) != c.Shards() || off%c.StripeSize() != 0 || per%ec.CellSize != 0 ||
		off+uint64(per*c.K) > capacity || slices.ContainsFunc(shards, func(b []byte) bool { return len(b) != per }) {
		return nil, fmt.Errorf("%v: encoded write at %d: want %d shards of equal whole cells, whole stripes within %d bytes: %w",
			e.k, off, c.Shards(), capacity, ErrInvalid)
	}
	pieces := make([]piece, c.Shards())
	for i, b := range shards {
		pieces[i] = piece{off: off / c.StripeSize() * ec.CellSize, data: b}
	}
	return e.send(ctx, pieces)
}

// zero makes chunk bytes [off, off+n) read as zeros: whole stripes are
// zeroed on every shard (their parity is zero too), partial ones are
// rewritten.
func (e *ecChunk) zero(ctx context.Context, off, n uint64) ([]string, error) {
	ss := e.c.StripeSize()
	lo, hi := (off+ss-1)/ss, (off+n)/ss // whole stripes [lo, hi)
	if lo >= hi {
		return e.write(ctx, off, make([]byte, n))
	}
	if head := lo*ss - off; head > 0 {
		if failed, err := e.write(ctx, off, make([]byte, head)); err != nil || len(failed) > 0 {
			return failed, err
		}
	}
	if tail := off + n - hi*ss; tail > 0 {
		if failed, err := e.write(ctx, hi*ss, make([]byte, tail)); err != nil || len(failed) > 0 {
			return failed, err
		}
	}
	pieces := make([]piece, e.c.Shards())
	for i := range pieces {
		pieces[i] = piece{off: lo * ec.CellSize, zero: (hi - lo) * ec.CellSize}
	}
	return e.send(ctx, pieces)
}

// reencode recomputes the parity of every stripe of the chunk from its
// data shards, so that data and parity agree again after a primary died
// between shard updates. Past the end of the data it zeroes parity.
func (e *ecChunk) reencode(ctx context.Context, shardSize uint64) ([]string, error) {
	const batch = 64 * ec.CellSize // shard bytes per round
	// The first round reads one cell: a chunk's first write finds it
	// holding nothing, and fetching a whole batch would cost K buffers of
	// 4 MiB (tens of milliseconds per new chunk, measured).
	step := uint64(ec.CellSize)
	for off := uint64(0); off < shardSize; off, step = off+step, batch {
		n := min(step, shardSize-off)
		shards, failedShards, held, err := e.fetchHeld(ctx, off, n)
		if err != nil {
			return nil, err
		}
		if len(failedShards) > 0 {
			return e.servers(failedShards), fmt.Errorf("%v: shards %v unreadable during re-encode: %w", e.k, failedShards, api.Errno_EIO)
		}
		pieces := make([]piece, e.c.Shards())
		if held == 0 {
			// No data from here on: parity of zeros is zeros.
			for p := e.c.K; p < e.c.Shards(); p++ {
				pieces[p] = piece{off: off, zero: shardSize - off}
			}
			failed, err := e.send(ctx, pieces)
			e.s.log.Info("EC chunk re-encoded", "chunk", e.k, "version", e.version, "stripes", off/ec.CellSize)
			return failed, err
		}
		n = (held + ec.CellSize - 1) / ec.CellSize * ec.CellSize
		for i := range shards {
			if i >= e.c.K {
				shards[i] = make([]byte, n)
			} else {
				shards[i] = shards[i][:n]
			}
		}
		if err := e.c.Encode(shards); err != nil {
			return nil, err
		}
		for p := e.c.K; p < e.c.Shards(); p++ {
			pieces[p] = piece{off: off, data: shards[p]}
		}
		if failed, err := e.send(ctx, pieces); err != nil || len(failed) > 0 {
			return failed, err
		}
	}
	return nil, nil
}

func (e *ecChunk) have() []bool {
	h := make([]bool, len(e.reps))
	for i, r := range e.reps {
		h[i] = r != nil
	}
	return h
}

func (e *ecChunk) servers(shards []int) []string {
	var out []string
	for _, i := range shards {
		out = append(out, e.reps[i].Server)
	}
	return out
}

// fetch returns the K data shards' [off, off+n), decoding around shards
// that cannot be read.
func (e *ecChunk) fetch(ctx context.Context, off, n uint64) ([][]byte, error) {
	shards, failed, err := e.c.Fetch(ctx, off, n, e.have(), e.read)
	if len(failed) > 0 {
		e.s.log.Warn("EC read-modify-write decoded around shards", "chunk", e.k, "failed", failed, "err", err)
	}
	return shards, err
}

// fetchHeld is fetch over whole shard ranges that also returns the most
// bytes any shard held in the range (0: nothing but zeros from off on).
func (e *ecChunk) fetchHeld(ctx context.Context, off, n uint64) ([][]byte, []int, uint64, error) {
	var mu sync.Mutex
	var held uint64
	shards, failed, err := e.c.Fetch(ctx, off, n, e.have(), func(ctx context.Context, i int, o, l uint64) ([]byte, error) {
		b, err := e.read(ctx, i, o, l)
		mu.Lock()
		held = max(held, uint64(len(b)))
		mu.Unlock()
		return b, err
	})
	return shards, failed, held, err
}

// read reads one shard's [off, off+n) here or from its server.
func (e *ecChunk) read(ctx context.Context, shard int, off, n uint64) ([]byte, error) {
	if shard == int(e.k.Shard) {
		k := Key{e.k.ID, uint32(shard)}
		buf := make([]byte, n)
		got, err := e.s.readAt(k, buf, int64(off), readEC)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return buf[:got], nil
	}
	cs, err := e.s.peers.client(e.reps[shard].Addr)
	if err != nil {
		return nil, err
	}
	return api.ReadRange(ctx, cs, e.k.ID, uint32(shard), e.version, off, n, e.s.peerToken(e.k.ID, api.ChunkToken_READ), e.s.cfg.RPCTimeout)
}

// piece is what one shard gets of a write: data at off, or zero bytes
// zeroed from off; neither for a shard the write leaves alone.
type piece struct {
	off  uint64
	data []byte
	zero uint64
}

// send applies each shard's piece: this server's own here, the others'
// on their servers in parallel. It answers, as a forwarded replicated
// write does, with the servers that did not take theirs.
func (e *ecChunk) send(ctx context.Context, pieces []piece) ([]string, error) {
	// The write's id and participants, for the shards' undo records.
	var seq, shards uint64
	if e.undo {
		seq = e.s.undoSeq.Add(1)
		for i, p := range pieces {
			if len(p.data) > 0 || p.zero > 0 {
				shards |= 1 << i
			}
		}
	}
	shardReq := func(shard uint32, p piece) *api.WriteRequest {
		req := &api.WriteRequest{Id: e.k.ID, Shard: shard, Version: e.version, Forwarded: true, Sync: e.sync,
			Token: e.s.peerToken(e.k.ID, api.ChunkToken_WRITE)}
		if seq != 0 {
			req.UndoSeq, req.UndoShards, req.UndoOffset, req.UndoLength = seq, shards, p.off, uint64(len(p.data))+p.zero
		}
		return req
	}
	if err := e.apply(shardReq(e.k.Shard, pieces[e.k.Shard]), pieces[e.k.Shard]); err != nil {
		return nil, err
	}
	var to []*api.Replica
	for i, r := range e.reps {
		if r != nil && i != int(e.k.Shard) && (len(pieces[i].data) > 0 || pieces[i].zero > 0) {
			to = append(to, r)
		}
	}
	// One forward per shard, each with its own piece, all at once.
	var wg sync.WaitGroup
	failed := make([][]string, len(to))
	errs := make([]error, len(to))
	for i, r := range to {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := pieces[r.Shard]
			failed[i], errs[i] = e.s.forward(ctx, e.k, to[i:i+1], "EC write", func(ctx context.Context, c api.ChunkServerClient) (api.Errno, string, error) {
				req := shardReq(r.Shard, p)
				if p.zero > 0 {
					req.Offset, req.ZeroLength = p.off, p.zero
					resp, err := c.Write(ctx, req)
					return resp.GetErrno(), resp.GetMessage(), err
				}
				for pos := 0; pos < len(p.data); pos += api.MaxWrite {
					req.Offset, req.Data = p.off+uint64(pos), p.data[pos:min(pos+api.MaxWrite, len(p.data))]
					resp, err := c.Write(ctx, req)
					if err != nil || resp.GetErrno() != api.Errno_OK {
						return resp.GetErrno(), resp.GetMessage(), err
					}
				}
				return api.Errno_OK, "", nil
			})
		}()
	}
	wg.Wait()
	return slices.Concat(failed...), errors.Join(errs...)
}

// apply writes the primary's own piece p (req says which write it is
// part of) to its store.
func (e *ecChunk) apply(req *api.WriteRequest, p piece) error {
	if len(p.data) == 0 && p.zero == 0 {
		return nil
	}
	req.Offset, req.Data, req.ZeroLength = p.off, p.data, p.zero
	info, err := e.s.store.Stat(e.k)
	if err != nil {
		return err
	}
	if err := e.s.undoBegin(e.k, info, req); err != nil {
		return err
	}
	if p.zero > 0 {
		err = e.s.store.Zero(e.k, int64(p.off), int64(p.zero))
	} else {
		err = e.s.writeAt(e.k, p.data, int64(p.off), writePrimary)
	}
	if err == nil {
		err = e.s.undoAdvance(e.k, req)
	}
	if err == nil && e.sync {
		err = e.s.syncChunk(e.k)
	}
	return err
}

// The primary's knowledge that an EC chunk's data and parity agree at a
// version (soft state: a restarted primary re-encodes).
func (s *Server) ecIsClean(k Key, version uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ecClean[k] == version
}

func (s *Server) ecMarkClean(k Key, version uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ecClean == nil {
		s.ecClean = map[Key]uint64{}
	}
	s.ecClean[k] = version
}

func (s *Server) ecMarkDirty(k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ecClean, k)
}

// ecNewVersion carries what the primary knows across a version change
// (SetChunk): agreement at old stays known at next only if this server
// holds the lease at next and nothing happened in between (a new lease
// or a failure report moves the version by exactly one, and any other
// primary would have had a version of its own).
func (s *Server) ecNewVersion(k Key, old, next uint64, primary bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if next == old || s.ecClean == nil {
		return
	}
	if v, ok := s.ecClean[k]; ok && (!primary || next != old+1 || v != old) {
		delete(s.ecClean, k)
	} else if ok {
		s.ecClean[k] = next
	}
}

// rebuild recreates EC shard k here by decoding it, stripe range by
// stripe range, from req.Sources (the chunk's other shards at
// req.Version); the repair loop asks for it when a shard is lost. The
// caller made k an empty chunk at version 0.
func (s *Server) rebuild(ctx context.Context, k Key, req *api.ReplicateRequest) (uint64, error) {
	c, err := codecFor(req.DataShards, req.ParityShards)
	if err != nil {
		return 0, err
	}
	if int(k.Shard) >= c.Shards() {
		return 0, fmt.Errorf("%v: shard beyond %d+%d: %w", k, c.K, c.M, ErrInvalid)
	}
	reps := make([]*api.Replica, c.Shards())
	for _, r := range req.Sources {
		if int(r.Shard) < len(reps) && r.Shard != k.Shard {
			reps[r.Shard] = r
		}
	}
	e := &ecChunk{s: s, k: k, c: c, reps: reps, version: req.Version}
	start := time.Now()
	var written uint64
	const batch = 64 * ec.CellSize
	for off := uint64(0); off < req.ChunkSize; off += batch {
		n := min(batch, req.ChunkSize-off)
		shards, _, held, err := e.fetchHeld(ctx, off, n)
		if err != nil {
			return written, fmt.Errorf("%v: decoding [%d,+%d): %w", k, off, n, err)
		}
		if held == 0 {
			return written, nil // zeros from here on
		}
		if int(k.Shard) >= c.K {
			for p := c.K; p < c.Shards(); p++ {
				shards[p] = make([]byte, n)
			}
			if err := c.Encode(shards); err != nil {
				return written, err
			}
		}
		if err := s.writeAt(k, shards[k.Shard][:min(n, (held+ec.CellSize-1)/ec.CellSize*ec.CellSize)], int64(off), writeRepair); err != nil {
			return written, err
		}
		written += n
		if err := pace(ctx, k, start, written, req.RateBytes); err != nil {
			return written, err
		}
	}
	return written, nil
}
