package master

import (
	"testing"
	"time"

	"dfs/api"
)

// repairHarness is a leader service over a harness FSM, with no Raft: the
// deterministic parts of the repair loop and the chunk GC.
func repairHarness(t *testing.T) (*harness, *service, uint64, *api.Chunk) {
	h := newHarness(t)
	for _, id := range []string{"a", "b", "c", "d"} {
		h.apply(&api.Command{RegisterServer: &api.RegisterServerCmd{Id: id, Addr: id + ":1"}})
	}
	f := h.create(api.RootIno, "f")
	h.seq++
	c := h.apply(&api.Command{Session: h.sess, Seq: h.seq, Placement: []string{"a", "b", "c"}, Primary: "a", LeaseNs: 1e12,
		Op: &api.Op{Op: &api.Op_AllocChunk{AllocChunk: &api.AllocChunkOp{Ino: f}}}}).Chunk
	v := &service{fsm: h.f, cfg: Config{ServerDeadAfter: 10 * time.Second, DeadAfter: time.Minute}, servers: map[string]*serverState{}}
	v.repair = newRepairer(v)
	return h, v, f, c
}

func deleted(v *service, server string, reports ...*api.ChunkReport) []uint64 {
	var ids []uint64
	for _, d := range v.gcDeletes(&api.HeartbeatRequest{Server: server, FullReport: true, Chunks: reports}) {
		ids = append(ids, d.Id)
	}
	return ids
}

func TestGCKeepsOlderCopiesUntilTheVersionIsConfirmed(t *testing.T) {
	h, v, f, c := repairHarness(t)
	// A fence whose SetChunk reached no replica: every copy is at 1.
	r := h.apply(&api.Command{Op: &api.Op{Op: &api.Op_ReplicaChange{ReplicaChange: &api.ReplicaChangeOp{
		Ino: f, ChunkId: c.Id, Version: c.Version, Fence: true}}}})
	if r.Chunk.Version != 2 {
		t.Fatalf("fence: %v", r)
	}
	if got := deleted(v, "a", &api.ChunkReport{Id: c.Id, Version: 1}); len(got) != 0 {
		t.Fatalf("deleted %v while no replica is known to hold version 2", got)
	}
	if !v.repair.refresh[c.Id] {
		t.Fatal("an in-set copy older than the master's version did not ask for a refresh")
	}
	// Another replica's full report shows the current version: now the
	// older copy is garbage.
	v.repair.observe(&api.HeartbeatRequest{Server: "b", FullReport: true, Chunks: []*api.ChunkReport{{Id: c.Id, Version: 2}}}, time.Now())
	if got := deleted(v, "a", &api.ChunkReport{Id: c.Id, Version: 1}); len(got) != 1 {
		t.Fatalf("stale copy with a confirmed current one: deleted %v", got)
	}
	// A copy outside the set goes, unless a repair is making it.
	if got := deleted(v, "z", &api.ChunkReport{Id: c.Id, Version: 2}); len(got) != 1 {
		t.Fatalf("copy outside the set: deleted %v", got)
	}
	v.repair.busy[c.Id] = make(chan struct{})
	if got := deleted(v, "z", &api.ChunkReport{Id: c.Id, Version: 2}); len(got) != 0 {
		t.Fatalf("copy a repair is making: deleted %v", got)
	}
	// Chunks no file references go; ids not handed out yet stay.
	if got := deleted(v, "a", &api.ChunkReport{Id: 0, Version: 1}, &api.ChunkReport{Id: 1 << 40, Version: 1}); len(got) != 1 || got[0] != 0 {
		t.Fatalf("unreferenced chunks: deleted %v", got)
	}
	if got := deleted(v, "b", &api.ChunkReport{Id: c.Id, Version: 2}); len(got) != 0 {
		t.Fatalf("the current copy was deleted: %v", got)
	}
}

func TestRepairJobs(t *testing.T) {
	h, v, f, c := repairHarness(t)
	now := time.Now()
	v.promoted = now.Add(-time.Hour)
	seen := func(ago time.Duration) *serverState {
		return &serverState{lastSeen: now.Add(-ago), free: 1 << 40}
	}
	v.servers = map[string]*serverState{"a": seen(0), "b": seen(0), "c": seen(0), "d": seen(0)}
	if jobs := v.repair.jobs(now); len(jobs) != 0 {
		t.Fatalf("healthy chunk: %+v", jobs)
	}
	// c down briefly: wait for it. c down longer than DeadAfter: lost.
	v.servers["c"] = seen(20 * time.Second)
	if jobs := v.repair.jobs(now); len(jobs) != 0 {
		t.Fatalf("server down less than -dead-after: %+v", jobs)
	}
	v.servers["c"] = seen(2 * time.Minute)
	jobs := v.repair.jobs(now)
	if len(jobs) != 1 || jobs[0].need != 1 || len(jobs[0].drop) != 1 || jobs[0].drop[0] != "c" || jobs[0].live != 2 {
		t.Fatalf("lost replica: %+v", jobs)
	}
	if got := v.repair.targets(jobs[0]); len(got) != 1 || got[0] != "d" {
		t.Fatalf("targets: %v", got)
	}
	// A second chunk with one live copy goes first; a corrupt report
	// drops a copy.
	h.seq++
	c2 := h.apply(&api.Command{Session: h.sess, Seq: h.seq, Placement: []string{"a", "b", "c"}, Primary: "a", LeaseNs: 1e12,
		Op: &api.Op{Op: &api.Op_AllocChunk{AllocChunk: &api.AllocChunkOp{Ino: f, Index: 1}}}}).Chunk
	v.repair.observe(&api.HeartbeatRequest{Server: "b", Corrupt: []*api.ChunkReport{{Id: c2.Id, Version: c2.Version}}}, now)
	jobs = v.repair.jobs(now)
	if len(jobs) != 2 || jobs[0].c.id != c2.Id || jobs[0].live != 1 || jobs[0].need != 2 || jobs[1].c.id != c.Id {
		t.Fatalf("fewest live copies first: %+v", jobs)
	}
	// No live copy: nothing to copy from, no job.
	v.servers["a"] = seen(time.Hour)
	for _, j := range v.repair.jobs(now) {
		if j.c.id == c2.Id {
			t.Fatalf("chunk without a live copy got a job: %+v", j)
		}
	}
}
