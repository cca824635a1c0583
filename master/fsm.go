package master

import (
	"fmt"
	"io"
	"sync"
	"syscall"

	"dfs/api"
	"dfs/lease"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// FSM is the replicated master state: namespace, chunk maps, sessions,
// chunkserver and master registries. Apply is deterministic: time and
// placement arrive inside the commands.
type FSM struct {
	mu sync.RWMutex

	inodes      map[uint64]*inode
	chunks      map[uint64]*chunk // id -> chunk
	sessions    map[uint64]*session
	servers     map[string]*serverInfo
	masters     map[string]string // master id -> client address
	nextIno     uint64
	nextChunk   uint64
	nextSession uint64
	logical     uint64 // sum of file sizes
	applied     uint64 // last applied Raft index
	locks       *lease.Table
	// orphans are unlinked regular files no open recorded here holds;
	// they live until the leader reclaims them (holds.go).
	orphans map[uint64]bool
	// keys are the chunk token keys, oldest first: the previous and the
	// current one (chunkkeys.go). Replaced whole, never changed in place.
	keys    []*api.ChunkKey
	layouts map[layoutKey]*api.Layout // internLayout

	// lockChanged is closed (and replaced) whenever a lock wait is
	// answered, waking the leader's WaitLock polls; guarded by lockMu.
	lockMu      sync.Mutex
	lockChanged chan struct{}

	// onChange, when set, is told about applied session changes (leader
	// soft state follows them). Called with mu held.
	onSession func(id uint64, ttl int64, opened bool)
	// onOrphan, when set, is told that a file became an orphan. Called
	// with mu held.
	onOrphan func()
}

var _ raft.FSM = (*FSM)(nil)

// DefaultLayout is the root directory's layout in a new filesystem.
var DefaultLayout = &api.Layout{Kind: api.Layout_REPLICATED, Replicas: 3, ChunkSize: api.DefaultChunkSize}

// NewFSM returns the state of a new filesystem: an empty root directory.
func NewFSM() *FSM {
	f := &FSM{}
	f.reset()
	root := attrs{
		Ino: api.RootIno, Mode: syscall.S_IFDIR | 0o755, Nlink: 2, Generation: 1,
		Layout: f.internLayout(proto.Clone(DefaultLayout).(*api.Layout)),
	}
	f.inodes[api.RootIno] = newDir(root, api.RootIno)
	return f
}

func (f *FSM) reset() {
	f.inodes = map[uint64]*inode{}
	f.chunks = map[uint64]*chunk{}
	f.sessions = map[uint64]*session{}
	f.servers = map[string]*serverInfo{}
	f.masters = map[string]string{}
	f.nextIno = api.RootIno + 1
	f.nextChunk = 1
	f.nextSession = 1
	f.logical = 0
	f.locks = lease.NewTable(0)
	f.orphans = map[uint64]bool{}
	f.keys = nil
}

// Apply applies one Raft entry, a Batch of commands, and returns a
// []*api.MutateResponse with one answer per command.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	var b api.Batch
	if err := proto.Unmarshal(l.Data, &b); err != nil {
		// Every replica would fail the same way; carrying on would let
		// replicas drift, so stop.
		panic(fmt.Sprintf("master: undecodable log entry %d: %v", l.Index, err))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*api.MutateResponse, len(b.Commands))
	for i, c := range b.Commands {
		out[i] = f.applyCommand(c)
	}
	f.applied = l.Index
	return out
}

// applyCommand runs one command with request de-duplication.
func (f *FSM) applyCommand(c *api.Command) *api.MutateResponse {
	switch {
	case c.RegisterServer != nil:
		r := c.RegisterServer
		info := &serverInfo{id: r.Id, addr: r.Addr, zone: r.Zone}
		if old := f.servers[r.Id]; old != nil {
			// A new address or zone does not end a drain.
			info.draining, info.drainTotal = old.draining, old.drainTotal
		}
		f.servers[r.Id] = info
		return &api.MutateResponse{}
	case c.ExpireSession != nil:
		var released uint32
		if f.sessions[c.ExpireSession.Session] != nil {
			released = 1
		}
		f.closeSession(c.ExpireSession.Session, c.NowNs)
		return &api.MutateResponse{Released: released}
	case c.DrainServer != nil:
		return f.drainServer(c.DrainServer)
	case c.ForceUnlock != nil:
		return f.forceUnlock(c.ForceUnlock, c.NowNs)
	case c.DeleteChunks != nil:
		return &api.MutateResponse{}
	case c.NewChunkKey != nil:
		return f.newChunkKey(c)
	case len(c.Reclaim) > 0:
		for _, ino := range c.Reclaim {
			f.reclaim(ino)
		}
		return &api.MutateResponse{}
	}
	if c.Op == nil || c.Op.Op == nil {
		return errResp(api.Errno_EINVAL, "empty op")
	}
	if os, ok := c.Op.Op.(*api.Op_OpenSession); ok {
		return f.openSession(c, os.OpenSession)
	}
	if rm, ok := c.Op.Op.(*api.Op_RegisterMaster); ok {
		if rm.RegisterMaster.Addr == "" {
			delete(f.masters, rm.RegisterMaster.Id) // removed from the group
		} else {
			f.masters[rm.RegisterMaster.Id] = rm.RegisterMaster.Addr
		}
		return &api.MutateResponse{}
	}
	var s *session
	if c.Session != 0 {
		s = f.sessions[c.Session]
		if s == nil {
			return errResp(api.Errno_ESTALE, fmt.Sprintf("session %d expired", c.Session))
		}
		if c.Seq != 0 {
			if r, ok := s.responses[c.Seq]; ok {
				return r
			}
			if c.Seq < s.acked {
				// The client said it had this answer already.
				return errResp(api.Errno_EINVAL, fmt.Sprintf("request %d of session %d already answered", c.Seq, c.Session))
			}
		}
		if c.Acked > s.acked {
			for seq := range s.responses {
				if seq < c.Acked {
					delete(s.responses, seq)
				}
			}
			s.acked = c.Acked
		}
	}
	if s != nil {
		for _, ino := range c.Releases {
			f.release(s, ino)
		}
	}
	r := f.applyOp(c, s)
	if s != nil && c.Seq != 0 {
		if _, closed := c.Op.Op.(*api.Op_CloseSession); !closed {
			s.responses[c.Seq] = r
		}
	}
	return r
}

func errResp(e api.Errno, msg string) *api.MutateResponse {
	return &api.MutateResponse{Errno: e, Message: msg}
}

func (f *FSM) openSession(c *api.Command, op *api.OpenSessionOp) *api.MutateResponse {
	id := f.nextSession
	f.nextSession++
	ttl := op.TtlNs
	if ttl <= 0 {
		ttl = DefaultSessionTTL.Nanoseconds()
	}
	f.sessions[id] = &session{
		id: id, client: op.Client, ttl: ttl,
		responses: map[uint64]*api.MutateResponse{}, opens: map[uint64]uint32{},
	}
	if f.onSession != nil {
		f.onSession(id, ttl, true)
	}
	return &api.MutateResponse{Session: id}
}

// closeSession drops a session and releases what it held open.
func (f *FSM) closeSession(id uint64, now int64) {
	s := f.sessions[id]
	if s == nil {
		return
	}
	f.releaseSessionLocks(id, now)
	for ino, n := range s.opens {
		if in := f.inodes[ino]; in != nil {
			in.opens -= min(in.opens, n)
			f.maybeFree(in)
		}
	}
	delete(f.sessions, id)
	if f.onSession != nil {
		f.onSession(id, 0, false)
	}
}

// applyOp dispatches a client op to its handler.
func (f *FSM) applyOp(c *api.Command, s *session) *api.MutateResponse {
	if r := f.fenced(c, s); r != nil {
		return r
	}
	switch op := c.Op.Op.(type) {
	case *api.Op_Create:
		return f.create(c, s, op.Create)
	case *api.Op_Mkdir:
		return f.mkdir(c, op.Mkdir)
	case *api.Op_Symlink:
		return f.symlink(c, op.Symlink)
	case *api.Op_Link:
		return f.link(c, op.Link)
	case *api.Op_Unlink:
		return f.unlink(c, op.Unlink)
	case *api.Op_Rmdir:
		return f.rmdir(c, op.Rmdir)
	case *api.Op_Rename:
		return f.rename(c, op.Rename)
	case *api.Op_SetAttr:
		return f.setAttr(c, op.SetAttr)
	case *api.Op_SetXattr:
		return f.setXattr(c, op.SetXattr)
	case *api.Op_RemoveXattr:
		return f.removeXattr(c, op.RemoveXattr)
	case *api.Op_AllocChunk:
		return f.allocChunk(c, op.AllocChunk)
	case *api.Op_CommitWrite:
		return f.commitWrite(c, op.CommitWrite)
	case *api.Op_ReportFailure:
		return f.reportFailure(c, op.ReportFailure)
	case *api.Op_ReplicaChange:
		return f.replicaChange(c, op.ReplicaChange)
	case *api.Op_Lock:
		return f.lock(c, s, op.Lock)
	case *api.Op_CancelLock:
		return f.cancelLock(c, s, op.CancelLock)
	case *api.Op_Open:
		return f.open(s, op.Open.Ino)
	case *api.Op_Release:
		return f.release(s, op.Release.Ino)
	case *api.Op_Access:
		return f.access(c, op.Access)
	case *api.Op_CloseSession:
		if s != nil {
			f.closeSession(s.id, c.NowNs)
		}
		return &api.MutateResponse{}
	}
	return errResp(api.Errno_ENOSYS, fmt.Sprintf("unknown op %T", c.Op.Op))
}

// Snapshot captures the state for Persist; the copy is cheap compared
// with encoding, which Persist does outside the lock.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.snapshot(), nil
}

// Restore replaces all state with a snapshot's.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	nf, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inodes, f.chunks, f.sessions = nf.inodes, nf.chunks, nf.sessions
	f.servers, f.masters = nf.servers, nf.masters
	f.nextIno, f.nextChunk, f.nextSession = nf.nextIno, nf.nextChunk, nf.nextSession
	f.logical = nf.logical
	f.locks = nf.locks
	f.orphans = nf.orphans
	f.keys = nf.keys
	f.layouts = nf.layouts
	f.wakeLockWaits()
	return nil
}
