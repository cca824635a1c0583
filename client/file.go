package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"dfs/api"

	"google.golang.org/grpc/status"
)

// File is the data path of one open inode: it caches the inode's chunk
// map and reads and writes chunk data directly on chunkservers. Writes
// through File are not visible in the file's size until CommitWrite.
// One File may be shared by every open of an inode in a process; it is
// safe for concurrent use.
type File struct {
	c         *Client
	ino       uint64
	chunkSize uint64
	io        chunkIO

	mu       sync.Mutex
	chunks   map[uint64]*api.Chunk // index -> chunk as last learned
	unsynced map[uint64]*api.Chunk // written since the last Sync
}

// OpenFile returns the data path for the file attr describes. It fails
// with ENOTSUP for layouts this client cannot write yet.
func (c *Client) OpenFile(attr *api.Attr) (*File, error) {
	io, err := ioFor(c, attr)
	if err != nil {
		return nil, err
	}
	return &File{
		c:         c,
		ino:       attr.Ino,
		chunkSize: ChunkSize(attr),
		io:        io,
		chunks:    map[uint64]*api.Chunk{},
		unsynced:  map[uint64]*api.Chunk{},
	}, nil
}

// ChunkSize is the number of file bytes per chunk for attr's layout.
func ChunkSize(attr *api.Attr) uint64 {
	if cs := attr.GetLayout().GetChunkSize(); cs != 0 {
		return cs
	}
	return api.DefaultChunkSize
}

// Ino is the inode this File reads and writes.
func (f *File) Ino() uint64 { return f.ino }

// span is the part of a file range that falls in one chunk.
type span struct {
	index    uint64 // chunk index
	off      uint64 // offset within the chunk
	fileOff  uint64
	n        uint64
	bufStart uint64 // offset in the caller's buffer
}

// spans cuts [off, off+n) at chunk boundaries.
func spans(chunkSize, off, n uint64) []span {
	var out []span
	var pos uint64
	for pos < n {
		fo := off + pos
		in := fo % chunkSize
		l := min(n-pos, chunkSize-in)
		out = append(out, span{index: fo / chunkSize, off: in, fileOff: fo, n: l, bufStart: pos})
		pos += l
	}
	return out
}

// parallel runs f for every item at once and returns the errors joined.
func parallel[T any](items []T, f func(T) error) error {
	return parallelN(items, len(items), f)
}

// parallelN is parallel with at most n calls of f at a time.
func parallelN[T any](items []T, n int, f func(T) error) error {
	if len(items) == 1 {
		return f(items[0])
	}
	errs := make([]error, len(items))
	slots := make(chan struct{}, max(n, 1))
	var wg sync.WaitGroup
	for i, it := range items {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			errs[i] = f(it)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// maxChunkWriters bounds the chunks of one buffer written at once where
// each extent is its own call (erasure-coded files). A chunk gets one
// call at a time: its primary orders a chunk's writes one at a time, so
// more only wait in its queue, and a flush of thousands of random 4 KiB
// extents queued long enough there for calls to time out. Different
// chunks have their own queues, mostly on different primaries.
const maxChunkWriters = 16

// WriteAt writes p at file offset off on every replica of the chunks it
// touches, allocating chunks as needed; chunks are written in parallel.
// It does not change the file's size: call CommitWrite after.
func (f *File) WriteAt(ctx context.Context, p []byte, off int64) error {
	if off < 0 {
		return api.Errno_EINVAL
	}
	return parallel(spans(f.chunkSize, uint64(off), uint64(len(p))), func(s span) error {
		return f.writeChunk(ctx, s.index, func(ctx context.Context, ch *api.Chunk) error {
			data := p[s.bufStart : s.bufStart+s.n]
			for pos := uint64(0); pos < s.n; pos += api.MaxWrite {
				piece := data[pos:min(pos+api.MaxWrite, s.n)]
				if err := f.io.write(ctx, ch, s.off+pos, piece); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// Extent is file data at a file offset.
type Extent struct {
	Off  int64
	Data []byte
}

// vectorWriter is a chunkIO that can write several pieces of a chunk in
// one call to its primary.
type vectorWriter interface {
	// writev writes pieces (at most api.MaxWrite bytes in all) in order.
	writev(ctx context.Context, ch *api.Chunk, pieces []*api.Extent) error
}

// WriteExtents writes scattered pieces of the file, as WriteAt would each:
// the pieces that fall in one chunk go to it in as few calls as its
// layout allows (one per api.MaxWrite bytes for replicated chunks, where
// small random writes would otherwise cost a call each), chunks in
// parallel. It does not change the file's size.
func (f *File) WriteExtents(ctx context.Context, exts []Extent) error {
	vw, ok := f.io.(vectorWriter)
	if len(exts) == 1 {
		return f.WriteAt(ctx, exts[0].Data, exts[0].Off)
	}
	if !ok {
		return f.writeEach(ctx, exts)
	}
	byChunk := map[uint64][]*api.Extent{}
	var order []uint64 // chunks in first-touched order
	for _, e := range exts {
		if e.Off < 0 {
			return api.Errno_EINVAL
		}
		for _, s := range spans(f.chunkSize, uint64(e.Off), uint64(len(e.Data))) {
			if byChunk[s.index] == nil {
				order = append(order, s.index)
			}
			data := e.Data[s.bufStart : s.bufStart+s.n]
			for pos := uint64(0); pos < s.n; pos += api.MaxWrite {
				byChunk[s.index] = append(byChunk[s.index], &api.Extent{Offset: s.off + pos, Data: data[pos:min(pos+api.MaxWrite, s.n)]})
			}
		}
	}
	return parallel(order, func(idx uint64) error {
		pieces := byChunk[idx]
		// Every attempt sends every piece, as WriteAt's does.
		return f.writeChunk(ctx, idx, func(ctx context.Context, ch *api.Chunk) error {
			for rest := pieces; len(rest) > 0; {
				n, size := 0, 0
				for n < len(rest) && size+len(rest[n].Data) <= api.MaxWrite {
					size += len(rest[n].Data)
					n++
				}
				if err := vw.writev(ctx, ch, rest[:n]); err != nil {
					return err
				}
				rest = rest[n:]
			}
			return nil
		})
	})
}

// writeEach writes exts with a call each: one chunk's in order, one at a
// time, at most maxChunkWriters chunks at once. An extent goes with the
// chunk its first byte is in; WriteAt writes any rest in the next chunk
// beside it.
func (f *File) writeEach(ctx context.Context, exts []Extent) error {
	byChunk := map[uint64][]Extent{}
	var order []uint64
	for _, e := range exts {
		if e.Off < 0 {
			return api.Errno_EINVAL
		}
		idx := uint64(e.Off) / f.chunkSize
		if byChunk[idx] == nil {
			order = append(order, idx)
		}
		byChunk[idx] = append(byChunk[idx], e)
	}
	return parallelN(order, maxChunkWriters, func(idx uint64) error {
		for _, e := range byChunk[idx] {
			if err := f.WriteAt(ctx, e.Data, e.Off); err != nil {
				return err
			}
		}
		return nil
	})
}

// Zero makes [off, off+n) read as zeros without changing the size, as
// fallocate's PUNCH_HOLE does. Holes stay holes.
func (f *File) Zero(ctx context.Context, off, n uint64) error {
	ss := spans(f.chunkSize, off, n)
	if len(ss) == 0 {
		return nil
	}
	present, err := f.present(ctx, ss[0].index, ss[len(ss)-1].index)
	if err != nil {
		return err
	}
	var todo []span
	for _, s := range ss {
		if present[s.index] != nil {
			todo = append(todo, s)
		}
	}
	return parallel(todo, func(s span) error {
		return f.writeChunk(ctx, s.index, func(ctx context.Context, ch *api.Chunk) error {
			return f.io.zero(ctx, ch, s.off, s.n)
		})
	})
}

// Truncate sets the file size. Shrinking first zeroes the tail of the
// chunk holding the new end, so that growing again later reads zeros;
// the master drops whole chunks beyond.
func (f *File) Truncate(ctx context.Context, size uint64) (*api.Attr, error) {
	idx, in := size/f.chunkSize, size%f.chunkSize
	chunks, attr, err := f.c.GetChunks(ctx, f.ino, idx, 1)
	if err != nil {
		return nil, err
	}
	if size < attr.Size && in != 0 && len(chunks) > 0 {
		f.learn(chunks)
		err := f.writeChunk(ctx, idx, func(ctx context.Context, ch *api.Chunk) error {
			return f.io.zero(ctx, ch, in, f.chunkSize-in)
		})
		if err != nil {
			return nil, err
		}
	}
	attr, err = f.c.SetAttr(ctx, &api.SetAttrOp{Ino: f.ino, Valid: uint32(api.SetAttrOp_SIZE), Size: size})
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	for i := range f.chunks {
		if i*f.chunkSize >= size {
			delete(f.chunks, i)
			delete(f.unsynced, i)
		}
	}
	f.mu.Unlock()
	return attr, nil
}

// CommitWrite records data written up to size (see Client.CommitWrite).
func (f *File) CommitWrite(ctx context.Context, size uint64) (*api.Attr, error) {
	return f.c.CommitWrite(ctx, f.ino, size, 0)
}

// Sync asks every replica of every chunk written through f since the last
// Sync to put it on stable storage.
func (f *File) Sync(ctx context.Context) error {
	f.mu.Lock()
	var todo []span
	chunks := map[uint64]*api.Chunk{}
	for i, ch := range f.unsynced {
		todo = append(todo, span{index: i})
		chunks[i] = ch
	}
	clear(f.unsynced)
	f.mu.Unlock()
	err := parallel(todo, func(s span) error { return f.syncChunk(ctx, chunks[s.index]) })
	if err != nil {
		// Keep them for the next fsync to try again.
		f.mu.Lock()
		for i, ch := range chunks {
			if _, ok := f.unsynced[i]; !ok {
				f.unsynced[i] = ch
			}
		}
		f.mu.Unlock()
	}
	return err
}

// syncChunk puts one chunk on stable storage on every replica. Replicas
// that cannot sync are dropped from the chunk's set (as a failed write
// drops them), so that when Sync returns, the data is durable on every
// replica the chunk still has; the sync is then repeated on that set.
func (f *File) syncChunk(ctx context.Context, ch *api.Chunk) error {
	ctx, cancel := context.WithTimeout(ctx, f.c.cfg.DataTimeout)
	defer cancel()
	backoff := 50 * time.Millisecond
	for {
		err := f.io.sync(ctx, ch)
		if tokenRetry(err) && ctx.Err() == nil {
			if next, ok := f.refreshToken(ctx, ch, err, &backoff); ok {
				ch = next
				continue
			}
			return err
		}
		var rf *replicaFailure
		if err == nil || !errors.As(err, &rf) || ctx.Err() != nil {
			return err
		}
		next, rerr := f.c.ReportFailure(ctx, f.ino, ch, rf.failed)
		if rerr != nil {
			return fmt.Errorf("%w (reporting it: %v)", err, rerr)
		}
		if next == nil {
			return err
		}
		f.learn([]*api.Chunk{next})
		ch = next
	}
}

// writeChunk runs op against chunk idx with a write lease, getting a new
// lease (or a new replica set) from the master when the primary refuses
// or a replica fails, until the data timeout ends.
func (f *File) writeChunk(ctx context.Context, idx uint64, op func(context.Context, *api.Chunk) error) error {
	ctx, cancel := context.WithTimeout(ctx, f.c.cfg.DataTimeout)
	defer cancel()
	f.mu.Lock()
	ch := f.chunks[idx]
	f.mu.Unlock()
	backoff := 50 * time.Millisecond
	for {
		if ch == nil || ch.Primary == "" || ch.GetToken().GetAccess() < api.ChunkToken_WRITE {
			var err error
			if ch, err = f.c.AllocChunk(ctx, f.ino, idx); err != nil {
				return err
			}
			f.learn([]*api.Chunk{ch})
		}
		err := op(ctx, ch)
		if err == nil {
			f.mu.Lock()
			f.unsynced[idx] = ch
			f.mu.Unlock()
			return nil
		}
		var rf *replicaFailure
		if errors.As(err, &rf) {
			// Drop the replicas that failed and carry on with the rest.
			next, rerr := f.c.ReportFailure(ctx, f.ino, ch, rf.failed)
			if rerr == nil && next != nil {
				f.learn([]*api.Chunk{next})
				ch = next
				continue
			}
			// The report failed too: back off and start again below.
			err = fmt.Errorf("%w (reporting it: %v)", err, rerr)
		}
		sameLease := false
		switch e := api.ErrnoOf(err); {
		case e == api.Errno_EAGAIN || e == api.Errno_ESTALE || e == api.Errno_EKEYEXPIRED:
			// Lease moved or expired, the version changed or the chunk
			// token expired: ask again.
		case e == api.Errno_EINTR || e == api.Errno_EIO || e == api.Errno_ENOKEY || isTransport(err):
			// EINTR: the primary gave up waiting for the chunk's earlier
			// writes (nothing applied), and the same lease is good.
			// Otherwise a replica is down: the master drops it from the
			// set once it notices. Either way, wait a little first.
			sameLease = e == api.Errno_EINTR
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(2*backoff, time.Second)
		default:
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("chunk %d of inode %d: %w (last error: %v)", idx, f.ino, ctx.Err(), err)
		}
		if !sameLease {
			ch = nil
		}
	}
}

// tokenRetry says whether a chunkserver refused a call for its chunk
// token in a way that asking again fixes: the token expired (the master
// gives a new one), or the server has not yet heard of its key (it will
// with its next heartbeat).
func tokenRetry(err error) bool {
	e := api.ErrnoOf(err)
	return err != nil && (e == api.Errno_EKEYEXPIRED || e == api.Errno_ENOKEY)
}

func isTransport(err error) bool {
	_, ok := status.FromError(err)
	return ok && !errors.As(err, new(api.Errno))
}

// refreshToken is what a sync does when a chunkserver refused ch's token:
// wait a little for a key the server has not heard of, or get a new
// token for an expired one. ok is false when there is nothing to retry.
func (f *File) refreshToken(ctx context.Context, ch *api.Chunk, err error, backoff *time.Duration) (*api.Chunk, bool) {
	if api.ErrnoOf(err) == api.Errno_ENOKEY {
		select {
		case <-time.After(*backoff):
		case <-ctx.Done():
			return nil, false
		}
		*backoff = min(2**backoff, time.Second)
		return ch, true
	}
	chunks, _, gerr := f.c.GetChunks(ctx, f.ino, ch.Index, 1)
	if gerr != nil || len(chunks) == 0 || chunks[0].Id != ch.Id {
		return nil, false // gone or replaced meanwhile: not ours to sync
	}
	return chunks[0], true
}

// learn records chunk locations from the master.
func (f *File) learn(chunks []*api.Chunk) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range chunks {
		if old := f.chunks[ch.Index]; old == nil || old.Version <= ch.Version || ch.Primary != "" {
			f.chunks[ch.Index] = ch
		}
	}
}

// Learn records where a chunk is, as the master answered it elsewhere
// (a create that allocated the file's first chunk).
func (f *File) Learn(ch *api.Chunk) { f.learn([]*api.Chunk{ch}) }

// present returns the chunks in [first, last], asking the master for any
// not cached. Absent entries are holes.
func (f *File) present(ctx context.Context, first, last uint64) (map[uint64]*api.Chunk, error) {
	out := map[uint64]*api.Chunk{}
	f.mu.Lock()
	missing := false
	for i := first; i <= last; i++ {
		if ch := f.chunks[i]; ch != nil {
			out[i] = ch
		} else {
			missing = true
		}
	}
	f.mu.Unlock()
	if !missing {
		chunkMaps.WithLabelValues("hit").Inc()
		return out, nil
	}
	chunkMaps.WithLabelValues("miss").Inc()
	// Holes are not cached: another writer may fill them.
	for i := first; i <= last; {
		n := min(last-i+1, 1<<16)
		chunks, _, err := f.c.GetChunks(ctx, f.ino, i, uint32(n))
		if err != nil {
			return nil, err
		}
		f.learn(chunks)
		for _, ch := range chunks {
			out[ch.Index] = ch
		}
		i += n
	}
	return out, nil
}

// ReadAt reads into p from file offset off, never past size (the file
// size the caller knows), and returns the number of bytes read. Holes
// and bytes a replica does not hold read as zeros.
func (f *File) ReadAt(ctx context.Context, p []byte, off int64, size uint64) (int, error) {
	if off < 0 {
		return 0, api.Errno_EINVAL
	}
	if uint64(off) >= size {
		return 0, nil
	}
	n := min(uint64(len(p)), size-uint64(off))
	ss := spans(f.chunkSize, uint64(off), n)
	present, err := f.present(ctx, ss[0].index, ss[len(ss)-1].index)
	if err != nil {
		return 0, err
	}
	err = parallel(ss, func(s span) error {
		dest := p[s.bufStart : s.bufStart+s.n]
		ch := present[s.index]
		if ch == nil {
			clear(dest)
			return nil
		}
		return f.readChunk(ctx, ch, s.off, dest)
	})
	if err != nil {
		return 0, err
	}
	return int(n), nil
}

// readChunk fills dest from one chunk, refreshing the chunk's location
// once if every replica refuses it as stale.
func (f *File) readChunk(ctx context.Context, ch *api.Chunk, off uint64, dest []byte) error {
	ctx, cancel := context.WithTimeout(ctx, f.c.cfg.DataTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		var err error
		for pos := 0; pos < len(dest) && err == nil; pos += api.MaxWrite {
			err = f.io.read(ctx, ch, off+uint64(pos), dest[pos:min(pos+api.MaxWrite, len(dest))])
		}
		// Replicas that all hold an older version than the master's are
		// waiting for it to tell them the current one (a version bump
		// that reached no replica), and ones that do not know the
		// token's key yet will with their next heartbeat: keep asking
		// until the data timeout. An expired token is replaced below.
		wait := api.ErrnoOf(err) == api.Errno_ESTALE || tokenRetry(err)
		if err == nil || (attempt >= 3 && !wait) || ctx.Err() != nil {
			return err
		}
		// The chunk may have a new version or replica set.
		chunks, _, gerr := f.c.GetChunks(ctx, f.ino, ch.Index, 1)
		if gerr != nil {
			return err
		}
		f.mu.Lock()
		delete(f.chunks, ch.Index)
		f.mu.Unlock()
		if len(chunks) == 0 {
			clear(dest) // truncated away meanwhile
			return nil
		}
		f.learn(chunks)
		ch = chunks[0]
		select {
		case <-time.After(min(time.Duration(attempt+1)*100*time.Millisecond, time.Second)):
		case <-ctx.Done():
			return err
		}
	}
}

// chunkIO moves the data of one chunk; there is one implementation per
// layout kind, so an erasure-coded codec slots in beside replication.
type chunkIO interface {
	// write stores data (at most api.MaxWrite bytes) at off on every
	// copy of the chunk, through its primary.
	write(ctx context.Context, ch *api.Chunk, off uint64, data []byte) error
	// zero makes [off, off+n) of the chunk read as zeros, shortening
	// the chunk if that reaches its end.
	zero(ctx context.Context, ch *api.Chunk, off, n uint64) error
	// read fills dest (at most api.MaxWrite bytes) from off, with zeros
	// past the data the chunk holds.
	read(ctx context.Context, ch *api.Chunk, off uint64, dest []byte) error
	// sync puts the chunk on stable storage on every copy.
	sync(ctx context.Context, ch *api.Chunk) error
}

func ioFor(c *Client, attr *api.Attr) (chunkIO, error) {
	switch l := attr.GetLayout(); l.GetKind() {
	case api.Layout_REPLICATED:
		return replicated{c: c, ino: attr.Ino}, nil
	case api.Layout_EC:
		return newErasure(c, attr)
	default:
		return nil, fmt.Errorf("layout %s: %w", api.FormatLayout(l), syscall.ENOTSUP)
	}
}
