package fs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"time"

	"dfs/api"
	"dfs/client"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// File locks. The kernel forwards flock(2) (as FUSE_LK_FLOCK requests)
// and fcntl POSIX and OFD locks to the mount, which takes them on the
// master, so processes on different hosts conflict as on one host. The
// kernel keeps no lock state of its own for a FUSE file, so the mount
// releases locks the way Linux would:
//
//   - POSIX locks belong to a process (the kernel's lock owner is its
//     file table): any close of the file by that process releases them.
//     The kernel says which owner closes in FLUSH, which go-fuse does not
//     pass on, so lockRaw catches it.
//   - flock and OFD locks belong to an open file description: its last
//     close (RELEASE) releases them.
//
// RELEASE is asynchronous: the kernel may reuse a closed description's
// memory, and so its lock owner number, before the mount has released
// its locks. flock locks therefore take the handle's own id as owner,
// and a RELEASE drops only the POSIX-kind owners that its handle was the
// last to lock for.
//
// Every lock's data is kept exact across hosts: an unlock first writes
// out buffered data; a grant drops cached data and attributes.

// sequencerXattr is the virtual extended attribute that shows the
// largest sequencer among the locks this mount holds on a file.
const sequencerXattr = "dfs.lock.sequencer"

// mountLocks is the lock state one mount keeps.
type mountLocks struct {
	flushOwner sync.Map // FLUSH request's cancel channel -> its lock owner

	mu         sync.Mutex
	posix      map[uint64]map[uint64]*fileHandle // ino -> owner that may hold POSIX or OFD locks -> handle it last locked through
	nextHandle uint64
}

// handleID returns a number for a new handle, unique within the mount.
func (m *mountLocks) handleID() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextHandle++
	return m.nextHandle
}

func (m *mountLocks) addPosix(ino, owner uint64, h *fileHandle) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.posix == nil {
		m.posix = map[uint64]map[uint64]*fileHandle{}
	}
	if m.posix[ino] == nil {
		m.posix[ino] = map[uint64]*fileHandle{}
	}
	m.posix[ino][owner] = h
}

// takePosix forgets that owner may hold POSIX locks on ino and reports
// whether it might have. With h set, only if h was the last handle the
// owner locked through.
func (m *mountLocks) takePosix(ino, owner uint64, h *fileHandle) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	last, ok := m.posix[ino][owner]
	if !ok || (h != nil && last != h) {
		return false
	}
	delete(m.posix[ino], owner)
	if len(m.posix[ino]) == 0 {
		delete(m.posix, ino)
	}
	return true
}

// handleLocks is the lock state of one open file description.
type handleLocks struct {
	mu      sync.Mutex
	session uint64          // the session a lock was taken under; 0: never locked here
	id      uint64          // the flock owner: this handle, unique in the mount; 0: none yet
	posix   map[uint64]bool // POSIX and OFD owners that locked through this handle
}

// mountWithLocks mounts root as gofs.Mount does, with the kernel
// forwarding flock and POSIX locks to the mount, and the umask and ACL
// flags of raw requests recorded for the nodes (aclRaw).
func mountWithLocks(dir string, root gofs.InodeEmbedder, opts *gofs.Options, fsys *filesystem) (*fuse.Server, error) {
	opts.MountOptions.EnableLocks = true
	raw := &aclRaw{RawFileSystem: &lockRaw{RawFileSystem: gofs.NewNodeFS(root, opts), locks: &fsys.locks}, reqs: &fsys.reqs}
	server, err := fuse.NewServer(raw, dir, &opts.MountOptions)
	if err != nil {
		return nil, err
	}
	// INIT is done: whether the kernel enforces ACLs is known before
	// the first request.
	fsys.acls = server.KernelSettings().Flags64()&fuse.CAP_POSIX_ACL != 0
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, err
	}
	return server, nil
}

// lockRaw passes FLUSH's lock owner to the file handle's Flush, keyed by
// the request's cancel channel (which the handle sees in its context).
type lockRaw struct {
	fuse.RawFileSystem
	locks *mountLocks
}

func (r *lockRaw) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	r.locks.flushOwner.Store(cancel, in.LockOwner)
	defer r.locks.flushOwner.Delete(cancel)
	return r.RawFileSystem.Flush(cancel, in)
}

// lockType converts a fcntl lock type.
func lockType(t uint32) (api.LockType, bool) {
	switch t {
	case syscall.F_RDLCK:
		return api.LockType_READ, true
	case syscall.F_WRLCK:
		return api.LockType_WRITE, true
	case syscall.F_UNLCK:
		return api.LockType_UNLOCK, true
	}
	return 0, false
}

func lockKind(flags uint32) api.LockKind {
	if flags&fuse.FUSE_LK_FLOCK != 0 {
		return api.LockKind_FLOCK
	}
	return api.LockKind_POSIX
}

var _ = (gofs.FileGetlker)((*fileHandle)(nil))

// Getlk is F_GETLK (and F_OFD_GETLK). A holder on another mount is
// reported with pid 0: its pid means nothing on this host.
func (h *fileHandle) Getlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32, out *fuse.FileLock) syscall.Errno {
	typ, ok := lockType(lk.Typ)
	if !ok || typ == api.LockType_UNLOCK || lk.Start > lk.End {
		return syscall.EINVAL
	}
	fsys := h.n.fsys
	resp, err := fsys.client.GetLock(reqCtx(ctx), &api.LockOp{Ino: h.n.ino(), Kind: lockKind(flags), Owner: owner,
		Type: typ, Start: lk.Start, End: lk.End})
	if err != nil {
		return fsys.errno("getlk", err)
	}
	if !resp.Conflict {
		*out = *lk
		out.Typ = syscall.F_UNLCK
		return 0
	}
	l := resp.Lock
	out.Start, out.End = l.Start, l.End
	out.Typ = syscall.F_RDLCK
	if l.Type == api.LockType_WRITE {
		out.Typ = syscall.F_WRLCK
	}
	out.Pid = 0
	if l.Session == fsys.client.Session() {
		out.Pid = l.Pid
	}
	return 0
}

var _ = (gofs.FileSetlker)((*fileHandle)(nil))

// Setlk is F_SETLK, F_OFD_SETLK and flock with LOCK_NB.
func (h *fileHandle) Setlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return h.setlk(ctx, owner, lk, flags, false)
}

var _ = (gofs.FileSetlkwer)((*fileHandle)(nil))

// Setlkw is F_SETLKW, F_OFD_SETLKW and a blocking flock. The wait is on
// the master; a signal to the waiting process interrupts the request,
// which removes the waiter and answers EINTR (the kernel restarts the
// call if the signal's handler asks for it).
func (h *fileHandle) Setlkw(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return h.setlk(ctx, owner, lk, flags, true)
}

func (h *fileHandle) setlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32, wait bool) syscall.Errno {
	typ, ok := lockType(lk.Typ)
	if !ok || lk.Start > lk.End {
		return syscall.EINVAL
	}
	n, fsys := h.n, h.n.fsys
	kind := lockKind(flags)
	if kind == api.LockKind_FLOCK {
		owner = h.flockOwner()
	}
	op := &api.LockOp{Ino: n.ino(), Kind: kind, Owner: owner, Type: typ, Start: lk.Start, End: lk.End, Wait: wait && typ != api.LockType_UNLOCK}
	// Lock calls, unlike the rest of the mount, honour FUSE interrupts:
	// a wait may last for ever, and a signal must end it.
	lctx := ctx
	if fc, ok := ctx.(*fuse.Context); ok {
		op.Pid = fc.Pid
		lctx = client.WithCaller(ctx, &api.Caller{Uid: fc.Uid, Gid: fc.Gid, Pid: fc.Pid})
	}
	// Whoever may take the lock next must see everything written under
	// it: flush before an unlock, a downgrade, or a flock conversion
	// (which gives the lock away while it waits).
	if err := n.flushAll(reqCtx(ctx)); err != nil {
		return fsys.errno("flush before lock change", err)
	}
	if typ != api.LockType_UNLOCK {
		// Record the owner before asking, so that a close racing with
		// the grant still releases it.
		h.noteOwner(kind, owner)
	}
	sess := fsys.client.Session()
	info, err := fsys.client.Lock(lctx, op)
	switch {
	case errors.Is(err, syscall.EAGAIN):
		return syscall.EAGAIN
	case errors.Is(err, syscall.EINTR):
		return syscall.EINTR
	case err != nil:
		return fsys.errno("lock", err)
	}
	if typ == api.LockType_UNLOCK {
		return 0
	}
	h.lk.mu.Lock()
	if s := info.GetSession(); s != 0 {
		sess = s
	}
	// A descriptor that held a lock under a session now gone stays
	// failed until it is reopened, even if it locks again.
	if h.lk.session == 0 {
		h.lk.session = sess
	}
	h.lk.mu.Unlock()
	n.revalidate(reqCtx(ctx))
	return 0
}

// flockOwner returns the handle's flock owner number.
func (h *fileHandle) flockOwner() uint64 {
	h.lk.mu.Lock()
	defer h.lk.mu.Unlock()
	if h.lk.id == 0 {
		h.lk.id = h.n.fsys.locks.handleID()
	}
	return h.lk.id
}

func (h *fileHandle) noteOwner(kind api.LockKind, owner uint64) {
	if kind == api.LockKind_FLOCK {
		return // released by id at the last close
	}
	h.lk.mu.Lock()
	if h.lk.posix == nil {
		h.lk.posix = map[uint64]bool{}
	}
	h.lk.posix[owner] = true
	h.lk.mu.Unlock()
	h.n.fsys.locks.addPosix(h.n.ino(), owner, h)
}

// revalidate makes the next reads and stats of a newly locked file ask
// the cluster: what another host wrote under the lock is seen.
func (n *node) revalidate(ctx context.Context) {
	if a, err := n.fsys.client.GetAttr(ctx, n.ino()); err == nil {
		n.setAttr(a)
	}
	n.mu.Lock()
	n.cacheValid = false
	n.dataGen++
	if n.file != nil {
		n.file.Invalidate()
	}
	n.mu.Unlock()
	n.NotifyContent(0, 0)
}

// unlockOnClose runs after every close(2) of a descriptor of h: the
// closing process's POSIX locks on the file are released, as on Linux.
func (h *fileHandle) unlockOnClose(ctx context.Context) {
	fc, ok := ctx.(*fuse.Context)
	if !ok {
		return
	}
	v, ok := h.n.fsys.locks.flushOwner.Load((<-chan struct{})(fc.Cancel))
	if !ok {
		return
	}
	owner := v.(uint64)
	if !h.n.fsys.locks.takePosix(h.n.ino(), owner, nil) {
		return
	}
	h.unlock(api.LockKind_POSIX, owner)
}

// releaseLocks runs at the last close of h (RELEASE): its flock and OFD
// locks are released. POSIX owners that closed h were released at their
// FLUSH already; the owners left are OFD locks of this description.
func (h *fileHandle) releaseLocks() {
	h.lk.mu.Lock()
	flock, posix := h.lk.id, h.lk.posix
	h.lk.posix = nil
	h.lk.mu.Unlock()
	if flock != 0 {
		h.unlock(api.LockKind_FLOCK, flock)
	}
	for owner := range posix {
		if h.n.fsys.locks.takePosix(h.n.ino(), owner, h) {
			h.unlock(api.LockKind_POSIX, owner)
		}
	}
}

func (h *fileHandle) unlock(kind api.LockKind, owner uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := h.n.fsys.client.Lock(ctx, &api.LockOp{Ino: h.n.ino(), Kind: kind, Owner: owner,
		Type: api.LockType_UNLOCK, End: ^uint64(0)})
	if err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, client.ErrLockLost) {
		h.n.fsys.opts.Logf("dfs: inode %d: releasing locks at close: %v", h.n.ino(), err)
	}
}

// errLockLost is what I/O through a descriptor that held a lock gets once
// the lock may be gone.
var errLockLost = fmt.Errorf("%w: the session that held a lock on this file may have expired", syscall.EIO)

// lockLost reports whether a lock taken through h may have been lost:
// the session changed (it expired: certainly lost) or this host has not
// heard from the masters within the TTL (it may have expired).
func (h *fileHandle) lockLost() error {
	h.lk.mu.Lock()
	held := h.lk.session
	h.lk.mu.Unlock()
	if held == 0 {
		return nil
	}
	sess, until := h.n.fsys.client.SessionState()
	if sess != held || time.Now().After(until) {
		return errLockLost
	}
	return nil
}

// lockCheck is lockLost as an errno for the I/O entry points.
func (h *fileHandle) lockCheck() syscall.Errno {
	if h.lockLost() != nil {
		return syscall.EIO
	}
	return 0
}

// sequencer answers the dfs.lock.sequencer xattr: the largest sequencer
// among the locks this mount holds on the file, in decimal; ENODATA if
// it holds none.
func (n *node) sequencer(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	resp, err := n.fsys.client.GetLock(ctx, &api.LockOp{Ino: n.ino(), Kind: api.LockKind_POSIX,
		Type: api.LockType_READ, End: ^uint64(0)})
	if err != nil {
		return 0, n.fsys.errno("getxattr", err)
	}
	if resp.Sequencer == 0 {
		return 0, syscall.ENODATA
	}
	v := strconv.FormatUint(resp.Sequencer, 10)
	if len(v) > len(dest) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// dropIfLockLost discards buffered writes made through h if a lock taken
// through h may be gone: they must not land after another host may have
// taken the lock. h.mu is held.
func (h *fileHandle) dropIfLockLost() error {
	err := h.lockLost()
	if err == nil || h.buf.size() == 0 {
		return nil
	}
	h.buf.take()
	h.n.mu.Lock()
	h.dirtyEnd = 0
	h.n.dataGen++
	h.n.mu.Unlock()
	if h.err == nil {
		h.err = err
	}
	return err
}
