package master

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"dfs/api"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// repairer is the leader's self-healing: it keeps every replicated chunk
// at its layout's replica count, copying chunks whose replicas were lost
// (servers gone longer than DeadAfter), dropped after write failures, or
// reported corrupt. Everything it knows is soft state rebuilt from
// heartbeats after a failover.
//
// A repair of chunk C at version v:
//  1. ReplicaChange(fence, drop the lost copies): C moves to v+1 with no
//     lease; the surviving replicas are told v+1, so a writer still
//     holding v is refused everywhere. New leases on C wait for the
//     repair (waitIdle), so no write can land between the copy and 3.
//  2. A target chunkserver pulls C at v+1 from a survivor (Replicate).
//  3. ReplicaChange(add the target) at v+1: the copy joins the set.
//
// A copy cut short (crash, leader change) is at version 0 or outside the
// set, and the heartbeat GC deletes it.
type repairer struct {
	v *service

	mu        sync.Mutex
	busy      map[uint64]chan struct{}     // chunk id -> closed when its repair ends
	corrupt   map[string]map[uint64]uint64 // server -> chunk id -> version reported corrupt
	held      map[string]map[uint64]uint64 // server -> chunk id -> version, last full report
	fullAt    map[string]time.Time         // server -> time of its last full report
	fullWant  time.Time                    // fsck wants full reports made after this
	running   int                          // repairs in flight
	queued    int                          // jobs the last pass found (a metric)
	copied    uint64                       // bytes copied since this leader took over
	logged    map[uint64]time.Time         // chunk id -> last "cannot repair" log
	retryAt   map[uint64]time.Time         // chunk id -> no new attempt before (after a failed one)
	avoid     map[string]time.Time         // server -> when a copy to it last failed to reach it
	confirmed map[uint64]uint64            // chunk id -> highest version some replica took (SetChunk, copy)
	refresh   map[uint64]bool              // chunk id -> its replicas hold only older versions: push the current one
}

func newRepairer(v *service) *repairer {
	r := &repairer{v: v}
	r.reset()
	return r
}

// reset forgets soft state, on losing leadership.
func (r *repairer) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.corrupt = map[string]map[uint64]uint64{}
	r.held = map[string]map[uint64]uint64{}
	r.fullAt = map[string]time.Time{}
	r.logged = map[uint64]time.Time{}
	r.retryAt = map[uint64]time.Time{}
	r.avoid = map[string]time.Time{}
	r.confirmed = map[uint64]uint64{}
	r.refresh = map[uint64]bool{}
	if r.busy == nil {
		r.busy = map[uint64]chan struct{}{}
	}
	r.copied = 0
}

// observe records what a heartbeat says about the server's chunks.
func (r *repairer) observe(req *api.HeartbeatRequest, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	bad := map[uint64]uint64{}
	for _, c := range req.Corrupt {
		bad[c.Id] = c.Version
	}
	r.corrupt[req.Server] = bad
	if req.FullReport {
		held := make(map[uint64]uint64, len(req.Chunks))
		for _, c := range req.Chunks {
			held[c.Id] = c.Version
		}
		r.held[req.Server] = held
		r.fullAt[req.Server] = now
	}
}

// wantFull says whether the server should send a full report now.
func (r *repairer) wantFull(server string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.fullWant.IsZero() && !r.fullAt[server].After(r.fullWant)
}

func (r *repairer) isBusy(id uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy[id] != nil
}

// confirm records that some replica of chunk id took version.
func (r *repairer) confirm(id, version uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.confirmed[id] < version {
		r.confirmed[id] = version
	}
}

// hasCurrent says whether some replica of the chunk other than except is
// known to hold its current version: a SetChunk or copy at that version
// succeeded since this leader took over, or a full report showed it.
// Until then, older copies may be all the data there is (a version bump
// that reached no replica leaves every copy "stale"), and are kept.
func (r *repairer) hasCurrent(id, version uint64, set []string, except string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.confirmed[id] >= version {
		return true
	}
	for _, s := range set {
		if s != except && r.held[s][id] == version {
			return true
		}
	}
	return false
}

// waitIdle returns once chunk id is not being repaired, so that a new
// lease is not granted in the middle of a copy.
func (r *repairer) waitIdle(ctx context.Context, id uint64) error {
	r.mu.Lock()
	ch := r.busy[id]
	r.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gcDeletes answers a full report with the chunks the server must delete:
// those no file references, copies older than the master's version, and
// copies outside the chunk's replica set that no repair is making.
func (v *service) gcDeletes(req *api.HeartbeatRequest) []*api.ChunkReport {
	if !req.FullReport || len(req.Chunks) == 0 {
		return nil
	}
	ids := make([]uint64, len(req.Chunks))
	for i, c := range req.Chunks {
		ids[i] = c.Id
	}
	versions, sets, next := v.fsm.chunkSets(ids)
	var out []*api.ChunkReport
	for i, c := range req.Chunks {
		switch {
		case versions[i] == 0 && c.Id < next:
			out = append(out, c) // no file references it
		case versions[i] == 0:
		case !v.repair.hasCurrent(c.Id, versions[i], sets[i], req.Server):
			// Keep it: it may be the only copy of the data. If it is in
			// the set, the repair loop tells it the current version.
			if slices.Contains(sets[i], req.Server) {
				v.repair.mu.Lock()
				v.repair.refresh[c.Id] = true
				v.repair.mu.Unlock()
			}
		case versions[i] > c.Version:
			out = append(out, c) // stale copy
		case !slices.Contains(sets[i], req.Server) && !v.repair.isBusy(c.Id):
			out = append(out, c) // dropped from the set, or an abandoned copy
		}
	}
	return out
}

// repairJob is one chunk to fix: lost copies to drop and copies to add.
type repairJob struct {
	c       chunkRecord
	drop    []string
	need    int  // copies to add
	live    int  // copies on servers alive now
	refresh bool // no replica is known to hold the current version
	// moves are copies on draining servers to move elsewhere: each is
	// copied to a target, then dropped as the target joins (move).
	moves []string
}

// loop runs repair passes on the leader until the master stops.
func (r *repairer) loop() {
	defer r.v.srv.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-r.v.srv.stop
		cancel()
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.v.srv.stop:
			return
		case <-tick.C:
		}
		if r.v.isReady() {
			r.pass(ctx)
		}
	}
}

// jobs finds the chunks needing repair, most endangered first.
func (r *repairer) jobs(now time.Time) []repairJob {
	v := r.v
	chunks := v.fsm.fileChunks()
	draining := v.fsm.drainingServers()
	v.mu.Lock()
	promoted := v.promoted
	alive := map[string]bool{}
	lost := func(id string) bool {
		st := v.servers[id]
		if st == nil {
			return now.Sub(promoted) > v.cfg.DeadAfter
		}
		return now.Sub(st.lastSeen) > v.cfg.DeadAfter
	}
	lostSet := map[string]bool{}
	for _, c := range chunks {
		for _, s := range c.replicas {
			if _, ok := alive[s]; !ok {
				// Live for a repair: heard from lately, since a repair
				// fences the chunk and must reach a survivor.
				st := v.servers[s]
				alive[s] = v.aliveLocked(s, now) && st != nil && now.Sub(st.lastSeen) < targetFresh
				lostSet[s] = lost(s)
			}
		}
	}
	v.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out, drains []repairJob
	for _, c := range chunks {
		// A refresh is asked for by a server that just reported, so it
		// does not wait out the pause after a failed attempt.
		if r.busy[c.id] != nil || (now.Before(r.retryAt[c.id]) && !r.refresh[c.id]) {
			continue
		}
		j := repairJob{c: c}
		healthy := 0
		for _, s := range c.replicas {
			bad, reported := r.corrupt[s][c.id]
			switch {
			case s == "":
				// An EC shard with no server: rebuilt below.
			case reported && (bad == 0 || bad == c.version):
				j.drop = append(j.drop, s)
			case lostSet[s]:
				j.drop = append(j.drop, s)
			default:
				healthy++
				if alive[s] {
					j.live++
				}
			}
		}
		j.need = max(c.want-healthy, 0)
		j.refresh = r.refresh[c.id] && r.confirmed[c.id] < c.version
		if j.live == 0 || j.live < c.dataShards {
			continue
		}
		if j.need == 0 && len(j.drop) == 0 && !j.refresh {
			// A healthy chunk: move what draining servers hold while
			// they are there to copy from.
			for _, s := range c.replicas {
				if draining[s] && alive[s] {
					j.moves = append(j.moves, s)
				}
			}
			if len(j.moves) > 0 {
				drains = append(drains, j)
			}
			continue
		}
		out = append(out, j)
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].live != out[b].live {
			return out[a].live < out[b].live
		}
		return out[a].need > out[b].need
	})
	// Chunks at risk come before drains, which only move healthy copies.
	return append(out, drains...)
}

// pass starts repairs, fewest live copies first, up to the concurrency
// limit.
func (r *repairer) pass(ctx context.Context) {
	limit := r.v.cfg.RepairConcurrency
	jobs := r.jobs(time.Now())
	r.mu.Lock()
	r.queued = len(jobs)
	r.mu.Unlock()
	for _, j := range jobs {
		select {
		case <-r.v.srv.draining:
			return // stopping: no new repair may be cut in half
		default:
		}
		r.mu.Lock()
		if r.running >= limit {
			r.mu.Unlock()
			return
		}
		targets := r.targets(j)
		if len(targets) == 0 && len(j.drop) == 0 && !j.refresh {
			r.mu.Unlock()
			r.cannot(j, "no chunkserver outside its set can take a copy")
			continue
		}
		done := make(chan struct{})
		r.busy[j.c.id] = done
		r.running++
		r.mu.Unlock()
		r.v.srv.wg.Add(1)
		go func() {
			defer r.v.srv.wg.Done()
			complete := r.repair(ctx, j, targets)
			result := "incomplete"
			if complete {
				result = "complete"
			}
			r.v.srv.metrics.repairs.WithLabelValues(result).Inc()
			r.mu.Lock()
			if complete {
				delete(r.retryAt, j.c.id)
			} else {
				r.retryAt[j.c.id] = time.Now().Add(repairRetry)
			}
			delete(r.busy, j.c.id)
			r.running--
			r.mu.Unlock()
			close(done)
		}()
	}
}

// awaitIdle waits until no repair job runs or until is past, and says
// whether none runs. A job cut off by a leadership change may leave a
// version bumped in Raft that some replicas never took, without the
// proposal that drops them from the chunk's set.
func (r *repairer) awaitIdle(until time.Time) bool {
	for {
		r.mu.Lock()
		n := r.running
		r.mu.Unlock()
		if n == 0 {
			return true
		}
		if time.Now().After(until) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cannot logs, at most once a minute per chunk, why a chunk stays
// under-replicated (or on a draining server).
func (r *repairer) cannot(j repairJob, why string) {
	r.mu.Lock()
	last := r.logged[j.c.id]
	now := time.Now()
	if now.Sub(last) < time.Minute {
		r.mu.Unlock()
		return
	}
	r.logged[j.c.id] = now
	r.mu.Unlock()
	msg := "chunk under-replicated"
	if len(j.moves) > 0 {
		msg = "chunk cannot leave a draining server"
	}
	r.v.srv.log.Warn(msg, "chunk", j.c.id, "ino", j.c.ino, "index", j.c.index,
		"replicas", j.c.replicas, "want", j.c.want, "why", why)
}

// targets picks up to j.need (for a drain, len(j.moves)) live
// chunkservers outside the chunk's set with room for it, never a
// draining one: zones the survivors do not use first, then most free
// space. Called with r.mu held.
func (r *repairer) targets(j repairJob) []string {
	v := r.v
	now := time.Now()
	type cand struct {
		id, zone string
		free     uint64
	}
	var cands []cand
	usedZone := map[string]bool{}
	v.mu.Lock()
	for _, s := range j.c.replicas {
		if st := v.servers[s]; st != nil && !slices.Contains(j.drop, s) && !slices.Contains(j.moves, s) && st.zone != "" {
			usedZone[st.zone] = true
		}
	}
	for id, st := range v.servers {
		// A server whose copy is dropped (corrupt) may take a fresh one.
		inSet := slices.Contains(j.c.replicas, id) && !slices.Contains(j.drop, id)
		// Only servers heard from lately: each attempt fences the chunk
		// (bumping its version under any writer), so it should not be
		// spent on a server that died a moment ago.
		// A server a copy could not reach is left out until it
		// heartbeats again (it restarted, or the network came back).
		fresh := now.Sub(st.lastSeen) < targetFresh && st.lastSeen.After(r.avoid[id])
		if inSet || !fresh || !v.aliveLocked(id, now) || st.free < j.c.chunkSize {
			continue
		}
		cands = append(cands, cand{id, st.zone, st.free})
	}
	v.mu.Unlock()
	sort.Slice(cands, func(a, b int) bool {
		za, zb := usedZone[cands[a].zone], usedZone[cands[b].zone]
		if za != zb {
			return !za
		}
		if cands[a].free != cands[b].free {
			return cands[a].free > cands[b].free
		}
		return cands[a].id < cands[b].id
	})
	var out []string
	want := j.need
	if len(j.moves) > 0 {
		want = len(j.moves)
	}
	for _, c := range cands {
		if len(out) == want {
			break
		}
		if info, known := v.fsm.server(c.id); known && !info.draining {
			out = append(out, c.id)
		}
	}
	return out
}

// repair carries out one job (see repairer) and says whether it did all
// of it.
func (r *repairer) repair(ctx context.Context, j repairJob, targets []string) bool {
	v := r.v
	log := v.srv.log.With("chunk", j.c.id, "ino", j.c.ino, "index", j.c.index)
	change := func(version uint64, add []string, addShards []uint32, drop []string, fence bool) (*api.Chunk, bool) {
		cctx, cancel := context.WithTimeout(ctx, applyTimeout)
		defer cancel()
		resp, err := v.propose(cctx, &api.Command{NowNs: time.Now().UnixNano(),
			Op: &api.Op{Op: &api.Op_ReplicaChange{ReplicaChange: &api.ReplicaChangeOp{
				Ino: j.c.ino, Index: j.c.index, ChunkId: j.c.id, Version: version, Add: add, AddShards: addShards, Drop: drop, Fence: fence}}}})
		if err != nil || resp.Errno != api.Errno_OK {
			log.Info("repair step not applied; will retry", "err", err, "errno", resp.GetErrno(), "msg", resp.GetMessage())
			return nil, false
		}
		return resp.Chunk, true
	}
	// 1: fence (and drop lost copies) until every remaining replica has
	// taken the new version.
	version, drop := j.c.version, j.drop
	// A writer may be mid-write under the current lease: its primary
	// takes the fence first (pushChunk).
	prev := v.fsm.chunkAt(j.c.ino, j.c.index).chunk.GetPrimary()
	var ch *api.Chunk
	for attempt := 0; ; attempt++ {
		var ok bool
		if ch, ok = change(version, nil, nil, drop, true); !ok {
			return false
		}
		if len(drop) > 0 {
			log.Warn("dropped lost or corrupt replicas", "dropped", drop, "version", ch.Version)
		}
		failed, _ := v.pushChunk(ctx, ch, 0, prev, false)
		prev = "" // fenced: no lease since
		if len(failed) == 0 {
			break
		}
		if attempt == 2 || len(failed) == len(ch.Replicas) {
			return false
		}
		version, drop = ch.Version, failed
	}
	if len(j.moves) > 0 {
		return r.move(ctx, j, ch, targets, change)
	}
	if j.c.ec {
		// A primary that died mid-write may have left parity behind
		// the data: make them agree before decoding anything from them.
		if !r.reencode(ctx, ch, log) {
			return false
		}
		if len(targets) == 0 {
			return j.need == 0
		}
		added, shards := r.rebuild(ctx, ch, targets, log)
		if len(added) == 0 {
			return false
		}
		_, ok := change(ch.Version, added, shards, nil, false)
		if ok {
			log.Info("EC shards rebuilt", "added", added, "shards", shards, "version", ch.Version)
		}
		return ok && len(added) == j.need
	}
	if len(targets) == 0 {
		return j.need == 0
	}
	// 2: copy to each target from the first survivor that serves it.
	chunkSize := ch.GetLayout().GetChunkSize()
	var added []string
	for _, t := range targets {
		cs, ok := v.chunkClient(t)
		if !ok {
			continue
		}
		for _, src := range ch.Replicas {
			start := time.Now()
			cctx, cancel := context.WithTimeout(ctx, replicateTimeout)
			resp, err := cs.Replicate(cctx, &api.ReplicateRequest{
				Id: ch.Id, Version: ch.Version, ChunkSize: chunkSize, Source: src, RateBytes: v.cfg.RepairRate,
				Token: v.chunkToken(ch.Id, api.ChunkToken_MASTER)})
			cancel()
			if err == nil {
				err = resp.Errno.Err()
			}
			if err != nil {
				log.Warn("copying chunk failed", "target", t, "source", src.Server, "err", err, "msg", resp.GetMessage())
				if status.Code(err) == codes.Unavailable {
					r.mu.Lock()
					r.avoid[t] = time.Now()
					r.mu.Unlock()
					break // the target is unreachable: no use trying other sources
				}
				continue
			}
			r.mu.Lock()
			r.copied += resp.Bytes
			r.mu.Unlock()
			r.confirm(ch.Id, ch.Version)
			log.Info("chunk copied", "target", t, "source", src.Server, "bytes", resp.Bytes, "took", time.Since(start))
			added = append(added, t)
			break
		}
	}
	if len(added) == 0 {
		return false
	}
	// 3: the copies join the set at the version they hold.
	if c, ok := change(ch.Version, added, nil, nil, false); ok {
		var set []string
		for _, rep := range c.Replicas {
			set = append(set, rep.Server)
		}
		r.mu.Lock()
		total := r.copied
		r.mu.Unlock()
		log.Info("chunk re-replicated", "added", added, "replicas", set, "version", c.Version, "copied_since_takeover", total)
		return len(added) == j.need
	}
	return false
}

const (
	// targetFresh: a repair copies only to servers heard from this
	// recently (chunkservers heartbeat every second by default).
	targetFresh = 3 * time.Second
	// repairRetry: how long a chunk whose repair fell short waits before
	// the next attempt (each attempt fences it).
	repairRetry = 5 * time.Second
)

// replicateTimeout bounds one chunk copy (64 MiB at the default rate
// takes well under a second on a LAN; a throttled copy takes longer).
const replicateTimeout = 10 * time.Minute

// placeAfterFailover places a new chunk like place, but a leader that has
// not yet heard from every registered chunkserver since it took over
// waits for their heartbeats (at most ServerDeadAfter from the takeover)
// before concluding that no server has room: a failover is not ENOSPC.
func (v *service) placeAfterFailover(ctx context.Context, l *api.Layout) []string {
	for {
		out := v.place(l)
		if len(out) > 0 || !v.awaitingHeartbeats() {
			return out
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// awaitingHeartbeats says whether this leader took over recently and some
// registered chunkserver has not sent it a heartbeat yet.
func (v *service) awaitingHeartbeats() bool {
	registered := v.fsm.serverList()
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if now.Sub(v.promoted) > v.cfg.ServerDeadAfter {
		return false
	}
	for _, s := range registered {
		if v.servers[s.id] == nil {
			return true
		}
	}
	return false
}

// move carries out a drain job on fenced chunk ch: each copy on a
// draining server is copied to a target (for EC, the shard itself), then
// the targets join and the draining copies leave in one change, so the
// chunk never has fewer copies than before. It says whether every move
// was done.
func (r *repairer) move(ctx context.Context, j repairJob, ch *api.Chunk, targets []string,
	change func(version uint64, add []string, addShards []uint32, drop []string, fence bool) (*api.Chunk, bool)) bool {
	v := r.v
	log := v.srv.log.With("chunk", ch.Id, "ino", j.c.ino, "index", j.c.index)
	var add, drop []string
	var shards []uint32
	for i, d := range j.moves {
		if i >= len(targets) {
			break
		}
		from := slices.IndexFunc(ch.Replicas, func(rep *api.Replica) bool { return rep.Server == d })
		cs, ok := v.chunkClient(targets[i])
		if from < 0 || !ok {
			continue
		}
		sources := ch.Replicas
		if j.c.ec {
			sources = ch.Replicas[from : from+1] // a shard is copied, not decoded
		}
		for _, src := range sources {
			cctx, cancel := context.WithTimeout(ctx, replicateTimeout)
			resp, err := cs.Replicate(cctx, &api.ReplicateRequest{Id: ch.Id, Shard: ch.Replicas[from].Shard, Version: ch.Version,
				ChunkSize: replicaSize(ch.GetLayout()), Source: src, RateBytes: v.cfg.RepairRate,
				Token: v.chunkToken(ch.Id, api.ChunkToken_MASTER)})
			cancel()
			if err == nil {
				err = resp.Errno.Err()
			}
			if err != nil {
				log.Warn("copying chunk off a draining server failed", "target", targets[i], "source", src.Server, "err", err, "msg", resp.GetMessage())
				if status.Code(err) == codes.Unavailable {
					r.mu.Lock()
					r.avoid[targets[i]] = time.Now()
					r.mu.Unlock()
					break // the target is unreachable
				}
				continue
			}
			r.mu.Lock()
			r.copied += resp.Bytes
			r.mu.Unlock()
			add, drop = append(add, targets[i]), append(drop, d)
			shards = append(shards, ch.Replicas[from].Shard)
			break
		}
	}
	if len(add) == 0 {
		return false
	}
	if !j.c.ec {
		shards = nil
	}
	c, ok := change(ch.Version, add, shards, drop, false)
	if !ok {
		return false
	}
	// The drop moved the version on: every copy, the new ones too, takes it.
	if failed, _ := v.pushChunk(ctx, c, 0, "", false); len(failed) > 0 {
		log.Warn("moved chunk: some copies did not take the new version", "failed", failed)
	}
	log.Info("chunk moved off draining servers", "from", drop, "to", add, "version", c.Version)
	return len(add) == len(j.moves)
}
