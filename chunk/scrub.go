package chunk

import (
	"context"
	"errors"
	"io"
	"sort"
	"time"

	"dfs/api"
)

// corruptSet remembers chunks that failed verification here, to report
// them to the master in every heartbeat until they are deleted or
// replaced.
type corruptSet map[Key]uint64 // key -> version (0: header unreadable)

func (s *Server) markCorrupt(k Key, version uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.corrupt[k]; !ok {
		s.log.Error("chunk copy is corrupt; reporting it to the master", "chunk", k, "version", version)
	}
	s.corrupt[k] = version
}

func (s *Server) clearCorrupt(k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.corrupt, k)
}

// corruptReports lists the corrupt chunks still held, for a heartbeat.
func (s *Server) corruptReports() []*api.ChunkReport {
	s.mu.Lock()
	keys := make([]Key, 0, len(s.corrupt))
	for k := range s.corrupt {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool { return keys[i].ID < keys[j].ID })
	var out []*api.ChunkReport
	for _, k := range keys {
		s.mu.Lock()
		v, ok := s.corrupt[k]
		s.mu.Unlock()
		if !ok {
			continue
		}
		if _, err := s.store.Stat(k); errors.Is(err, ErrNotFound) {
			s.clearCorrupt(k)
			continue
		}
		out = append(out, &api.ChunkReport{Id: k.ID, Shard: k.Shard, Version: v})
	}
	return out
}

// brokenLister is a Store that keeps chunk files it could not open aside
// (DiskStore).
type brokenLister interface{ Broken() []error }

// scrubLoop re-reads every chunk, verifying every block's checksum, at no
// more than ScrubRate bytes per second, pausing ScrubPause between full
// passes. Bad chunks are reported to the master, which replaces them with
// a good copy from another server.
func (s *Server) scrubLoop(ctx context.Context) {
	buf := make([]byte, api.MaxWrite)
	for {
		s.scrubPass(ctx, buf)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.ScrubPause):
		}
	}
}

// scrubPass verifies every chunk once.
func (s *Server) scrubPass(ctx context.Context, buf []byte) {
	if bl, ok := s.store.(brokenLister); ok {
		for _, err := range bl.Broken() {
			var ce *CorruptError
			if errors.As(err, &ce) {
				s.markCorrupt(ce.Key, 0)
			}
		}
	}
	infos, err := s.store.List()
	if err != nil {
		s.log.Warn("scrubber: listing chunks", "err", err)
		return
	}
	start, done := time.Now(), uint64(0)
	for _, in := range infos {
		for off := int64(0); ; {
			if ctx.Err() != nil {
				return
			}
			n, err := s.readAt(in.Key, buf, off, readScrub)
			off += int64(n)
			done += uint64(n)
			var ce *CorruptError
			if errors.As(err, &ce) {
				s.markCorrupt(in.Key, in.Version)
				break
			}
			if err != nil {
				// io.EOF: the end of the chunk; ENOENT: deleted meanwhile.
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrNotFound) {
					s.log.Warn("scrubber: reading chunk", "chunk", in.Key, "err", err)
				}
				break
			}
			if s.cfg.ScrubRate > 0 {
				due := start.Add(time.Duration(float64(done) / float64(s.cfg.ScrubRate) * float64(time.Second)))
				select {
				case <-time.After(time.Until(due)):
				case <-ctx.Done():
					return
				}
			}
		}
	}
}
