package master

import (
	"fmt"
	"syscall"
	"time"

	"dfs/api"

	"google.golang.org/protobuf/proto"
)

// Namespace handlers. Each checks everything before changing anything,
// so a failed op leaves no trace.

func ok(a *attrs) *api.MutateResponse { return &api.MutateResponse{Attr: a.proto()} }

// dir returns the directory inode ino, or the errno to answer.
func (f *FSM) dir(ino uint64) (*inode, api.Errno) {
	n := f.inodes[ino]
	if n == nil {
		return nil, api.Errno_ENOENT
	}
	if !isDir(&n.attr) {
		return nil, api.Errno_ENOTDIR
	}
	return n, api.Errno_OK
}

func touch(a *attrs, now int64, m, c bool) {
	if m {
		a.MtimeNs = now
	}
	if c {
		a.CtimeNs = now
	}
}

// newInode allocates an inode in parent for caller, applying setgid
// inheritance and the parent's default ACL (or else the umask).
func (f *FSM) newInode(c *api.Command, parent *inode, mode, umask uint32) *inode {
	ino := f.nextIno
	f.nextIno++
	a := attrs{
		Ino: ino, Mode: mode, Nlink: 1, Generation: 1,
		Uid: c.GetCaller().GetUid(), Gid: c.GetCaller().GetGid(),
		AtimeNs: c.NowNs, MtimeNs: c.NowNs, CtimeNs: c.NowNs,
	}
	if parent.attr.Mode&syscall.S_ISGID != 0 {
		a.Gid = parent.attr.Gid
		if isDir(&a) {
			a.Mode |= syscall.S_ISGID
		}
	}
	if pl := parent.attr.Layout; pl != nil && (isDir(&a) || isReg(&a)) {
		// Shared, not copied: a layout is replaced, never changed in
		// place (setLayout), and a copy per file was an eighth of the
		// master's memory.
		a.Layout = pl
	}
	n := &inode{attr: a}
	if isDir(&a) {
		a.Nlink = 2
		n = newDir(a, parent.attr.Ino)
	}
	inheritACL(n, parent, umask)
	f.inodes[ino] = n
	return n
}

// prepareNew validates creating name in parent.
func (f *FSM) prepareNew(parentIno uint64, name string) (*inode, api.Errno) {
	p, e := f.dir(parentIno)
	if e != api.Errno_OK {
		return nil, e
	}
	if e := validName(name); e != api.Errno_OK {
		return nil, e
	}
	if _, exists := p.entries[name]; exists {
		return p, api.Errno_EEXIST
	}
	return p, api.Errno_OK
}

func (f *FSM) create(c *api.Command, s *session, op *api.CreateOp) *api.MutateResponse {
	if op.Tmpfile {
		return f.tmpfile(c, s, op)
	}
	p, e := f.prepareNew(op.Parent, op.Name)
	if e == api.Errno_EEXIST && !op.Exclusive {
		n := f.inodes[p.entries[op.Name].ino]
		if isDir(&n.attr) {
			return errResp(api.Errno_EISDIR, "")
		}
		if op.Open {
			f.open(s, n.attr.Ino)
		}
		return ok(&n.attr)
	}
	if e != api.Errno_OK {
		return errResp(e, "")
	}
	mode := op.Mode
	switch mode & syscall.S_IFMT {
	case 0:
		mode |= syscall.S_IFREG
	case syscall.S_IFREG, syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
	default:
		return errResp(api.Errno_EINVAL, fmt.Sprintf("cannot create mode %o", mode))
	}
	n := f.newInode(c, p, mode, op.Umask)
	n.attr.Rdev = op.Rdev
	p.addEntry(op.Name, n.attr.Ino)
	touch(&p.attr, c.NowNs, true, true)
	if op.Open {
		f.open(s, n.attr.Ino)
	}
	r := withParent(ok(&n.attr), p)
	if op.FirstChunk && isReg(&n.attr) && len(c.Placement) > 0 {
		r.Chunk = f.chunkProto(f.newChunk(c, n, 0), n.attr.Layout)
	}
	return r
}

// withParent adds the attributes of the directory a change was made in to
// its answer, so that the mount's next permission check in it needs no
// GetAttr.
func withParent(r *api.MutateResponse, p *inode) *api.MutateResponse {
	r.Parent = p.attr.proto()
	return r
}

// tmpfile makes a regular file with no name, open by s: it is freed at
// its last close unless it is linked into a directory first.
func (f *FSM) tmpfile(c *api.Command, s *session, op *api.CreateOp) *api.MutateResponse {
	p, e := f.dir(op.Parent)
	if e != api.Errno_OK {
		return errResp(e, "")
	}
	if s == nil || op.Mode&syscall.S_IFMT != 0 && op.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return errResp(api.Errno_EINVAL, "a temporary file is a regular file opened by a session")
	}
	n := f.newInode(c, p, syscall.S_IFREG|op.Mode&0o7777, op.Umask)
	n.attr.Nlink = 0
	f.open(s, n.attr.Ino)
	return ok(&n.attr)
}

func (f *FSM) mkdir(c *api.Command, op *api.MkdirOp) *api.MutateResponse {
	p, e := f.prepareNew(op.Parent, op.Name)
	if e != api.Errno_OK {
		return errResp(e, "")
	}
	n := f.newInode(c, p, syscall.S_IFDIR|(op.Mode&0o7777), op.Umask)
	p.addEntry(op.Name, n.attr.Ino)
	p.attr.Nlink++
	touch(&p.attr, c.NowNs, true, true)
	return withParent(ok(&n.attr), p)
}

func (f *FSM) symlink(c *api.Command, op *api.SymlinkOp) *api.MutateResponse {
	if len(op.Target) > api.MaxSymlinkLen {
		return errResp(api.Errno_ENAMETOOLONG, "symlink target too long")
	}
	if op.Target == "" {
		return errResp(api.Errno_ENOENT, "empty symlink target")
	}
	p, e := f.prepareNew(op.Parent, op.Name)
	if e != api.Errno_OK {
		return errResp(e, "")
	}
	n := f.newInode(c, p, syscall.S_IFLNK|0o777, 0)
	n.attr.Symlink = op.Target
	n.attr.Size = uint64(len(op.Target))
	p.addEntry(op.Name, n.attr.Ino)
	touch(&p.attr, c.NowNs, true, true)
	return withParent(ok(&n.attr), p)
}

func (f *FSM) link(c *api.Command, op *api.LinkOp) *api.MutateResponse {
	n := f.inodes[op.Ino]
	if n == nil {
		return errResp(api.Errno_ENOENT, "")
	}
	if isDir(&n.attr) {
		return errResp(api.Errno_EPERM, "hard link to a directory")
	}
	if n.attr.Nlink == 0 && n.opens == 0 {
		// An open file with no names may be linked: the kernel allows
		// that only for O_TMPFILE files and answers ENOENT for others
		// before asking.
		return errResp(api.Errno_ENOENT, "")
	}
	if n.attr.Nlink >= maxLinks {
		return errResp(api.Errno_EMLINK, "")
	}
	p, e := f.prepareNew(op.NewParent, op.NewName)
	if e != api.Errno_OK {
		return errResp(e, "")
	}
	p.addEntry(op.NewName, n.attr.Ino)
	n.attr.Nlink++
	touch(&n.attr, c.NowNs, false, true)
	touch(&p.attr, c.NowNs, true, true)
	return withParent(ok(&n.attr), p)
}

const maxLinks = 65000

// lookupChild returns the inode called name in directory p.
func (f *FSM) lookupChild(p *inode, name string) (*inode, api.Errno) {
	d, found := p.entries[name]
	if !found {
		return nil, api.Errno_ENOENT
	}
	return f.inodes[d.ino], api.Errno_OK
}

func (f *FSM) unlink(c *api.Command, op *api.UnlinkOp) *api.MutateResponse {
	p, e := f.dir(op.Parent)
	if e != api.Errno_OK {
		return errResp(e, "")
	}
	n, e := f.lookupChild(p, op.Name)
	if e != api.Errno_OK {
		return errResp(e, "")
	}
	if isDir(&n.attr) {
		return errResp(api.Errno_EISDIR, "")
	}
	p.removeEntry(op.Name)
	touch(&p.attr, c.NowNs, true, true)
	f.dropLink(n, c.NowNs)
	return withParent(ok(&n.attr), p)
}

// dropLink removes one name of a non-directory.
func (f *FSM) dropLink(n *inode, now int64) {
	n.attr.Nlink--
	touch(&n.attr, now, false, true)
	f.maybeFree(n)
}

// maybeFree deletes an inode that has no names and no opens recorded
// here. A regular file becomes an orphan instead: sessions may hold it
// open without a record (holds.go), and the leader reclaims it once none
// may. Its chunks then become unreferenced; chunkservers delete them when
// the master next compares their reports.
func (f *FSM) maybeFree(n *inode) {
	if n.attr.Nlink > 0 || n.opens > 0 {
		return
	}
	if isDir(&n.attr) && len(n.entries) > 0 {
		return
	}
	if isReg(&n.attr) {
		if !f.orphans[n.attr.Ino] {
			f.orphans[n.attr.Ino] = true
			if f.onOrphan != nil {
				f.onOrphan()
			}
		}
		return
	}
	f.free(n)
}

// isOrphan says whether n is a file waiting to be reclaimed.
func isOrphan(n *inode) bool { return isReg(&n.attr) && n.attr.Nlink == 0 && n.opens == 0 }

// reclaim frees orphan ino, if it still is one.
func (f *FSM) reclaim(ino uint64) {
	n := f.inodes[ino]
	if n == nil || !f.orphans[ino] || !isOrphan(n) {
		return
	}
	delete(f.orphans, ino)
	f.free(n)
}

// free deletes an inode and drops its chunks.
func (f *FSM) free(n *inode) {
	for _, ch := range n.chunks {
		delete(f.chunks, ch.id)
	}
	if isReg(&n.attr) {
		f.logical -= n.attr.Size
	}
	delete(f.inodes, n.attr.Ino)
}

func (f *FSM) rmdir(c *api.Command, op *api.RmdirOp) *api.MutateResponse {
	p, e := f.dir(op.Parent)
	if e != api.Errno_OK {
		return errResp(e, "")
	}
	switch op.Name {
	case ".":
		return errResp(api.Errno_EINVAL, "")
	case "..":
		return errResp(api.Errno_ENOTEMPTY, "")
	}
	n, e := f.lookupChild(p, op.Name)
	if e != api.Errno_OK {
		return errResp(e, "")
	}
	if !isDir(&n.attr) {
		return errResp(api.Errno_ENOTDIR, "")
	}
	if len(n.entries) > 0 {
		return errResp(api.Errno_ENOTEMPTY, "")
	}
	p.removeEntry(op.Name)
	p.attr.Nlink--
	touch(&p.attr, c.NowNs, true, true)
	n.attr.Nlink = 0
	touch(&n.attr, c.NowNs, false, true)
	f.maybeFree(n)
	return withParent(ok(&n.attr), p)
}

// isAncestor reports whether a is d or one of d's ancestors.
func (f *FSM) isAncestor(a, d uint64) bool {
	for {
		if d == a {
			return true
		}
		if d == api.RootIno {
			return false
		}
		n := f.inodes[d]
		if n == nil {
			return false
		}
		d = n.parent
	}
}

func (f *FSM) rename(c *api.Command, op *api.RenameOp) *api.MutateResponse {
	if op.Flags&^(api.RenameNoReplace|api.RenameExchange) != 0 ||
		op.Flags == api.RenameNoReplace|api.RenameExchange {
		return errResp(api.Errno_EINVAL, "bad rename flags")
	}
	sp, e := f.dir(op.Parent)
	if e != api.Errno_OK {
		return errResp(e, "")
	}
	dp, e := f.dir(op.NewParent)
	if e != api.Errno_OK {
		return errResp(e, "")
	}
	if op.Name == "." || op.Name == ".." || op.NewName == "." || op.NewName == ".." {
		return errResp(api.Errno_EBUSY, "")
	}
	if e := validName(op.NewName); e != api.Errno_OK {
		return errResp(e, "")
	}
	src, e := f.lookupChild(sp, op.Name)
	if e != api.Errno_OK {
		return errResp(e, "")
	}
	dst, _ := f.lookupChild(dp, op.NewName)
	now := c.NowNs

	if op.Flags&api.RenameExchange != 0 {
		if dst == nil {
			return errResp(api.Errno_ENOENT, "")
		}
		if isDir(&src.attr) && f.isAncestor(src.attr.Ino, dp.attr.Ino) ||
			isDir(&dst.attr) && f.isAncestor(dst.attr.Ino, sp.attr.Ino) {
			return errResp(api.Errno_EINVAL, "")
		}
		if src == dst {
			return ok(&src.attr)
		}
		sp.removeEntry(op.Name)
		dp.removeEntry(op.NewName)
		sp.addEntry(op.Name, dst.attr.Ino)
		dp.addEntry(op.NewName, src.attr.Ino)
		if sp != dp {
			f.reparent(src, sp, dp)
			f.reparent(dst, dp, sp)
		}
		touch(&src.attr, now, false, true)
		touch(&dst.attr, now, false, true)
		touch(&sp.attr, now, true, true)
		touch(&dp.attr, now, true, true)
		return renamed(src, sp, dp)
	}

	if dst != nil {
		if op.Flags&api.RenameNoReplace != 0 {
			return errResp(api.Errno_EEXIST, "")
		}
		if src == dst {
			return ok(&src.attr) // two names of one file: nothing to do
		}
		switch {
		case isDir(&src.attr) && !isDir(&dst.attr):
			return errResp(api.Errno_ENOTDIR, "")
		case !isDir(&src.attr) && isDir(&dst.attr):
			return errResp(api.Errno_EISDIR, "")
		case isDir(&dst.attr) && len(dst.entries) > 0:
			return errResp(api.Errno_ENOTEMPTY, "")
		}
	}
	if isDir(&src.attr) && f.isAncestor(src.attr.Ino, dp.attr.Ino) {
		return errResp(api.Errno_EINVAL, "cannot move a directory into itself")
	}
	if dst != nil {
		if isDir(&dst.attr) && f.isAncestor(dst.attr.Ino, sp.attr.Ino) {
			return errResp(api.Errno_ENOTEMPTY, "")
		}
		dp.removeEntry(op.NewName)
		if isDir(&dst.attr) {
			dp.attr.Nlink--
			dst.attr.Nlink = 0
			touch(&dst.attr, now, false, true)
			f.maybeFree(dst)
		} else {
			f.dropLink(dst, now)
		}
	}
	sp.removeEntry(op.Name)
	dp.addEntry(op.NewName, src.attr.Ino)
	if sp != dp {
		f.reparent(src, sp, dp)
	}
	touch(&src.attr, now, false, true)
	touch(&sp.attr, now, true, true)
	touch(&dp.attr, now, true, true)
	return renamed(src, sp, dp)
}

// renamed answers a rename with both directories' attributes.
func renamed(src, sp, dp *inode) *api.MutateResponse {
	r := withParent(ok(&src.attr), sp)
	r.NewParent = dp.attr.proto()
	return r
}

// reparent fixes ".." and link counts when a directory changes parent.
func (f *FSM) reparent(n, from, to *inode) {
	if !isDir(&n.attr) {
		return
	}
	n.parent = to.attr.Ino
	from.attr.Nlink--
	to.attr.Nlink++
}

func (f *FSM) setAttr(c *api.Command, op *api.SetAttrOp) *api.MutateResponse {
	n := f.inodes[op.Ino]
	if n == nil {
		return errResp(api.Errno_ENOENT, "")
	}
	a := &n.attr
	v := api.SetAttrOp_Valid(op.Valid)
	has := func(b api.SetAttrOp_Valid) bool { return v&b != 0 }
	if v == api.SetAttrOp_ACCESS|api.SetAttrOp_ATIME_NOW {
		// A read's access-time update: unlike utimensat, it is not a
		// change of the inode, so ctime stays.
		a.AtimeNs = c.NowNs
		return ok(a)
	}
	if has(api.SetAttrOp_SIZE) {
		if isDir(a) {
			return errResp(api.Errno_EISDIR, "")
		}
		if !isReg(a) {
			return errResp(api.Errno_EINVAL, "")
		}
		if op.Size > maxFileSize {
			return errResp(api.Errno_EFBIG, "")
		}
	}
	if has(api.SetAttrOp_MODE) {
		a.Mode = a.Mode&syscall.S_IFMT | op.Mode&0o7777
		chmodACL(n)
	}
	if has(api.SetAttrOp_UID) {
		a.Uid = op.Uid
	}
	if has(api.SetAttrOp_GID) {
		a.Gid = op.Gid
	}
	if has(api.SetAttrOp_SIZE) {
		f.truncate(n, op.Size)
		touch(a, c.NowNs, true, false)
	}
	switch {
	case has(api.SetAttrOp_ATIME_NOW):
		a.AtimeNs = c.NowNs
	case has(api.SetAttrOp_ATIME):
		a.AtimeNs = op.AtimeNs
	}
	switch {
	case has(api.SetAttrOp_MTIME_NOW):
		a.MtimeNs = c.NowNs
	case has(api.SetAttrOp_MTIME):
		a.MtimeNs = op.MtimeNs
	}
	a.CtimeNs = c.NowNs
	return ok(a)
}

// access is reads' access-time update for many files (AccessOp): as
// setAttr's ACCESS case, not a change of the inodes, so ctime stays.
func (f *FSM) access(c *api.Command, op *api.AccessOp) *api.MutateResponse {
	for _, ino := range op.Inos {
		if n := f.inodes[ino]; n != nil {
			n.attr.AtimeNs = c.NowNs
		}
	}
	return &api.MutateResponse{AtimeNs: c.NowNs}
}

// maxFileSize bounds sizes so chunk arithmetic cannot overflow.
const maxFileSize = 1 << 50

// truncate sets a file's size and drops chunks wholly past it.
func (f *FSM) truncate(n *inode, size uint64) {
	cs := n.attr.GetLayout().GetChunkSize()
	if cs == 0 {
		cs = api.DefaultChunkSize
	}
	for idx, ch := range n.chunks {
		if idx*cs >= size {
			delete(n.chunks, idx)
			delete(f.chunks, ch.id)
		}
	}
	f.logical += size - n.attr.Size
	n.attr.Size = size
}

func (f *FSM) setXattr(c *api.Command, op *api.SetXattrOp) *api.MutateResponse {
	n := f.inodes[op.Ino]
	if n == nil {
		return errResp(api.Errno_ENOENT, "")
	}
	if op.Name == LayoutXattr {
		return f.setLayout(c, n, string(op.Value))
	}
	switch {
	case op.Name == "" || len(op.Name) > api.MaxXattrName:
		return errResp(api.Errno_ERANGE, "xattr name length")
	case len(op.Value) > api.MaxXattrValue:
		return errResp(api.Errno_E2BIG, "xattr value too large")
	}
	if isACL(op.Name) {
		return f.setACL(c, n, op)
	}
	_, exists := n.xattrs[op.Name]
	if op.Flags&api.XattrCreate != 0 && exists {
		return errResp(api.Errno_EEXIST, "")
	}
	if op.Flags&api.XattrReplace != 0 && !exists {
		return errResp(api.Errno_ENODATA, "")
	}
	if n.xattrs == nil {
		n.xattrs = map[string][]byte{}
	}
	n.xattrs[op.Name] = append([]byte{}, op.Value...)
	touch(&n.attr, c.NowNs, false, true)
	return ok(&n.attr)
}

// LayoutXattr is the extended attribute that shows and sets layouts.
const LayoutXattr = "dfs.layout"

func (f *FSM) setLayout(c *api.Command, n *inode, value string) *api.MutateResponse {
	l, err := api.ParseLayout(value)
	if err != nil {
		return errResp(api.Errno_EINVAL, err.Error())
	}
	switch {
	case isDir(&n.attr):
	case isReg(&n.attr):
		if len(n.chunks) > 0 || n.attr.Size > 0 {
			return errResp(api.Errno_EBUSY, "a file with data keeps its layout; use dfsctl layout convert")
		}
		if n.opens > 0 {
			// Its openers' data paths were set up for the old layout.
			return errResp(api.Errno_EBUSY, "an open file keeps its layout")
		}
	default:
		return errResp(api.Errno_EINVAL, "only files and directories have layouts")
	}
	n.attr.Layout = f.internLayout(l)
	touch(&n.attr, c.NowNs, false, true)
	return ok(&n.attr)
}

func (f *FSM) removeXattr(c *api.Command, op *api.RemoveXattrOp) *api.MutateResponse {
	n := f.inodes[op.Ino]
	if n == nil {
		return errResp(api.Errno_ENOENT, "")
	}
	if op.Name == LayoutXattr {
		return errResp(api.Errno_EPERM, "the layout can be changed, not removed")
	}
	if _, exists := n.xattrs[op.Name]; !exists {
		if isACL(op.Name) {
			return ok(&n.attr) // removing an absent ACL succeeds, as on ext4
		}
		return errResp(api.Errno_ENODATA, "")
	}
	delete(n.xattrs, op.Name)
	n.noteACLs()
	touch(&n.attr, c.NowNs, false, true)
	return ok(&n.attr)
}

func (f *FSM) commitWrite(c *api.Command, op *api.CommitWriteOp) *api.MutateResponse {
	n := f.inodes[op.Ino]
	if n == nil {
		return errResp(api.Errno_ENOENT, "")
	}
	if !isReg(&n.attr) {
		return errResp(api.Errno_EINVAL, "")
	}
	if op.Size > maxFileSize {
		return errResp(api.Errno_EFBIG, "")
	}
	if op.Size > n.attr.Size {
		f.logical += op.Size - n.attr.Size
		n.attr.Size = op.Size
	}
	if op.MtimeNs == 0 {
		n.attr.MtimeNs = c.NowNs
		n.attr.CtimeNs = c.NowNs
	} else {
		// The writer's time of its last write, which stat already
		// showed on its mount: committing it later changes nothing
		// visible there. ctime never goes back (a chmod may have come
		// between the write and this commit).
		n.attr.MtimeNs = op.MtimeNs
		n.attr.CtimeNs = max(n.attr.CtimeNs, op.MtimeNs)
	}
	return ok(&n.attr)
}

func (f *FSM) open(s *session, ino uint64) *api.MutateResponse {
	n := f.inodes[ino]
	if n == nil {
		return errResp(api.Errno_ENOENT, "")
	}
	if s != nil {
		s.opens[ino]++
		n.opens++
		delete(f.orphans, ino)
	}
	return ok(&n.attr)
}

func (f *FSM) release(s *session, ino uint64) *api.MutateResponse {
	n := f.inodes[ino]
	if n == nil || s == nil || s.opens[ino] == 0 {
		return &api.MutateResponse{}
	}
	s.opens[ino]--
	if s.opens[ino] == 0 {
		delete(s.opens, ino)
	}
	n.opens--
	f.maybeFree(n)
	return ok(&n.attr)
}

// allocChunk returns the chunk at (ino, index), creating it on the
// leader's placement, and (re)grants its write lease when the current one
// has run out. Every new lease bumps the version, so a replica that missed
// the grant cannot take writes meant for the others.
func (f *FSM) allocChunk(c *api.Command, op *api.AllocChunkOp) *api.MutateResponse {
	n := f.inodes[op.Ino]
	if n == nil {
		return errResp(api.Errno_ENOENT, "")
	}
	if !isReg(&n.attr) {
		return errResp(api.Errno_EINVAL, "not a regular file")
	}
	cs := n.attr.GetLayout().GetChunkSize()
	if cs == 0 {
		cs = api.DefaultChunkSize
	}
	if op.Index*cs >= maxFileSize {
		return errResp(api.Errno_EFBIG, "")
	}
	ch := n.chunks[op.Index]
	if ch == nil {
		if len(c.Placement) == 0 {
			return errResp(api.Errno_ENOSPC, "no chunkserver can take a new chunk")
		}
		ch = f.newChunk(c, n, op.Index)
	} else if ch.leaseExpiry <= c.NowNs+leaseRenewWindow {
		ch.version++
		setPrimary(ch, n.attr.GetLayout(), c.Primary)
		ch.leaseExpiry = c.NowNs + c.LeaseNs
	}
	return &api.MutateResponse{Attr: n.attr.proto(), Chunk: f.chunkProto(ch, n.attr.Layout)}
}

// newChunk adds chunk index of file n on the leader's placement, leased
// to its chosen primary.
func (f *FSM) newChunk(c *api.Command, n *inode, index uint64) *chunk {
	id := f.nextChunk
	if c.ChunkId >= id {
		id = c.ChunkId
	}
	ch := &chunk{id: id, version: 1, index: index, ino: n.attr.Ino,
		replicas: append([]string{}, c.Placement...),
		primary:  c.Primary, leaseExpiry: c.NowNs + c.LeaseNs}
	f.nextChunk = id + 1
	if n.chunks == nil {
		n.chunks = map[uint64]*chunk{} // made on the first chunk: most files have one or none
	}
	n.chunks[index] = ch
	f.chunks[ch.id] = ch
	return ch
}

// leaseRenewWindow: a lease this close to its end is renewed rather than
// handed out, so writers do not start on a lease about to lapse.
const leaseRenewWindow = int64(2 * time.Second)

// reportFailure drops replicas a writer could not write to, bumping the
// version so they can never serve this chunk again, and leases the chunk
// to a survivor. Reports against an older version change nothing.
func (f *FSM) reportFailure(c *api.Command, op *api.ReportFailureOp) *api.MutateResponse {
	n := f.inodes[op.Ino]
	if n == nil {
		return errResp(api.Errno_ENOENT, "")
	}
	ch := n.chunks[op.Index]
	if ch == nil || ch.id != op.ChunkId {
		return errResp(api.Errno_ESTALE, fmt.Sprintf("chunk %d is no longer at index %d", op.ChunkId, op.Index))
	}
	answer := func() *api.MutateResponse {
		return &api.MutateResponse{Attr: n.attr.proto(), Chunk: f.chunkProto(ch, n.attr.Layout)}
	}
	if ch.version != op.Version {
		return answer()
	}
	if n.attr.GetLayout().GetKind() == api.Layout_EC {
		return f.ecReportFailure(c, n, ch, op.Failed)
	}
	var keep []string
	for _, r := range ch.replicas {
		if !contains(op.Failed, r) {
			keep = append(keep, r)
		}
	}
	if len(keep) == len(ch.replicas) {
		return answer()
	}
	if len(keep) == 0 {
		return errResp(api.Errno_EIO, fmt.Sprintf("chunk %d: every replica failed", ch.id))
	}
	ch.replicas = keep
	ch.version++
	ch.primary = c.Primary
	if !contains(keep, ch.primary) {
		ch.primary = keep[0]
	}
	ch.leaseExpiry = c.NowNs + c.LeaseNs
	return answer()
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// chunkProto renders a chunk with replica addresses.
func (f *FSM) chunkProto(ch *chunk, l *api.Layout) *api.Chunk {
	out := &api.Chunk{Id: ch.id, Version: ch.version, Index: ch.index, Primary: ch.primary, LeaseExpiryNs: ch.leaseExpiry}
	if l != nil {
		out.Layout = proto.Clone(l).(*api.Layout)
	}
	for i, id := range ch.replicas {
		if id == "" {
			continue // an EC shard waiting for its rebuild
		}
		r := &api.Replica{Server: id}
		if s := f.servers[id]; s != nil {
			r.Addr = s.addr
		}
		if l.GetKind() == api.Layout_EC {
			r.Shard = uint32(i)
		}
		out.Replicas = append(out.Replicas, r)
	}
	return out
}
