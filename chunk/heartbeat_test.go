package chunk

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"dfs/api"
)

// fakeMaster answers heartbeats as a leader would, or points at the leader.
type fakeMaster struct {
	api.UnimplementedMasterServer
	addr string

	mu       sync.Mutex
	leader   string // "": this is the leader; else answer NotLeader naming it
	electing bool   // answer NotLeader naming no leader
	others   []string
	beats    []*api.HeartbeatRequest
	replies  []*api.HeartbeatResponse // consumed one per heartbeat
}

func (m *fakeMaster) Heartbeat(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.electing {
		return nil, api.NotLeaderError("", []string{m.addr})
	}
	if m.leader != "" {
		return nil, api.NotLeaderError(m.leader, m.others)
	}
	m.beats = append(m.beats, req)
	if len(m.replies) > 0 {
		r := m.replies[0]
		m.replies = m.replies[1:]
		return r, nil
	}
	return &api.HeartbeatResponse{}, nil
}

func (m *fakeMaster) heartbeats() []*api.HeartbeatRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*api.HeartbeatRequest(nil), m.beats...)
}

func startMaster(t *testing.T) *fakeMaster {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMaster{addr: ln.Addr().String()}
	g := grpc.NewServer()
	api.RegisterMasterServer(g, m)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestHeartbeats(t *testing.T) {
	follower, leader := startMaster(t), startMaster(t)
	// A master that is down, one that redirects, and the leader known
	// only from the redirect.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	follower.leader, follower.others = leader.addr, []string{follower.addr, leader.addr}

	// Chunks the master will ask to delete: 1 at an equal version (goes),
	// 2 at an older version than held (stays), 3 missing (ignored).
	leader.replies = []*api.HeartbeatResponse{
		{},
		{Delete: []*api.ChunkReport{{Id: 1, Version: 4}, {Id: 2, Version: 1}, {Id: 3, Version: 9}}, WantFullReport: true},
	}

	// The chunks exist before the first heartbeat.
	store := NewMemStore()
	store.Create(Key{ID: 1}, 4, bs)
	store.Create(Key{ID: 2}, 5, bs)
	store.WriteAt(Key{ID: 2}, []byte("keep"), 0)
	s := startServer(t, t.TempDir(), Config{Masters: []string{deadAddr, follower.addr}, Zone: "z1",
		Capacity: 1 << 40, Heartbeat: 20 * time.Millisecond, Store: store})

	waitFor(t, "three heartbeats", func() bool { return len(leader.heartbeats()) >= 3 })
	// Deletes run beside the beats: ask for a full report once chunk 1
	// is gone.
	waitFor(t, "chunk 1 deleted", func() bool { _, err := s.Store().Stat(Key{ID: 1}); return err != nil })
	leader.mu.Lock()
	leader.replies = []*api.HeartbeatResponse{{WantFullReport: true}}
	n := len(leader.beats)
	leader.mu.Unlock()
	waitFor(t, "the full report", func() bool { return len(leader.heartbeats()) >= n+2 })
	beats := leader.heartbeats()
	first := beats[0]
	if !first.FullReport || first.Server != s.ID() || first.Addr != s.Addr() || first.Zone != "z1" || first.Capacity != 1<<40 {
		t.Fatalf("first heartbeat: %+v", first)
	}
	if first.Free == 0 || first.Free > first.Capacity-first.Used {
		t.Fatalf("free %d with capacity %d used %d", first.Free, first.Capacity, first.Used)
	}
	if beats[1].FullReport {
		t.Fatalf("second heartbeat is a full report although none was asked for")
	}
	// The reply to the second asked for a full report: the third is one.
	if !beats[2].FullReport {
		t.Fatalf("third heartbeat is not a full report")
	}
	full := beats[n+1]
	if !full.FullReport {
		t.Fatalf("heartbeat after asking is not a full report")
	}
	if _, err := s.Store().Stat(Key{ID: 1}); err == nil {
		t.Fatal("chunk 1 was not deleted")
	}
	if info, err := s.Store().Stat(Key{ID: 2}); err != nil || info.Version != 5 {
		t.Fatalf("chunk 2 (newer than the master's delete): %v %v", info, err)
	}
	var reported []uint64
	for _, c := range full.Chunks {
		reported = append(reported, c.Id)
		if c.Id == 2 && (c.Version != 5 || c.Size == 0) {
			t.Fatalf("chunk 2 reported as %+v", c)
		}
	}
	if len(reported) != 1 || reported[0] != 2 {
		t.Fatalf("full report after deletes lists %v, want [2]", reported)
	}
	if full.Used == 0 {
		t.Fatal("heartbeat reports nothing used")
	}
}

// TestHeartbeatsDuringDeletes: a batch of deletes that takes long (here
// one waits for a write) does not hold up the heartbeats, or the master
// would count the server as down.
func TestHeartbeatsDuringDeletes(t *testing.T) {
	m := startMaster(t)
	store := NewMemStore()
	store.Create(Key{ID: 1}, 4, bs)
	s := startServer(t, t.TempDir(), Config{Masters: []string{m.addr}, Heartbeat: 20 * time.Millisecond, Store: store})
	waitFor(t, "a heartbeat", func() bool { return len(m.heartbeats()) >= 1 })
	_, unlock, err := s.lockChunk(ctxT(t), Key{ID: 1}) // a write under way
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.replies = []*api.HeartbeatResponse{{Delete: []*api.ChunkReport{{Id: 1, Version: 4}}}}
	n := len(m.beats)
	m.mu.Unlock()
	waitFor(t, "heartbeats while the delete waits", func() bool { return len(m.heartbeats()) >= n+5 })
	if _, err := s.Store().Stat(Key{ID: 1}); err != nil {
		t.Fatalf("chunk 1 deleted under a write: %v", err)
	}
	unlock()
	waitFor(t, "chunk 1 deleted", func() bool { _, err := s.Store().Stat(Key{ID: 1}); return err != nil })
}

func TestHeartbeatsWaitForLeader(t *testing.T) {
	m := startMaster(t)
	m.electing = true
	s := startServer(t, t.TempDir(), Config{Masters: []string{m.addr}, Heartbeat: 20 * time.Millisecond})
	time.Sleep(100 * time.Millisecond)
	m.mu.Lock()
	m.electing = false
	m.mu.Unlock()
	waitFor(t, "a heartbeat once a leader is elected", func() bool { return len(m.heartbeats()) > 0 })
	if hb := m.heartbeats()[0]; !hb.FullReport || hb.Server != s.ID() {
		t.Fatalf("first heartbeat: %+v", hb)
	}
}
