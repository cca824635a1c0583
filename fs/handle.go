package fs

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"dfs/api"
	"dfs/client"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// fileHandle is one open of a regular file: its write-back buffer, its
// readahead window and the errors of background writes not yet reported.
type fileHandle struct {
	n     *node
	file  *client.File
	flags uint32

	// ctx ends when the handle is released; background fetches use it.
	ctx    context.Context
	cancel context.CancelFunc

	mu  sync.Mutex // serialises buffer changes and flushes
	buf wbuf
	err error // a failed write-out, reported by the next Flush or Fsync
	// dirtyEnd is the end of data written through h and not yet committed
	// (0: none): buffered, being written out, or on the chunkservers
	// without its size in Raft. Guarded by n.mu so that Getattr can read
	// it without waiting for a flush.
	dirtyEnd uint64
	// outs are the background write-outs of full buffers not yet waited
	// for; uncommitted says some write-out finished since the last commit.
	outs        []*writeout
	outBytes    int
	uncommitted bool
	werr        error // the first write-out error since the last flush

	ra readahead
	lk handleLocks
	// unrecorded: opened with no record in Raft (node.Open); closing it
	// tells the master nothing.
	unrecorded bool
}

func newFileHandle(n *node, f *client.File, flags uint32) *fileHandle {
	ctx, cancel := context.WithCancel(context.Background())
	h := &fileHandle{n: n, file: f, flags: flags, ctx: ctx, cancel: cancel}
	h.ra.max = n.fsys.opts.Readahead
	h.buf.grow = n.fsys.opts.WriteBuffer + 1<<20 // a buffer's worth and one FUSE write
	return h
}

var _ = (gofs.FileWriter)((*fileHandle)(nil))

func (h *fileHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if e := h.lockCheck(); e != 0 {
		return 0, e
	}
	if fc, ok := ctx.(*fuse.Context); ok {
		h.n.killSgid(reqCtx(ctx), &fc.Caller)
	}
	ctx = reqCtx(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.flags&syscall.O_APPEND != 0 {
		// The kernel's idea of the size may be stale; ours includes
		// every handle's buffered data.
		off = int64(h.n.size())
	}
	h.buf.write(off, data)
	writtenBytes.Add(float64(len(data)))
	h.n.mu.Lock()
	h.dirtyEnd = max(h.dirtyEnd, uint64(off)+uint64(len(data)))
	h.n.dataGen++
	if len(data) > 0 {
		// mtime and ctime change at the write, as stat shows at once
		// (see fill); the flush commits this time, not its own.
		h.n.writeNs = time.Now().UnixNano()
	}
	h.n.mu.Unlock()
	if h.buf.size() >= h.n.fsys.opts.WriteBuffer {
		if err := h.startWriteout(ctx); err != nil {
			return 0, h.n.fsys.errno("write", err)
		}
	}
	return uint32(len(data)), 0
}

// writeout is the write of one buffer's extents to the chunkservers.
type writeout struct {
	exts  []extent
	bytes int
	done  chan struct{}
	err   error
}

func (w *writeout) overlaps(exts []extent) bool {
	for _, a := range w.exts {
		for _, b := range exts {
			if a.off < b.end() && b.off < a.end() {
				return true
			}
		}
	}
	return false
}

// maxOutstanding bounds the bytes of background write-outs per handle, in
// write buffers: enough to keep the FUSE intake, the network and the
// chunkservers' disks busy at once.
const maxOutstanding = 4

// startWriteout sends the buffered extents to the chunkservers in the
// background, so the writer goes on filling the next buffer meanwhile.
// It first waits for write-outs that overlap them, so writes to the same
// bytes land in the order they were made, and for the oldest ones while
// too many bytes are outstanding. A failed write-out is reported by a
// later Write, Flush or Fsync. h.mu is held.
func (h *fileHandle) startWriteout(ctx context.Context) error {
	if err := h.dropIfLockLost(); err != nil {
		return err
	}
	exts := h.buf.take()
	if len(exts) == 0 {
		return h.werr
	}
	w := &writeout{exts: exts, done: make(chan struct{})}
	for _, e := range exts {
		w.bytes += len(e.data)
	}
	limit := maxOutstanding * h.n.fsys.opts.WriteBuffer
	for i := 0; i < len(h.outs); {
		if o := h.outs[i]; o.overlaps(exts) || h.outBytes+w.bytes > limit {
			h.reap(i)
			continue
		}
		i++
	}
	h.outs = append(h.outs, w)
	h.outBytes += w.bytes
	// The write-out outlives the request that started it: an interrupt
	// of that request (a signal to the writer, which the kernel passes
	// on while the request is in flight) must not cancel it.
	bg := context.WithoutCancel(ctx)
	go func() {
		defer close(w.done)
		w.err = deferred(h.writeExtents(bg, exts))
	}()
	return h.werr
}

// deferred turns the error of a background write-out, reported by a later
// call, into one no caller takes for "try this call again": EINTR or
// EAGAIN from a later write(2) would make the caller repeat that write
// and never learn that earlier data was lost.
func deferred(err error) error {
	if err == nil {
		return nil
	}
	switch api.ErrnoOf(err) {
	case api.Errno_EIO, api.Errno_ENOSPC, api.Errno_EROFS, api.Errno_EFBIG, api.Errno_ENOLCK, api.Errno_EACCES, api.Errno_EPERM:
		return err
	}
	return fmt.Errorf("%w (%w)", api.Errno_EIO, err)
}

// reap waits for write-out i and forgets it, keeping its error. h.mu is
// held.
func (h *fileHandle) reap(i int) {
	w := h.outs[i]
	<-w.done
	h.outs = append(h.outs[:i], h.outs[i+1:]...)
	h.outBytes -= w.bytes
	h.uncommitted = true
	if w.err != nil && h.werr == nil {
		h.werr = w.err
	}
}

// writeExtents writes extents to the chunkservers.
func (h *fileHandle) writeExtents(ctx context.Context, exts []extent) error {
	ces := make([]client.Extent, len(exts))
	for i, e := range exts {
		ces[i] = client.Extent{Off: e.off, Data: e.data}
	}
	return h.file.WriteExtents(ctx, ces)
}

// flushLocked writes the buffered data to the chunkservers, waits for
// every background write-out, and commits the new size and mtime; h.mu
// is held. It returns the first write-out error since the last flush,
// which is also kept for Flush and Fsync to report.
func (h *fileHandle) flushLocked(ctx context.Context) error {
	if h.buf.size() == 0 && len(h.outs) == 0 && !h.uncommitted && h.werr == nil {
		return nil
	}
	err := h.startWriteout(ctx)
	for len(h.outs) > 0 {
		h.reap(0)
	}
	if err == nil {
		err = h.werr
	}
	h.werr = nil
	h.n.mu.Lock()
	end, mtime := h.dirtyEnd, h.n.writeNs
	h.n.mu.Unlock()
	if err == nil && h.uncommitted {
		h.n.awaitAccess() // an access-time update in flight lands first (see Allocate)
		a, cerr := h.n.fsys.client.CommitWrite(ctx, h.n.ino(), end, mtime)
		if err = cerr; err == nil {
			h.n.committed(a)
		}
	}
	h.uncommitted = false
	h.n.mu.Lock()
	h.dirtyEnd = 0
	h.n.dataGen++
	h.n.mu.Unlock()
	if err != nil && h.err == nil {
		h.err = err
	}
	return err
}

// takeErr returns and clears a deferred write-out error.
func (h *fileHandle) takeErr() error {
	err := h.err
	h.err = nil
	return err
}

var _ = (gofs.FileReader)((*fileHandle)(nil))

func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if e := h.lockCheck(); e != 0 {
		return nil, e
	}
	ctx = reqCtx(ctx)
	// Reads see writes made through any handle of this mount.
	if h.n.dirty() {
		if err := h.n.flushAll(ctx); err != nil {
			return nil, h.n.fsys.errno("read flush", err)
		}
	}
	h.n.mu.Lock()
	size, gen := h.n.sizeLocked(), h.n.dataGen
	h.n.mu.Unlock()
	n, err := h.ra.read(ctx, h.ctx, h.file, dest, off, size, gen)
	if err != nil {
		return nil, h.n.fsys.errno("read", err)
	}
	h.n.accessed()
	readBytes.Add(float64(n))
	return fuse.ReadResultData(dest[:n]), 0
}

var _ = (gofs.FileFlusher)((*fileHandle)(nil))

// Flush runs at every close(2) of a descriptor: when it returns, the data
// is on every replica and size and mtime are committed.
func (h *fileHandle) Flush(ctx context.Context) syscall.Errno {
	defer h.unlockOnClose(ctx)
	ctx = reqCtx(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.flushLocked(ctx)
	return h.n.fsys.errno("flush", h.takeErr())
}

var _ = (gofs.FileReleaser)((*fileHandle)(nil))

func (h *fileHandle) Release(ctx context.Context) syscall.Errno {
	ctx = reqCtx(ctx)
	// The kernel does not wait for this answer, and writes from a
	// shared mmap may arrive after the last Flush.
	rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h.mu.Lock()
	err := h.flushLocked(rctx)
	h.mu.Unlock()
	if err != nil {
		h.n.fsys.opts.Logf("dfs: inode %d: write-out at release: %v", h.n.ino(), err)
	}
	h.releaseLocks()
	h.cancel()
	h.n.closed(h)
	if h.unrecorded {
		h.n.fsys.unhold(h.n.ino())
	} else if err := h.n.fsys.client.Release(rctx, h.n.ino()); err != nil {
		h.n.fsys.opts.Logf("dfs: inode %d: release: %v", h.n.ino(), err)
	}
	return 0
}

var _ = (gofs.FileAllocater)((*fileHandle)(nil))

// Allocate implements fallocate. Space is not reserved (chunks are
// allocated on first write), so the default mode only extends the size;
// PUNCH_HOLE and ZERO_RANGE make the range read as zeros.
func (h *fileHandle) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	ctx = reqCtx(ctx)
	n := h.n
	// An access-time update in flight lands first, so the master
	// applies the two in the order they happened.
	n.awaitAccess()
	const known = unix.FALLOC_FL_KEEP_SIZE | unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_ZERO_RANGE
	if mode&^known != 0 {
		return syscall.EOPNOTSUPP
	}
	if mode&unix.FALLOC_FL_PUNCH_HOLE != 0 && mode&unix.FALLOC_FL_KEEP_SIZE == 0 {
		return syscall.EOPNOTSUPP
	}
	if err := n.flushAll(ctx); err != nil {
		return n.fsys.errno("fallocate", err)
	}
	cur := n.size()
	if mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE) != 0 && off < cur {
		if err := h.file.Zero(ctx, off, min(size, cur-off)); err != nil {
			return n.fsys.errno("fallocate", err)
		}
		n.mu.Lock()
		n.dataGen++
		n.mu.Unlock()
	}
	// Every fallocate that succeeds is a modification, as on ext4:
	// mtime and ctime change even when the size does not.
	var a *api.Attr
	var err error
	if mode&unix.FALLOC_FL_KEEP_SIZE == 0 && off+size > cur {
		a, err = h.file.CommitWrite(ctx, off+size)
	} else {
		a, err = n.fsys.client.SetAttr(ctx, &api.SetAttrOp{Ino: n.ino(), Valid: uint32(api.SetAttrOp_MTIME_NOW)})
	}
	if err != nil {
		return n.fsys.errno("fallocate", err)
	}
	n.committed(a)
	return 0
}

var _ = (gofs.FileLseeker)((*fileHandle)(nil))

// Lseek answers SEEK_DATA and SEEK_HOLE from the file's chunk map: a
// chunk never written is a hole, a written chunk is data throughout
// (chunkservers keep no finer map). The kernel handles the other
// whences itself.
func (h *fileHandle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	ctx = reqCtx(ctx)
	n := h.n
	if whence != unix.SEEK_DATA && whence != unix.SEEK_HOLE {
		return 0, syscall.EINVAL
	}
	if err := n.flushAll(ctx); err != nil {
		return 0, n.fsys.errno("lseek", err)
	}
	n.mu.Lock()
	size, attr := n.sizeLocked(), n.attr
	n.mu.Unlock()
	if off >= size {
		return 0, syscall.ENXIO
	}
	cs := client.ChunkSize(attr)
	const page = 1 << 14
	for first, last := off/cs, (size-1)/cs; first <= last; first += page {
		chunks, _, err := n.fsys.client.GetChunks(ctx, n.ino(), first, page)
		if err != nil {
			return 0, n.fsys.errno("lseek", err)
		}
		present := map[uint64]bool{}
		for _, ch := range chunks {
			present[ch.Index] = true
		}
		for i := first; i < first+page && i <= last; i++ {
			if present[i] == (whence == unix.SEEK_DATA) {
				return max(off, i*cs), 0
			}
		}
	}
	if whence == unix.SEEK_DATA {
		return 0, syscall.ENXIO
	}
	return size, 0
}
