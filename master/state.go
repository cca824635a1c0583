package master

import (
	"syscall"

	"dfs/api"

	"github.com/google/btree"
	"google.golang.org/protobuf/proto"
)

// inode is one file, directory or symlink in the replicated namespace.
type inode struct {
	attr   attrs // ino, mode, times, size...; layout lives here too
	xattrs map[string][]byte
	*dir   // directories only

	// regular files
	chunks map[uint64]*chunk // index -> chunk
	opens  uint32            // open records over all sessions
}

// dirEntries is a directory's entries; nil for other inodes.
func (n *inode) dirEntries() map[string]*dirent {
	if n.dir == nil {
		return nil
	}
	return n.entries
}

// dir is what only a directory has.
type dir struct {
	parent     uint64
	entries    map[string]*dirent
	order      *btree.BTreeG[*dirent] // by cookie: stable readdir order
	nextCookie uint64
}

// attrs is an inode's attributes as the FSM keeps them: api.Attr's
// fields, held inside the inode without a protobuf message's
// bookkeeping. With the directory fields behind a pointer, this halves
// an inode's memory (see bench/nsbench).
type attrs struct {
	Ino, Size, Generation, Blocks     uint64
	AtimeNs, MtimeNs, CtimeNs         int64
	Mode, Nlink, Uid, Gid, Rdev, Acls uint32
	Layout                            *api.Layout // shared: see internLayout
	Symlink                           string
}

func (a *attrs) GetLayout() *api.Layout { return a.Layout }

// proto returns a copy to hand out of the FSM lock.
func (a *attrs) proto() *api.Attr {
	p := &api.Attr{Ino: a.Ino, Size: a.Size, Generation: a.Generation, Blocks: a.Blocks,
		AtimeNs: a.AtimeNs, MtimeNs: a.MtimeNs, CtimeNs: a.CtimeNs,
		Mode: a.Mode, Nlink: a.Nlink, Uid: a.Uid, Gid: a.Gid, Rdev: a.Rdev, Acls: a.Acls,
		Symlink: a.Symlink}
	if a.Layout != nil {
		p.Layout = proto.Clone(a.Layout).(*api.Layout)
	}
	return p
}

// attrsOf is proto's inverse, for snapshots.
func attrsOf(p *api.Attr) attrs {
	return attrs{Ino: p.Ino, Size: p.Size, Generation: p.Generation, Blocks: p.Blocks,
		AtimeNs: p.AtimeNs, MtimeNs: p.MtimeNs, CtimeNs: p.CtimeNs,
		Mode: p.Mode, Nlink: p.Nlink, Uid: p.Uid, Gid: p.Gid, Rdev: p.Rdev, Acls: p.Acls,
		Layout: p.Layout, Symlink: p.Symlink}
}

// dirent is one name in a directory. Cookies only grow within a directory,
// so a listing resumed after a cookie never repeats or skips survivors.
type dirent struct {
	name   string
	ino    uint64
	cookie uint64
}

// chunk is one chunk of a file, as the master knows it.
type chunk struct {
	id          uint64
	version     uint64
	index       uint64
	ino         uint64
	replicas    []string // chunkserver ids; for EC, shard i on replicas[i]
	primary     string
	leaseExpiry int64
}

type session struct {
	id        uint64
	client    string
	ttl       int64
	acked     uint64
	responses map[uint64]*api.MutateResponse
	opens     map[uint64]uint32 // ino -> count
}

type serverInfo struct {
	id, addr, zone string
	// draining: the operator is retiring the server (dfsctl chunkservers
	// drain); it takes no new chunks and the repair loop moves its copies
	// away. drainTotal is how many chunks it had when the drain began.
	draining   bool
	drainTotal uint64
}

// firstCookie leaves room for "." and ".." in listings built on cookies.
const firstCookie = 3

func direntLess(a, b *dirent) bool { return a.cookie < b.cookie }

func isDir(a *attrs) bool  { return a.Mode&syscall.S_IFMT == syscall.S_IFDIR }
func isReg(a *attrs) bool  { return a.Mode&syscall.S_IFMT == syscall.S_IFREG }
func isLink(a *attrs) bool { return a.Mode&syscall.S_IFMT == syscall.S_IFLNK }

func newDir(a attrs, parent uint64) *inode {
	return &inode{attr: a, dir: &dir{
		parent:     parent,
		entries:    map[string]*dirent{},
		order:      btree.NewG(16, direntLess),
		nextCookie: firstCookie,
	}}
}

func (n *inode) addEntry(name string, ino uint64) {
	d := &dirent{name: name, ino: ino, cookie: n.nextCookie}
	n.nextCookie++
	n.entries[name] = d
	n.order.ReplaceOrInsert(d)
}

func (n *inode) removeEntry(name string) {
	if d, ok := n.entries[name]; ok {
		delete(n.entries, name)
		n.order.Delete(d)
	}
}

// layoutKey identifies a layout by value.
type layoutKey struct {
	kind                   api.Layout_Kind
	replicas, data, parity uint32
	chunkSize              uint64
}

// internLayout returns the FSM's one shared copy of a layout equal to l.
// Inodes share layouts (they are replaced, never changed in place), so a
// namespace of a million files holds a handful of them.
func (f *FSM) internLayout(l *api.Layout) *api.Layout {
	k := layoutKey{l.Kind, l.Replicas, l.DataShards, l.ParityShards, l.ChunkSize}
	if s, ok := f.layouts[k]; ok {
		return s
	}
	if f.layouts == nil {
		f.layouts = map[layoutKey]*api.Layout{}
	}
	f.layouts[k] = l
	return l
}

// validName checks one path component.
func validName(name string) api.Errno {
	switch {
	case name == "" || name == "." || name == "..":
		return api.Errno_EINVAL
	case len(name) > api.MaxNameLen:
		return api.Errno_ENAMETOOLONG
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' || name[i] == 0 {
			return api.Errno_EINVAL
		}
	}
	return api.Errno_OK
}

// blocksFor is the 512-byte block count reported for a file: what it holds
// in chunks, capped by its size.
func (n *inode) blocks(chunkSize uint64) uint64 {
	var b uint64
	for idx := range n.chunks {
		start := idx * chunkSize
		if start >= n.attr.Size {
			continue
		}
		end := min(start+chunkSize, n.attr.Size)
		b += end - start
	}
	return (b + 511) / 512
}
