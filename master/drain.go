package master

import (
	"context"
	"fmt"
	"sort"
	"time"

	"dfs/api"
	"dfs/lease"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Draining a chunkserver (dfsctl chunkservers drain): the flag lives in
// the FSM, so a new leader or a restarted master carries the drain on.
// Placement skips draining servers; the repair loop copies each of their
// replicas and shards to another server and only then drops the draining
// copy, in one ReplicaChange, so a chunk never has fewer copies than its
// layout asks for (drainJob, repairer.move).

// drainServer applies a DrainServerCmd.
func (f *FSM) drainServer(op *api.DrainServerCmd) *api.MutateResponse {
	s := f.servers[op.Id]
	if s == nil {
		return errResp(api.Errno_ENOENT, fmt.Sprintf("no chunkserver %q is registered", op.Id))
	}
	switch {
	case op.Undrain:
		s.draining, s.drainTotal = false, 0
	case !s.draining:
		s.draining, s.drainTotal = true, uint64(f.referencedBy()[op.Id])
	}
	return &api.MutateResponse{}
}

// referencedBy counts, for each server, the chunks whose replica or
// shard set names it. Called with f.mu held.
func (f *FSM) referencedBy() map[string]int {
	out := map[string]int{}
	for _, ch := range f.chunks {
		if f.inodes[ch.ino] == nil {
			continue
		}
		for _, s := range ch.replicas {
			if s != "" {
				out[s]++
			}
		}
	}
	return out
}

// references returns how many chunks each server is in the set of.
func (f *FSM) references() map[string]int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.referencedBy()
}

// drainingServers returns the servers being drained.
func (f *FSM) drainingServers() map[string]bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := map[string]bool{}
	for id, s := range f.servers {
		if s.draining {
			out[id] = true
		}
	}
	return out
}

// forceUnlock applies a ForceUnlockCmd: the matching owners' locks on
// the file are released as their closes would, and waiters behind them
// are granted.
func (f *FSM) forceUnlock(op *api.ForceUnlockCmd, now int64) *api.MutateResponse {
	var released uint32
	for _, kind := range []lease.Kind{lease.Flock, lease.Posix} {
		var owners []lease.Owner
		for _, l := range f.locks.Held(op.Ino, kind) {
			if (op.Session != 0 && l.Owner.Session != op.Session) || (op.HasOwner && l.Owner.ID != op.Owner) {
				continue
			}
			released++
			owners = append(owners, l.Owner)
		}
		sort.Slice(owners, func(i, j int) bool {
			if owners[i].Session != owners[j].Session {
				return owners[i].Session < owners[j].Session
			}
			return owners[i].ID < owners[j].ID
		})
		for i, o := range owners {
			if i > 0 && owners[i-1] == o {
				continue
			}
			f.answerGrants(f.locks.ReleaseOwner(op.Ino, kind, o, now))
		}
	}
	f.wakeLockWaits()
	return &api.MutateResponse{Released: released}
}

// ---------------------------------------------------------------------
// The leader's side.

// serverStates lists every registered chunkserver with its drain state.
func (v *service) serverStates() []*api.ChunkServerState {
	registered := v.fsm.serverList()
	refs := v.fsm.references()
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []*api.ChunkServerState
	for _, s := range registered {
		st := &api.ChunkServerState{Info: &api.ChunkServerInfo{Id: s.id, Addr: s.addr, Zone: s.zone, Draining: s.draining},
			Draining: s.draining, Referenced: uint64(refs[s.id]), DrainTotal: s.drainTotal, State: "dead"}
		if ss := v.servers[s.id]; ss != nil {
			st.Info.Capacity, st.Info.Used, st.Info.Free, st.Info.Chunks = ss.capacity, ss.used, ss.free, ss.chunks
			st.Info.LastSeenNs = ss.lastSeen.UnixNano()
			st.Info.Alive = v.aliveLocked(s.id, now)
		}
		switch {
		case s.draining && st.Referenced == 0:
			st.State = "drained"
		case s.draining:
			st.State = "draining"
		case st.Info.Alive:
			st.State = "live"
		}
		out = append(out, st)
	}
	return out
}

// ChunkServers lists the chunkservers with their drain state.
func (v *service) ChunkServers(ctx context.Context, req *api.ChunkServersRequest) (*api.ChunkServersResponse, error) {
	if err := v.checkLeader(); err != nil {
		return nil, err
	}
	if err := v.linearize(ctx); err != nil {
		return nil, err
	}
	return &api.ChunkServersResponse{Servers: v.serverStates()}, nil
}

// DrainServer starts or ends a drain. A drain is refused when the other
// live, non-draining chunkservers are too few for the layout of some
// chunk the server holds: its copies would have nowhere to go.
func (v *service) DrainServer(ctx context.Context, req *api.DrainServerRequest) (*api.ChunkServersResponse, error) {
	if err := v.checkLeader(); err != nil {
		return nil, err
	}
	if req.Id == "" {
		return nil, status.Error(codes.InvalidArgument, "drain: no chunkserver id")
	}
	info, known := v.fsm.server(req.Id)
	if !known {
		return nil, status.Errorf(codes.NotFound, "no chunkserver %q is registered", req.Id)
	}
	if !req.Undrain && !info.draining {
		if err := v.canDrain(req.Id); err != nil {
			return nil, err
		}
	}
	resp, err := v.propose(ctx, &api.Command{NowNs: time.Now().UnixNano(),
		DrainServer: &api.DrainServerCmd{Id: req.Id, Undrain: req.Undrain}})
	if err != nil {
		return nil, err
	}
	if resp.Errno != api.Errno_OK {
		return nil, status.Error(codes.FailedPrecondition, resp.Message)
	}
	v.srv.log.Info("chunkserver drain changed", "id", req.Id, "draining", !req.Undrain)
	return &api.ChunkServersResponse{Servers: v.serverStates()}, nil
}

// canDrain checks that the chunkservers left after draining id (live,
// not draining) can hold every chunk id is in the set of.
func (v *service) canDrain(id string) error {
	// Read the FSM before taking v.mu (Apply holds the FSM's lock when it
	// calls into the service).
	registered := v.fsm.serverList()
	now := time.Now()
	others := 0
	v.mu.Lock()
	for _, s := range registered {
		if s.id != id && !s.draining && v.aliveLocked(s.id, now) {
			others++
		}
	}
	v.mu.Unlock()
	for _, c := range v.fsm.fileChunks() {
		if contains(c.replicas, id) && c.want > others {
			return status.Errorf(codes.FailedPrecondition,
				"cannot drain %s: chunk %d (inode %d) needs %d chunkservers for its layout and only %d others are live and not draining; add a chunkserver first",
				id, c.id, c.ino, c.want, others)
		}
	}
	return nil
}
