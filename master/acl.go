package master

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"dfs/api"
)

// POSIX ACLs live in an inode's xattrs under the names the kernel reads
// them by, in the kernel's binary xattr format, so getxattr serves them
// as stored and snapshots carry them; Attr.Acls tells which it has. The
// mount negotiates FUSE_POSIX_ACL: the kernel enforces them, and the
// master keeps them in step with the mode as ext4 does (fs/posix_acl.c):
// the rules below follow it.
const (
	ACLAccessXattr  = api.ACLAccessXattr
	ACLDefaultXattr = api.ACLDefaultXattr
)

// Entry tags and the format's constants (linux/posix_acl_xattr.h).
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20

	aclVersion     = 2
	aclUndefinedID = 0xffffffff
	aclHeaderSize  = 4
	aclEntrySize   = 8
)

type aclEntry struct {
	tag  uint16
	perm uint16 // rwx as 4, 2, 1
	id   uint32 // uid or gid for aclUser and aclGroup
}

// acl is a valid ACL: entries in the order posix_acl_valid demands.
type acl []aclEntry

// parseACL decodes and validates an ACL xattr value. Like the kernel,
// it requires USER_OBJ, then named users, GROUP_OBJ, named groups, a
// MASK (required when there are named entries, optional otherwise) and
// OTHER, each at most once save the named ones. The ids of unnamed
// entries are set to the undefined id, as the kernel writes them.
func parseACL(b []byte) (acl, error) {
	if len(b) < aclHeaderSize || (len(b)-aclHeaderSize)%aclEntrySize != 0 {
		return nil, fmt.Errorf("ACL of %d bytes is not a header and whole entries", len(b))
	}
	if v := binary.LittleEndian.Uint32(b); v != aclVersion {
		return nil, fmt.Errorf("ACL version %d, want %d", v, aclVersion)
	}
	n := (len(b) - aclHeaderSize) / aclEntrySize
	if n == 0 {
		return nil, fmt.Errorf("ACL has no entries")
	}
	a := make(acl, n)
	for i := range a {
		e := b[aclHeaderSize+i*aclEntrySize:]
		a[i] = aclEntry{tag: binary.LittleEndian.Uint16(e), perm: binary.LittleEndian.Uint16(e[2:]),
			id: binary.LittleEndian.Uint32(e[4:])}
		if a[i].tag != aclUser && a[i].tag != aclGroup {
			a[i].id = aclUndefinedID
		}
	}
	return a, a.valid()
}

// valid is posix_acl_valid: a state machine over the entry order.
func (a acl) valid() error {
	const done = 0
	state, needsMask := aclUserObj, false
	for i, e := range a {
		bad := fmt.Errorf("ACL entry %d: tag %#x out of place", i, e.tag)
		if e.perm&^7 != 0 {
			return fmt.Errorf("ACL entry %d: permissions %#x", i, e.perm)
		}
		switch e.tag {
		case aclUserObj:
			if state != aclUserObj {
				return bad
			}
			state = aclUser
		case aclUser:
			if state != aclUser {
				return bad
			}
			needsMask = true
		case aclGroupObj:
			if state != aclUser {
				return bad
			}
			state = aclGroup
		case aclGroup:
			if state != aclGroup {
				return bad
			}
			needsMask = true
		case aclMask:
			if state != aclGroup {
				return bad
			}
			state = aclOther
		case aclOther:
			if state != aclOther && (state != aclGroup || needsMask) {
				return bad
			}
			state = done
		default:
			return fmt.Errorf("ACL entry %d: unknown tag %#x", i, e.tag)
		}
	}
	if state != done {
		return fmt.Errorf("ACL lacks required entries")
	}
	return nil
}

// encode renders the ACL in the xattr format.
func (a acl) encode() []byte {
	b := make([]byte, aclHeaderSize+len(a)*aclEntrySize)
	binary.LittleEndian.PutUint32(b, aclVersion)
	for i, e := range a {
		o := b[aclHeaderSize+i*aclEntrySize:]
		binary.LittleEndian.PutUint16(o, e.tag)
		binary.LittleEndian.PutUint16(o[2:], e.perm)
		binary.LittleEndian.PutUint32(o[4:], e.id)
	}
	return b
}

// equivMode is posix_acl_equiv_mode: the mode whose permission bits the
// ACL implies (group bits from the mask when there is one), and whether
// the mode alone says all the ACL says.
func (a acl) equivMode(mode uint32) (uint32, bool) {
	var perms uint32
	equiv := true
	for _, e := range a {
		p := uint32(e.perm)
		switch e.tag {
		case aclUserObj:
			perms |= p << 6
		case aclGroupObj:
			perms |= p << 3
		case aclOther:
			perms |= p
		case aclMask:
			perms = perms&^0o070 | p<<3
			equiv = false
		case aclUser, aclGroup:
			equiv = false
		}
	}
	return mode&^0o777 | perms, equiv
}

// createMasq is posix_acl_create_masq: a new inode's access ACL from its
// parent's default ACL and the mode it was created with (the umask plays
// no part), and the mode that results. The bool says whether the new ACL
// says more than the mode (and so must be stored).
func (a acl) createMasq(mode uint32) (acl, uint32, bool) {
	out := append(acl{}, a...)
	m := mode & 0o777
	notEquiv := false
	var groupObj, mask *aclEntry
	for i := range out {
		e := &out[i]
		switch e.tag {
		case aclUserObj:
			e.perm &= uint16(m >> 6 & 7)
			m &= uint32(e.perm)<<6 | ^uint32(0o700)
		case aclUser, aclGroup:
			notEquiv = true
		case aclGroupObj:
			groupObj = e
		case aclOther:
			e.perm &= uint16(m & 7)
			m &= uint32(e.perm) | ^uint32(0o007)
		case aclMask:
			mask, notEquiv = e, true
		}
	}
	g := mask
	if g == nil {
		g = groupObj
	}
	g.perm &= uint16(m >> 3 & 7)
	m &= uint32(g.perm)<<3 | ^uint32(0o070)
	return out, mode&^0o777 | m, notEquiv
}

// chmod is __posix_acl_chmod: the owner, other and mask (or owning
// group, without a mask) entries take the new mode's bits.
func (a acl) chmod(mode uint32) acl {
	out := append(acl{}, a...)
	var groupObj, mask *aclEntry
	for i := range out {
		e := &out[i]
		switch e.tag {
		case aclUserObj:
			e.perm = uint16(mode >> 6 & 7)
		case aclOther:
			e.perm = uint16(mode & 7)
		case aclGroupObj:
			groupObj = e
		case aclMask:
			mask = e
		}
	}
	g := mask
	if g == nil {
		g = groupObj
	}
	g.perm = uint16(mode >> 3 & 7)
	return out
}

// storedACL decodes an ACL the FSM stored; those were validated when set.
func (n *inode) storedACL(name string) acl {
	b, ok := n.xattrs[name]
	if !ok {
		return nil
	}
	a, err := parseACL(b)
	if err != nil {
		panic(fmt.Sprintf("inode %d: stored %s is invalid: %v", n.attr.Ino, name, err))
	}
	return a
}

func (n *inode) putXattr(name string, v []byte) {
	if n.xattrs == nil {
		n.xattrs = map[string][]byte{}
	}
	n.xattrs[name] = v
	n.noteACLs()
}

// aclBits is what Attr.Acls should say for n.
func (n *inode) aclBits() uint32 {
	var b uint32
	if _, ok := n.xattrs[ACLAccessXattr]; ok {
		b |= api.AttrACLAccess
	}
	if _, ok := n.xattrs[ACLDefaultXattr]; ok {
		b |= api.AttrACLDefault
	}
	return b
}

// noteACLs brings Attr.Acls in line after an xattr change.
func (n *inode) noteACLs() { n.attr.Acls = n.aclBits() }

// inheritACL gives a new inode created with mode in parent what ext4's
// posix_acl_create gives it: with a default ACL on parent, an access ACL
// cut down to mode (and a directory the default ACL too); without one,
// mode less the creator's umask. Symlinks take neither.
func inheritACL(n, parent *inode, umask uint32) {
	a := &n.attr
	if isLink(a) {
		return
	}
	def := parent.storedACL(ACLDefaultXattr)
	if def == nil {
		a.Mode &^= umask & 0o777
		return
	}
	access, mode, notEquiv := def.createMasq(a.Mode)
	a.Mode = mode
	if notEquiv {
		n.putXattr(ACLAccessXattr, access.encode())
	}
	if isDir(a) {
		n.putXattr(ACLDefaultXattr, def.encode())
	}
}

// setACL stores an ACL set through its xattr. An access ACL also sets
// the mode's permission bits (group ones from its mask), and is not
// stored when the mode says it all (posix_acl_update_mode); a default ACL
// only fits a directory.
func (f *FSM) setACL(c *api.Command, n *inode, op *api.SetXattrOp) *api.MutateResponse {
	a, err := parseACL(op.Value)
	if err != nil {
		return errResp(api.Errno_EINVAL, err.Error())
	}
	if op.Name == ACLDefaultXattr {
		if !isDir(&n.attr) {
			return errResp(api.Errno_EACCES, "only directories have default ACLs")
		}
		n.putXattr(ACLDefaultXattr, a.encode())
		touch(&n.attr, c.NowNs, false, true)
		return ok(&n.attr)
	}
	mode, equiv := a.equivMode(n.attr.Mode)
	_, had := n.xattrs[ACLAccessXattr]
	if equiv {
		delete(n.xattrs, ACLAccessXattr)
		n.noteACLs()
	} else {
		n.putXattr(ACLAccessXattr, a.encode())
	}
	if op.KillSgid {
		mode &^= syscall.S_ISGID
	}
	if mode != n.attr.Mode || had || !equiv {
		n.attr.Mode = mode
		touch(&n.attr, c.NowNs, false, true)
	}
	return ok(&n.attr)
}

// chmodACL brings a stored access ACL in line with a new mode.
func chmodACL(n *inode) {
	if a := n.storedACL(ACLAccessXattr); a != nil {
		n.putXattr(ACLAccessXattr, a.chmod(n.attr.Mode).encode())
	}
}

func isACL(name string) bool { return name == ACLAccessXattr || name == ACLDefaultXattr }
