package master

import (
	"fmt"
	"slices"
	"strings"
	"syscall"

	"dfs/api"
)

// Permissions. The master checks every namespace call against the
// caller's uid, gid and groups exactly as Linux's VFS checks a local file
// system, so that a mount shared by several users (allow_other), or a
// program using the client library directly, can do no more than on a
// local disk. The leader checks a mutation before it proposes it, against
// the state it has applied: a refused call never enters the Raft log and
// changes nothing. Reads are checked where they are served.
//
// The rules and their order follow the kernel: generic_permission and
// the POSIX ACL walk (fs/namei.c, fs/posix_acl.c), may_create,
// may_delete and may_linkat (fs/namei.c), setattr_prepare and the
// utimes touch check (fs/attr.c), xattr_permission and the capability
// checks of security.* (fs/xattr.c, security/commoncap.c). Root (uid 0)
// stands for a caller with every capability.
//
// The caller is who the mount (or client) says it is, as with NFS's
// AUTH_SYS: only trusted mounts should be able to connect.

// principal is a caller as the checks see it.
type principal struct {
	uid, gid uint32
	groups   []uint32
}

// nobodyID is the uid and gid of a call that names no caller.
const nobodyID = 65534

func principalOf(c *api.Caller) principal {
	if c == nil {
		return principal{uid: nobodyID, gid: nobodyID}
	}
	return principal{uid: c.Uid, gid: c.Gid, groups: c.Groups}
}

func (p principal) root() bool { return p.uid == 0 }

func (p principal) inGroup(g uint32) bool { return p.gid == g || slices.Contains(p.groups, g) }

// owns is inode_owner_or_capable.
func (p principal) owns(a *attrs) bool { return p.root() || p.uid == a.Uid }

// permission is generic_permission: whether p may access the inode with
// attributes a and access ACL acl (nil if none) as want asks
// (api.MayRead, MayWrite, MayExec bits).
func permission(p principal, a *attrs, access acl, want uint32) bool {
	want &= api.MayRead | api.MayWrite | api.MayExec
	if modeGrants(p, a, access, want) {
		return true
	}
	if !p.root() {
		return false
	}
	// CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: everything on a
	// directory; read and write on anything else, and execute where some
	// execute bit is set.
	return isDir(a) || want&api.MayExec == 0 || a.Mode&0o111 != 0
}

// modeGrants is acl_permission_check: the owner is judged by the owner
// bits alone; others by the ACL when there is one and the group bits
// (its mask) are not all clear, else by the group or other bits.
func modeGrants(p principal, a *attrs, access acl, want uint32) bool {
	mode := a.Mode
	if p.uid == a.Uid {
		return want&^(mode>>6) == 0
	}
	if access != nil && mode&0o070 != 0 {
		return access.grants(p, a, want)
	}
	if want&(mode^mode>>3) != 0 && p.inGroup(a.Gid) {
		mode >>= 3
	}
	return want&^mode&7 == 0
}

// grants is posix_acl_permission for a caller other than the owner: the
// first named user entry that matches decides, under the mask; then every
// group entry that matches (owning group, named groups) is tried, and one
// that grants all of want decides, under the mask; a caller in a matching
// group that grants too little is refused; others get the other entry.
func (a acl) grants(p principal, attr *attrs, want uint32) bool {
	found := false
	for i, e := range a {
		perm := uint32(e.perm)
		switch e.tag {
		case aclUserObj:
			if p.uid == attr.Uid {
				return want&^perm == 0
			}
		case aclUser:
			if p.uid == e.id {
				return a.masked(i, want)
			}
		case aclGroupObj, aclGroup:
			g := e.id
			if e.tag == aclGroupObj {
				g = attr.Gid
			}
			if p.inGroup(g) {
				found = true
				if want&^perm == 0 {
					return a.masked(i, want)
				}
			}
		case aclOther:
			return !found && want&^perm == 0
		}
	}
	return false
}

// masked says whether entry i grants want once the mask (if any) is
// applied.
func (a acl) masked(i int, want uint32) bool {
	perm := uint32(a[i].perm)
	for _, m := range a[i+1:] {
		if m.tag == aclMask {
			perm &= uint32(m.perm)
			break
		}
	}
	return want&^perm == 0
}

// may is permission for an inode of this FSM, with its stored ACL.
func (f *FSM) may(p principal, n *inode, want uint32) bool {
	var access acl
	if n.attr.Acls&api.AttrACLAccess != 0 && p.uid != n.attr.Uid {
		access = n.storedACL(ACLAccessXattr)
	}
	return permission(p, &n.attr, access, want)
}

// denial is a refused call: the errno and a message naming the rule.
type denial struct {
	errno api.Errno
	msg   string
}

func (d *denial) resp() *api.MutateResponse { return errResp(d.errno, d.msg) }

func eacces(format string, args ...any) *denial {
	return &denial{api.Errno_EACCES, fmt.Sprintf(format, args...)}
}

func eperm(format string, args ...any) *denial {
	return &denial{api.Errno_EPERM, fmt.Sprintf(format, args...)}
}

// search is the lookup check of a path walk: execute on the directory.
func (f *FSM) search(p principal, d *inode) *denial {
	if !f.may(p, d, api.MayExec) {
		return eacces("uid %d may not search directory %d", p.uid, d.attr.Ino)
	}
	return nil
}

// mayCreate is may_create: write and search on the directory.
func (f *FSM) mayCreate(p principal, d *inode) *denial {
	if !f.may(p, d, api.MayWrite|api.MayExec) {
		return eacces("uid %d may not write directory %d", p.uid, d.attr.Ino)
	}
	return nil
}

// mayDelete is may_delete: write and search on the directory, and in a
// sticky directory only the owner of the entry or of the directory (or
// root) removes it.
func (f *FSM) mayDelete(p principal, d, victim *inode) *denial {
	if r := f.mayCreate(p, d); r != nil {
		return r
	}
	if d.attr.Mode&syscall.S_ISVTX != 0 && !p.owns(&victim.attr) && p.uid != d.attr.Uid {
		return eperm("directory %d is sticky: uid %d owns neither it nor %d", d.attr.Ino, p.uid, victim.attr.Ino)
	}
	return nil
}

// dirAndChild looks up what a namespace call names, for its checks:
// nil, nil when the FSM's own validation will answer (no such directory,
// not a directory).
func (f *FSM) dirAndChild(parent uint64, name string) (d, child *inode) {
	d = f.inodes[parent]
	if d == nil || !isDir(&d.attr) {
		return nil, nil
	}
	if e, found := d.entries[name]; found {
		child = f.inodes[e.ino]
	}
	return d, child
}

// mayCreateName checks creating name in parent: search, then (when the
// name is free) write; an existing name is the FSM's to answer (EEXIST).
func (f *FSM) mayCreateName(p principal, parent uint64, name string) *denial {
	d, child := f.dirAndChild(parent, name)
	if d == nil {
		return nil
	}
	if r := f.search(p, d); r != nil || child != nil {
		return r
	}
	return f.mayCreate(p, d)
}

// mayDeleteName checks removing name from parent.
func (f *FSM) mayDeleteName(p principal, parent uint64, name string) *denial {
	d, child := f.dirAndChild(parent, name)
	if d == nil {
		return nil
	}
	if r := f.search(p, d); r != nil || child == nil {
		return r
	}
	return f.mayDelete(p, d, child)
}

// permit checks a mutation before the leader proposes it. held says
// whether the caller's session holds the file the op names open without
// a record in Raft (the leader's hold table); opens recorded in Raft are
// looked up here.
func (f *FSM) permit(c *api.Command, held bool) *denial {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.sessions[c.Session]
	if s != nil && c.Seq != 0 {
		if _, answered := s.responses[c.Seq]; answered {
			return nil // a retry: the first answer stands
		}
	}
	p := principalOf(c.Caller)
	if s != nil && !held {
		held = s.opens[opIno(c.Op)] > 0
	}
	switch op := c.Op.GetOp().(type) {
	case *api.Op_Create:
		return f.permitCreate(p, op.Create)
	case *api.Op_Mkdir:
		return f.mayCreateName(p, op.Mkdir.Parent, op.Mkdir.Name)
	case *api.Op_Symlink:
		return f.mayCreateName(p, op.Symlink.Parent, op.Symlink.Name)
	case *api.Op_Link:
		return f.permitLink(p, op.Link)
	case *api.Op_Unlink:
		return f.mayDeleteName(p, op.Unlink.Parent, op.Unlink.Name)
	case *api.Op_Rmdir:
		return f.mayDeleteName(p, op.Rmdir.Parent, op.Rmdir.Name)
	case *api.Op_Rename:
		return f.permitRename(p, op.Rename)
	case *api.Op_SetAttr:
		return f.permitSetAttr(p, op.SetAttr, held)
	case *api.Op_SetXattr:
		return f.permitXattrChange(p, op.SetXattr.Ino, op.SetXattr.Name, false, held)
	case *api.Op_RemoveXattr:
		return f.permitXattrChange(p, op.RemoveXattr.Ino, op.RemoveXattr.Name, true, held)
	case *api.Op_AllocChunk, *api.Op_CommitWrite, *api.Op_ReportFailure:
		return f.permitData(p, opIno(c.Op), api.MayWrite, held)
	case *api.Op_Open:
		return f.permitData(p, op.Open.Ino, api.MayRead|api.MayWrite, held)
	}
	return nil
}

// permitAccess keeps the inodes of an AccessOp whose access time the
// caller may update (a read's, as permitSetAttr's ACCESS case) and
// drops the others: one file's access time is not worth failing the
// rest. held[i] says whether the caller's session holds op.Inos[i] open.
func (f *FSM) permitAccess(c *api.Command, op *api.AccessOp, held []bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p := principalOf(c.Caller)
	kept := op.Inos[:0]
	for i, ino := range op.Inos {
		if f.permitData(p, ino, api.MayRead, held[i]) == nil {
			kept = append(kept, ino)
		}
	}
	op.Inos = kept
}

// opIno is the inode a data op or attribute change names, 0 if none.
func opIno(op *api.Op) uint64 {
	switch o := op.GetOp().(type) {
	case *api.Op_SetAttr:
		return o.SetAttr.Ino
	case *api.Op_SetXattr:
		return o.SetXattr.Ino
	case *api.Op_RemoveXattr:
		return o.RemoveXattr.Ino
	case *api.Op_AllocChunk:
		return o.AllocChunk.Ino
	case *api.Op_CommitWrite:
		return o.CommitWrite.Ino
	case *api.Op_ReportFailure:
		return o.ReportFailure.Ino
	case *api.Op_Open:
		return o.Open.Ino
	}
	return 0
}

// permitData checks a call on a file's data outside an open the master
// checked: its owner (who could grant themselves access), or a caller
// with some of the access in want, may make it; a session holding the
// file open always may, as a descriptor keeps working after a chmod.
func (f *FSM) permitData(p principal, ino uint64, want uint32, held bool) *denial {
	n := f.inodes[ino]
	if n == nil || held || p.owns(&n.attr) {
		return nil
	}
	for _, w := range []uint32{api.MayWrite, api.MayRead} {
		if want&w != 0 && f.may(p, n, w) {
			return nil
		}
	}
	return eacces("uid %d may not access the data of %d", p.uid, ino)
}

func (f *FSM) permitCreate(p principal, op *api.CreateOp) *denial {
	d, child := f.dirAndChild(op.Parent, op.Name)
	if d == nil {
		return nil
	}
	if op.Tmpfile {
		return f.mayCreate(p, d)
	}
	if r := f.search(p, d); r != nil {
		return r
	}
	if child != nil {
		if op.Exclusive || !op.Open || isDir(&child.attr) {
			return nil // EEXIST or EISDIR
		}
		return f.permitOpen(p, child, op.Access)
	}
	if r := f.mayCreate(p, d); r != nil {
		return r
	}
	if t := op.Mode & syscall.S_IFMT; (t == syscall.S_IFCHR || t == syscall.S_IFBLK) && !p.root() {
		return eperm("uid %d may not make device nodes", p.uid)
	}
	return nil
}

// permitOpen is may_open's permission check for an open asking access
// (0: read).
func (f *FSM) permitOpen(p principal, n *inode, access uint32) *denial {
	if access == 0 {
		access = api.MayRead
	}
	if !f.may(p, n, access) {
		return eacces("uid %d may not open %d for %s", p.uid, n.attr.Ino, accessName(access))
	}
	return nil
}

func accessName(a uint32) string {
	var b strings.Builder
	for _, x := range []struct {
		bit  uint32
		name string
	}{{api.MayRead, "r"}, {api.MayWrite, "w"}, {api.MayExec, "x"}} {
		if a&x.bit != 0 {
			b.WriteString(x.name)
		}
	}
	return b.String()
}

// permitLink is linkat's order: search, an existing name (EEXIST),
// may_linkat (protected_hardlinks, as Linux distributions set it), then
// write on the directory.
func (f *FSM) permitLink(p principal, op *api.LinkOp) *denial {
	d, child := f.dirAndChild(op.NewParent, op.NewName)
	src := f.inodes[op.Ino]
	if d == nil || src == nil {
		return nil
	}
	if r := f.search(p, d); r != nil || child != nil {
		return r
	}
	if !p.owns(&src.attr) && !safeHardlinkSource(f, p, src) {
		return eperm("uid %d may not link to %d: not its owner, and it is not a regular file it may read and write", p.uid, op.Ino)
	}
	return f.mayCreate(p, d)
}

// safeHardlinkSource is the kernel's safe_hardlink_source.
func safeHardlinkSource(f *FSM, p principal, n *inode) bool {
	m := n.attr.Mode
	return isReg(&n.attr) && m&syscall.S_ISUID == 0 &&
		m&(syscall.S_ISGID|syscall.S_IXGRP) != syscall.S_ISGID|syscall.S_IXGRP &&
		f.may(p, n, api.MayRead|api.MayWrite)
}

// permitRename is vfs_rename's checks: search on both directories, then
// (unless both names are one inode) may_delete of the source, may_delete
// or may_create at the target, and write on a directory that changes
// parent (its ".." changes). What renameat2 refuses before those (no
// source, no target to exchange, a target with RENAME_NOREPLACE, a
// directory moved under itself) is the FSM's to answer.
func (f *FSM) permitRename(p principal, op *api.RenameOp) *denial {
	sd, src := f.dirAndChild(op.Parent, op.Name)
	dd, dst := f.dirAndChild(op.NewParent, op.NewName)
	if sd == nil || dd == nil {
		return nil
	}
	if r := f.search(p, sd); r != nil {
		return r
	}
	if r := f.search(p, dd); r != nil || src == nil || src == dst {
		return r
	}
	if dst == nil && op.Flags&api.RenameExchange != 0 || dst != nil && op.Flags&api.RenameNoReplace != 0 ||
		isDir(&src.attr) && f.isAncestor(src.attr.Ino, dd.attr.Ino) ||
		dst != nil && isDir(&dst.attr) && f.isAncestor(dst.attr.Ino, sd.attr.Ino) {
		return nil
	}
	if r := f.mayDelete(p, sd, src); r != nil {
		return r
	}
	if dst != nil {
		if r := f.mayDelete(p, dd, dst); r != nil {
			return r
		}
	} else if r := f.mayCreate(p, dd); r != nil {
		return r
	}
	if sd == dd {
		return nil
	}
	moved := []*inode{src}
	if dst != nil && op.Flags&api.RenameExchange != 0 {
		moved = append(moved, dst)
	}
	for _, n := range moved {
		if isDir(&n.attr) && !f.may(p, n, api.MayWrite) {
			return eacces("uid %d may not move directory %d: no write permission on it", p.uid, n.attr.Ino)
		}
	}
	return nil
}

// permitSetAttr is setattr_prepare with the utimes and truncate checks.
// A mode change that only clears setuid and setgid is what the kernel
// sends on behalf of a writer (file_remove_privs), so a caller who may
// write the file may make it. A chmod by a caller outside the file's
// group keeps no setgid bit, as Linux quietly drops it: op is changed.
func (f *FSM) permitSetAttr(p principal, op *api.SetAttrOp, held bool) *denial {
	n := f.inodes[op.Ino]
	if n == nil {
		return nil
	}
	a := &n.attr
	v := api.SetAttrOp_Valid(op.Valid)
	has := func(b api.SetAttrOp_Valid) bool { return v&b != 0 }
	if v == api.SetAttrOp_ACCESS|api.SetAttrOp_ATIME_NOW {
		// A read's access time: its reader.
		return f.permitData(p, op.Ino, api.MayRead, held)
	}
	if has(api.SetAttrOp_SIZE) && isReg(a) && !held && !f.may(p, n, api.MayWrite) {
		return eacces("uid %d may not truncate %d", p.uid, op.Ino)
	}
	if has(api.SetAttrOp_UID) && !p.root() && !(p.uid == a.Uid && op.Uid == a.Uid) {
		return eperm("uid %d may not change the owner of %d", p.uid, op.Ino)
	}
	if has(api.SetAttrOp_GID) && !p.root() && !(p.uid == a.Uid && (op.Gid == a.Gid || p.inGroup(op.Gid))) {
		return eperm("uid %d may not change the group of %d to %d", p.uid, op.Ino, op.Gid)
	}
	if has(api.SetAttrOp_MODE) {
		// killPriv: the new mode is the old one less setuid and/or
		// setgid (the kernel may clear only setuid, and the mount only
		// setgid: see node.killSgid).
		privs := uint32(syscall.S_ISUID | syscall.S_ISGID)
		m, old := op.Mode&0o7777, a.Mode&0o7777
		killPriv := m != old && m&^privs == old&^privs && m&privs&^old == 0
		switch {
		case p.owns(a):
		case killPriv && (held || f.may(p, n, api.MayWrite)):
		default:
			return eperm("uid %d may not change the mode of %d", p.uid, op.Ino)
		}
		gid := a.Gid
		if has(api.SetAttrOp_GID) {
			gid = op.Gid
		}
		if !p.root() && !p.inGroup(gid) {
			op.Mode &^= syscall.S_ISGID
		}
	}
	touch := api.SetAttrOp_ATIME_NOW | api.SetAttrOp_MTIME_NOW
	times := api.SetAttrOp_ATIME | api.SetAttrOp_MTIME | touch
	switch {
	case v&times == 0 || p.owns(a):
	case v&times == touch:
		// utimes(NULL): the owner or a writer.
		if !f.may(p, n, api.MayWrite) {
			return eacces("uid %d may not touch %d", p.uid, op.Ino)
		}
	default:
		return eperm("uid %d may not set the times of %d", p.uid, op.Ino)
	}
	return nil
}

// xattrNamespace is the part of an xattr name up to its first dot.
func xattrNamespace(name string) string {
	ns, _, _ := strings.Cut(name, ".")
	return ns
}

// permitXattrChange checks setting (or, with remove, removing) the
// extended attribute name of ino: xattr_permission, the ACL owner rule,
// and the capability rules of security.*. Names outside the kernel's
// namespaces (the layout) need write permission, as the kernel asks of
// them.
func (f *FSM) permitXattrChange(p principal, ino uint64, name string, remove, held bool) *denial {
	n := f.inodes[ino]
	if n == nil {
		return nil
	}
	switch {
	case isACL(name):
		if name == ACLDefaultXattr && !isDir(&n.attr) {
			return nil // the FSM's EACCES (or nothing to remove)
		}
		if !p.owns(&n.attr) {
			return eperm("uid %d does not own %d: may not change its ACL", p.uid, ino)
		}
		return nil
	case name == capsXattr && remove:
		// The kernel drops file capabilities for any writer.
		return f.permitData(p, ino, api.MayWrite, held)
	}
	switch xattrNamespace(name) {
	case "trusted", "security":
		if !p.root() {
			return eperm("only root may change %s", name)
		}
		return nil
	case "user":
		if !isReg(&n.attr) && !isDir(&n.attr) {
			return eperm("user.* xattrs belong to regular files and directories only")
		}
		if isDir(&n.attr) && n.attr.Mode&syscall.S_ISVTX != 0 && !p.owns(&n.attr) {
			return eperm("directory %d is sticky: only its owner changes its user.* xattrs", ino)
		}
	}
	if !f.may(p, n, api.MayWrite) {
		return eacces("uid %d may not write %d", p.uid, ino)
	}
	return nil
}

// capsXattr holds file capabilities.
const capsXattr = "security.capability"

// xattrReadable checks reading the extended attribute name of n:
// trusted.* is root's, and for others absent (ENODATA); user.* exists on
// files and directories only; ACLs and security.* are readable by
// anyone; the rest (user.*, the layout) needs read permission.
func (f *FSM) xattrReadable(p principal, n *inode, name string) api.Errno {
	if isACL(name) {
		return api.Errno_OK
	}
	switch xattrNamespace(name) {
	case "security":
		return api.Errno_OK
	case "trusted":
		if !p.root() {
			return api.Errno_ENODATA
		}
		return api.Errno_OK
	case "user":
		if !isReg(&n.attr) && !isDir(&n.attr) {
			return api.Errno_ENODATA
		}
	}
	if !f.may(p, n, api.MayRead) {
		return api.Errno_EACCES
	}
	return api.Errno_OK
}

// Reads. Each answers OK or the errno the read must answer instead; the
// read itself then runs as before (the FSM's own validation answers
// ENOENT and ENOTDIR).

// permitLookup: search on the directory.
func (f *FSM) permitLookup(c *api.Caller, parent uint64) api.Errno {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d := f.inodes[parent]
	if d == nil || !isDir(&d.attr) || f.search(principalOf(c), d) == nil {
		return api.Errno_OK
	}
	return api.Errno_EACCES
}

// permitReadDir: read on the directory; plus (attributes of the entries,
// what a lookup of each would give) also needs search, and is dropped
// without it, as `ls -l` in a directory without x shows names only.
func (f *FSM) permitReadDir(c *api.Caller, ino uint64, plus bool) (api.Errno, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d := f.inodes[ino]
	if d == nil || !isDir(&d.attr) {
		return api.Errno_OK, plus
	}
	p := principalOf(c)
	if !f.may(p, d, api.MayRead) {
		return api.Errno_EACCES, false
	}
	return api.Errno_OK, plus && f.search(p, d) == nil
}

// permitGetXattr: see xattrReadable.
func (f *FSM) permitGetXattr(c *api.Caller, ino uint64, name string) api.Errno {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.inodes[ino]
	if n == nil {
		return api.Errno_OK
	}
	return f.xattrReadable(principalOf(c), n, name)
}

// visibleXattrs drops from names what c may not list: trusted.* unless
// root, as ext4 lists them.
func visibleXattrs(c *api.Caller, names []string) []string {
	if principalOf(c).root() {
		return names
	}
	return slices.DeleteFunc(names, func(n string) bool { return xattrNamespace(n) == "trusted" })
}

// permitGetChunks: an open checks the access it asks (0: read); other
// calls are data calls (permitData).
func (f *FSM) permitGetChunks(req *api.GetChunksRequest, held bool) api.Errno {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.inodes[req.Ino]
	if n == nil || !isReg(&n.attr) {
		return api.Errno_OK
	}
	p := principalOf(req.Caller)
	var d *denial
	if req.Open {
		d = f.permitOpen(p, n, req.Access)
	} else {
		if s := f.sessions[req.Session]; s != nil && s.opens[req.Ino] > 0 {
			held = true
		}
		d = f.permitData(p, req.Ino, api.MayRead|api.MayWrite, held)
	}
	if d != nil {
		return d.errno
	}
	return api.Errno_OK
}
