package fs

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"dfs/api"
	"dfs/client"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"google.golang.org/protobuf/proto"
)

// attrSeq numbers the attribute changes mounts in this process commit,
// so that an answer fetched before one of them is not taken over it
// (node.adopt).
var attrSeq atomic.Uint64

// nsSeq counts the changes mounts in this process commit other than
// reads' access times: those end directory listings (listing.go), which
// must not end at every read.
var nsSeq atomic.Uint64

// changeNum numbers a change this mount committed, other than an
// access time.
func changeNum() uint64 {
	nsSeq.Add(1)
	return attrSeq.Add(1)
}

// node is one inode of the mount. It caches the attributes last seen from
// the master and, while the file is open, the data path shared by its
// open handles.
type node struct {
	gofs.Inode
	fsys *filesystem

	mu   sync.Mutex
	attr *api.Attr // last known from the master
	// cached is the size and mtime the kernel page cache reflects: set
	// at open and by our own writes, compared at the next open.
	cachedSize  uint64
	cachedMtime int64
	cacheValid  bool
	file        *client.File             // data path while open
	handles     map[*fileHandle]struct{} // open handles
	dataGen     uint64                   // bumped whenever file data changes here
	// writeNs is the time of the last buffered write: the file's mtime
	// and ctime as this mount shows them until the data is committed.
	writeNs int64
	// accessing is closed when the access-time update in flight ends
	// (nil: none); accessAgain asks it for another when it is done, for
	// a read made while it was in flight.
	accessing   chan struct{}
	accessAgain bool
	// changeSeq is the sequence number (attrSeq) of the
	// last attribute change this mount committed here: attributes
	// fetched before it may be older and must not replace it (adopt).
	changeSeq uint64
	// freshUntil: a directory's attr came from this mount's own change
	// in it less than the attribute timeout ago, so Getattr answers it
	// without asking (the kernel drops a directory's attributes after
	// every create or unlink in it and asks again for its permission
	// check).
	freshUntil time.Time
	// noCapsUntil: the file had no capsXattr as of less than the
	// attribute timeout ago (the kernel asks before every write).
	noCapsUntil time.Time
	// dl: a directory's listing, answering lookups (listing.go).
	dl dirListing
}

// capsXattr holds file capabilities; the kernel reads it before every
// write to decide whether the write must drop them.
const capsXattr = "security.capability"

func (n *node) ino() uint64 { return n.StableAttr().Ino }

// adopt takes attributes answered to a request that began at mount
// sequence start, unless this mount committed a change since: then the
// answer may predate it (a flush's new size, say), and the kernel would
// believe the older size and cut reads short. It returns what to show.
func (n *node) adopt(a *api.Attr, start uint64) *api.Attr {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.attr != nil && n.changeSeq > start {
		return n.attr
	}
	n.attr = a
	return a
}

// changed records attributes this mount's own change produced.
func (n *node) changed(a *api.Attr) {
	n.mu.Lock()
	n.attr = a
	n.changeSeq = changeNum()
	n.mu.Unlock()
}

// dirChanged records a directory's attributes answered to this mount's
// change of an entry in it. An answer older than the one held (changes
// answered out of order) is ignored: the master stamps ctime on every
// such change.
func (n *node) dirChanged(a *api.Attr) {
	if a == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.attr != nil && a.CtimeNs < n.attr.CtimeNs {
		return
	}
	n.attr = a
	n.changeSeq = changeNum()
	n.freshUntil = time.Now().Add(n.fsys.opts.AttrTimeout)
}

// freshAttr returns the attributes Getattr may answer without asking the
// master, nil if there are none.
func (n *node) freshAttr() *api.Attr {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.attr == nil || !time.Now().Before(n.freshUntil) {
		return nil
	}
	return n.attr
}

// unfresh forgets that the attributes are fresh and what is known of
// xattrs: this mount changed them without learning the result.
func (n *node) unfresh() {
	n.mu.Lock()
	n.freshUntil, n.noCapsUntil = time.Time{}, time.Time{}
	n.mu.Unlock()
}

// noCaps records that the file has no capsXattr as of now.
func (n *node) noCaps() {
	n.mu.Lock()
	n.noCapsUntil = time.Now().Add(n.fsys.opts.AttrTimeout)
	n.mu.Unlock()
}

func (n *node) knownNoCaps() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return time.Now().Before(n.noCapsUntil)
}

func (n *node) setAttr(a *api.Attr) {
	if a == nil {
		return
	}
	n.mu.Lock()
	n.attr = a
	n.mu.Unlock()
}

// size is the file size as this mount sees it: the master's, or the end
// of buffered writes if that is larger.
func (n *node) size() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sizeLocked()
}

func (n *node) sizeLocked() uint64 {
	s := n.attr.GetSize()
	for h := range n.handles {
		s = max(s, h.dirtyEnd)
	}
	return s
}

// fill answers attributes a (the node's current ones, see adopt), with
// the local size and, while writes are buffered, their time.
func (n *node) fill(a *api.Attr, out *fuse.Attr) {
	n.mu.Lock()
	size := max(a.GetSize(), n.sizeLocked())
	wt := int64(0)
	if size != a.GetSize() || n.dirtyLocked() {
		wt = n.writeNs
	}
	n.mu.Unlock()
	fillAttr(a, size, out)
	if wt > a.MtimeNs {
		setTime(wt, &out.Mtime, &out.Mtimensec)
	}
	if wt > a.CtimeNs {
		setTime(wt, &out.Ctime, &out.Ctimensec)
	}
}

// killSgid clears the setgid bit of a file without group execute when a
// caller outside its group writes it, as the kernel does for a local
// disk. The kernel clears setuid, and setgid with group execute, itself
// before a write reaches FUSE; this case it leaves to the file system,
// which needs the caller's supplementary groups to decide.
func (n *node) killSgid(ctx context.Context, caller *fuse.Caller) {
	n.mu.Lock()
	a := n.attr
	n.mu.Unlock()
	if a == nil || a.Mode&(syscall.S_ISGID|syscall.S_IXGRP) != syscall.S_ISGID || caller.Uid == 0 ||
		inGroup(caller, a.Gid) {
		return
	}
	na, err := n.fsys.client.SetAttr(ctx, &api.SetAttrOp{Ino: n.ino(),
		Valid: uint32(api.SetAttrOp_MODE), Mode: a.Mode &^ syscall.S_ISGID & 0o7777})
	if err == nil {
		n.setAttr(na)
	}
}

// inGroup reports whether the calling process is in group gid, from its
// supplementary groups in /proc. A caller that is gone counts as not in
// the group.
func inGroup(caller *fuse.Caller, gid uint32) bool {
	if caller.Gid == gid {
		return true
	}
	for _, f := range strings.Fields(procStatus(caller, "Groups")) {
		if f == strconv.FormatUint(uint64(gid), 10) {
			return true
		}
	}
	return false
}

// capSysAdmin reports whether the caller has CAP_SYS_ADMIN, which the
// trusted. xattr namespace requires (the kernel checks gets and sets;
// listing is the file system's to filter, as ext4 does).
func capSysAdmin(caller *fuse.Caller) bool {
	const capSysAdmin = 21
	c, err := strconv.ParseUint(procStatus(caller, "CapEff"), 16, 64)
	if err != nil {
		return caller.Uid == 0
	}
	return c&(1<<capSysAdmin) != 0
}

// procStatus returns field of the calling thread's /proc status ("" if
// the caller is gone or in another PID namespace).
func procStatus(caller *fuse.Caller, field string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", caller.Pid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// accessed updates the access time after a read, as a relatime mount
// does: when it is not later than mtime or ctime, or a day old. The
// update is one small change after each change of the inode, not one per
// read, and it runs in the background, gathered with other files' into
// one Raft command (client.Access): a read never waits for it (a mount
// cut off from the masters still reads what it has). Getattr and this
// mount's changes of the inode wait for one pending (awaitAccess), so
// stat after a read shows the new atime and the master applies the two
// in the order they happened.
func (n *node) accessed() {
	if n.fsys.opts.NoAtime || n.fsys.opts.ReadOnly {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.accessing != nil {
		// The update pending may be stamped before a change this read
		// follows: ask it to look again when it is done.
		n.accessAgain = true
		return
	}
	if !needsAtime(n.attr) {
		return
	}
	done := make(chan struct{})
	n.accessing = done
	n.fsys.client.Access(n.ino(), func(at int64, err error) { n.accessDone(done, at, err) })
}

// accessDone takes the outcome of the access-time update accessed asked
// for, and asks for another if a read since needs one.
func (n *node) accessDone(done chan struct{}, at int64, err error) {
	n.mu.Lock()
	if err == nil && n.attr != nil && at > n.attr.AtimeNs { // an access time is not worth an error
		c := proto.Clone(n.attr).(*api.Attr)
		c.AtimeNs = at
		n.attr = c
		n.changeSeq = attrSeq.Add(1)
		n.fsys.atimes.set(n.ino(), at, n.changeSeq, n.fsys.listTTL())
	}
	again := n.accessAgain && needsAtime(n.attr)
	n.accessAgain = false
	if again {
		n.mu.Unlock()
		n.fsys.client.Access(n.ino(), func(at int64, err error) { n.accessDone(done, at, err) })
		return
	}
	n.accessing = nil
	n.mu.Unlock()
	close(done)
}

// needsAtime says whether a read now must update a's access time
// (relatime: it is not after the last change, or a day old).
func needsAtime(a *api.Attr) bool {
	return a != nil && !(a.AtimeNs > a.MtimeNs && a.AtimeNs > a.CtimeNs && time.Now().UnixNano()-a.AtimeNs < int64(24*time.Hour))
}

// awaitAccess waits a little for an access-time update in flight.
func (n *node) awaitAccess() {
	n.mu.Lock()
	done := n.accessing
	n.mu.Unlock()
	if done != nil {
		n.fsys.client.FlushAccesses()
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	}
}

// awaitChild is awaitAccess for the child name, if the tree knows it.
func (n *node) awaitChild(name string) {
	if ch := n.GetChild(name); ch != nil {
		if cn, ok := ch.Operations().(*node); ok {
			cn.awaitAccess()
		}
	}
}

// child returns the Inode for attr, answered to a request that began at
// sequence start, reusing the one the tree knows.
func (n *node) child(ctx context.Context, a *api.Attr, start uint64, out *fuse.EntryOut) *gofs.Inode {
	ch := n.NewInode(ctx, &node{fsys: n.fsys, attr: a},
		gofs.StableAttr{Mode: a.Mode & syscall.S_IFMT, Ino: a.Ino, Gen: a.Generation})
	cn := ch.Operations().(*node)
	if open, ok := n.fsys.open.Load(a.Ino); ok {
		cn = open.(*node)
	}
	cn.fill(cn.adopt(a, start), &out.Attr)
	return ch
}

// flushAll writes out every open handle's buffered data.
func (n *node) flushAll(ctx context.Context) error {
	n.mu.Lock()
	hs := make([]*fileHandle, 0, len(n.handles))
	for h := range n.handles {
		hs = append(hs, h)
	}
	n.mu.Unlock()
	var first error
	for _, h := range hs {
		h.mu.Lock()
		err := h.flushLocked(ctx)
		h.mu.Unlock()
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

// dirty reports whether any handle has buffered data.
func (n *node) dirty() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dirtyLocked()
}

func (n *node) dirtyLocked() bool {
	for h := range n.handles {
		if h.dirtyEnd > 0 {
			return true
		}
	}
	return false
}

// dataFile returns the open data path, or a temporary one for files not
// open here (truncate by path).
func (n *node) dataFile(ctx context.Context) (*client.File, error) {
	n.mu.Lock()
	f := n.file
	n.mu.Unlock()
	if f != nil {
		return f, nil
	}
	a, err := n.fsys.client.GetAttr(ctx, n.ino())
	if err != nil {
		return nil, err
	}
	n.setAttr(a)
	return n.fsys.client.OpenFile(a)
}

// committed records attributes the master answered for our own data
// change, so the next open keeps the page cache.
func (n *node) committed(a *api.Attr) {
	if a == nil {
		return
	}
	n.mu.Lock()
	n.attr = a
	n.cachedSize, n.cachedMtime, n.cacheValid = a.Size, a.MtimeNs, true
	n.dataGen++
	n.changeSeq = changeNum()
	n.mu.Unlock()
}

var _ = (gofs.NodeGetattrer)((*node)(nil))

func (n *node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	ctx = reqCtx(ctx)
	n.awaitAccess()
	if a := n.freshAttr(); a != nil {
		cacheResult(cacheAttr, true, 1)
		n.fill(a, &out.Attr)
		return 0
	}
	cacheResult(cacheAttr, false, 1)
	start := attrSeq.Load()
	a, err := n.fsys.client.GetAttr(ctx, n.ino())
	if err != nil {
		if a = n.removedDir(err); a == nil {
			return n.fsys.errno("getattr", err)
		}
	} else {
		a = n.adopt(a, start)
	}
	n.fill(a, &out.Attr)
	return 0
}

// removedDir answers for a directory that is gone from the master but
// still held by the kernel (an open descriptor, a process's cwd): as on
// a local disk, its attributes stay readable with no links.
func (n *node) removedDir(err error) *api.Attr {
	n.mu.Lock()
	defer n.mu.Unlock()
	if api.ErrnoOf(err) != api.Errno_ENOENT || n.attr == nil || n.attr.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil
	}
	a := proto.Clone(n.attr).(*api.Attr)
	a.Nlink = 0
	return a
}

var _ = (gofs.NodeSetattrer)((*node)(nil))

func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	n.awaitAccess() // an access-time update in flight lands first (see Allocate)
	ctx = reqCtx(ctx)
	c := n.fsys.client
	var a *api.Attr
	// Buffered data must land first: it may lie beyond a new size, and
	// its commit would overwrite an mtime set here.
	if in.Valid&(fuse.FATTR_SIZE|fuse.FATTR_MTIME) != 0 {
		if err := n.flushAll(ctx); err != nil {
			return n.fsys.errno("setattr flush", err)
		}
	}
	if size, ok := in.GetSize(); ok {
		file, err := n.dataFile(ctx)
		if err != nil {
			return n.fsys.errno("truncate", err)
		}
		if a, err = file.Truncate(ctx, size); err != nil {
			return n.fsys.errno("truncate", err)
		}
		n.committed(a)
	}
	op := &api.SetAttrOp{Ino: n.ino()}
	if m, ok := in.GetMode(); ok {
		op.Valid |= uint32(api.SetAttrOp_MODE)
		op.Mode = m
	}
	if u, ok := in.GetUID(); ok {
		op.Valid |= uint32(api.SetAttrOp_UID)
		op.Uid = u
	}
	if g, ok := in.GetGID(); ok {
		op.Valid |= uint32(api.SetAttrOp_GID)
		op.Gid = g
	}
	if in.Valid&fuse.FATTR_ATIME_NOW != 0 {
		op.Valid |= uint32(api.SetAttrOp_ATIME_NOW)
	} else if in.Valid&fuse.FATTR_ATIME != 0 {
		op.Valid |= uint32(api.SetAttrOp_ATIME)
		op.AtimeNs = int64(in.Atime)*1e9 + int64(in.Atimensec)
	}
	if in.Valid&fuse.FATTR_MTIME_NOW != 0 {
		op.Valid |= uint32(api.SetAttrOp_MTIME_NOW)
	} else if in.Valid&fuse.FATTR_MTIME != 0 {
		op.Valid |= uint32(api.SetAttrOp_MTIME)
		op.MtimeNs = int64(in.Mtime)*1e9 + int64(in.Mtimensec)
	}
	// chown(f, -1, -1) arrives with nothing to set (the kernel keeps
	// ctime to itself without writeback caching), yet on ext4 it moves
	// ctime.
	if op.Valid == 0 && a == nil && in.Valid&^(fuse.FATTR_FH|fuse.FATTR_LOCKOWNER|fuse.FATTR_CTIME) == 0 {
		op.Valid |= uint32(api.SetAttrOp_CTIME)
	}
	if op.Valid != 0 {
		var err error
		if a, err = c.SetAttr(ctx, op); err != nil {
			return n.fsys.errno("setattr", err)
		}
		n.changed(a)
		if op.Valid&uint32(api.SetAttrOp_MTIME|api.SetAttrOp_MTIME_NOW) != 0 {
			n.committed(a)
		}
	}
	if a == nil {
		start := attrSeq.Load()
		got, err := c.GetAttr(ctx, n.ino())
		if err != nil {
			return n.fsys.errno("getattr", err)
		}
		a = n.adopt(got, start)
	}
	n.fill(a, &out.Attr)
	return 0
}

var _ = (gofs.NodeLookuper)((*node)(nil))

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ctx = reqCtx(ctx)
	// The answer's attributes are what stat shows: like Getattr, let an
	// access-time update of a known child land first.
	n.awaitChild(name)
	if e := validName(name); e != 0 {
		return nil, e
	}
	if a, seq, ok := n.listed(ctx, name); ok {
		return n.child(ctx, a, seq, out), 0
	}
	start := attrSeq.Load()
	a, err := n.fsys.client.Lookup(ctx, n.ino(), name)
	if err != nil {
		return nil, n.fsys.errno("lookup", err)
	}
	return n.child(ctx, a, start, out), 0
}

var _ = (gofs.NodeMkdirer)((*node)(nil))

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	umask := n.fsys.reqInfo(ctx).umask
	ctx = reqCtx(ctx)
	start := attrSeq.Load()
	if e := validName(name); e != 0 {
		return nil, e
	}
	resp, err := n.fsys.client.Mutate(ctx, &api.Op{Op: &api.Op_Mkdir{Mkdir: &api.MkdirOp{
		Parent: n.ino(), Name: name, Mode: mode&07777 | syscall.S_IFDIR, Umask: umask}}})
	if err != nil {
		return nil, n.fsys.errno("mkdir", err)
	}
	n.dirChanged(resp.Parent)
	return n.child(ctx, resp.Attr, start, out), 0
}

var _ = (gofs.NodeMknoder)((*node)(nil))

func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	umask := n.fsys.reqInfo(ctx).umask
	ctx = reqCtx(ctx)
	start := attrSeq.Load()
	if e := validName(name); e != 0 {
		return nil, e
	}
	a, err := n.create(ctx, &api.CreateOp{Parent: n.ino(), Name: name, Mode: mode, Rdev: dev, Exclusive: true, Umask: umask})
	if err != nil {
		return nil, n.fsys.errno("mknod", err)
	}
	return n.child(ctx, a, start, out), 0
}

// create sends op, a create in this directory.
func (n *node) create(ctx context.Context, op *api.CreateOp) (*api.Attr, error) {
	resp, err := n.fsys.client.Mutate(ctx, &api.Op{Op: &api.Op_Create{Create: op}})
	if err != nil {
		return nil, err
	}
	n.dirChanged(resp.Parent)
	return resp.Attr, nil
}

var _ = (gofs.NodeCreater)((*node)(nil))

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	umask := n.fsys.reqInfo(ctx).umask
	ctx = reqCtx(ctx)
	start := attrSeq.Load()
	if e := validName(name); e != 0 {
		return nil, nil, 0, e
	}
	if mode&syscall.S_IFMT == 0 {
		mode |= syscall.S_IFREG
	}
	// A file created for writing gets its first chunk in the same Raft
	// round.
	resp, err := n.fsys.client.Mutate(ctx, &api.Op{Op: &api.Op_Create{Create: &api.CreateOp{
		Parent: n.ino(), Name: name, Mode: mode, Exclusive: flags&syscall.O_EXCL != 0, Open: true,
		FirstChunk: flags&syscall.O_ACCMODE != syscall.O_RDONLY, Umask: umask, Access: api.OpenAccess(flags)}}})
	if err != nil {
		return nil, nil, 0, n.fsys.errno("create", err)
	}
	a := resp.Attr
	n.dirChanged(resp.Parent)
	ch := n.child(ctx, a, start, out)
	cn := ch.Operations().(*node)
	if resp.Parent != nil {
		cn.noCaps() // a new file has no xattrs
	}
	fh, fflags, errno := cn.openHandle(ctx, a, flags, true)
	if errno != 0 {
		n.fsys.client.Release(context.Background(), a.Ino)
		return nil, nil, 0, errno
	}
	if resp.Chunk != nil {
		cn.mu.Lock()
		cn.file.Learn(resp.Chunk)
		cn.mu.Unlock()
	}
	cn.fill(cn.attr, &out.Attr)
	return ch, fh, fflags, 0
}

var _ = (gofs.NodeTmpfiler)((*node)(nil))

// Tmpfile implements O_TMPFILE: a file with no name, open by this mount,
// that linkat can give a name later.
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	umask := n.fsys.reqInfo(ctx).umask
	ctx = reqCtx(ctx)
	a, err := n.create(ctx, &api.CreateOp{Parent: n.ino(), Mode: mode&0o7777 | syscall.S_IFREG, Open: true, Tmpfile: true, Umask: umask})
	if err != nil {
		return nil, nil, 0, n.fsys.errno("tmpfile", err)
	}
	ch := n.NewInode(ctx, &node{fsys: n.fsys, attr: a},
		gofs.StableAttr{Mode: syscall.S_IFREG, Ino: a.Ino, Gen: a.Generation})
	cn := ch.Operations().(*node)
	fh, fflags, errno := cn.openHandle(ctx, a, flags, true)
	if errno != 0 {
		n.fsys.client.Release(context.Background(), a.Ino)
		return nil, nil, 0, errno
	}
	cn.fill(a, &out.Attr)
	return ch, fh, fflags, 0
}

var _ = (gofs.NodeOpener)((*node)(nil))

func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	ctx = reqCtx(ctx)
	// Close-to-open: Open answers the attributes as of now. The open is
	// counted (and reported by keepalives) before it is asked for, so an
	// unlink the master applies after answering keeps the file.
	ino := n.ino()
	n.fsys.hold(ino)
	a, chunks, err := n.fsys.client.OpenUnrecorded(ctx, ino, api.OpenAccess(flags))
	if err == nil && a.Nlink == 0 && !n.isOpen() {
		err = api.Errno_ENOENT // unlinked, held open elsewhere
	}
	if err != nil {
		n.fsys.unhold(ino)
		if api.ErrnoOf(err) == api.Errno_ENOENT {
			// Removed through another mount while the kernel trusted
			// the name: ESTALE makes it look the name up again
			// (LOOKUP_REVAL), as with NFS, which must not be answered
			// from a listing that still has it.
			changeNum()
			return nil, 0, syscall.ESTALE
		}
		return nil, 0, n.fsys.errno("open", err)
	}
	fh, fflags, errno := n.openHandle(ctx, a, flags, false)
	if errno != 0 {
		n.fsys.unhold(ino)
		return fh, fflags, errno
	}
	h := fh.(*fileHandle)
	h.unrecorded = true
	n.mu.Lock()
	for _, ch := range chunks {
		n.file.Learn(ch)
	}
	n.mu.Unlock()
	return fh, fflags, errno
}

// isOpen says whether this mount holds the file open.
func (n *node) isOpen() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.handles) > 0
}

// openHandle makes the handle for an open the master has recorded.
func (n *node) openHandle(ctx context.Context, a *api.Attr, flags uint32, created bool) (gofs.FileHandle, uint32, syscall.Errno) {
	n.mu.Lock()
	// The kernel serves reads from a kept page cache without telling us,
	// and FUSE leaves access times to us: while one is due, reads must
	// reach the mount (see accessed).
	atimeDue := !n.fsys.opts.NoAtime && !n.fsys.opts.ReadOnly && needsAtime(a)
	keep := !created && n.cacheValid && n.cachedSize == a.Size && n.cachedMtime == a.MtimeNs && !atimeDue
	n.attr = a
	n.cachedSize, n.cachedMtime, n.cacheValid = a.Size, a.MtimeNs, true
	if n.file == nil {
		f, err := n.fsys.client.OpenFile(a)
		if err != nil {
			n.mu.Unlock()
			return nil, 0, n.fsys.errno("open", err)
		}
		n.file = f
	}
	h := newFileHandle(n, n.file, flags)
	if n.handles == nil {
		n.handles = map[*fileHandle]struct{}{}
	}
	if len(n.handles) == 0 {
		n.fsys.open.Store(n.ino(), n)
	}
	n.handles[h] = struct{}{}
	if !keep {
		n.dataGen++
		n.file.Invalidate() // another mount may have replaced its chunks
	}
	n.mu.Unlock()

	if flags&syscall.O_TRUNC != 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY && a.Size > 0 {
		if err := n.flushAll(ctx); err != nil {
			h.Release(ctx)
			return nil, 0, n.fsys.errno("open truncate", err)
		}
		t, err := n.file.Truncate(ctx, 0)
		if err != nil {
			h.Release(ctx)
			return nil, 0, n.fsys.errno("open truncate", err)
		}
		n.committed(t)
		keep = false
	}
	cacheResult(cachePage, keep, 1)
	var fflags uint32
	if keep {
		fflags |= fuse.FOPEN_KEEP_CACHE
	}
	if flags&syscall.O_DIRECT != 0 {
		fflags |= fuse.FOPEN_DIRECT_IO
	}
	return h, fflags, 0
}

// closed forgets a released handle; the last one drops the data path so
// the next open starts with a fresh chunk map.
func (n *node) closed(h *fileHandle) {
	n.mu.Lock()
	delete(n.handles, h)
	if len(n.handles) == 0 {
		n.file = nil
		n.fsys.open.CompareAndDelete(n.ino(), n)
	}
	n.mu.Unlock()
}

var _ = (gofs.NodeSymlinker)((*node)(nil))

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ctx = reqCtx(ctx)
	start := attrSeq.Load()
	if e := validName(name); e != 0 {
		return nil, e
	}
	if len(target) > api.MaxSymlinkLen {
		return nil, syscall.ENAMETOOLONG
	}
	resp, err := n.fsys.client.Mutate(ctx, &api.Op{Op: &api.Op_Symlink{Symlink: &api.SymlinkOp{
		Parent: n.ino(), Name: name, Target: target}}})
	if err != nil {
		return nil, n.fsys.errno("symlink", err)
	}
	n.dirChanged(resp.Parent)
	return n.child(ctx, resp.Attr, start, out), 0
}

var _ = (gofs.NodeReadlinker)((*node)(nil))

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	ctx = reqCtx(ctx)
	// A symlink's target never changes: the cached one is good.
	n.mu.Lock()
	a := n.attr
	n.mu.Unlock()
	if a == nil || a.Symlink == "" {
		var err error
		if a, err = n.fsys.client.GetAttr(ctx, n.ino()); err != nil {
			return nil, n.fsys.errno("readlink", err)
		}
		n.setAttr(a)
	}
	if a.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		return nil, syscall.EINVAL
	}
	n.accessed()
	return []byte(a.Symlink), 0
}

var _ = (gofs.NodeLinker)((*node)(nil))

func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ctx = reqCtx(ctx)
	if e := validName(name); e != 0 {
		return nil, e
	}
	t, ok := target.(*node)
	if !ok {
		return nil, syscall.EXDEV
	}
	t.awaitAccess() // an access-time update pending lands first (see Allocate)
	// The answer carries the size, which the kernel takes as the
	// truth: it must include what is still buffered.
	if err := t.flushAll(ctx); err != nil {
		return nil, n.fsys.errno("link flush", err)
	}
	start := attrSeq.Load() // after the flush's own commit
	resp, err := n.fsys.client.Mutate(ctx, &api.Op{Op: &api.Op_Link{Link: &api.LinkOp{
		Ino: t.ino(), NewParent: n.ino(), NewName: name}}})
	if err != nil {
		return nil, n.fsys.errno("link", err)
	}
	n.dirChanged(resp.Parent)
	return n.child(ctx, resp.Attr, start, out), 0
}

var _ = (gofs.NodeUnlinker)((*node)(nil))

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	ctx = reqCtx(ctx)
	if e := validName(name); e != 0 {
		return e
	}
	n.awaitChild(name)
	resp, err := n.fsys.client.Mutate(ctx, &api.Op{Op: &api.Op_Unlink{Unlink: &api.UnlinkOp{Parent: n.ino(), Name: name}}})
	if err != nil {
		return n.fsys.errno("unlink", err)
	}
	n.dirChanged(resp.Parent)
	return 0
}

var _ = (gofs.NodeRmdirer)((*node)(nil))

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	ctx = reqCtx(ctx)
	if e := validName(name); e != 0 {
		return e
	}
	resp, err := n.fsys.client.Mutate(ctx, &api.Op{Op: &api.Op_Rmdir{Rmdir: &api.RmdirOp{Parent: n.ino(), Name: name}}})
	if err != nil {
		return n.fsys.errno("rmdir", err)
	}
	n.dirChanged(resp.Parent)
	return 0
}

var _ = (gofs.NodeRenamer)((*node)(nil))

func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	ctx = reqCtx(ctx)
	if e := validName(newName); e != 0 {
		return e
	}
	n.awaitChild(name)
	p, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	if flags&^uint32(api.RenameNoReplace|api.RenameExchange) != 0 {
		return syscall.EINVAL // RENAME_WHITEOUT and unknown flags
	}
	resp, err := n.fsys.client.Mutate(ctx, &api.Op{Op: &api.Op_Rename{Rename: &api.RenameOp{
		Parent: n.ino(), Name: name, NewParent: p.ino(), NewName: newName, Flags: flags}}})
	if err != nil {
		return n.fsys.errno("rename", err)
	}
	n.dirChanged(resp.Parent)
	p.dirChanged(resp.NewParent)
	return 0
}

// layoutXattr is the extended attribute that shows and sets a file's or
// directory's layout.
const layoutXattr = "dfs.layout"

// xattrSupported reports the names dfs stores: the namespaces ext4 has
// (the kernel checks who may use trusted. and user.), POSIX ACLs where
// the kernel enforces them, and the layout. Other system. names are not
// supported.
func (fsys *filesystem) xattrSupported(name string) bool {
	for _, ns := range []string{"user.", "trusted.", "security."} {
		if strings.HasPrefix(name, ns) && len(name) > len(ns) {
			return true
		}
	}
	return name == layoutXattr || fsys.acls && aclBit(name) != 0
}

var _ = (gofs.NodeGetxattrer)((*node)(nil))

func (n *node) Getxattr(ctx context.Context, name string, dest []byte) (uint32, syscall.Errno) {
	ctx = reqCtx(ctx)
	if name == sequencerXattr {
		return n.sequencer(ctx, dest)
	}
	if !n.fsys.xattrSupported(name) {
		return 0, syscall.EOPNOTSUPP
	}
	if name == capsXattr || aclBit(name) != 0 {
		known := n.lacksACL(name) || name == capsXattr && n.knownNoCaps()
		cacheResult(cacheXattr, known, 1)
		if known {
			return 0, syscall.ENODATA
		}
	}
	var v []byte
	if name == layoutXattr {
		a, err := n.fsys.client.GetAttr(ctx, n.ino())
		if err != nil {
			return 0, n.fsys.errno("getxattr", err)
		}
		n.setAttr(a)
		v = []byte(api.FormatLayout(a.Layout))
	} else {
		var err error
		if v, err = n.fsys.client.GetXattr(ctx, n.ino(), name); err != nil {
			if name == capsXattr && api.ErrnoOf(err) == api.Errno_ENODATA {
				n.noCaps()
			}
			return 0, n.fsys.errno("getxattr", err)
		}
	}
	if len(v) > len(dest) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

var _ = (gofs.NodeSetxattrer)((*node)(nil))

func (n *node) Setxattr(ctx context.Context, name string, data []byte, flags uint32) syscall.Errno {
	n.awaitAccess() // an access-time update pending lands first (see Allocate)
	killSgid := n.fsys.reqInfo(ctx).killSgid
	ctx = reqCtx(ctx)
	if len(name) > api.MaxXattrName {
		return syscall.ERANGE
	}
	if len(data) > api.MaxXattrValue {
		return syscall.E2BIG
	}
	if !n.fsys.xattrSupported(name) {
		return syscall.EOPNOTSUPP
	}
	if name == layoutXattr {
		if _, err := api.ParseLayout(strings.TrimRight(string(data), "\x00\n")); err != nil {
			return syscall.EINVAL
		}
		data = []byte(strings.TrimRight(string(data), "\x00\n"))
	}
	resp, err := n.fsys.client.Mutate(ctx, &api.Op{Op: &api.Op_SetXattr{SetXattr: &api.SetXattrOp{
		Ino: n.ino(), Name: name, Value: data, Flags: flags, KillSgid: killSgid && name == api.ACLAccessXattr}}})
	if err != nil {
		return n.fsys.errno("setxattr", err)
	}
	n.unfresh()
	if resp.Attr != nil {
		n.changed(resp.Attr) // the mode, and which ACLs there are (lacksACL)
	}
	return 0
}

var _ = (gofs.NodeRemovexattrer)((*node)(nil))

func (n *node) Removexattr(ctx context.Context, name string) syscall.Errno {
	n.awaitAccess() // an access-time update pending lands first (see Allocate)
	ctx = reqCtx(ctx)
	if !n.fsys.xattrSupported(name) {
		return syscall.EOPNOTSUPP
	}
	resp, err := n.fsys.client.Mutate(ctx, &api.Op{Op: &api.Op_RemoveXattr{RemoveXattr: &api.RemoveXattrOp{Ino: n.ino(), Name: name}}})
	if err != nil {
		return n.fsys.errno("removexattr", err)
	}
	n.unfresh()
	if resp.Attr != nil {
		n.changed(resp.Attr)
	}
	return 0
}

var _ = (gofs.NodeListxattrer)((*node)(nil))

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	admin := true
	if fc, ok := ctx.(*fuse.Context); ok {
		admin = capSysAdmin(&fc.Caller)
	}
	ctx = reqCtx(ctx)
	names, err := n.fsys.client.ListXattr(ctx, n.ino())
	if err != nil {
		return 0, n.fsys.errno("listxattr", err)
	}
	var b []byte
	for _, nm := range names {
		if nm == layoutXattr || !admin && strings.HasPrefix(nm, "trusted.") || !n.fsys.acls && aclBit(nm) != 0 {
			continue
		}
		b = append(append(b, nm...), 0)
	}
	if len(b) > len(dest) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

var _ = (gofs.NodeStatfser)((*node)(nil))

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	ctx = reqCtx(ctx)
	s, err := n.fsys.client.StatFS(ctx)
	if err != nil {
		return n.fsys.errno("statfs", err)
	}
	const bsize = api.BlockSize
	out.Bsize = bsize
	out.Frsize = bsize
	var l *api.Layout // nil: raw bytes
	if !n.fsys.opts.StatfsRaw {
		n.mu.Lock()
		l = n.attr.GetLayout()
		n.mu.Unlock()
	}
	out.Blocks = logicalBytes(s.CapacityBytes, l) / bsize
	out.Bfree = logicalBytes(s.FreeBytes, l) / bsize
	out.Bavail = out.Bfree
	out.Files = s.Inodes + 1<<32
	out.Ffree = 1 << 32
	out.NameLen = api.MaxNameLen
	return 0
}

// logicalBytes is how many bytes of file data raw bytes hold in layout
// l: a third of them for replicated:3, two thirds for ec:4+2.
func logicalBytes(raw uint64, l *api.Layout) uint64 {
	switch {
	case l.GetKind() == api.Layout_EC && l.GetDataShards() > 0:
		k, n := uint64(l.GetDataShards()), uint64(l.GetDataShards()+l.GetParityShards())
		return raw/n*k + raw%n*k/n
	case l.GetReplicas() > 0:
		return raw / uint64(l.GetReplicas())
	}
	return raw
}

var _ = (gofs.NodeOpendirHandler)((*node)(nil))

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	ctx = reqCtx(ctx)
	return &dirHandle{n: n}, 0, 0
}

var _ = (gofs.NodeFsyncer)((*node)(nil))

// Fsync puts every byte written to the file through this mount on stable
// storage on every replica. Directories need nothing: namespace changes
// are committed in Raft when they return.
func (n *node) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	ctx = reqCtx(ctx)
	if err := n.flushAll(ctx); err != nil {
		return n.fsys.errno("fsync", err)
	}
	if h, ok := f.(*fileHandle); ok {
		h.mu.Lock()
		err := h.takeErr()
		h.mu.Unlock()
		if err != nil {
			return n.fsys.errno("fsync", err)
		}
	}
	n.mu.Lock()
	file := n.file
	n.mu.Unlock()
	if file == nil {
		return 0
	}
	return n.fsys.errno("fsync", file.Sync(ctx))
}
