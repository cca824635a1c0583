package master

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"dfs/api"
	"dfs/lease"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// service implements api.MasterServer on top of the Raft node.
type service struct {
	api.UnimplementedMasterServer
	srv  *Server
	fsm  *FSM
	raft *raft.Raft
	cfg  Config

	proposals   chan *proposal
	verify      verifier
	repair      *repairer
	reclaimKick chan struct{}

	mu       sync.Mutex
	ready    bool // leader whose FSM has caught up (barrier done)
	lessor   *lease.Lessor
	holds    *holdTable // opens without Raft records; nil until promoted
	chunkSeq uint64     // next chunk id to propose (newChunkID)
	servers  map[string]*serverState
	conns    map[string]*grpc.ClientConn
	promoted time.Time
}

var _ api.MasterServer = (*service)(nil)

// serverState is a chunkserver as the leader sees it: soft state rebuilt
// from heartbeats after a failover.
type serverState struct {
	lastSeen       time.Time
	lastFull       time.Time
	capacity, used uint64
	free, chunks   uint64
	addr, zone     string
}

type proposal struct {
	cmd  *api.Command
	done chan proposalResult
}

type proposalResult struct {
	resp *api.MutateResponse
	err  error
}

const (
	applyTimeout = 10 * time.Second
	maxBatch     = 512
	maxAccesses  = 4096 // inodes in one AccessOp
	maxInflight  = 1    // Raft entries proposed and not yet applied (proposer)
	rpcTimeout   = 5 * time.Second
	// quiesceTimeout bounds the wait for a former primary's writes
	// (pushChunk).
	quiesceTimeout = 25 * time.Second
)

func newService(s *Server) *service {
	v := &service{
		srv: s, fsm: s.fsm, raft: s.raft, cfg: s.cfg,
		proposals:   make(chan *proposal, 4096),
		reclaimKick: make(chan struct{}, 1),
		lessor:      lease.NewLessor(),
		servers:     map[string]*serverState{},
		conns:       map[string]*grpc.ClientConn{},
	}
	v.verify.check = func() error { return s.raft.VerifyLeader().Error() }
	v.verify.lease = readLease(s.cfg)
	v.repair = newRepairer(v)
	s.fsm.mu.Lock()
	s.fsm.onSession = v.sessionChanged
	s.fsm.onOrphan = v.kickReclaim
	s.fsm.mu.Unlock()
	s.wg.Add(3)
	go v.proposer()
	go v.repair.loop()
	go v.reclaimer()
	return v
}

func (v *service) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, c := range v.conns {
		c.Close()
	}
	v.conns = map[string]*grpc.ClientConn{}
}

// sessionChanged keeps the lessor in step with applied session changes;
// called by the FSM with its lock held.
func (v *service) sessionChanged(id uint64, ttl int64, opened bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if opened {
		v.lessor.Add(id, ttl, time.Now().UnixNano())
		if v.holds != nil {
			v.holds.started(id)
		}
	} else {
		v.lessor.Remove(id)
		if v.holds != nil {
			v.holds.drop(id)
		}
		v.kickReclaim()
	}
}

// proposer batches concurrent commands into single Raft entries: under
// load, one log write carries many mutations. At most maxInflight
// entries are in Raft at once; while they are, new commands gather into
// the next entry instead of each becoming an entry of its own (every
// entry costs its own encoding, log key and follower work, which made
// 64 concurrent creators average 1.08 commands per entry).
func (v *service) proposer() {
	defer v.srv.wg.Done()
	slots := make(chan struct{}, maxInflight)
	for {
		var batch []*proposal
		select {
		case p := <-v.proposals:
			batch = append(batch, p)
		case <-v.srv.stop:
			return
		}
	gather:
		for len(batch) < maxBatch {
			select {
			case p := <-v.proposals:
				batch = append(batch, p)
				continue
			default:
			}
			select {
			case slots <- struct{}{}:
				break gather
			case p := <-v.proposals:
				batch = append(batch, p)
			case <-v.srv.stop:
				failAll(batch, raft.ErrRaftShutdown)
				return
			}
		}
		if len(batch) == maxBatch {
			select {
			case slots <- struct{}{}:
			case <-v.srv.stop:
				failAll(batch, raft.ErrRaftShutdown)
				return
			}
		}
		b := &api.Batch{Commands: make([]*api.Command, len(batch))}
		for i, p := range batch {
			b.Commands[i] = p.cmd
		}
		data, err := proto.Marshal(b)
		if err != nil {
			<-slots
			failAll(batch, err)
			continue
		}
		start := time.Now()
		f := v.raft.Apply(data, applyTimeout)
		go func() {
			err := f.Error()
			<-slots
			if err != nil {
				failAll(batch, err)
				return
			}
			v.srv.metrics.apply.Observe(time.Since(start).Seconds())
			v.srv.metrics.applyCommands.Observe(float64(len(batch)))
			resps, _ := f.Response().([]*api.MutateResponse)
			for i, p := range batch {
				var r *api.MutateResponse
				if i < len(resps) {
					r = resps[i]
				}
				if r == nil {
					r = errResp(api.Errno_EIO, "no answer from state machine")
				}
				p.done <- proposalResult{resp: r}
			}
		}()
	}
}

func failAll(batch []*proposal, err error) {
	for _, p := range batch {
		p.done <- proposalResult{err: err}
	}
}

// propose replicates cmd and returns the FSM's answer.
func (v *service) propose(ctx context.Context, cmd *api.Command) (*api.MutateResponse, error) {
	p := &proposal{cmd: cmd, done: make(chan proposalResult, 1)}
	select {
	case v.proposals <- p:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-p.done:
		if r.err != nil {
			if errors.Is(r.err, raft.ErrNotLeader) || errors.Is(r.err, raft.ErrLeadershipLost) ||
				errors.Is(r.err, raft.ErrLeadershipTransferInProgress) || errors.Is(r.err, raft.ErrRaftShutdown) {
				return nil, v.notLeader()
			}
			return nil, r.err
		}
		return r.resp, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// notLeader builds the error a non-leader answers, with a leader hint.
func (v *service) notLeader() error {
	_, id := v.raft.LeaderWithID()
	addrs := v.fsm.masterAddrs()
	var all []string
	for _, a := range addrs {
		all = append(all, a)
	}
	sort.Strings(all)
	leader := addrs[string(id)]
	if string(id) == v.cfg.ID && !v.isReady() {
		leader = "" // elected but not yet serving
	}
	return api.NotLeaderError(leader, all)
}

func (v *service) isReady() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ready && v.raft.State() == raft.Leader
}

func (v *service) checkLeader() error {
	if !v.isReady() {
		return v.notLeader()
	}
	return nil
}

// linearize makes a read linearizable: it returns once this node has
// confirmed, after the call began, that it is still the leader.
func (v *service) linearize(ctx context.Context) error {
	if err := v.checkLeader(); err != nil {
		return err
	}
	if err := v.verify.wait(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return v.notLeader()
	}
	return nil
}

// verifier coalesces leadership checks: every waiter is served by a
// VerifyLeader round that started after it arrived, and concurrent
// waiters share one round.
//
// A round that succeeds also grants a read lease of lease (half the Raft
// heartbeat timeout) from the moment it started: the quorum that
// answered reset their heartbeat timers after that moment, and a
// hashicorp/raft follower refuses votes while it has heard from its
// leader within the timeout, so no other leader can be elected before
// the lease ends. Reads inside it need no round of their own. Two things
// can elect a leader sooner, and both are closed: a leadership transfer
// (endLeases is called before one starts) and a master that restarted and
// forgot its leader (it waits out a lease before taking part in Raft:
// see Server.openRaft).
type verifier struct {
	check func() error  // raft.VerifyLeader
	lease time.Duration // 0: no lease, every read waits for a round

	mu      sync.Mutex
	next    *verifyRound
	running bool
	until   time.Time // reads that arrive before this need no round
	epoch   uint64    // bumped by revoke: older rounds grant no lease
}

type verifyRound struct {
	done chan struct{}
	err  error
}

func (vf *verifier) wait(ctx context.Context) error {
	vf.mu.Lock()
	if now := time.Now(); now.Before(vf.until) {
		// Renew ahead of time so that a steady stream of reads never
		// waits for a round.
		if vf.until.Sub(now) < vf.lease/2 && !vf.running {
			vf.roundLocked()
		}
		vf.mu.Unlock()
		return nil
	}
	r := vf.roundLocked()
	vf.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// roundLocked returns the round a read arriving now waits for, starting
// the runner if it is idle.
func (vf *verifier) roundLocked() *verifyRound {
	if vf.next == nil {
		vf.next = &verifyRound{done: make(chan struct{})}
	}
	if !vf.running {
		vf.running = true
		go vf.run()
	}
	return vf.next
}

func (vf *verifier) run() {
	for {
		vf.mu.Lock()
		r := vf.next
		vf.next = nil
		if r == nil {
			vf.running = false
			vf.mu.Unlock()
			return
		}
		epoch := vf.epoch
		vf.mu.Unlock()
		start := time.Now()
		r.err = vf.check()
		if r.err == nil {
			vf.mu.Lock()
			if vf.lease > 0 && vf.epoch == epoch && start.Add(vf.lease).After(vf.until) {
				vf.until = start.Add(vf.lease)
			}
			vf.mu.Unlock()
		}
		close(r.done)
	}
}

// revoke ends the read lease, on losing leadership.
func (vf *verifier) revoke() {
	vf.mu.Lock()
	vf.epoch++
	vf.until = time.Time{}
	vf.mu.Unlock()
}

// endLeases revokes the lease and grants no more: before a leadership
// transfer, after which another master may be elected at once.
func (vf *verifier) endLeases() {
	vf.mu.Lock()
	vf.lease = 0
	vf.mu.Unlock()
	vf.revoke()
}

// ---------------------------------------------------------------------
// Mutations.

// Mutate applies one client mutation. An answer with a chunk (AllocChunk,
// ReportFailure, a create with its first chunk) carries a write token for
// it: the caller is about to write.
func (v *service) Mutate(ctx context.Context, req *api.MutateRequest) (*api.MutateResponse, error) {
	resp, err := v.mutate(ctx, req)
	if err != nil || resp.GetChunk() == nil || resp.Errno != api.Errno_OK {
		return resp, err
	}
	// resp may be the FSM's stored answer for retries: answer a copy.
	out := proto.Clone(resp).(*api.MutateResponse)
	out.Chunk.Token = v.chunkToken(out.Chunk.Id, api.ChunkToken_WRITE)
	return out, nil
}

func (v *service) mutate(ctx context.Context, req *api.MutateRequest) (*api.MutateResponse, error) {
	if err := v.checkLeader(); err != nil {
		return nil, err
	}
	if req.GetOp().GetOp() == nil {
		return errResp(api.Errno_EINVAL, "request has no op"), nil
	}
	cmd := &api.Command{
		Session: req.Session, Seq: req.Seq, Acked: req.Acked, Caller: req.Caller,
		NowNs: time.Now().UnixNano(), Op: req.Op, Releases: req.Releases,
	}
	if req.Session != 0 {
		v.mu.Lock()
		v.lessor.Touch(req.Session, cmd.NowNs)
		v.mu.Unlock()
	}
	if d := v.fsm.permit(cmd, v.mayHold(req.Session, opIno(req.Op))); d != nil {
		return d.resp(), nil
	}
	switch op := req.Op.Op.(type) {
	case *api.Op_AllocChunk:
		return v.allocChunk(ctx, cmd, op.AllocChunk)
	case *api.Op_ReportFailure:
		return v.reportFailure(ctx, cmd, op.ReportFailure)
	case *api.Op_ReplicaChange:
		return errResp(api.Errno_EPERM, "replica changes are the leader's own"), nil
	case *api.Op_Create:
		if op.Create.FirstChunk {
			return v.createFile(ctx, cmd, op.Create)
		}
	case *api.Op_SetXattr:
		if resp := v.checkECLayout(op.SetXattr); resp != nil {
			return resp, nil
		}
	case *api.Op_Access:
		if len(op.Access.Inos) > maxAccesses {
			return errResp(api.Errno_EINVAL, fmt.Sprintf("%d access-time updates in one request, at most %d", len(op.Access.Inos), maxAccesses)), nil
		}
		held := make([]bool, len(op.Access.Inos))
		for i, ino := range op.Access.Inos {
			held[i] = v.mayHold(req.Session, ino)
		}
		v.fsm.permitAccess(cmd, op.Access, held)
	}
	return v.propose(ctx, cmd)
}

// createFile creates a file together with its first chunk, placed before
// proposing as AllocChunk places one, and pushed to its replicas after
// the commit. When there is no placement or the replicas cannot take the
// chunk, the file is answered without one and the writer allocates it as
// usual.
//
// The replicas learn the chunk while Raft commits it: its id is the
// leader's choice (newChunkID). If the commit gives it another id (an
// earlier leader's proposal took this one) or a replica did not take it,
// the chunk is settled after the commit as usual. A chunk told to
// replicas whose proposal is lost holds no data, and its id is at least
// the FSM's next one until a later chunk takes it, so the chunk GC keeps
// it until then and deletes it after.
func (v *service) createFile(ctx context.Context, cmd *api.Command, op *api.CreateOp) (*api.MutateResponse, error) {
	var planned *api.Chunk
	var pushed chan []string
	if l := v.fsm.layoutOf(op.Parent); l.GetKind() == api.Layout_REPLICATED || l.GetKind() == api.Layout_EC {
		cmd.Placement = v.place(l)
		if len(cmd.Placement) > 0 {
			cmd.Primary = firstParity(l, cmd.Placement)
			cmd.LeaseNs = v.cfg.ChunkLease.Nanoseconds()
			cmd.ChunkId = v.newChunkID()
			planned = v.plannedChunk(cmd, l)
			pushed = make(chan []string, 1)
			go func() {
				failed, _ := v.pushChunk(ctx, planned, cmd.LeaseNs, "", true)
				pushed <- failed
			}()
		}
	}
	resp, err := v.propose(ctx, cmd)
	var failed []string
	if pushed != nil {
		failed = <-pushed
	}
	if err != nil || resp.Errno != api.Errno_OK || resp.Chunk == nil {
		return resp, err
	}
	// resp is the FSM's stored answer for retries: answer a copy.
	out := &api.MutateResponse{Attr: resp.Attr, Parent: resp.Parent}
	if len(failed) == 0 && sameChunk(resp.Chunk, planned) {
		out.Chunk = resp.Chunk
		return out, nil
	}
	v.srv.log.Debug("first chunk settled after the commit", "chunk", resp.Chunk.Id, "planned", planned.GetId(), "failed", failed)
	// The chunk is the new file's own, made by this command: nobody can
	// have written it.
	if settled, err := v.settle(ctx, resp.Attr.Ino, 0, resp, cmd.NowNs, "", true); err == nil && settled.Errno == api.Errno_OK {
		out.Chunk = settled.Chunk
	}
	return out, nil
}

// newChunkID picks the id of a chunk about to be proposed: past every id
// the FSM has handed out and every one this leader proposed.
func (v *service) newChunkID() uint64 {
	_, next := v.fsm.chunkVersions(nil)
	v.mu.Lock()
	defer v.mu.Unlock()
	id := max(v.chunkSeq, next)
	v.chunkSeq = id + 1
	return id
}

// plannedChunk is the chunk cmd will create if it commits as proposed.
func (v *service) plannedChunk(cmd *api.Command, l *api.Layout) *api.Chunk {
	ch := &api.Chunk{Id: cmd.ChunkId, Version: 1, Primary: cmd.Primary,
		LeaseExpiryNs: cmd.NowNs + cmd.LeaseNs, Layout: l}
	for i, id := range cmd.Placement {
		info, _ := v.fsm.server(id)
		r := &api.Replica{Server: id, Addr: info.addr}
		if l.GetKind() == api.Layout_EC {
			r.Shard = uint32(i) // as chunkProto numbers them
		}
		ch.Replicas = append(ch.Replicas, r)
	}
	return ch
}

// sameChunk says whether a committed chunk is the planned one, as its
// replicas were told.
func sameChunk(got, planned *api.Chunk) bool {
	if planned == nil || got.Id != planned.Id || got.Version != planned.Version ||
		got.Primary != planned.Primary || len(got.Replicas) != len(planned.Replicas) {
		return false
	}
	for i, r := range got.Replicas {
		if r.Server != planned.Replicas[i].Server || r.Addr != planned.Replicas[i].Addr || r.Shard != planned.Replicas[i].Shard {
			return false
		}
	}
	return true
}

// reportFailure drops replicas a writer could not reach and re-leases
// the chunk on the survivors.
func (v *service) reportFailure(ctx context.Context, cmd *api.Command, op *api.ReportFailureOp) (*api.MutateResponse, error) {
	if err := v.repair.waitIdle(ctx, op.ChunkId); err != nil {
		return nil, err
	}
	view := v.fsm.chunkAt(op.Ino, op.Index)
	var prev string
	if view.exists {
		cmd.Primary = v.pickPrimary(view.chunk, op.Failed)
		prev = view.chunk.Primary
	}
	cmd.LeaseNs = v.cfg.ChunkLease.Nanoseconds()
	v.srv.log.Warn("writer reports failed replicas", "chunk", op.ChunkId, "version", op.Version, "failed", op.Failed)
	resp, err := v.propose(ctx, cmd)
	if err != nil || resp.Errno != api.Errno_OK || resp.Chunk == nil {
		return resp, err
	}
	return v.settle(ctx, op.Ino, op.Index, resp, cmd.NowNs, prev, false)
}

// settle makes the replicas of a freshly (re)leased chunk adopt its
// version and the primary its lease. Replicas that cannot are dropped
// from the set through Raft (bumping the version again), so a dead
// server never blocks writers. prev is the lease holder before this
// version, if the version moved (pushChunk).
func (v *service) settle(ctx context.Context, ino, index uint64, resp *api.MutateResponse, grantedNs int64, prev string, newChunk bool) (*api.MutateResponse, error) {
	for attempt := 0; ; attempt++ {
		ch := resp.Chunk
		failed, noSpace := v.pushChunk(ctx, ch, ch.LeaseExpiryNs-grantedNs, prev, newChunk && attempt == 0)
		if len(failed) == 0 {
			return resp, nil
		}
		if noSpace && len(failed) == len(ch.Replicas) {
			// Every replica is too full to create the chunk: the cluster
			// is full, not broken.
			return errResp(api.Errno_ENOSPC, fmt.Sprintf("chunk %d: no replica has room for it", ch.Id)), nil
		}
		if attempt == 3 {
			return errResp(api.Errno_EIO, fmt.Sprintf("chunk %d: replicas %v do not answer", ch.Id, failed)), nil
		}
		cmd := &api.Command{NowNs: time.Now().UnixNano(), LeaseNs: v.cfg.ChunkLease.Nanoseconds(),
			Primary: v.pickPrimary(ch, failed),
			Op: &api.Op{Op: &api.Op_ReportFailure{ReportFailure: &api.ReportFailureOp{
				Ino: ino, Index: index, ChunkId: ch.Id, Version: ch.Version, Failed: failed}}}}
		next, err := v.propose(ctx, cmd)
		if err != nil || next.Errno != api.Errno_OK {
			return next, err
		}
		resp, grantedNs, prev = next, cmd.NowNs, ch.Primary
	}
}

// allocChunk hands out a chunk with a valid write lease, creating the
// chunk or renewing the lease through Raft only when needed, and makes
// sure the replicas know the version and the primary its lease.
func (v *service) allocChunk(ctx context.Context, cmd *api.Command, op *api.AllocChunkOp) (*api.MutateResponse, error) {
	view := v.fsm.chunkAt(op.Ino, op.Index)
	if view.exists && v.repair.isBusy(view.chunk.Id) {
		if err := v.repair.waitIdle(ctx, view.chunk.Id); err != nil {
			return nil, err
		}
		view = v.fsm.chunkAt(op.Ino, op.Index)
	}
	now := time.Now().UnixNano()
	if view.exists && view.leaseExpiry > now+leaseRenewWindow {
		if err := v.linearize(ctx); err != nil {
			return nil, err
		}
		resp := &api.MutateResponse{Chunk: view.chunk}
		return v.settle(ctx, op.Ino, op.Index, resp, now, "", false)
	}
	cmd.LeaseNs = v.cfg.ChunkLease.Nanoseconds()
	var prev string
	if view.isFile {
		if view.exists {
			cmd.Primary = v.pickPrimary(view.chunk, nil)
			prev = view.chunk.Primary
		} else {
			cmd.Placement = v.placeAfterFailover(ctx, view.layout)
			if len(cmd.Placement) > 0 {
				cmd.Primary = firstParity(view.layout, cmd.Placement)
				cmd.ChunkId = v.newChunkID()
			}
		}
	}
	resp, err := v.propose(ctx, cmd)
	if err != nil || resp.Errno != api.Errno_OK || resp.Chunk == nil {
		return resp, err
	}
	return v.settle(ctx, op.Ino, op.Index, resp, cmd.NowNs, prev, false)
}

// pickPrimary prefers a live replica, not in exclude, for a new lease.
func (v *service) pickPrimary(c *api.Chunk, exclude []string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, r := range primaryOrder(c) {
		if !contains(exclude, r.Server) && v.aliveLocked(r.Server, time.Now()) {
			return r.Server
		}
	}
	for _, r := range primaryOrder(c) {
		if !contains(exclude, r.Server) {
			return r.Server
		}
	}
	return ""
}

func (v *service) aliveLocked(id string, now time.Time) bool {
	st := v.servers[id]
	return st != nil && now.Sub(st.lastSeen) < v.cfg.ServerDeadAfter
}

// place chooses chunkservers for a new chunk: live ones with room, most
// free space first, spreading over zones before doubling up in one.
func (v *service) place(l *api.Layout) []string {
	want := int(l.GetReplicas())
	chunkSize := replicaSize(l)
	if l.GetKind() == api.Layout_EC {
		want = int(l.DataShards + l.ParityShards)
	}
	if want == 0 {
		want = 3
	}
	type cand struct {
		id, zone string
		free     uint64
	}
	now := time.Now()
	var cands []cand
	v.mu.Lock()
	for id, st := range v.servers {
		if !v.aliveLocked(id, now) || st.free < chunkSize {
			continue
		}
		cands = append(cands, cand{id, st.zone, st.free})
	}
	v.mu.Unlock()
	registered := map[string]bool{}
	for _, s := range v.fsm.serverList() {
		registered[s.id] = !s.draining // a draining server takes no new chunks
	}
	n := 0
	for _, c := range cands {
		if registered[c.id] {
			cands[n] = c
			n++
		}
	}
	cands = cands[:n]
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].free != cands[j].free {
			return cands[i].free > cands[j].free
		}
		return cands[i].id < cands[j].id
	})
	var out []string
	usedZone := map[string]bool{}
	taken := map[string]bool{}
	for pass := 0; pass < 2 && len(out) < want; pass++ {
		for _, c := range cands {
			if len(out) == want {
				break
			}
			if taken[c.id] || (pass == 0 && c.zone != "" && usedZone[c.zone]) {
				continue
			}
			out = append(out, c.id)
			taken[c.id] = true
			usedZone[c.zone] = true
		}
	}
	// Count the new chunk against the servers' free space until their next
	// heartbeat, so that chunks placed in a burst do not overfill them.
	v.mu.Lock()
	for _, id := range out {
		if st := v.servers[id]; st != nil {
			st.free -= min(st.free, chunkSize)
		}
	}
	v.mu.Unlock()
	if len(out) > 0 && len(out) < want {
		v.srv.log.Warn("fewer chunkservers than the layout asks for; placing fewer copies",
			"want", want, "placed", len(out), "layout", api.FormatLayout(l))
	}
	if l.GetKind() == api.Layout_EC && len(out) < want {
		return nil // an EC stripe needs every shard
	}
	return out
}

// pushChunk tells every replica the chunk's version and the primary its
// lease, and returns the replicas that did not take it and whether every
// one of those refused for lack of space.
//
// prev, when set, is the server that held the lease at the version
// before: it is told first and alone. Its SetChunk waits for the chunk's
// order lock, so a write it is still carrying out reaches every replica
// before any replica refuses the old version. Cut short between replicas,
// an EC write would leave a stripe whose data and parity disagree, and
// decoding it later (a degraded read, a rebuild) would return wrong bytes
// also where the write never touched (docs/ec.md, "write hole").
func (v *service) pushChunk(ctx context.Context, c *api.Chunk, leaseNs int64, prev string, newChunk bool) (failed []string, noSpace bool) {
	chunkSize := replicaSize(c.GetLayout())
	token := v.chunkToken(c.Id, api.ChunkToken_MASTER)
	errs := make([]error, len(c.Replicas))
	push := func(ctx context.Context, i int) {
		r := c.Replicas[i]
		conn, err := v.conn(r.Addr)
		if err != nil {
			errs[i] = err
			return
		}
		req := &api.SetChunkRequest{
			Id: c.Id, Shard: r.Shard, Version: c.Version, ChunkSize: chunkSize,
			Primary: c.Primary, LeaseNs: leaseNs, Replicas: c.Replicas, Token: token, NewChunk: newChunk,
		}
		errs[i] = untilKeyed(ctx, func() error {
			resp, err := api.NewChunkServerClient(conn).SetChunk(ctx, req)
			if err == nil && resp.Errno != api.Errno_OK {
				err = fmt.Errorf("%w: %v", resp.Errno, resp.Message)
			}
			return err
		})
	}
	first := slices.IndexFunc(c.Replicas, func(r *api.Replica) bool { return prev != "" && r.Server == prev })
	if first >= 0 {
		// Long enough for a write that waits on a dead replica (the
		// chunkservers' own call timeout, for reads and then writes).
		qctx, cancel := context.WithTimeout(ctx, quiesceTimeout)
		push(qctx, first)
		cancel()
	}
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i := range c.Replicas {
		if i != first {
			wg.Go(func() { push(ctx, i) })
		}
	}
	wg.Wait()
	noSpace = true
	if slices.ContainsFunc(errs, func(err error) bool { return err == nil }) {
		v.repair.confirm(c.Id, c.Version)
	}
	for i, r := range c.Replicas {
		if errs[i] != nil {
			v.srv.log.Warn("chunk replica did not take new version", "chunk", c.Id, "version", c.Version, "server", r.Server, "err", errs[i])
			failed = append(failed, r.Server)
			noSpace = noSpace && errors.Is(errs[i], api.Errno_ENOSPC)
		}
	}
	return failed, noSpace && len(failed) > 0
}

// untilKeyed runs call again while it fails with ENOKEY, until ctx ends:
// a chunkserver that has just started learns the chunk keys with its
// first heartbeat, and is not to be dropped from a chunk for that.
func untilKeyed(ctx context.Context, call func() error) error {
	for {
		err := call()
		if !errors.Is(err, api.Errno_ENOKEY) {
			return err
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}

func (v *service) conn(addr string) (*grpc.ClientConn, error) {
	if addr == "" {
		return nil, errors.New("chunkserver address unknown")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if c, found := v.conns[addr]; found {
		return c, nil
	}
	c, err := grpc.NewClient(addr, api.Credentials(v.srv.cfg.TLS.ClientConfig()), api.WithUnackedTimeout(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(api.MaxMessage), grpc.MaxCallSendMsgSize(api.MaxMessage)))
	if err != nil {
		return nil, err
	}
	v.conns[addr] = c
	return c, nil
}

// ---------------------------------------------------------------------
// Reads.

func (v *service) Lookup(ctx context.Context, req *api.LookupRequest) (*api.AttrResponse, error) {
	if err := v.linearize(ctx); err != nil {
		return nil, err
	}
	if e := v.fsm.permitLookup(req.Caller, req.Parent); e != api.Errno_OK {
		return &api.AttrResponse{Errno: e}, nil
	}
	a, e := v.fsm.Lookup(req.Parent, req.Name)
	return &api.AttrResponse{Errno: e, Attr: a}, nil
}

func (v *service) GetAttr(ctx context.Context, req *api.GetAttrRequest) (*api.AttrResponse, error) {
	if err := v.linearize(ctx); err != nil {
		return nil, err
	}
	a, e := v.fsm.GetAttr(req.Ino)
	return &api.AttrResponse{Errno: e, Attr: a}, nil
}

func (v *service) ReadDir(ctx context.Context, req *api.ReadDirRequest) (*api.ReadDirResponse, error) {
	if err := v.linearize(ctx); err != nil {
		return nil, err
	}
	limit := int(req.Limit)
	if limit <= 0 || limit > 4096 {
		limit = 4096
	}
	e, plus := v.fsm.permitReadDir(req.Caller, req.Ino, req.Plus)
	if e != api.Errno_OK {
		return &api.ReadDirResponse{Errno: e}, nil
	}
	return v.fsm.ReadDir(req.Ino, req.Cookie, limit, plus), nil
}

func (v *service) GetXattr(ctx context.Context, req *api.GetXattrRequest) (*api.GetXattrResponse, error) {
	if err := v.linearize(ctx); err != nil {
		return nil, err
	}
	if e := v.fsm.permitGetXattr(req.Caller, req.Ino, req.Name); e != api.Errno_OK {
		return &api.GetXattrResponse{Errno: e}, nil
	}
	val, e := v.fsm.GetXattr(req.Ino, req.Name)
	return &api.GetXattrResponse{Errno: e, Value: val}, nil
}

func (v *service) ListXattr(ctx context.Context, req *api.ListXattrRequest) (*api.ListXattrResponse, error) {
	if err := v.linearize(ctx); err != nil {
		return nil, err
	}
	names, e := v.fsm.ListXattr(req.Ino)
	return &api.ListXattrResponse{Errno: e, Names: visibleXattrs(req.Caller, names)}, nil
}

func (v *service) GetChunks(ctx context.Context, req *api.GetChunksRequest) (*api.GetChunksResponse, error) {
	if err := v.linearize(ctx); err != nil {
		return nil, err
	}
	count := req.Count
	if count == 0 || count > 1024 {
		count = 1024
	}
	if e := v.fsm.permitGetChunks(req, v.mayHold(req.Session, req.Ino)); e != api.Errno_OK {
		return &api.GetChunksResponse{Errno: e}, nil
	}
	if req.Open && req.Session != 0 {
		// Counted before the state is read: an unlink applied after the
		// read finds the open here.
		v.mu.Lock()
		if v.holds != nil {
			v.holds.opened(req.Session, req.Ino)
		}
		v.mu.Unlock()
	}
	out := v.fsm.GetChunks(req.Ino, req.FirstIndex, count)
	sign := v.tokenSigner(api.ChunkToken_READ)
	for _, ch := range out.Chunks {
		ch.Token = sign(ch.Id)
	}
	return out, nil
}

// mayHold says whether session may hold ino open without a record in
// Raft, as the leader's hold table knows (permissions: a descriptor
// keeps working after a chmod).
func (v *service) mayHold(session, ino uint64) bool {
	if session == 0 || ino == 0 {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.holds != nil && v.holds.mayHold(session, ino)
}

func (v *service) StatFS(ctx context.Context, req *api.StatFSRequest) (*api.StatFSResponse, error) {
	if err := v.checkLeader(); err != nil {
		return nil, err
	}
	inodes, _, _, logical, _ := v.fsm.counts()
	out := &api.StatFSResponse{Inodes: inodes, LogicalBytes: logical}
	now := time.Now()
	v.mu.Lock()
	for id, st := range v.servers {
		if v.aliveLocked(id, now) {
			out.CapacityBytes += st.capacity
			out.UsedBytes += st.used
			out.FreeBytes += st.free
		}
	}
	v.mu.Unlock()
	return out, nil
}

// ---------------------------------------------------------------------
// Sessions and chunkservers.

func (v *service) KeepAlive(ctx context.Context, req *api.KeepAliveRequest) (*api.KeepAliveResponse, error) {
	if err := v.checkLeader(); err != nil {
		return nil, err
	}
	v.mu.Lock()
	alive := v.lessor.Touch(req.Session, time.Now().UnixNano())
	var epoch int64
	var token uint64
	if alive && v.holds != nil {
		epoch = v.holds.epoch
		token = v.holds.report(req.Session, req.Held, req.Epoch, req.Token)
	}
	v.mu.Unlock()
	if !alive {
		return &api.KeepAliveResponse{Errno: api.Errno_ENOENT}, nil
	}
	if v.fsm.hasOrphans() {
		v.kickReclaim()
	}
	return &api.KeepAliveResponse{TtlNs: v.sessionTTL(req.Session), Epoch: epoch, Token: token}, nil
}

func (v *service) sessionTTL(id uint64) int64 {
	v.fsm.mu.RLock()
	defer v.fsm.mu.RUnlock()
	if s := v.fsm.sessions[id]; s != nil {
		return s.ttl
	}
	return 0
}

func (v *service) Heartbeat(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	if err := v.checkLeader(); err != nil {
		return nil, err
	}
	if req.Server == "" || req.Addr == "" {
		return nil, fmt.Errorf("heartbeat without server id or address")
	}
	info, known := v.fsm.server(req.Server)
	if !known || info.addr != req.Addr || info.zone != req.Zone {
		cmd := &api.Command{NowNs: time.Now().UnixNano(),
			RegisterServer: &api.RegisterServerCmd{Id: req.Server, Addr: req.Addr, Zone: req.Zone}}
		if _, err := v.propose(ctx, cmd); err != nil {
			return nil, err
		}
		v.srv.log.Info("chunkserver registered", "id", req.Server, "addr", req.Addr, "zone", req.Zone)
	}
	now := time.Now()
	v.mu.Lock()
	st := v.servers[req.Server]
	if st == nil {
		st = &serverState{}
		v.servers[req.Server] = st
	}
	st.lastSeen = now
	st.capacity, st.used, st.free = req.Capacity, req.Used, req.Free
	st.addr, st.zone = req.Addr, req.Zone
	if req.FullReport {
		st.lastFull = now
		st.chunks = uint64(len(req.Chunks))
	}
	wantFull := now.Sub(st.lastFull) > v.cfg.FullReportInterval
	v.mu.Unlock()
	v.repair.observe(req, now)
	wantFull = wantFull || v.repair.wantFull(req.Server)
	return &api.HeartbeatResponse{WantFullReport: wantFull, Delete: v.gcDeletes(req), ChunkKeys: v.fsm.chunkKeys()}, nil
}

func (v *service) Status(ctx context.Context, req *api.StatusRequest) (*api.StatusResponse, error) {
	out := &api.StatusResponse{}
	inodes, chunks, sessions, logical, applied := v.fsm.counts()
	out.Inodes, out.Chunks, out.Sessions, out.LogicalBytes, out.AppliedIndex = inodes, chunks, sessions, logical, applied
	out.Locks, out.LockWaiters = v.fsm.lockCounts()
	addrs := v.fsm.masterAddrs()
	_, leaderID := v.raft.LeaderWithID()
	out.Leader = addrs[string(leaderID)]
	if f := v.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			mi := &api.MasterInfo{Id: string(s.ID), RaftAddr: string(s.Address), Addr: addrs[string(s.ID)],
				Voter: s.Suffrage == raft.Voter, State: "Follower"}
			switch {
			case s.ID == leaderID:
				mi.State = "Leader"
			case string(s.ID) == v.cfg.ID:
				mi.State = v.raft.State().String()
			}
			out.Masters = append(out.Masters, mi)
		}
	}
	now := time.Now()
	// Read the FSM before taking v.mu: Apply holds the FSM's lock when it
	// tells the service of session changes (sessionChanged takes v.mu).
	registered := v.fsm.serverList()
	v.mu.Lock()
	for _, s := range registered {
		ci := &api.ChunkServerInfo{Id: s.id, Addr: s.addr, Zone: s.zone, Draining: s.draining}
		if st := v.servers[s.id]; st != nil {
			ci.Capacity, ci.Used, ci.Free, ci.Chunks = st.capacity, st.used, st.free, st.chunks
			ci.LastSeenNs = st.lastSeen.UnixNano()
			ci.Alive = v.aliveLocked(s.id, now)
		}
		out.Servers = append(out.Servers, ci)
	}
	v.mu.Unlock()
	v.addStatusDetail(ctx, req, out)
	return out, nil
}

// ---------------------------------------------------------------------
// Leader duties.

// leaderLoop follows leadership changes and runs the leader's periodic
// work: expiring sessions, registering this master's address.
func (v *service) leaderLoop() {
	defer v.srv.wg.Done()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-v.srv.stop:
			return
		case isLeader := <-v.srv.notify:
			if isLeader {
				v.promote()
			} else {
				v.demote()
			}
		case <-tick.C:
			if v.isReady() {
				v.expireSessions()
				v.tickChunkKey()
			} else if v.raft.State() == raft.Leader {
				v.promote()
			}
			v.registerSelf()
		}
	}
}

// promote readies a new leader: apply everything committed, then extend
// every session by the grace period before any may expire (Chubby).
func (v *service) promote() {
	if v.raft.State() != raft.Leader {
		return
	}
	if err := v.raft.Barrier(applyTimeout).Error(); err != nil {
		v.srv.log.Warn("leader barrier failed", "err", err)
		return
	}
	// Nothing a client is answered is usable without a chunk key.
	if err := v.tickChunkKey(); err != nil {
		return
	}
	ttls := v.fsm.sessionTTLs()
	now := time.Now()
	v.mu.Lock()
	v.lessor.Promote(now.UnixNano(), v.cfg.SessionGrace.Nanoseconds(), ttls)
	v.holds = newHoldTable(now.UnixNano())
	v.ready = true
	v.promoted = now
	v.mu.Unlock()
	v.srv.log.Info("became leader", "id", v.cfg.ID, "sessions", len(ttls))
}

func (v *service) demote() {
	v.verify.revoke()
	v.mu.Lock()
	v.ready = false
	v.holds = nil
	v.servers = map[string]*serverState{}
	v.mu.Unlock()
	v.repair.reset()
	v.srv.log.Info("no longer leader", "id", v.cfg.ID)
}

// tickChunkKey runs rotateChunkKey with a deadline, logging failures.
func (v *service) tickChunkKey() error {
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
	defer cancel()
	err := v.rotateChunkKey(ctx)
	if err != nil {
		v.srv.log.Warn("chunk key", "err", err)
	}
	return err
}

func (v *service) expireSessions() {
	v.mu.Lock()
	expired := v.lessor.Expired(time.Now().UnixNano())
	v.mu.Unlock()
	for _, id := range expired {
		ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
		_, err := v.propose(ctx, &api.Command{NowNs: time.Now().UnixNano(), ExpireSession: &api.ExpireSessionCmd{Session: id}})
		cancel()
		if err != nil {
			v.srv.log.Warn("expiring session", "session", id, "err", err)
			return
		}
		v.srv.metrics.sessionsExpired.Inc()
		v.srv.log.Info("session expired", "session", id)
	}
}

// registerSelf records this master's client address in the replicated
// state so every master can point clients at the leader.
func (v *service) registerSelf() {
	addr := v.srv.Addr()
	if v.fsm.masterAddrs()[v.cfg.ID] == addr {
		return
	}
	op := &api.Op{Op: &api.Op_RegisterMaster{RegisterMaster: &api.RegisterMasterOp{Id: v.cfg.ID, Addr: addr}}}
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	if v.isReady() {
		if _, err := v.propose(ctx, &api.Command{NowNs: time.Now().UnixNano(), Op: op}); err != nil {
			v.srv.log.Debug("registering master address", "err", err)
		}
		return
	}
	_, leaderID := v.raft.LeaderWithID()
	leaderAddr := v.fsm.masterAddrs()[string(leaderID)]
	if leaderAddr == "" {
		return
	}
	conn, err := v.conn(leaderAddr)
	if err != nil {
		return
	}
	if _, err := api.NewMasterClient(conn).Mutate(ctx, &api.MutateRequest{Op: op}); err != nil {
		v.srv.log.Debug("registering master address with leader", "err", err)
	}
}
