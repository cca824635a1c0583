package chunk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"dfs/api"
)

// Rolling back EC writes cut short (docs/ec.md). Every shard piece a
// primary sends carries the write's id (version, seq) and its
// participants; before applying the piece's first part the shard saves
// the old bytes of the whole piece (undoBegin), and it counts what it
// applied (undoAdvance). A new primary, before its first write, asks
// every shard in the set for its record (resolve) and settles the
// latest write: if a participant still in the set did not apply all of
// it, it was never acknowledged and is rolled back on the shards that
// have it; otherwise it is committed. Either way every stripe's data
// and parity agree again before anything is decoded from them. The
// settled state stays in the records, so that a primary dying while it
// settles is followed by one that decides the same, and a shard rebuilt
// since (no record) does not count as a participant that missed it.

// undoBegin saves the old bytes of req's piece unless an earlier part of
// the same piece saved them. info is the chunk before the write.
func (s *Server) undoBegin(k Key, info Info, req *api.WriteRequest) error {
	if req.UndoSeq == 0 {
		return nil
	}
	end := req.Offset + uint64(len(req.Data)) + req.ZeroLength
	if req.UndoLength > info.ChunkSize || req.UndoOffset > info.ChunkSize-req.UndoLength ||
		req.Offset < req.UndoOffset || end > req.UndoOffset+req.UndoLength || len(req.Extents) > 0 {
		return fmt.Errorf("%v: write [%d,%d) outside its undo piece [%d,+%d) of a %d-byte shard: %w",
			k, req.Offset, end, req.UndoOffset, req.UndoLength, info.ChunkSize, ErrInvalid)
	}
	h, err := s.undos.head(k)
	if err != nil {
		return err
	}
	if h.same(req.Version, req.UndoSeq) {
		return nil
	}
	r := &undoRecord{undoHead: undoHead{Version: req.Version, Seq: req.UndoSeq, Shards: req.UndoShards, Len: req.UndoLength},
		Off: req.UndoOffset, OldLength: info.Length}
	if info.Length > r.Off {
		r.Old = make([]byte, min(r.Len, info.Length-r.Off))
		if n, err := s.store.ReadAt(k, r.Old, int64(r.Off)); err != nil && !errors.Is(err, io.EOF) {
			return err
		} else {
			r.Old = r.Old[:n]
		}
	}
	return s.undos.put(k, r)
}

// undoAdvance records that req's part of its piece is applied.
func (s *Server) undoAdvance(k Key, req *api.WriteRequest) error {
	if req.UndoSeq == 0 {
		return nil
	}
	end := req.Offset + uint64(len(req.Data)) + req.ZeroLength
	return s.undos.advance(k, req.Version, req.UndoSeq, end-req.UndoOffset)
}

// syncChunk makes k durable, its undo record first.
func (s *Server) syncChunk(k Key) error {
	if err := s.undos.sync(k); err != nil {
		return err
	}
	return s.store.Sync(k)
}

// dropChunk deletes k and its undo record.
func (s *Server) dropChunk(k Key) error {
	if err := s.store.Delete(k); err != nil {
		return err
	}
	return s.undos.drop(k)
}

// Undo reports or settles a shard's undo record for a new primary.
func (s *Server) Undo(ctx context.Context, req *api.UndoRequest) (*api.UndoResponse, error) {
	k := Key{req.Id, req.Shard}
	h, err := s.undoCall(ctx, k, req)
	errno, msg := answer(err)
	if err != nil && errno != api.Errno_ESTALE {
		s.log.Warn("undo call failed", "chunk", k, "resolve", req.Resolve, "err", msg)
	}
	return &api.UndoResponse{Errno: errno, Message: msg, Version: h.Version, Seq: h.Seq, Shards: h.Shards,
		Length: h.Len, Done: h.Done, State: h.State}, nil
}

func (s *Server) undoCall(ctx context.Context, k Key, req *api.UndoRequest) (undoHead, error) {
	if err := s.authorize("Undo", req.Token, req.Id, api.ChunkToken_WRITE); err != nil {
		return undoHead{}, err
	}
	_, unlock, err := s.lockChunk(ctx, k)
	if err != nil {
		return undoHead{}, err
	}
	defer unlock()
	return s.undoLocal(k, req)
}

// undoLocal is Undo on this server's shard k, whose order lock the
// caller holds.
func (s *Server) undoLocal(k Key, req *api.UndoRequest) (undoHead, error) {
	info, err := s.store.Stat(k)
	if err != nil {
		return undoHead{}, err
	}
	if info.Version != req.Version {
		return undoHead{}, fmt.Errorf("%v: holds version %d, undo is for %d: %w", k, info.Version, req.Version, ErrStale)
	}
	if !req.Resolve {
		return s.undos.head(k)
	}
	r, err := s.undos.load(k)
	if err != nil || r == nil || !r.same(req.WriteVersion, req.WriteSeq) {
		return undoHead{}, err
	}
	want := uint32(undoCommitted)
	if req.Rollback {
		want = undoRolledBack
	}
	switch r.State {
	case want:
		return r.undoHead, nil
	case undoPending:
	default:
		return undoHead{}, fmt.Errorf("%v: write %d/%d was settled the other way here (state %d): %w",
			k, r.Version, r.Seq, r.State, api.Errno_EIO)
	}
	if req.Rollback {
		if err := s.rollback(k, info, r); err != nil {
			return undoHead{}, err
		}
	}
	if err := s.undos.settle(k, r.Version, r.Seq, want); err != nil {
		return undoHead{}, err
	}
	return s.undos.head(k)
}

// rollback puts back what r's write changed on shard k.
func (s *Server) rollback(k Key, info Info, r *undoRecord) error {
	if len(r.Old) > 0 {
		if err := s.store.WriteAt(k, r.Old, int64(r.Off)); err != nil {
			return err
		}
	}
	// What lay past the old end was zeros, and the shard was shorter.
	if end := r.Off + r.Len; end > r.OldLength && info.Length > r.OldLength {
		if err := s.store.Zero(k, int64(r.OldLength), int64(max(end, info.Length)-r.OldLength)); err != nil {
			return err
		}
	}
	s.log.Warn("EC write cut short by its primary rolled back", "chunk", k, "version", r.Version, "seq", r.Seq,
		"piece", r.Len, "applied", r.Done)
	return s.store.Sync(k)
}

// resolve brings the shards of the chunk to a state where every stripe
// agrees, before the first write of a new primary or a re-encode: see
// the top of this file. Shards that cannot answer are returned as
// failed, and nothing is decided without them.
func (e *ecChunk) resolve(ctx context.Context) ([]string, error) {
	heads := make([]undoHead, len(e.reps))
	if failed, err := e.undoEach(ctx, func(int) *api.UndoRequest { return &api.UndoRequest{} }, heads); err != nil || len(failed) > 0 {
		return failed, err
	}
	last, state := settlement(e.have(), heads)
	if last.Seq == 0 {
		return nil, nil
	}
	if state == undoRolledBack {
		e.s.log.Warn("rolling back an EC write its primary did not finish", "chunk", e.k, "version", last.Version,
			"seq", last.Seq, "participants", bits.OnesCount64(last.Shards))
	}
	return e.undoEach(ctx, func(i int) *api.UndoRequest {
		h := heads[i]
		if s := settledAs(h, last, state); s != h.State {
			return &api.UndoRequest{Resolve: true, WriteVersion: h.Version, WriteSeq: h.Seq, Rollback: s == undoRolledBack}
		}
		return nil
	}, nil)
}

// settledAs is what record h becomes when write last is settled as
// state: older writes finished, so their records are committed. Else a
// record of an older write could later pass for the latest, once the
// servers holding last are lost, and a shard rebuilt meanwhile (no
// record) count as a participant that missed it.
func settledAs(h, last undoHead, state uint32) uint32 {
	switch {
	case h.Seq == 0:
		return h.State
	case h.same(last.Version, last.Seq):
		return state
	case h.State == undoPending:
		return undoCommitted
	}
	return h.State
}

// settlement says which write the records heads of the shards in the set
// (in[i]) settle and how. Writes are ordered by their primary's lock, so
// only the latest can have been cut short; earlier records are of
// finished writes.
func settlement(in []bool, heads []undoHead) (undoHead, uint32) {
	var last undoHead
	for i, h := range heads {
		if in[i] && h.Seq != 0 && (h.Version > last.Version || h.Version == last.Version && h.Seq > last.Seq) {
			last = h
		}
	}
	if last.Seq == 0 {
		return last, undoPending
	}
	// A holder that settled it already decides: an earlier primary died
	// settling it.
	for i, h := range heads {
		if in[i] && h.same(last.Version, last.Seq) && h.State != undoPending {
			return last, h.State
		}
	}
	for i, h := range heads {
		if in[i] && last.Shards&(1<<i) != 0 && !(h.same(last.Version, last.Seq) && h.Done >= h.Len) {
			// A participant still in the set lacks (part of) it, so it
			// was never acknowledged.
			return last, undoRolledBack
		}
	}
	return last, undoCommitted
}

// undoEach sends shard i of the set the Undo call req(i) (none if nil),
// all at once, this server's own shard here, and keeps the records
// answered in out (if not nil). Like send, it answers with the other
// servers that failed.
func (e *ecChunk) undoEach(ctx context.Context, req func(i int) *api.UndoRequest, out []undoHead) ([]string, error) {
	var wg sync.WaitGroup
	failed := make([][]string, len(e.reps))
	errs := make([]error, len(e.reps))
	for i, r := range e.reps {
		q := req(i)
		if r == nil || q == nil {
			continue
		}
		q = &api.UndoRequest{Id: e.k.ID, Shard: uint32(i), Version: e.version, Resolve: q.Resolve,
			WriteVersion: q.WriteVersion, WriteSeq: q.WriteSeq, Rollback: q.Rollback}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h undoHead
			if i == int(e.k.Shard) {
				h, errs[i] = e.s.undoLocal(e.k, q)
			} else {
				failed[i], errs[i] = e.s.forward(ctx, e.k, e.reps[i:i+1], "undo", func(ctx context.Context, c api.ChunkServerClient) (api.Errno, string, error) {
					q.Token = e.s.peerToken(e.k.ID, api.ChunkToken_WRITE)
					resp, err := c.Undo(ctx, q)
					if status.Code(err) == codes.Unimplemented {
						// A chunkserver from before undo records (an
						// upgrade under way) has none to settle.
						return api.Errno_OK, "", nil
					}
					h = undoHead{Version: resp.GetVersion(), Seq: resp.GetSeq(), Shards: resp.GetShards(), Len: resp.GetLength(),
						Done: resp.GetDone(), State: resp.GetState()}
					return resp.GetErrno(), resp.GetMessage(), err
				})
			}
			if out != nil {
				out[i] = h
			}
		}()
	}
	wg.Wait()
	return slices.Concat(failed...), errors.Join(errs...)
}
