package fs

import (
	"context"
	"sync"

	"dfs/api"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// POSIX ACLs: the mount negotiates FUSE_POSIX_ACL, so the kernel checks
// access against ACLs it reads through getxattr and caches, and passes
// ACL sets and removals on as xattr calls; the master stores the ACLs
// and keeps them and the mode in step (master/acl.go). With ACLs on, the
// kernel leaves the umask to the file system (FUSE_DONT_MASK): a default
// ACL on the parent replaces it. It also says, in SETXATTR's extended
// flags (FUSE_SETXATTR_EXT), when setting an access ACL must clear the
// setgid bit. go-fuse's node API passes on neither the umask nor those
// flags, so aclRaw takes them from the raw requests.

// aclBit is name's bit in Attr.Acls, or 0 if name is no ACL.
func aclBit(name string) uint32 {
	switch name {
	case api.ACLAccessXattr:
		return api.AttrACLAccess
	case api.ACLDefaultXattr:
		return api.AttrACLDefault
	}
	return 0
}

// lacksACL reports whether the node's attributes say it has no ACL
// called name. The kernel asks for the access ACL before every
// permission check by a caller other than the owner, whenever it has
// dropped its cached ACLs (at each attribute refresh); most inodes have
// none, and this answers those without a round trip. The attributes
// are at least as fresh as the kernel's, so the answer is as current as
// the ACL the kernel would otherwise keep cached.
func (n *node) lacksACL(name string) bool {
	bit := aclBit(name)
	if bit == 0 {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.attr != nil && n.attr.Acls&bit == 0
}

// aclCaps are the capabilities ACL support needs beyond go-fuse's own.
const aclCaps = fuse.CAP_DONT_MASK | fuse.CAP_SETXATTR_EXT

// reqInfo is what the raw request said that the node method needs.
type reqInfo struct {
	umask    uint32
	killSgid bool
}

// aclRaw records reqInfo for the request's node method, keyed by the
// request's cancel channel (which the method sees in its context).
type aclRaw struct {
	fuse.RawFileSystem
	reqs *sync.Map
}

func (r *aclRaw) with(cancel <-chan struct{}, info reqInfo, call func() fuse.Status) fuse.Status {
	r.reqs.Store(cancel, info)
	defer r.reqs.Delete(cancel)
	return call()
}

func (r *aclRaw) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	return r.with(cancel, reqInfo{umask: in.Umask}, func() fuse.Status { return r.RawFileSystem.Mkdir(cancel, in, name, out) })
}

func (r *aclRaw) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	return r.with(cancel, reqInfo{umask: in.Umask}, func() fuse.Status { return r.RawFileSystem.Mknod(cancel, in, name, out) })
}

func (r *aclRaw) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	return r.with(cancel, reqInfo{umask: in.Umask}, func() fuse.Status { return r.RawFileSystem.Create(cancel, in, name, out) })
}

func (r *aclRaw) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	return r.with(cancel, reqInfo{umask: in.Umask}, func() fuse.Status { return r.RawFileSystem.Tmpfile(cancel, in, out) })
}

func (r *aclRaw) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	info := reqInfo{killSgid: in.SetXAttrFlags&fuse.SETXATTR_ACL_KILL_SGID != 0}
	return r.with(cancel, info, func() fuse.Status { return r.RawFileSystem.SetXAttr(cancel, in, attr, data) })
}

// reqInfo returns what aclRaw recorded for the FUSE request of ctx (the
// zero reqInfo for calls that are no FUSE request).
func (fsys *filesystem) reqInfo(ctx context.Context) reqInfo {
	if fc, ok := ctx.(*fuse.Context); ok {
		if v, ok := fsys.reqs.Load(fc.Cancel); ok {
			return v.(reqInfo)
		}
	}
	return reqInfo{}
}
