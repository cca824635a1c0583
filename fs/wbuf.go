package fs

import "sort"

// extent is a run of buffered file bytes starting at off.
type extent struct {
	off  int64
	data []byte
}

func (e extent) end() int64 { return e.off + int64(len(e.data)) }

// wbuf is a write-back buffer: dirty file bytes as sorted, disjoint,
// non-adjacent extents. Later writes overwrite earlier ones; touching
// writes coalesce so that a sequential writer builds one extent.
type wbuf struct {
	exts  []extent
	bytes int
	// grow is the capacity a sequential writer's extent jumps to when
	// appended to: it then fills one allocation instead of copying the
	// extent at every growth step. Small extents (random writes that
	// happen to touch) only double, or each would cost a whole buffer.
	grow int
}

// seqExtent is the size from which an extent that is appended to looks
// like a sequential writer's (see grow).
const seqExtent = 128 << 10

// write buffers a copy of p at off.
func (b *wbuf) write(off int64, p []byte) {
	if len(p) == 0 {
		return
	}
	end := off + int64(len(p))
	// First extent that ends at or after off, and the first one that
	// starts after end: [i, j) touch or overlap the write.
	i := sort.Search(len(b.exts), func(k int) bool { return b.exts[k].end() >= off })
	j := sort.Search(len(b.exts), func(k int) bool { return b.exts[k].off > end })
	switch {
	case i == j:
		b.exts = append(b.exts, extent{})
		copy(b.exts[i+1:], b.exts[i:])
		b.exts[i] = extent{off: off, data: append([]byte(nil), p...)}
		b.bytes += len(p)
		return
	case j == i+1 && b.exts[i].end() == off:
		// The common case, appending: grow in place.
		d := b.exts[i].data
		if need := len(d) + len(p); need > cap(d) {
			c := max(need, 2*cap(d))
			if len(d) >= seqExtent || len(p) >= seqExtent {
				c = max(c, b.grow)
			}
			d = append(make([]byte, 0, c), d...)
		}
		b.exts[i].data = append(d, p...)
		b.bytes += len(p)
		return
	}
	start := min(off, b.exts[i].off)
	stop := max(end, b.exts[j-1].end())
	var data []byte
	if e := b.exts[i]; e.off == start && int64(cap(e.data)) >= stop-start {
		data = e.data[:stop-start]
	} else {
		data = make([]byte, stop-start, (stop-start)*5/4)
		copy(data[e.off-start:], e.data)
	}
	for _, e := range b.exts[i+1 : j] {
		copy(data[e.off-start:], e.data)
	}
	copy(data[off-start:], p)
	for _, e := range b.exts[i:j] {
		b.bytes -= len(e.data)
	}
	b.bytes += len(data)
	b.exts[i] = extent{off: start, data: data}
	b.exts = append(b.exts[:i+1], b.exts[j:]...)
}

// size is the number of buffered bytes.
func (b *wbuf) size() int { return b.bytes }

// take returns the buffered extents and empties the buffer.
func (b *wbuf) take() []extent {
	e := b.exts
	b.exts, b.bytes = nil, 0
	return e
}
