package chunk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"dfs/api"
)

// Replicate copies a chunk from another chunkserver: the master's repair
// loop sends it to a server outside the chunk's replica set. The copy is
// made at version 0 and adopts the asked version only once all its data
// is durable, so a copy cut short by a crash is stale and garbage-collected,
// never served.
func (s *Server) Replicate(ctx context.Context, req *api.ReplicateRequest) (*api.ReplicateResponse, error) {
	k := Key{req.Id, req.Shard}
	if err := s.authorize("Replicate", req.Token, req.Id, api.ChunkToken_MASTER); err != nil {
		errno, msg := answer(err)
		return &api.ReplicateResponse{Errno: errno, Message: msg}, nil
	}
	n, err := s.replicate(ctx, k, req)
	errno, msg := answer(err)
	if err != nil {
		s.log.Warn("replicate failed", "chunk", k, "source", req.GetSource().GetAddr(), "err", msg)
	} else {
		s.log.Info("chunk replicated", "chunk", k, "version", req.Version, "source", req.Source.Addr, "bytes", n)
	}
	return &api.ReplicateResponse{Errno: errno, Message: msg, Bytes: n}, nil
}

func (s *Server) replicate(ctx context.Context, k Key, req *api.ReplicateRequest) (uint64, error) {
	if req.GetSource().GetAddr() == "" || req.Version == 0 {
		return 0, fmt.Errorf("%v: replicate needs a source address and a version: %w", k, ErrInvalid)
	}
	cs := req.ChunkSize
	if cs == 0 {
		cs = api.DefaultChunkSize
	}
	if err := checkChunkSize(k, cs); err != nil {
		return 0, err
	}
	src, err := s.peers.client(req.Source.Addr)
	if err != nil {
		return 0, err
	}
	st, unlock, err := s.lockChunk(ctx, k)
	if err != nil {
		return 0, err
	}
	defer unlock()
	// Whatever copy this server holds is not in the chunk's set (the
	// master asks only servers outside it): replace it.
	if _, err := s.store.Stat(k); !errors.Is(err, ErrNotFound) {
		if err := s.store.Delete(k); err != nil && !errors.Is(err, ErrNotFound) {
			return 0, err
		}
	}
	// Nor is any record of the writes it took part in.
	if err := s.undos.drop(k); err != nil {
		return 0, err
	}
	s.setLease(st, time.Time{})
	s.clearCorrupt(k)
	if err := s.roomFor(k, cs); err != nil {
		return 0, err
	}
	if err := s.store.Create(k, 0, cs); err != nil {
		return 0, err
	}
	var n uint64
	if req.DataShards > 0 {
		n, err = s.rebuild(ctx, k, req)
	} else {
		n, err = s.pull(ctx, k, src, req)
	}
	if err == nil {
		err = s.store.Sync(k)
	}
	if err == nil {
		err = s.store.SetVersion(k, req.Version)
	}
	if err != nil {
		if derr := s.store.Delete(k); derr != nil {
			s.log.Warn("dropping a partial copy", "chunk", k, "err", derr)
		}
		return n, err
	}
	return n, nil
}

// pull reads the chunk from src piece by piece and writes it here, no
// faster than req.RateBytes.
func (s *Server) pull(ctx context.Context, k Key, src api.ChunkServerClient, req *api.ReplicateRequest) (uint64, error) {
	start := time.Now()
	var off uint64
	for {
		actx, cancel := context.WithTimeout(ctx, s.cfg.RPCTimeout)
		resp, err := src.Read(actx, &api.ReadRequest{Id: req.Id, Shard: req.Shard, Version: req.Version, Offset: off, Length: api.MaxWrite,
			Token: s.peerToken(req.Id, api.ChunkToken_READ)})
		cancel()
		if err == nil {
			err = resp.Errno.Err()
			if err != nil {
				err = fmt.Errorf("%w: %s", err, resp.Message)
			}
		}
		if err != nil {
			return off, fmt.Errorf("%v: reading from %s at %d: %w", k, req.Source.Addr, off, err)
		}
		if len(resp.Data) > 0 {
			if err := s.writeAt(k, resp.Data, int64(off), writeRepair); err != nil {
				return off, err
			}
			off += uint64(len(resp.Data))
		}
		if len(resp.Data) < api.MaxWrite {
			return off, nil
		}
		if err := pace(ctx, k, start, off, req.RateBytes); err != nil {
			return off, err
		}
	}
}

// pace waits until done bytes are no faster than rate bytes per second
// since start (rate 0: no limit).
func pace(ctx context.Context, k Key, start time.Time, done, rate uint64) error {
	if rate == 0 {
		return nil
	}
	due := start.Add(time.Duration(float64(done) / float64(rate) * float64(time.Second)))
	select {
	case <-time.After(time.Until(due)):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%v: %w", k, ctx.Err())
	}
}

// space reports the bytes this server offers, holds and has free: the
// configured capacity (or the file system's size) less what chunks use,
// and never more than the file system has free.
func (s *Server) space() (capacity, used, free uint64, err error) {
	infos, err := s.store.List()
	if err != nil {
		return 0, 0, 0, err
	}
	for _, in := range infos {
		used += in.DiskBytes
	}
	capacity = s.cfg.Capacity
	var fs unix.Statfs_t
	if err := unix.Statfs(s.cfg.DataDir, &fs); err == nil {
		if capacity == 0 {
			capacity = fs.Blocks * uint64(fs.Bsize)
		}
		free = fs.Bavail * uint64(fs.Bsize)
	}
	if capacity > used {
		free = min(free, capacity-used)
	} else {
		free = 0
	}
	return capacity, used, free, nil
}

// roomFor refuses a new chunk of chunkSize bytes when the server could
// not hold it whole: a nearly full disk takes no new chunks, so writes to
// the chunks it has keep room to finish.
func (s *Server) roomFor(k Key, chunkSize uint64) error {
	_, _, free, err := s.space()
	if err != nil {
		return err
	}
	if free < chunkSize {
		return fmt.Errorf("%v: %d bytes free, a new chunk needs %d: %w", k, free, chunkSize, api.Errno_ENOSPC)
	}
	return nil
}
