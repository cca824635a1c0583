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
	done chan struct{}
	data []byte // shorter than the window where the file ends
	err  error
}

// raWindow is the most one fetch asks for: several windows are fetched
// at once (from different replicas), so the chunkservers' disks, the
// network and the mount work in parallel.
const raWindow = 4 << 20

// readahead serves sequential reads of one open file from windows fetched
// ahead in the background: aligned windows of raWindow bytes (or less),
// as many as cover max bytes past the reader. A read far from where the
// last one stopped goes straight to the chunkservers and drops the
// windows. Reads near it (a quarter window behind to a window ahead, at
// most seqBand) count as sequential: the kernel's concurrent readahead
// requests arrive slightly out of order.
// Fetching starts with the second sequential read in a row: a random
// reader lands near the last read now and then, and each false start
// cost max bytes read for nothing (4 KiB random reads of a 1 GiB file
// spent most of the mount's CPU on such windows).
type readahead struct {
	max int // bytes fetched ahead; <= 0 disables

	mu      sync.Mutex
	next    int64 // the furthest a sequential reader has read
	started bool  // a read happened: next means something
	streak  int   // sequential reads in a row
	gen     uint64
	segs    map[int64]*segment // by window number
}

func (ra *readahead) window() int64 { return int64(max(min(ra.max, raWindow), 4096)) }

// seqBand bounds how far from where the last read ended a read may start
// and still count as sequential: two of the kernel's largest requests.
const seqBand = 2 << 20

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
	end := off + int64(len(dest))
	w := ra.window()
	ra.mu.Lock()
	if gen != ra.gen {
		ra.segs, ra.gen = nil, gen
	}
	seq := ra.started && off >= ra.next-min(w/4, seqBand) && off <= ra.next+min(w, seqBand)
	ra.started = true
	if seq {
		ra.streak++
	} else {
		ra.streak = 0
	}
	if ra.streak < 2 || ra.max <= 0 {
		if seq {
			ra.next = max(ra.next, end)
		} else {
			ra.next, ra.segs = end, nil
		}
		ra.mu.Unlock()
		cacheResult(cacheReadahead, false, 1)
		return f.ReadAt(ctx, dest, off, size)
	}
	cacheResult(cacheReadahead, true, 1)
	ra.next = max(ra.next, end)
	if ra.segs == nil {
		ra.segs = map[int64]*segment{}
	}
	first, last := off/w, (end-1)/w
	ahead := min((ra.next+int64(ra.max)-1)/w, (int64(size)-1)/w)
	for i := range ra.segs {
		if i < first-1 { // one behind stays for late, out-of-order reads
			delete(ra.segs, i)
		}
	}
	var need []*segment
	for i := first; i <= max(last, ahead); i++ {
		s := ra.segs[i]
		if s == nil {
			s = ra.fetch(bg, f, i*w, min(w, int64(size)-i*w), size)
			ra.segs[i] = s
		}
		if i <= last {
			need = append(need, s)
		}
	}
	ra.mu.Unlock()

	n := 0
	for _, s := range need {
		select {
		case <-s.done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		pos := off + int64(n)
		if s.err != nil {
			ra.mu.Lock()
			ra.segs = nil
			ra.mu.Unlock()
			m, err := f.ReadAt(ctx, dest[n:], pos, size)
			return n + m, err
		}
		i := pos - s.off
		if i >= int64(len(s.data)) {
			break // the file ended within the window
		}
		n += copy(dest[n:], s.data[i:])
	}
	return n, nil
}

// fetch starts reading n bytes at off in the background.
func (ra *readahead) fetch(bg context.Context, f fileReader, off, n int64, size uint64) *segment {
	s := &segment{off: off, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, n)
		m, err := f.ReadAt(bg, buf, off, size)
		s.data, s.err = buf[:m], err
	}()
	return s
}
