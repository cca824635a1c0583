package master

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"dfs/api"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type testGroup struct {
	t       *testing.T
	cfgs    []Config
	servers []*Server
	regs    []*prometheus.Registry // each server's metrics, fresh at each start
}

func startGroup(t *testing.T, n int) *testGroup {
	g := &testGroup{t: t}
	cluster := map[string]string{}
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("m%d", i+1)
		c := Config{ID: id, DataDir: filepath.Join(dir, id), Listen: freeAddr(t), RaftAddr: freeAddr(t),
			HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
			SessionGrace: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		cluster[id] = c.RaftAddr
		g.cfgs = append(g.cfgs, c)
	}
	g.servers = make([]*Server, n)
	g.regs = make([]*prometheus.Registry, n)
	for i := range g.cfgs {
		g.cfgs[i].Cluster = cluster
		g.start(i)
	}
	t.Cleanup(func() {
		for _, s := range g.servers {
			if s != nil {
				s.Close()
			}
		}
	})
	return g
}

func (g *testGroup) start(i int) {
	cfg := g.cfgs[i]
	g.regs[i] = prometheus.NewRegistry()
	cfg.Metrics = g.regs[i]
	s, err := New(cfg)
	if err != nil {
		g.t.Fatal(err)
	}
	go s.Serve()
	g.servers[i] = s
}

func (g *testGroup) stop(i int) {
	g.servers[i].Close()
	g.servers[i] = nil
}

// call runs f against the leader, following NotLeader hints, until it
// succeeds or 20 s pass.
func (g *testGroup) call(f func(api.MasterClient) error) {
	g.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	addr := g.cfgs[0].Listen
	for i := 0; ; i++ {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			g.t.Fatal(err)
		}
		err = f(api.NewMasterClient(conn))
		conn.Close()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("no leader answered: %v", err)
		}
		if nl, ok := api.LeaderHint(err); ok && nl.LeaderAddr != "" {
			addr = nl.LeaderAddr
		} else {
			addr = g.cfgs[i%len(g.cfgs)].Listen
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (g *testGroup) leader() int {
	for i, s := range g.servers {
		if s != nil && s.svc.isReady() {
			return i
		}
	}
	return -1
}

func TestGroupFailoverKeepsStateAndDeduplicates(t *testing.T) {
	g := startGroup(t, 3)
	ctx := context.Background()
	var sess uint64
	g.call(func(c api.MasterClient) error {
		r, err := c.Mutate(ctx, &api.MutateRequest{Op: &api.Op{Op: &api.Op_OpenSession{OpenSession: &api.OpenSessionOp{Client: "t"}}}})
		if err == nil {
			sess = r.Session
		}
		return err
	})
	create := &api.MutateRequest{Session: sess, Seq: 1, Caller: root, Op: &api.Op{Op: &api.Op_Create{Create: &api.CreateOp{Parent: api.RootIno, Name: "f", Exclusive: true, Mode: 0o644}}}}
	var ino uint64
	g.call(func(c api.MasterClient) error {
		r, err := c.Mutate(ctx, create)
		if err == nil {
			if r.Errno != api.Errno_OK {
				t.Fatalf("create: %v", r.Errno)
			}
			ino = r.Attr.Ino
		}
		return err
	})
	old := g.leader()
	if old < 0 {
		t.Fatal("no ready leader after a successful call")
	}
	g.stop(old)
	// The same request retried on the new leader answers the first answer.
	g.call(func(c api.MasterClient) error {
		r, err := c.Mutate(ctx, create)
		if err == nil && (r.Errno != api.Errno_OK || r.Attr.Ino != ino) {
			t.Fatalf("retried create after failover: %v ino %d, want OK ino %d", r.Errno, r.GetAttr().GetIno(), ino)
		}
		return err
	})
	g.call(func(c api.MasterClient) error {
		r, err := c.Lookup(ctx, &api.LookupRequest{Parent: api.RootIno, Name: "f"})
		if err == nil && (r.Errno != api.Errno_OK || r.Attr.Ino != ino) {
			t.Fatalf("lookup after failover: %v", r.Errno)
		}
		return err
	})
	// The session survived the failover (grace) and keeps alive.
	g.call(func(c api.MasterClient) error {
		r, err := c.KeepAlive(ctx, &api.KeepAliveRequest{Session: sess})
		if err == nil && r.Errno != api.Errno_OK {
			t.Fatalf("keepalive after failover: %v", r.Errno)
		}
		return err
	})
	// Restart the old leader from its data: it catches up.
	g.start(old)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if a, e := g.servers[old].fsm.Lookup(api.RootIno, "f"); e == api.Errno_OK && a.Ino == ino {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("restarted master did not catch up")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSessionExpiresWithoutKeepAlive(t *testing.T) {
	g := startGroup(t, 1)
	ctx := context.Background()
	var sess uint64
	g.call(func(c api.MasterClient) error {
		r, err := c.Mutate(ctx, &api.MutateRequest{Op: &api.Op{Op: &api.Op_OpenSession{OpenSession: &api.OpenSessionOp{TtlNs: int64(300 * time.Millisecond)}}}})
		if err == nil {
			sess = r.Session
		}
		return err
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		var alive bool
		g.call(func(c api.MasterClient) error {
			r, err := c.KeepAlive(ctx, &api.KeepAliveRequest{Session: 999})
			_ = r
			return err
		})
		g.servers[0].fsm.mu.RLock()
		_, alive = g.servers[0].fsm.sessions[sess]
		g.servers[0].fsm.mu.RUnlock()
		if !alive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("session without keepalives did not expire")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRestartFromSnapshotAndLogTail snapshots mid-way, keeps writing, then
// restarts every master: state comes back from snapshot plus log tail.
func TestRestartFromSnapshotAndLogTail(t *testing.T) {
	g := startGroup(t, 3)
	ctx := context.Background()
	mkdir := func(name string) {
		g.call(func(c api.MasterClient) error {
			r, err := c.Mutate(ctx, &api.MutateRequest{Caller: root, Op: &api.Op{Op: &api.Op_Mkdir{Mkdir: &api.MkdirOp{Parent: api.RootIno, Name: name, Mode: 0o755}}}})
			if err == nil && r.Errno != api.Errno_OK {
				t.Fatalf("mkdir %s: %v", name, r.Errno)
			}
			return err
		})
	}
	for i := 0; i < 20; i++ {
		mkdir(fmt.Sprintf("before%d", i))
	}
	for _, s := range g.servers {
		if err := s.Raft().Snapshot().Error(); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
	}
	for i := 0; i < 20; i++ {
		mkdir(fmt.Sprintf("after%d", i))
	}
	for i := range g.servers {
		g.stop(i)
	}
	for i := range g.servers {
		g.start(i)
	}
	g.call(func(c api.MasterClient) error {
		r, err := c.ReadDir(ctx, &api.ReadDirRequest{Ino: api.RootIno})
		if err == nil && len(r.Entries) != 40 {
			t.Fatalf("after restart the root lists %d entries, want 40", len(r.Entries))
		}
		return err
	})
}
