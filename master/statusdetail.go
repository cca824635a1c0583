package master

import (
	"context"
	"sort"
	"sync"
	"time"

	"dfs/api"
)

// statusListLimit bounds each list in a detailed status answer (sessions,
// locks, problem chunks); the counts beside them stay exact.
const statusListLimit = 1000

// peerStatusTimeout bounds one call to another master while building a
// detailed status: an unreachable master must not stall the page.
const peerStatusTimeout = time.Second

// SetAdminAddr records the address of this master's admin HTTP listener,
// which Status reports so that followers can link to the leader's page.
func (s *Server) SetAdminAddr(addr string) { s.adminAddr.Store(&addr) }

func (s *Server) adminAddress() string {
	if p := s.adminAddr.Load(); p != nil {
		return *p
	}
	return ""
}

// Status answers as the Status RPC does, in process.
func (s *Server) Status(ctx context.Context, req *api.StatusRequest) (*api.StatusResponse, error) {
	return s.svc.Status(ctx, req)
}

// addStatusDetail fills the fields of a Status answer that name this
// master and, with req.Detail, the lists behind the counts.
func (v *service) addStatusDetail(ctx context.Context, req *api.StatusRequest, out *api.StatusResponse) {
	out.SelfId, out.AdminAddr = v.cfg.ID, v.srv.adminAddress()
	if !req.Detail {
		return
	}
	leader := v.isReady()
	if leader {
		out.LeaderAdminAddr = out.AdminAddr
	}
	v.askPeers(ctx, out, leader)
	out.SessionList = v.sessionStatus(leader)
	out.LockList = v.lockStatus()
	if leader {
		out.ChunkHealth = v.chunkHealth(true)
	}
}

// askPeers asks every other master for its own view (its Raft state and
// applied index) and, on a follower, learns the leader's admin address.
func (v *service) askPeers(ctx context.Context, out *api.StatusResponse, leader bool) {
	var wg sync.WaitGroup
	var mu sync.Mutex // guards out.LeaderAdminAddr
	for _, m := range out.Masters {
		if m.Id == v.cfg.ID {
			m.Reachable, m.AppliedIndex = true, out.AppliedIndex
			continue
		}
		if m.Addr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := v.conn(m.Addr)
			if err != nil {
				return
			}
			cctx, cancel := context.WithTimeout(ctx, peerStatusTimeout)
			defer cancel()
			st, err := api.NewMasterClient(conn).Status(cctx, &api.StatusRequest{})
			if err != nil {
				return
			}
			m.Reachable, m.AppliedIndex = true, st.AppliedIndex
			for _, self := range st.Masters {
				if self.Id == m.Id {
					m.State = self.State
				}
			}
			if !leader && m.State == "Leader" {
				mu.Lock()
				out.LeaderAdminAddr = st.AdminAddr
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// sessionStatus lists sessions by id; the lease deadline is known only on
// the leader.
func (v *service) sessionStatus(leader bool) []*api.SessionStatus {
	f := v.fsm
	f.mu.RLock()
	held, _ := f.locks.All()
	perSession := map[uint64]uint32{}
	for _, l := range held {
		perSession[l.Owner.Session]++
	}
	out := make([]*api.SessionStatus, 0, min(len(f.sessions), statusListLimit))
	for id, s := range f.sessions {
		var opens uint32
		for _, n := range s.opens {
			opens += n
		}
		out = append(out, &api.SessionStatus{Id: id, Client: s.client, TtlNs: s.ttl, OpenFiles: opens, Locks: perSession[id]})
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	if len(out) > statusListLimit {
		out = out[:statusListLimit]
	}
	if leader {
		now := time.Now().UnixNano()
		v.mu.Lock()
		for _, s := range out {
			if d, ok := v.lessor.Deadline(s.Id); ok {
				s.ExpiresInNs = max(d-now, 1)
			}
		}
		v.mu.Unlock()
	}
	return out
}

// lockStatus lists held locks, then waiting requests, with file paths.
func (v *service) lockStatus() []*api.LockStatus {
	v.fsm.mu.RLock()
	held, queued := v.fsm.locks.All()
	v.fsm.mu.RUnlock()
	var out []*api.LockStatus
	for _, l := range held {
		if len(out) == statusListLimit {
			break
		}
		out = append(out, &api.LockStatus{Lock: lockInfo(l), Ino: l.Ino, SinceNs: l.GrantedNs})
	}
	for _, q := range queued {
		if len(out) == statusListLimit {
			break
		}
		out = append(out, &api.LockStatus{Ino: q.Ino, Waiting: true, SinceNs: q.QueuedNs,
			Lock: &api.LockInfo{Kind: api.LockKind(q.Kind), Type: api.LockType(q.Type), Start: q.Start, End: q.End,
				Pid: q.Pid, Session: q.Owner.Session, Owner: q.Owner.ID}})
	}
	namePaths(v.fsm, out, func(l *api.LockStatus, p string) { l.Path = p })
	return out
}

// chunkHealth classifies every chunk from the leader's soft state: a copy
// counts as live if its server is alive and has not reported it corrupt.
// Unlike fsck it asks for no fresh chunk reports. With list, it also
// names the worst problem chunks (a walk of the tree); without, it only
// counts (the metrics).
func (v *service) chunkHealth(list bool) *api.ChunkHealth {
	out := &api.ChunkHealth{WarmingUp: v.awaitingHeartbeats()}
	chunks := v.fsm.fileChunks()
	now := time.Now()
	alive := map[string]bool{}
	v.mu.Lock()
	for id := range v.servers {
		alive[id] = v.aliveLocked(id, now)
	}
	v.mu.Unlock()
	var problems []*api.FsckProblem
	r := v.repair
	r.mu.Lock()
	for _, c := range chunks {
		if r.busy[c.id] != nil {
			out.Repairing++
		}
		p := &api.FsckProblem{Ino: c.ino, Index: c.index, ChunkId: c.id, Version: c.version, Want: uint32(c.want)}
		for _, s := range c.replicas {
			bad, isBad := r.corrupt[s][c.id]
			switch {
			case s == "" || !alive[s]:
				p.Detail = append(p.Detail, s+": server down")
			case isBad && (bad == 0 || bad == c.version):
				p.Detail = append(p.Detail, s+": corrupt")
			default:
				p.Live++
			}
		}
		switch {
		case int(p.Live) >= c.want:
			out.Healthy++
			continue
		case p.Live == 0:
			p.State = "missing"
			out.Missing++
		case c.ec:
			p.State = "degraded"
			out.Degraded++
		default:
			p.State = "under-replicated"
			out.UnderReplicated++
		}
		if list {
			problems = append(problems, p)
		}
	}
	r.mu.Unlock()
	if list {
		out.Problems = worstFirst(v.fsm, problems, statusListLimit)
	}
	return out
}

// worstFirst orders problem chunks fewest live copies first, keeps the
// first limit and names their files.
func worstFirst(f *FSM, problems []*api.FsckProblem, limit int) []*api.FsckProblem {
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Live < problems[j].Live })
	if len(problems) > limit {
		problems = problems[:limit]
	}
	namePaths(f, problems, func(p *api.FsckProblem, path string) { p.Path = path })
	return problems
}

// namePaths finds a path for each item's inode in one walk of the tree.
func namePaths[T interface{ GetIno() uint64 }](f *FSM, items []T, set func(T, string)) {
	inos := map[uint64]bool{}
	for _, it := range items {
		inos[it.GetIno()] = true
	}
	paths := f.paths(inos)
	for _, it := range items {
		set(it, paths[it.GetIno()])
	}
}
