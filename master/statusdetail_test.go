package master

import (
	"context"
	"math"
	"testing"
	"time"

	"dfs/api"
)

// TestStatusDetail checks the detailed Status of a leader and of a
// follower: who answered, the admin addresses, every master's own view,
// sessions with their opens and locks, and held and waiting locks.
func TestStatusDetail(t *testing.T) {
	g := startGroup(t, 3)
	ctx := context.Background()
	admin := map[string]string{}
	for i, s := range g.servers {
		admin[g.cfgs[i].ID] = "127.0.0.1:1000" + string(rune('1'+i))
		s.SetAdminAddr(admin[g.cfgs[i].ID])
	}
	mutate := func(req *api.MutateRequest) *api.MutateResponse {
		var resp *api.MutateResponse
		g.call(func(c api.MasterClient) error {
			r, err := c.Mutate(ctx, req)
			resp = r
			return err
		})
		if resp.Errno != api.Errno_OK {
			t.Fatalf("%v: %v %s", req.Op, resp.Errno, resp.Message)
		}
		return resp
	}
	openSession := func(client string) uint64 {
		return mutate(&api.MutateRequest{Op: &api.Op{Op: &api.Op_OpenSession{OpenSession: &api.OpenSessionOp{Client: client}}}}).Session
	}
	s1, s2 := openSession("host-a"), openSession("host-b")
	ino := mutate(&api.MutateRequest{Session: s1, Seq: 1, Caller: root, Op: &api.Op{Op: &api.Op_Create{Create: &api.CreateOp{
		Parent: api.RootIno, Name: "db.lock", Mode: 0o100644, Exclusive: true, Open: true}}}}).Attr.Ino
	lock := func(s, seq, owner uint64, typ api.LockType, wait bool) *api.MutateResponse {
		return mutate(&api.MutateRequest{Session: s, Seq: seq, Op: &api.Op{Op: &api.Op_Lock{Lock: &api.LockOp{
			Ino: ino, Kind: api.LockKind_FLOCK, Owner: owner, Type: typ, End: math.MaxUint64, Pid: 7, Wait: wait}}}})
	}
	lock(s1, 2, 0xa, api.LockType_WRITE, false)
	if r := lock(s2, 1, 0xb, api.LockType_READ, true); !r.Waiting {
		t.Fatal("second lock did not wait")
	}

	leader := g.leader()
	// Masters register their client addresses with the leader in the
	// background; a master without one cannot be asked.
	var st *api.StatusResponse
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		if st, err = g.servers[leader].Status(ctx, &api.StatusRequest{Detail: true}); err != nil {
			t.Fatal(err)
		}
		registered := 0
		for _, m := range st.Masters {
			if m.Addr != "" {
				registered++
			}
		}
		if registered == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("masters did not register their addresses: %v", st.Masters)
		}
		time.Sleep(100 * time.Millisecond)
	}
	leaderID := g.cfgs[leader].ID
	if st.SelfId != leaderID || st.AdminAddr != admin[leaderID] || st.LeaderAdminAddr != admin[leaderID] {
		t.Errorf("leader answers self %q admin %q leader admin %q", st.SelfId, st.AdminAddr, st.LeaderAdminAddr)
	}
	checkMasters(t, st, leaderID)
	if len(st.SessionList) != 2 {
		t.Fatalf("sessions %v", st.SessionList)
	}
	a, b := st.SessionList[0], st.SessionList[1]
	if a.Id != s1 || a.Client != "host-a" || a.OpenFiles != 1 || a.Locks != 1 || a.ExpiresInNs <= 0 || a.TtlNs <= 0 {
		t.Errorf("session a: %v", a)
	}
	if b.Id != s2 || b.Client != "host-b" || b.OpenFiles != 0 || b.Locks != 0 {
		t.Errorf("session b: %v", b)
	}
	if len(st.LockList) != 2 {
		t.Fatalf("locks %v", st.LockList)
	}
	held, waiting := st.LockList[0], st.LockList[1]
	if held.Waiting || held.Path != "/db.lock" || held.Ino != ino || held.Lock.Session != s1 || held.Lock.Type != api.LockType_WRITE ||
		held.Lock.Owner != 0xa || held.Lock.Sequencer == 0 || held.SinceNs <= 0 {
		t.Errorf("held lock: %v", held)
	}
	if !waiting.Waiting || waiting.Path != "/db.lock" || waiting.Lock.Session != s2 || waiting.Lock.Type != api.LockType_READ {
		t.Errorf("waiting lock: %v", waiting)
	}
	if h := st.ChunkHealth; h == nil || h.Healthy+h.UnderReplicated+h.Missing+h.Degraded != 0 {
		t.Errorf("chunk health of a cluster without chunks: %v", h)
	}

	follower := (leader + 1) % 3
	fst, err := g.servers[follower].Status(ctx, &api.StatusRequest{Detail: true})
	if err != nil {
		t.Fatal(err)
	}
	if fst.SelfId != g.cfgs[follower].ID || fst.LeaderAdminAddr != admin[leaderID] || fst.ChunkHealth != nil {
		t.Errorf("follower answers self %q leader admin %q chunk health %v", fst.SelfId, fst.LeaderAdminAddr, fst.ChunkHealth)
	}
	checkMasters(t, fst, leaderID)

	// Without detail, Status stays cheap: no lists.
	plain, err := g.servers[leader].Status(ctx, &api.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if plain.SelfId != leaderID || plain.SessionList != nil || plain.LockList != nil || plain.ChunkHealth != nil || plain.LeaderAdminAddr != "" {
		t.Errorf("plain status carries detail: %v", plain)
	}

	// A stopped master shows as not answering.
	g.stop(follower)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := g.servers[leader].Status(ctx, &api.StatusRequest{Detail: true})
		if err != nil {
			t.Fatal(err)
		}
		down := ""
		for _, m := range st.Masters {
			if !m.Reachable {
				down += m.Id
			}
		}
		if down == g.cfgs[follower].ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stopped master %s: not answering %q", g.cfgs[follower].ID, down)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkMasters wants every master answering, with leader the only one in
// the Leader role.
func checkMasters(t *testing.T, st *api.StatusResponse, leader string) {
	t.Helper()
	if len(st.Masters) != 3 {
		t.Fatalf("masters %v", st.Masters)
	}
	for _, m := range st.Masters {
		if !m.Reachable || m.AppliedIndex == 0 || (m.State == "Leader") != (m.Id == leader) {
			t.Errorf("%s's view of master %s: %v", st.SelfId, m.Id, m)
		}
	}
}
