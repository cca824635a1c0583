package master

import (
	"context"
	"testing"
	"time"

	"dfs/api"
	"dfs/metrics/metricstest"
)

// gather reads master i's metrics as a scrape would.
func (g *testGroup) gather(i int) metricstest.Families {
	g.t.Helper()
	f, err := metricstest.Gather(g.regs[i])
	if err != nil {
		g.t.Fatalf("gathering master %d's metrics: %v", i, err)
	}
	return f
}

// TestMetrics checks what a group of three masters exports: one leader,
// followers that heard from it, the commit latency of the mutations
// made, the RPCs by method and op, sessions and their expiry.
func TestMetrics(t *testing.T) {
	g := startGroup(t, 3)
	ctx := context.Background()
	var sess uint64
	g.call(func(c api.MasterClient) error {
		r, err := c.Mutate(ctx, &api.MutateRequest{Op: &api.Op{Op: &api.Op_OpenSession{OpenSession: &api.OpenSessionOp{TtlNs: int64(time.Hour)}}}})
		sess = r.GetSession()
		return err
	})
	g.call(func(c api.MasterClient) error {
		r, err := c.Mutate(ctx, &api.MutateRequest{Session: sess, Seq: 1, Caller: root, Op: &api.Op{Op: &api.Op_Mkdir{Mkdir: &api.MkdirOp{Parent: api.RootIno, Name: "d", Mode: 0o755}}}})
		if err == nil && r.Errno != api.Errno_OK {
			t.Fatalf("mkdir: %v %s", r.Errno, r.Message)
		}
		return err
	})
	// A short-lived session that the leader expires.
	g.call(func(c api.MasterClient) error {
		_, err := c.Mutate(ctx, &api.MutateRequest{Op: &api.Op{Op: &api.Op_OpenSession{OpenSession: &api.OpenSessionOp{TtlNs: int64(300 * time.Millisecond)}}}})
		return err
	})
	leader := g.leader()
	if leader < 0 {
		t.Fatal("no leader")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		lf := g.gather(leader)
		expired, _ := lf.Sum("dfs_master_sessions_expired_total")
		sessions, _ := lf.Sum("dfs_master_sessions")
		if expired == 1 && sessions == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions %v, expired %v; want 1 and 1", sessions, expired)
		}
		time.Sleep(100 * time.Millisecond)
	}

	leaders := 0
	for i := range g.servers {
		f := g.gather(i)
		n, series := f.Sum("dfs_raft_state", "state=Leader")
		if series != 1 {
			t.Errorf("master %d: %d dfs_raft_state{state=Leader} series", i, series)
		}
		leaders += int(n)
		if states, _ := f.Sum("dfs_raft_state"); states != 1 {
			t.Errorf("master %d is in %v states at once", i, states)
		}
		term, _ := f.Sum("dfs_raft_term")
		commit, _ := f.Sum("dfs_raft_commit_index")
		applied, _ := f.Sum("dfs_raft_applied_index")
		voters, _ := f.Sum("dfs_raft_voters")
		if term < 1 || commit < 1 || applied < 1 || voters != 3 {
			t.Errorf("master %d: term %v, commit %v, applied %v, voters %v", i, term, commit, applied, voters)
		}
		contact, series := f.Sum("dfs_raft_last_contact_seconds")
		if series != 1 || i == leader && contact != 0 || contact > 60 {
			t.Errorf("master %d (leader %d): last contact %v s (%d series)", i, leader, contact, series)
		}
		inodes, _ := f.Sum("dfs_master_inodes")
		if inodes != 2 {
			t.Errorf("master %d: %v inodes, want 2 (/ and /d)", i, inodes)
		}
		ready, _ := f.Sum("dfs_master_leader_ready")
		if (ready == 1) != (i == leader) {
			t.Errorf("master %d (leader %d): leader_ready %v", i, leader, ready)
		}
	}
	if leaders != 1 {
		t.Errorf("%d masters say they lead", leaders)
	}

	lf := g.gather(leader)
	if n, _ := lf.Sum("dfs_raft_apply_seconds"); n < 3 {
		t.Errorf("%v Raft entries timed on the leader, want at least 3", n)
	}
	if n, _ := lf.Sum("dfs_rpc_server_handled_total", "service=Master", "method=Mutate", "op=Mkdir", "code=OK"); n != 1 {
		t.Errorf("leader answered %v mkdirs, want 1", n)
	}
	if n, _ := lf.Sum("dfs_rpc_server_handled_total", "method=Mutate", "op=OpenSession", "code=OK"); n != 2 {
		t.Errorf("leader opened %v sessions, want 2", n)
	}
	if n, _ := lf.Sum("dfs_rpc_server_handling_seconds", "method=Mutate", "op=OpenSession"); n < 2 {
		t.Errorf("leader timed %v session opens, want at least 2", n)
	}
	// Without chunkservers: nothing to heal, and every chunk is healthy.
	if n, series := lf.Sum("dfs_master_chunks_by_health"); n != 0 || series != 4 {
		t.Errorf("chunk health: %v chunks in %d series, want 0 in 4", n, series)
	}
	for i := range g.servers {
		if _, series := g.gather(i).Sum("dfs_master_chunks_by_health"); i != leader && series != 0 {
			t.Errorf("follower %d exports chunk health", i)
		}
	}
}
