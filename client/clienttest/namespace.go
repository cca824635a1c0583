package clienttest

import (
	"fmt"
	"sort"
	"syscall"
	"time"

	"dfs/api"

	"google.golang.org/protobuf/proto"
)

type dirent struct {
	ino    uint64
	cookie uint64
}

type inode struct {
	attr    *api.Attr
	xattrs  map[string][]byte
	entries map[string]dirent // directories
	chunks  map[uint64]*api.Chunk
	opens   int
}

type session struct {
	answers map[uint64]*api.MutateResponse
	// held: inodes the session holds open without a record, as its
	// last keepalive reported them plus those opened since.
	held, served map[uint64]bool
}

type namespace struct {
	inodes      map[uint64]*inode
	sessions    map[uint64]*session
	nextIno     uint64
	nextCookie  uint64
	nextSession uint64
	nextChunk   uint64
}

func newNamespace() *namespace {
	ns := &namespace{inodes: map[uint64]*inode{}, sessions: map[uint64]*session{}, nextIno: api.RootIno + 1, nextCookie: 1, nextChunk: 1}
	now := time.Now().UnixNano()
	ns.inodes[api.RootIno] = &inode{
		attr: &api.Attr{Ino: api.RootIno, Mode: syscall.S_IFDIR | 0777, Nlink: 2, Generation: 1,
			AtimeNs: now, MtimeNs: now, CtimeNs: now,
			Layout: &api.Layout{Kind: api.Layout_REPLICATED, Replicas: 3, ChunkSize: api.DefaultChunkSize}},
		xattrs: map[string][]byte{}, entries: map[string]dirent{},
	}
	return ns
}

func (ns *namespace) attr(ino uint64) *api.Attr {
	return proto.Clone(ns.inodes[ino].attr).(*api.Attr)
}

func (ns *namespace) dir(ino uint64) (*inode, api.Errno) {
	in := ns.inodes[ino]
	if in == nil {
		return nil, api.Errno_ENOENT
	}
	if in.entries == nil {
		return nil, api.Errno_ENOTDIR
	}
	return in, api.Errno_OK
}

func isDir(a *api.Attr) bool { return a.Mode&syscall.S_IFMT == syscall.S_IFDIR }

func errResp(e api.Errno, format string, args ...any) *api.MutateResponse {
	return &api.MutateResponse{Errno: e, Message: fmt.Sprintf(format, args...)}
}

// newInode makes an inode inheriting parent's layout.
func (ns *namespace) newInode(parent *inode, mode uint32, caller *api.Caller, now int64) *inode {
	ino := ns.nextIno
	ns.nextIno++
	in := &inode{
		attr: &api.Attr{Ino: ino, Mode: mode, Nlink: 1, Uid: caller.GetUid(), Gid: caller.GetGid(),
			AtimeNs: now, MtimeNs: now, CtimeNs: now, Generation: 1,
			Layout: proto.Clone(parent.attr.Layout).(*api.Layout)},
		xattrs: map[string][]byte{},
		chunks: map[uint64]*api.Chunk{},
	}
	if isDir(in.attr) {
		in.attr.Nlink = 2
		in.entries = map[string]dirent{}
		in.chunks = nil
	}
	ns.inodes[ino] = in
	return in
}

func (ns *namespace) link(d *inode, name string, ino uint64, now int64) {
	d.entries[name] = dirent{ino: ino, cookie: ns.nextCookie}
	ns.nextCookie++
	d.attr.MtimeNs, d.attr.CtimeNs = now, now
}

// drop decrements nlink after an entry went away and frees the inode
// when nothing refers to it.
func (ns *namespace) drop(ino uint64, now int64) {
	in := ns.inodes[ino]
	if isDir(in.attr) {
		in.attr.Nlink = 0
	} else {
		in.attr.Nlink--
	}
	in.attr.CtimeNs = now
	ns.freeIfUnused(ino)
}

// freeIfUnused deletes an inode with no names and no opens, recorded or
// held by a session, as the master's reclaim does.
func (ns *namespace) freeIfUnused(ino uint64) {
	in := ns.inodes[ino]
	if in == nil || in.attr.Nlink > 0 || in.opens > 0 {
		return
	}
	for _, s := range ns.sessions {
		if s.held[ino] || s.served[ino] {
			return
		}
	}
	delete(ns.inodes, ino)
}

// release ends an open recorded by Create or Open.
func (ns *namespace) release(ino uint64) {
	if in := ns.inodes[ino]; in != nil {
		in.opens--
		ns.freeIfUnused(ino)
	}
}

func validName(name string) api.Errno {
	switch {
	case name == "" || name == "." || name == "..":
		return api.Errno_EINVAL
	case len(name) > api.MaxNameLen:
		return api.Errno_ENAMETOOLONG
	}
	return api.Errno_OK
}

// apply runs one mutation against the namespace; c.mu is held.
func (c *Cluster) apply(req *api.MutateRequest) *api.MutateResponse {
	ns := c.ns
	now := time.Now().UnixNano()
	for _, ino := range req.Releases {
		ns.release(ino)
	}
	switch op := req.Op.GetOp().(type) {
	case *api.Op_CloseSession:
		delete(ns.sessions, req.Session)
		return &api.MutateResponse{}
	case *api.Op_Create, *api.Op_Mkdir, *api.Op_Symlink:
		if cr := req.Op.GetCreate(); cr.GetTmpfile() {
			// O_TMPFILE: an open file with no name.
			d, e := ns.dir(cr.Parent)
			if e != api.Errno_OK {
				return errResp(e, "parent %d", cr.Parent)
			}
			in := ns.newInode(d, syscall.S_IFREG|cr.Mode&07777, req.Caller, now)
			in.attr.Nlink = 0
			in.opens++
			return &api.MutateResponse{Attr: ns.attr(in.attr.Ino)}
		}
		var parent uint64
		var name string
		var mode uint32
		switch o := op.(type) {
		case *api.Op_Create:
			parent, name, mode = o.Create.Parent, o.Create.Name, o.Create.Mode
			if mode&syscall.S_IFMT == 0 {
				mode |= syscall.S_IFREG
			}
		case *api.Op_Mkdir:
			parent, name, mode = o.Mkdir.Parent, o.Mkdir.Name, o.Mkdir.Mode&07777|syscall.S_IFDIR
		case *api.Op_Symlink:
			parent, name, mode = o.Symlink.Parent, o.Symlink.Name, syscall.S_IFLNK|0777
		}
		d, e := ns.dir(parent)
		if e != api.Errno_OK {
			return errResp(e, "parent %d", parent)
		}
		if e := validName(name); e != api.Errno_OK {
			return errResp(e, "name %q", name)
		}
		if ent, ok := d.entries[name]; ok {
			if cr := req.Op.GetCreate(); cr != nil && !cr.Exclusive {
				existing := ns.inodes[ent.ino]
				if isDir(existing.attr) {
					return errResp(api.Errno_EISDIR, "%q", name)
				}
				if cr.Open {
					existing.opens++
				}
				return &api.MutateResponse{Attr: ns.attr(ent.ino)}
			}
			return errResp(api.Errno_EEXIST, "%q", name)
		}
		in := ns.newInode(d, mode, req.Caller, now)
		if d.attr.Mode&syscall.S_ISGID != 0 {
			in.attr.Gid = d.attr.Gid
		}
		switch o := op.(type) {
		case *api.Op_Create:
			in.attr.Rdev = o.Create.Rdev
			if o.Create.Open {
				in.opens++
			}
		case *api.Op_Mkdir:
			d.attr.Nlink++
		case *api.Op_Symlink:
			in.attr.Symlink = o.Symlink.Target
			in.attr.Size = uint64(len(o.Symlink.Target))
		}
		ns.link(d, name, in.attr.Ino, now)
		return &api.MutateResponse{Attr: ns.attr(in.attr.Ino)}
	case *api.Op_Link:
		o := op.Link
		in := ns.inodes[o.Ino]
		if in == nil {
			return errResp(api.Errno_ENOENT, "inode %d", o.Ino)
		}
		if isDir(in.attr) {
			return errResp(api.Errno_EPERM, "link to directory")
		}
		d, e := ns.dir(o.NewParent)
		if e != api.Errno_OK {
			return errResp(e, "")
		}
		if e := validName(o.NewName); e != api.Errno_OK {
			return errResp(e, "")
		}
		if _, ok := d.entries[o.NewName]; ok {
			return errResp(api.Errno_EEXIST, "%q", o.NewName)
		}
		in.attr.Nlink++
		in.attr.CtimeNs = now
		ns.link(d, o.NewName, o.Ino, now)
		return &api.MutateResponse{Attr: ns.attr(o.Ino)}
	case *api.Op_Unlink, *api.Op_Rmdir:
		var parent uint64
		var name string
		rmdir := false
		if u := req.Op.GetUnlink(); u != nil {
			parent, name = u.Parent, u.Name
		} else {
			parent, name, rmdir = op.(*api.Op_Rmdir).Rmdir.Parent, op.(*api.Op_Rmdir).Rmdir.Name, true
		}
		d, e := ns.dir(parent)
		if e != api.Errno_OK {
			return errResp(e, "")
		}
		ent, ok := d.entries[name]
		if !ok {
			return errResp(api.Errno_ENOENT, "%q", name)
		}
		child := ns.inodes[ent.ino]
		switch {
		case rmdir && !isDir(child.attr):
			return errResp(api.Errno_ENOTDIR, "")
		case !rmdir && isDir(child.attr):
			return errResp(api.Errno_EISDIR, "")
		case rmdir && len(child.entries) > 0:
			return errResp(api.Errno_ENOTEMPTY, "")
		}
		delete(d.entries, name)
		d.attr.MtimeNs, d.attr.CtimeNs = now, now
		if rmdir {
			d.attr.Nlink--
		}
		ns.drop(ent.ino, now)
		return &api.MutateResponse{}
	case *api.Op_Rename:
		return ns.rename(op.Rename, now)
	case *api.Op_SetAttr:
		o := op.SetAttr
		in := ns.inodes[o.Ino]
		if in == nil {
			return errResp(api.Errno_ENOENT, "")
		}
		v := o.Valid
		a := in.attr
		if v&uint32(api.SetAttrOp_MODE) != 0 {
			a.Mode = a.Mode&syscall.S_IFMT | o.Mode&07777
		}
		if v&uint32(api.SetAttrOp_UID) != 0 {
			a.Uid = o.Uid
		}
		if v&uint32(api.SetAttrOp_GID) != 0 {
			a.Gid = o.Gid
		}
		if v&uint32(api.SetAttrOp_SIZE) != 0 {
			if isDir(a) {
				return errResp(api.Errno_EISDIR, "")
			}
			cs := a.Layout.GetChunkSize()
			for i := range in.chunks {
				if i*cs >= o.Size {
					delete(in.chunks, i)
				}
			}
			a.Size = o.Size
			a.MtimeNs = now
		}
		if v&uint32(api.SetAttrOp_ATIME) != 0 {
			a.AtimeNs = o.AtimeNs
		}
		if v&uint32(api.SetAttrOp_MTIME) != 0 {
			a.MtimeNs = o.MtimeNs
		}
		if v&uint32(api.SetAttrOp_ATIME_NOW) != 0 {
			a.AtimeNs = now
		}
		if v&uint32(api.SetAttrOp_MTIME_NOW) != 0 {
			a.MtimeNs = now
		}
		a.CtimeNs = now
		return &api.MutateResponse{Attr: ns.attr(o.Ino)}
	case *api.Op_SetXattr:
		o := op.SetXattr
		in := ns.inodes[o.Ino]
		if in == nil {
			return errResp(api.Errno_ENOENT, "")
		}
		if o.Name == "dfs.layout" {
			l, err := api.ParseLayout(string(o.Value))
			if err != nil {
				return errResp(api.Errno_EINVAL, "%v", err)
			}
			in.attr.Layout = l
			return &api.MutateResponse{Attr: ns.attr(o.Ino)}
		}
		_, exists := in.xattrs[o.Name]
		if o.Flags&api.XattrCreate != 0 && exists {
			return errResp(api.Errno_EEXIST, "")
		}
		if o.Flags&api.XattrReplace != 0 && !exists {
			return errResp(api.Errno_ENODATA, "")
		}
		in.xattrs[o.Name] = append([]byte(nil), o.Value...)
		in.attr.CtimeNs = now
		return &api.MutateResponse{Attr: ns.attr(o.Ino)}
	case *api.Op_RemoveXattr:
		in := ns.inodes[op.RemoveXattr.Ino]
		if in == nil {
			return errResp(api.Errno_ENOENT, "")
		}
		if _, ok := in.xattrs[op.RemoveXattr.Name]; !ok {
			return errResp(api.Errno_ENODATA, "")
		}
		delete(in.xattrs, op.RemoveXattr.Name)
		return &api.MutateResponse{Attr: ns.attr(op.RemoveXattr.Ino)}
	case *api.Op_AllocChunk:
		return c.allocChunk(op.AllocChunk)
	case *api.Op_CommitWrite:
		in := ns.inodes[op.CommitWrite.Ino]
		if in == nil {
			return errResp(api.Errno_ENOENT, "")
		}
		in.attr.Size = max(in.attr.Size, op.CommitWrite.Size)
		in.attr.MtimeNs, in.attr.CtimeNs = now, now
		if op.CommitWrite.MtimeNs != 0 {
			in.attr.MtimeNs = op.CommitWrite.MtimeNs
		}
		return &api.MutateResponse{Attr: ns.attr(op.CommitWrite.Ino)}
	case *api.Op_Open:
		in := ns.inodes[op.Open.Ino]
		if in == nil {
			return errResp(api.Errno_ENOENT, "")
		}
		in.opens++
		return &api.MutateResponse{Attr: ns.attr(op.Open.Ino)}
	case *api.Op_Release:
		in := ns.inodes[op.Release.Ino]
		if in == nil {
			return errResp(api.Errno_ENOENT, "")
		}
		ns.release(op.Release.Ino)
		return &api.MutateResponse{}
	case *api.Op_Access:
		for _, ino := range op.Access.Inos {
			if in := ns.inodes[ino]; in != nil {
				in.attr.AtimeNs = now
			}
		}
		return &api.MutateResponse{AtimeNs: now}
	}
	return errResp(api.Errno_ENOSYS, "op %T", req.Op.GetOp())
}

func (ns *namespace) rename(o *api.RenameOp, now int64) *api.MutateResponse {
	src, e := ns.dir(o.Parent)
	if e != api.Errno_OK {
		return errResp(e, "")
	}
	dst, e := ns.dir(o.NewParent)
	if e != api.Errno_OK {
		return errResp(e, "")
	}
	if e := validName(o.NewName); e != api.Errno_OK {
		return errResp(e, "")
	}
	sEnt, ok := src.entries[o.Name]
	if !ok {
		return errResp(api.Errno_ENOENT, "%q", o.Name)
	}
	dEnt, dExists := dst.entries[o.NewName]
	if o.Flags&api.RenameExchange != 0 {
		if !dExists {
			return errResp(api.Errno_ENOENT, "%q", o.NewName)
		}
		src.entries[o.Name] = dirent{ino: dEnt.ino, cookie: sEnt.cookie}
		dst.entries[o.NewName] = dirent{ino: sEnt.ino, cookie: dEnt.cookie}
		sa, da := ns.inodes[sEnt.ino].attr, ns.inodes[dEnt.ino].attr
		if src != dst && isDir(sa) != isDir(da) {
			if isDir(sa) {
				src.attr.Nlink--
				dst.attr.Nlink++
			} else {
				src.attr.Nlink++
				dst.attr.Nlink--
			}
		}
		src.attr.MtimeNs, dst.attr.MtimeNs = now, now
		return &api.MutateResponse{}
	}
	if sEnt.ino == dEnt.ino && dExists {
		return &api.MutateResponse{}
	}
	moving := ns.inodes[sEnt.ino]
	if isDir(moving.attr) {
		// No moving a directory below itself.
		for p := o.NewParent; p != api.RootIno; {
			if p == sEnt.ino {
				return errResp(api.Errno_EINVAL, "")
			}
			p = ns.parentOf(p)
			if p == 0 {
				break
			}
		}
	}
	if dExists {
		if o.Flags&api.RenameNoReplace != 0 {
			return errResp(api.Errno_EEXIST, "")
		}
		victim := ns.inodes[dEnt.ino]
		switch {
		case isDir(moving.attr) && !isDir(victim.attr):
			return errResp(api.Errno_ENOTDIR, "")
		case !isDir(moving.attr) && isDir(victim.attr):
			return errResp(api.Errno_EISDIR, "")
		case isDir(victim.attr) && len(victim.entries) > 0:
			return errResp(api.Errno_ENOTEMPTY, "")
		}
		if isDir(victim.attr) {
			dst.attr.Nlink--
		}
		delete(dst.entries, o.NewName)
		ns.drop(dEnt.ino, now)
	}
	delete(src.entries, o.Name)
	ns.link(dst, o.NewName, sEnt.ino, now)
	if isDir(moving.attr) && src != dst {
		src.attr.Nlink--
		dst.attr.Nlink++
	}
	src.attr.MtimeNs, src.attr.CtimeNs = now, now
	moving.attr.CtimeNs = now
	return &api.MutateResponse{}
}

// parentOf finds a directory's parent by search; fine for a fake.
func (ns *namespace) parentOf(ino uint64) uint64 {
	for pi, p := range ns.inodes {
		for _, e := range p.entries {
			if e.ino == ino {
				return pi
			}
		}
	}
	return 0
}

// allocChunk returns the chunk at an index, placing a new one on the
// first servers by id, and grants a lease to its first replica.
func (c *Cluster) allocChunk(o *api.AllocChunkOp) *api.MutateResponse {
	in := c.ns.inodes[o.Ino]
	if in == nil || in.chunks == nil {
		return errResp(api.Errno_ENOENT, "")
	}
	ch := in.chunks[o.Index]
	if ch == nil {
		var ids []string
		for id := range c.servers {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		r := int(in.attr.Layout.GetReplicas())
		if r == 0 || r > len(ids) {
			r = len(ids)
		}
		ch = &api.Chunk{Id: c.ns.nextChunk, Index: o.Index, Layout: proto.Clone(in.attr.Layout).(*api.Layout)}
		c.ns.nextChunk++
		for _, id := range ids[:r] {
			ch.Replicas = append(ch.Replicas, &api.Replica{Server: id, Addr: c.servers[id].addr})
		}
		in.chunks[o.Index] = ch
	}
	ch.Version++
	ch.Primary = ch.Replicas[0].Server
	ch.LeaseExpiryNs = time.Now().Add(time.Minute).UnixNano()
	for i, r := range ch.Replicas {
		cs := c.servers[r.Server]
		d := cs.chunks[ch.Id]
		if d == nil {
			d = &chunkData{}
			cs.chunks[ch.Id] = d
		}
		d.version = ch.Version
		d.primary = ""
		if i == 0 {
			d.primary = r.Server
		}
	}
	return &api.MutateResponse{Chunk: proto.Clone(ch).(*api.Chunk)}
}
