// Package clienttest runs an in-process fake dfs cluster on loopback for
// tests of the client library and the mount: masters that share one
// in-memory namespace (only the chosen leader answers, the others point at
// it), and chunkservers that keep chunks in memory. It follows the wire
// contract the real services promise but checks no permissions and keeps
// nothing on disk.
package clienttest

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"dfs/api"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Cluster is a running fake cluster.
type Cluster struct {
	Masters      []string // master client addresses
	ChunkServers []string // chunkserver addresses

	mu        sync.Mutex
	leader    int // index into Masters; -1: election in progress
	dropReply int // mutations to apply but answer Unavailable
	ns        *namespace
	servers   map[string]*chunkServer // by id
	grpcs     []*grpc.Server
	applied   int
	calls     map[string]int
}

// Start runs masters fake masters and servers fake chunkservers on
// 127.0.0.1. Master 0 is the leader.
func Start(masters, servers int) (*Cluster, error) {
	c := &Cluster{ns: newNamespace(), servers: map[string]*chunkServer{}, calls: map[string]int{}}
	for i := 0; i < servers; i++ {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			c.Close()
			return nil, err
		}
		cs := &chunkServer{c: c, id: fmt.Sprintf("cs%d", i), addr: lis.Addr().String(), chunks: map[uint64]*chunkData{}}
		c.servers[cs.id] = cs
		c.ChunkServers = append(c.ChunkServers, cs.addr)
		g := grpc.NewServer(grpc.MaxRecvMsgSize(api.MaxMessage), grpc.MaxSendMsgSize(api.MaxMessage))
		api.RegisterChunkServerServer(g, cs)
		c.grpcs = append(c.grpcs, g)
		go g.Serve(lis)
	}
	for i := 0; i < masters; i++ {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Masters = append(c.Masters, lis.Addr().String())
		g := grpc.NewServer(grpc.MaxRecvMsgSize(api.MaxMessage), grpc.MaxSendMsgSize(api.MaxMessage))
		api.RegisterMasterServer(g, &master{c: c, index: i})
		c.grpcs = append(c.grpcs, g)
		go g.Serve(lis)
	}
	return c, nil
}

// Close stops every server.
func (c *Cluster) Close() {
	for _, g := range c.grpcs {
		g.Stop()
	}
}

// SetLeader makes master i the leader; -1 means no leader (every master
// answers NotLeader with an empty leader address).
func (c *Cluster) SetLeader(i int) {
	c.mu.Lock()
	c.leader = i
	c.mu.Unlock()
}

// DropReplies makes the next n mutations take effect but answer
// Unavailable, as a leader that dies after committing does.
func (c *Cluster) DropReplies(n int) {
	c.mu.Lock()
	c.dropReply = n
	c.mu.Unlock()
}

// Applied counts mutations that took effect (retries answered from the
// request table do not count).
func (c *Cluster) Applied() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied
}

// Calls counts calls by method name ("Mutate", "GetChunks", "Write",
// "Read", "Sync", ...), across all servers.
func (c *Cluster) Calls(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[method]
}

// ChunkData returns a copy of what chunkserver id holds for chunk, nil if
// it holds nothing.
func (c *Cluster) ChunkData(server string, chunk uint64) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs := c.servers[server]
	if cs == nil || cs.chunks[chunk] == nil {
		return nil
	}
	return append([]byte(nil), cs.chunks[chunk].data...)
}

// ExpireLeases drops every chunk lease, so the next write through an old
// lease answers EAGAIN.
func (c *Cluster) ExpireLeases() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cs := range c.servers {
		for _, d := range cs.chunks {
			d.primary = ""
		}
	}
	for _, in := range c.ns.inodes {
		for _, ch := range in.chunks {
			ch.Primary = ""
		}
	}
}

type master struct {
	api.UnimplementedMasterServer
	c     *Cluster
	index int
}

// serve answers NotLeader unless this master leads; it holds c.mu on
// success and the caller must unlock.
func (m *master) serve(method string) error {
	m.c.mu.Lock()
	if m.c.leader != m.index {
		leader := ""
		if m.c.leader >= 0 {
			leader = m.c.Masters[m.c.leader]
		}
		masters := m.c.Masters
		m.c.mu.Unlock()
		return api.NotLeaderError(leader, masters)
	}
	m.c.calls[method]++
	return nil
}

func (m *master) Mutate(ctx context.Context, req *api.MutateRequest) (*api.MutateResponse, error) {
	if err := m.serve("Mutate"); err != nil {
		return nil, err
	}
	defer m.c.mu.Unlock()
	ns := m.c.ns
	var resp *api.MutateResponse
	if req.Session == 0 {
		if req.Op.GetOpenSession() == nil {
			return &api.MutateResponse{Errno: api.Errno_EINVAL, Message: "no session"}, nil
		}
		ns.nextSession++
		ns.sessions[ns.nextSession] = &session{answers: map[uint64]*api.MutateResponse{}, held: map[uint64]bool{}, served: map[uint64]bool{}}
		m.c.applied++
		resp = &api.MutateResponse{Session: ns.nextSession}
	} else {
		s := ns.sessions[req.Session]
		if s == nil {
			return &api.MutateResponse{Errno: api.Errno_EINVAL, Message: "unknown session"}, nil
		}
		for seq := range s.answers {
			if seq < req.Acked {
				delete(s.answers, seq)
			}
		}
		if a, ok := s.answers[req.Seq]; ok {
			resp = a
		} else {
			resp = m.c.apply(req)
			m.c.applied++
			s.answers[req.Seq] = resp
		}
	}
	if m.c.dropReply > 0 {
		m.c.dropReply--
		return nil, status.Error(codes.Unavailable, "reply lost")
	}
	return proto.Clone(resp).(*api.MutateResponse), nil
}

func (m *master) Lookup(ctx context.Context, req *api.LookupRequest) (*api.AttrResponse, error) {
	if err := m.serve("Lookup"); err != nil {
		return nil, err
	}
	defer m.c.mu.Unlock()
	d, e := m.c.ns.dir(req.Parent)
	if e != api.Errno_OK {
		return &api.AttrResponse{Errno: e}, nil
	}
	ent, ok := d.entries[req.Name]
	if !ok {
		return &api.AttrResponse{Errno: api.Errno_ENOENT}, nil
	}
	return &api.AttrResponse{Attr: m.c.ns.attr(ent.ino)}, nil
}

func (m *master) GetAttr(ctx context.Context, req *api.GetAttrRequest) (*api.AttrResponse, error) {
	if err := m.serve("GetAttr"); err != nil {
		return nil, err
	}
	defer m.c.mu.Unlock()
	if m.c.ns.inodes[req.Ino] == nil {
		return &api.AttrResponse{Errno: api.Errno_ENOENT}, nil
	}
	return &api.AttrResponse{Attr: m.c.ns.attr(req.Ino)}, nil
}

func (m *master) ReadDir(ctx context.Context, req *api.ReadDirRequest) (*api.ReadDirResponse, error) {
	if err := m.serve("ReadDir"); err != nil {
		return nil, err
	}
	defer m.c.mu.Unlock()
	d, e := m.c.ns.dir(req.Ino)
	if e != api.Errno_OK {
		return &api.ReadDirResponse{Errno: e}, nil
	}
	var ents []*api.DirEntry
	for name, ent := range d.entries {
		if ent.cookie > req.Cookie {
			ents = append(ents, &api.DirEntry{Name: name, Ino: ent.ino, Mode: m.c.ns.inodes[ent.ino].attr.Mode &^ 07777, Cookie: ent.cookie})
		}
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Cookie < ents[j].Cookie })
	limit := int(req.Limit)
	if limit == 0 {
		limit = 50 // small, so tests exercise continuation
	}
	resp := &api.ReadDirResponse{Eof: len(ents) <= limit}
	if len(ents) > limit {
		ents = ents[:limit]
	}
	resp.Entries = ents
	if req.Plus {
		for _, e := range ents {
			resp.Attrs = append(resp.Attrs, m.c.ns.attr(e.Ino))
		}
	}
	return resp, nil
}

func (m *master) GetXattr(ctx context.Context, req *api.GetXattrRequest) (*api.GetXattrResponse, error) {
	if err := m.serve("GetXattr"); err != nil {
		return nil, err
	}
	defer m.c.mu.Unlock()
	in := m.c.ns.inodes[req.Ino]
	if in == nil {
		return &api.GetXattrResponse{Errno: api.Errno_ENOENT}, nil
	}
	v, ok := in.xattrs[req.Name]
	if !ok {
		return &api.GetXattrResponse{Errno: api.Errno_ENODATA}, nil
	}
	return &api.GetXattrResponse{Value: append([]byte(nil), v...)}, nil
}

func (m *master) ListXattr(ctx context.Context, req *api.ListXattrRequest) (*api.ListXattrResponse, error) {
	if err := m.serve("ListXattr"); err != nil {
		return nil, err
	}
	defer m.c.mu.Unlock()
	in := m.c.ns.inodes[req.Ino]
	if in == nil {
		return &api.ListXattrResponse{Errno: api.Errno_ENOENT}, nil
	}
	resp := &api.ListXattrResponse{}
	for n := range in.xattrs {
		resp.Names = append(resp.Names, n)
	}
	sort.Strings(resp.Names)
	return resp, nil
}

func (m *master) GetChunks(ctx context.Context, req *api.GetChunksRequest) (*api.GetChunksResponse, error) {
	if err := m.serve("GetChunks"); err != nil {
		return nil, err
	}
	defer m.c.mu.Unlock()
	in := m.c.ns.inodes[req.Ino]
	if in == nil {
		return &api.GetChunksResponse{Errno: api.Errno_ENOENT}, nil
	}
	if s := m.c.ns.sessions[req.Session]; req.Open && s != nil {
		s.served[req.Ino] = true
	}
	resp := &api.GetChunksResponse{Attr: m.c.ns.attr(req.Ino)}
	for i, ch := range in.chunks {
		if i >= req.FirstIndex && i-req.FirstIndex < uint64(req.Count) {
			resp.Chunks = append(resp.Chunks, proto.Clone(ch).(*api.Chunk))
		}
	}
	sort.Slice(resp.Chunks, func(i, j int) bool { return resp.Chunks[i].Index < resp.Chunks[j].Index })
	return resp, nil
}

func (m *master) StatFS(ctx context.Context, req *api.StatFSRequest) (*api.StatFSResponse, error) {
	if err := m.serve("StatFS"); err != nil {
		return nil, err
	}
	defer m.c.mu.Unlock()
	return &api.StatFSResponse{CapacityBytes: 1 << 40, UsedBytes: 1 << 30, FreeBytes: 1<<40 - 1<<30, Inodes: uint64(len(m.c.ns.inodes))}, nil
}

func (m *master) KeepAlive(ctx context.Context, req *api.KeepAliveRequest) (*api.KeepAliveResponse, error) {
	if err := m.serve("KeepAlive"); err != nil {
		return nil, err
	}
	defer m.c.mu.Unlock()
	s := m.c.ns.sessions[req.Session]
	if s == nil {
		return &api.KeepAliveResponse{Errno: api.Errno_ENOENT}, nil
	}
	// Opens served since the last report may be missing from this one
	// (the master tells them apart with tokens): keep them one more round.
	held := s.served
	for _, ino := range req.Held {
		held[ino] = true
	}
	s.held, s.served = held, map[uint64]bool{}
	for ino := range m.c.ns.inodes {
		m.c.ns.freeIfUnused(ino)
	}
	return &api.KeepAliveResponse{TtlNs: int64(10 * time.Second)}, nil
}

// ExpireSessions forgets every session, as a master does when their TTL
// passes without keepalives.
func (c *Cluster) ExpireSessions() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.ns.sessions)
}
