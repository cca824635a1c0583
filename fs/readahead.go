package fs

import (
	"context"
	"sync"
)

// fileReader is the data source of a readahead: client.File in the mount.
type fileReader interface {
	ReadAt(ctx context.Context, p []byte, off int64, size uint64) (int, error)
}

// segment is one fetched (or in-flight) window of file data.
type segment struct {
	off  int64
	want int // bytes asked for; len(data) < want means the file ended
	done chan struct{}
	data []byte
	err  error
}

func (s *segment) end() int64 { return s.off + int64(s.want) }

// readahead serves sequential reads of one open file from windows fetched
// ahead in the background. A read that does not continue where the last
// one stopped goes straight to the chunkservers and drops the windows.
type readahead struct {
	max int // window size; <= 0 disables

	mu      sync.Mutex
	next    int64 // where a sequential reader reads next
	started bool  // a read happened: next means something
	gen     uint64
	segs    []*segment // sorted, at most two
}

// read fills dest from off, never past size. gen changes whenever file
// data changes through this mount, which drops fetched windows. Fetches
// run under bg, which outlives one request.
func (ra *readahead) read(ctx, bg context.Context, f fileReader, dest []byte, off int64, size uint64, gen uint64) (int, error) {
	if off < 0 || uint64(off) >= size || len(dest) == 0 {
		return 0, nil
	}
	if uint64(off)+uint64(len(dest)) > size {
		dest = dest[:size-uint64(off)]
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if gen != ra.gen {
		ra.segs, ra.gen = nil, gen
	}
	seq := ra.started && off == ra.next
	ra.next, ra.started = off+int64(len(dest)), true
	if !seq || ra.max <= 0 {
		ra.segs = nil
		return f.ReadAt(ctx, dest, off, size)
	}
	n := 0
	for n < len(dest) {
		pos := off + int64(n)
		s := ra.find(pos)
		if s == nil {
			s = ra.fetch(bg, f, pos, max(ra.max, len(dest)-n), size)
		}
		select {
		case <-s.done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if s.err != nil {
			ra.segs = nil
			m, err := f.ReadAt(ctx, dest[n:], pos, size)
			return n + m, err
		}
		i := int(pos - s.off)
		if i >= len(s.data) {
			break // the file ended within the window
		}
		n += copy(dest[n:], s.data[i:])
	}
	// Keep one window ahead of the reader.
	if last := ra.segs[len(ra.segs)-1]; uint64(last.end()) < size && ra.next >= last.off {
		ra.fetch(bg, f, last.end(), ra.max, size)
	}
	return n, nil
}

// find returns the window holding pos, dropping windows behind it.
func (ra *readahead) find(pos int64) *segment {
	for len(ra.segs) > 0 && ra.segs[0].end() <= pos {
		ra.segs = ra.segs[1:]
	}
	if len(ra.segs) > 0 && ra.segs[0].off <= pos {
		return ra.segs[0]
	}
	ra.segs = nil
	return nil
}

// fetch starts reading a window at off in the background.
func (ra *readahead) fetch(bg context.Context, f fileReader, off int64, n int, size uint64) *segment {
	s := &segment{off: off, want: n, done: make(chan struct{})}
	ra.segs = append(ra.segs, s)
	if len(ra.segs) > 2 {
		ra.segs = ra.segs[len(ra.segs)-2:]
	}
	go func() {
		defer close(s.done)
		buf := make([]byte, n)
		m, err := f.ReadAt(bg, buf, off, size)
		s.data, s.err = buf[:m], err
	}()
	return s
}
