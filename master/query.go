package master

import (
	"sort"

	"dfs/api"
)

// Read-only queries on the FSM. Callers make them linearizable by
// confirming leadership first (Service.linearize).

// attrOf renders an inode's attributes with derived fields filled in.
func (f *FSM) attrOf(n *inode) *api.Attr {
	a := n.attr.proto()
	if isReg(&n.attr) {
		a.Blocks = n.blocks(a.GetLayout().GetChunkSize())
	}
	return a
}

// Lookup finds name in directory parent.
func (f *FSM) Lookup(parent uint64, name string) (*api.Attr, api.Errno) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, e := f.dir(parent)
	if e != api.Errno_OK {
		return nil, e
	}
	if len(name) > api.MaxNameLen {
		return nil, api.Errno_ENAMETOOLONG
	}
	switch name {
	case ".":
		return f.attrOf(p), api.Errno_OK
	case "..":
		return f.attrOf(f.inodes[p.parent]), api.Errno_OK
	}
	d, found := p.entries[name]
	if !found {
		return nil, api.Errno_ENOENT
	}
	return f.attrOf(f.inodes[d.ino]), api.Errno_OK
}

// GetAttr returns an inode's attributes.
func (f *FSM) GetAttr(ino uint64) (*api.Attr, api.Errno) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.inodes[ino]
	if n == nil {
		return nil, api.Errno_ENOENT
	}
	return f.attrOf(n), api.Errno_OK
}

// layoutOf returns inode ino's layout (nil if none). Layouts are
// replaced, never changed in place, so the caller may keep it.
func (f *FSM) layoutOf(ino uint64) *api.Layout {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if n := f.inodes[ino]; n != nil {
		return n.attr.Layout
	}
	return nil
}

// ReadDir lists up to limit entries after cookie.
func (f *FSM) ReadDir(ino, cookie uint64, limit int, plus bool) *api.ReadDirResponse {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d, e := f.dir(ino)
	if e != api.Errno_OK {
		return &api.ReadDirResponse{Errno: e}
	}
	out := &api.ReadDirResponse{Eof: true}
	d.order.AscendGreaterOrEqual(&dirent{cookie: cookie + 1}, func(de *dirent) bool {
		if len(out.Entries) >= limit {
			out.Eof = false
			return false
		}
		n := f.inodes[de.ino]
		out.Entries = append(out.Entries, &api.DirEntry{Name: de.name, Ino: de.ino, Mode: n.attr.Mode, Cookie: de.cookie})
		if plus {
			out.Attrs = append(out.Attrs, f.attrOf(n))
		}
		return true
	})
	return out
}

// GetXattr returns one extended attribute.
func (f *FSM) GetXattr(ino uint64, name string) ([]byte, api.Errno) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.inodes[ino]
	if n == nil {
		return nil, api.Errno_ENOENT
	}
	if name == LayoutXattr {
		if l := n.attr.Layout; l != nil {
			return []byte(api.FormatLayout(l)), api.Errno_OK
		}
		return nil, api.Errno_ENODATA
	}
	v, found := n.xattrs[name]
	if !found {
		return nil, api.Errno_ENODATA
	}
	return append([]byte{}, v...), api.Errno_OK
}

// ListXattr returns an inode's extended attribute names, sorted.
func (f *FSM) ListXattr(ino uint64) ([]string, api.Errno) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.inodes[ino]
	if n == nil {
		return nil, api.Errno_ENOENT
	}
	names := make([]string, 0, len(n.xattrs))
	for k := range n.xattrs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names, api.Errno_OK
}

// GetChunks returns the chunks of a file in [first, first+count).
func (f *FSM) GetChunks(ino, first uint64, count uint32) *api.GetChunksResponse {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.inodes[ino]
	if n == nil {
		return &api.GetChunksResponse{Errno: api.Errno_ENOENT}
	}
	out := &api.GetChunksResponse{Attr: f.attrOf(n)}
	if !isReg(&n.attr) {
		out.Errno = api.Errno_EINVAL
		return out
	}
	if uint64(count) < uint64(len(n.chunks)) {
		for i := first; i < first+uint64(count); i++ {
			if ch := n.chunks[i]; ch != nil {
				out.Chunks = append(out.Chunks, f.chunkProto(ch, n.attr.Layout))
			}
		}
		return out
	}
	for idx, ch := range n.chunks {
		if idx >= first && idx < first+uint64(count) {
			out.Chunks = append(out.Chunks, f.chunkProto(ch, n.attr.Layout))
		}
	}
	sort.Slice(out.Chunks, func(i, j int) bool { return out.Chunks[i].Index < out.Chunks[j].Index })
	return out
}

// chunkView is what the leader needs to (re)grant a lease.
type chunkView struct {
	exists      bool
	chunk       *api.Chunk
	leaseExpiry int64
	layout      *api.Layout
	isFile      bool
}

func (f *FSM) chunkAt(ino, index uint64) chunkView {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.inodes[ino]
	if n == nil || !isReg(&n.attr) {
		return chunkView{}
	}
	v := chunkView{isFile: true, layout: n.attr.Layout}
	if ch := n.chunks[index]; ch != nil {
		v.exists = true
		v.chunk = f.chunkProto(ch, n.attr.Layout)
		v.leaseExpiry = ch.leaseExpiry
	}
	return v
}

// chunkVersion returns the master's version of a chunk, 0 if unknown.
func (f *FSM) chunkVersions(ids []uint64) (versions []uint64, next uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	versions = make([]uint64, len(ids))
	for i, id := range ids {
		if ch := f.chunks[id]; ch != nil {
			versions[i] = ch.version
		}
	}
	return versions, f.nextChunk
}

// counts returns sizes for status and statfs.
func (f *FSM) counts() (inodes, chunks, sessions, logical, applied uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return uint64(len(f.inodes)), uint64(len(f.chunks)), uint64(len(f.sessions)), f.logical, f.applied
}

func (f *FSM) server(id string) (serverInfo, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s, found := f.servers[id]
	if !found {
		return serverInfo{}, false
	}
	return *s, true
}

func (f *FSM) serverList() []serverInfo {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]serverInfo, 0, len(f.servers))
	for _, s := range f.servers {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (f *FSM) masterAddrs() map[string]string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string]string, len(f.masters))
	for k, v := range f.masters {
		out[k] = v
	}
	return out
}

func (f *FSM) sessionTTLs() map[uint64]int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[uint64]int64, len(f.sessions))
	for id, s := range f.sessions {
		out[id] = s.ttl
	}
	return out
}
