package master

import (
	"context"
	"testing"
	"time"

	"dfs/api"

	"github.com/hashicorp/raft"
)

// TestShutdownHandsLeadershipOver: a leader stopped with Shutdown hands
// its leadership to another master first, so the group has a leader at
// once rather than after an election timeout (here 5 s, so that an
// election could not pass for a hand-over), and the state stays.
func TestShutdownHandsLeadershipOver(t *testing.T) {
	const slowElection = 5 * time.Second
	g := startGroup(t, 3, func(c *Config) {
		c.HeartbeatTimeout, c.ElectionTimeout = slowElection, slowElection
	})
	ctx := context.Background()
	root := &api.Caller{} // uid 0
	g.call(func(c api.MasterClient) error {
		r, err := c.Mutate(ctx, &api.MutateRequest{Caller: root, Op: &api.Op{Op: &api.Op_Mkdir{Mkdir: &api.MkdirOp{Parent: api.RootIno, Name: "d", Mode: 0o755}}}})
		if err == nil && r.Errno != api.Errno_OK {
			t.Fatalf("mkdir: %v %s", r.Errno, r.Message)
		}
		return err
	})
	old := g.leader()
	if old < 0 {
		t.Fatal("no ready leader after a successful call")
	}
	const drain = 3 * time.Second
	start := time.Now()
	if err := g.servers[old].Shutdown(drain); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	took := time.Since(start)
	g.servers[old] = nil
	if took > drain+time.Second {
		t.Errorf("Shutdown took %v with a drain timeout of %v", took, drain)
	}
	var next int = -1
	for i, s := range g.servers {
		if s != nil && s.Raft().State() == raft.Leader {
			next = i
		}
	}
	if next < 0 {
		t.Fatalf("no other master is leader when the old one's Shutdown returns (after %v; election timeout %v)", took, slowElection)
	}
	g.call(func(c api.MasterClient) error {
		r, err := c.Lookup(ctx, &api.LookupRequest{Parent: api.RootIno, Name: "d", Caller: root})
		if err == nil && r.Errno != api.Errno_OK {
			t.Fatalf("lookup on the new leader: %v", r.Errno)
		}
		return err
	})
	t.Logf("m%d handed over to m%d; Shutdown took %v", old+1, next+1, took.Round(time.Millisecond))
}
