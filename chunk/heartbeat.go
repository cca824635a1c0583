package chunk

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"dfs/api"
)

// heartbeater finds the master leader and remembers it between beats.
type heartbeater struct {
	s       *Server
	masters []string // every master address known, from config and hints
	next    int      // which of masters to try when no leader is known
	leader  string   // the last leader that answered or was named, "" if none
	lastLog time.Time
}

// heartbeatLoop sends a heartbeat every interval until ctx ends, backing off
// while no leader answers. The first successful heartbeat carries a full
// chunk report, as does the one after the master asks for it.
func (s *Server) heartbeatLoop(ctx context.Context) {
	h := &heartbeater{s: s, masters: slices.Clone(s.cfg.Masters)}
	full := true
	registered := s.cfg.Registered
	backoff := 50 * time.Millisecond
	var delay time.Duration
	var deleting sync.Mutex // held while a batch of deletes runs
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		resp, err := h.beat(ctx, full)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.metrics.beatFails.Inc()
			h.logf("no master leader reachable; retrying", "err", err, "masters", h.masters)
			delay = backoff
			// Capped at the heartbeat interval, so that a new leader
			// hears from every server within about a second.
			backoff = min(backoff*2, s.cfg.Heartbeat)
			continue
		}
		backoff = 50 * time.Millisecond
		if len(resp.ChunkKeys) > 0 {
			s.keys.Set(resp.ChunkKeys)
		}
		s.metrics.lastBeat.Store(time.Now().UnixNano())
		if registered != nil {
			registered()
			registered = nil
		}
		full = resp.WantFullReport
		delay = s.cfg.Heartbeat
		if full {
			delay = 0
		}
		// Deletes run beside the beats: thousands of them (a full report
		// after many files were removed) took longer than the master
		// waits before it counts a silent server as down, and new
		// chunks then found no servers (ENOSPC). A batch that arrives
		// while one runs is dropped; the next full report repeats it.
		if len(resp.Delete) > 0 && deleting.TryLock() {
			s.bg.Add(1)
			go func(dels []*api.ChunkReport) {
				defer s.bg.Done()
				defer deleting.Unlock()
				s.applyDeletes(ctx, dels)
			}(resp.Delete)
		}
	}
}

// logf logs a warning at most once every few seconds.
func (h *heartbeater) logf(msg string, args ...any) {
	if time.Since(h.lastLog) < 5*time.Second {
		return
	}
	h.lastLog = time.Now()
	h.s.log.Warn(msg, args...)
}

// beat sends one heartbeat to the leader, following NotLeader hints.
func (h *heartbeater) beat(ctx context.Context, full bool) (*api.HeartbeatResponse, error) {
	req, err := h.s.heartbeatRequest(full)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range len(h.masters) + 3 {
		addr := h.leader
		if addr == "" {
			addr = h.masters[h.next%len(h.masters)]
		}
		cc, err := h.s.peers.conn(addr)
		if err != nil {
			return nil, err
		}
		// Short: a heartbeat is cheap, and a master that does not answer
		// in time is better replaced by the next one at once.
		cctx, cancel := context.WithTimeout(ctx, min(h.s.cfg.RPCTimeout, max(2*h.s.cfg.Heartbeat, time.Second)))
		resp, err := api.NewMasterClient(cc).Heartbeat(cctx, req)
		cancel()
		if err == nil {
			if h.leader != addr {
				h.s.log.Info("heartbeating to master leader", "addr", addr)
				h.leader = addr
			}
			return resp, nil
		}
		lastErr = fmt.Errorf("%s: %w", addr, err)
		if hint, ok := api.LeaderHint(err); ok {
			for _, m := range hint.Masters {
				if m != "" && !slices.Contains(h.masters, m) {
					h.masters = append(h.masters, m)
				}
			}
			if hint.LeaderAddr != "" && hint.LeaderAddr != addr {
				h.leader = hint.LeaderAddr
				continue
			}
			if hint.LeaderAddr == "" {
				// An election is on; asking others will not help yet.
				h.leader = ""
				return nil, lastErr
			}
		}
		h.leader = ""
		h.next++
	}
	return nil, lastErr
}

// heartbeatRequest describes this server and, if full, every chunk it holds.
func (s *Server) heartbeatRequest(full bool) (*api.HeartbeatRequest, error) {
	capacity, used, free, err := s.space()
	if err != nil {
		return nil, err
	}
	req := &api.HeartbeatRequest{Server: s.id, Addr: s.Addr(), Zone: s.cfg.Zone,
		Capacity: capacity, Used: used, Free: free, FullReport: full, Corrupt: s.corruptReports()}
	if full {
		infos, err := s.store.List()
		if err != nil {
			return nil, err
		}
		req.Chunks = make([]*api.ChunkReport, len(infos))
		for i, in := range infos {
			req.Chunks[i] = &api.ChunkReport{Id: in.ID, Shard: in.Shard, Version: in.Version, Size: in.DiskBytes}
		}
	}
	return req, nil
}

// applyDeletes deletes the listed chunks, except where this server holds a
// newer version than the master named (it was written after the master
// decided).
func (s *Server) applyDeletes(ctx context.Context, dels []*api.ChunkReport) {
	for _, d := range dels {
		if ctx.Err() != nil {
			return // shutting down; the master asks again
		}
		k := Key{d.Id, d.Shard}
		err := func() error {
			st, unlock, err := s.lockChunk(ctx, k)
			if err != nil {
				return err
			}
			defer unlock()
			info, err := s.store.Stat(k)
			if err == nil && info.Version > d.Version {
				return fmt.Errorf("holds version %d, newer than %d: kept", info.Version, d.Version)
			}
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			s.setLease(st, time.Time{})
			s.clearCorrupt(k)
			return s.dropChunk(k)
		}()
		if err != nil {
			s.log.Warn("chunk delete", "chunk", k, "err", err)
		} else {
			s.log.Debug("chunk deleted at master's request", "chunk", k, "version", d.Version)
		}
	}
}
