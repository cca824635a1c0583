package master

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"dfs/api"

	"google.golang.org/grpc"
)

// fakeShard answers SetChunk; hold makes it take that long, as a primary
// still carrying out a write takes before its order lock is free.
type fakeShard struct {
	api.UnimplementedChunkServerServer
	hold time.Duration

	mu       sync.Mutex
	arrived  time.Time
	answered time.Time
	newChunk bool // the last request's new_chunk
}

func (f *fakeShard) SetChunk(ctx context.Context, req *api.SetChunkRequest) (*api.SetChunkResponse, error) {
	f.mu.Lock()
	f.arrived = time.Now()
	f.newChunk = req.NewChunk
	f.mu.Unlock()
	time.Sleep(f.hold)
	f.mu.Lock()
	f.answered = time.Now()
	f.mu.Unlock()
	return &api.SetChunkResponse{}, nil
}

func serveFake(t *testing.T, f *fakeShard) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	api.RegisterChunkServerServer(g, f)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// fakeShards serves n fake shards, named a, b, c..., shard i on the i-th.
func fakeShards(t *testing.T, n int) ([]*fakeShard, []*api.Replica) {
	shards := make([]*fakeShard, n)
	var reps []*api.Replica
	for i := range shards {
		shards[i] = &fakeShard{}
		reps = append(reps, &api.Replica{Server: string(rune('a' + i)), Addr: serveFake(t, shards[i]), Shard: uint32(i)})
	}
	return shards, reps
}

// pushService is a leader service that can push chunks to fake shards.
func pushService(t *testing.T) *service {
	v := &service{fsm: NewFSM(), srv: &Server{log: slog.New(slog.DiscardHandler)}, conns: map[string]*grpc.ClientConn{}}
	v.repair = newRepairer(v)
	t.Cleanup(func() {
		for _, c := range v.conns {
			c.Close()
		}
	})
	return v
}

// TestPushChunkQuiescesFormerPrimary: a version bump reaches the former
// primary alone first and the other shards only once it has answered, so
// a write it is carrying out is never refused half-way by shards that
// already moved on (the EC write hole, docs/ec.md).
func TestPushChunkQuiescesFormerPrimary(t *testing.T) {
	shards, reps := fakeShards(t, 4)
	const hold = 300 * time.Millisecond
	shards[2].hold = hold // c was primary and is mid-write
	v := pushService(t)
	ch := &api.Chunk{Id: 7, Version: 5, Primary: "d", Replicas: reps,
		Layout: &api.Layout{Kind: api.Layout_EC, DataShards: 2, ParityShards: 2}}
	if failed, _ := v.pushChunk(context.Background(), ch, 0, "c", false); len(failed) > 0 {
		t.Fatalf("push failed on %v", failed)
	}
	for i, s := range shards {
		if s.answered.IsZero() {
			t.Fatalf("shard %d was not told the new version", i)
		}
		if i != 2 && s.arrived.Before(shards[2].answered) {
			t.Errorf("shard %d told the new version %v before the former primary answered", i, shards[2].answered.Sub(s.arrived))
		}
	}
	// Without a former primary in the set, nobody waits for anybody.
	shards[2].hold = 0
	shards[0].hold = hold
	if failed, _ := v.pushChunk(context.Background(), ch, 0, "gone", false); len(failed) > 0 {
		t.Fatalf("push failed on %v", failed)
	}
	for i, s := range shards {
		if i != 0 && !s.arrived.Before(shards[0].answered) {
			t.Errorf("shard %d waited for shard 0 though no former primary was named", i)
		}
	}
}

// TestPushChunkNewChunk: new_chunk reaches every shard exactly when the
// caller says the chunk was just made (a create's first chunk), and not
// on other pushes of the same version.
func TestPushChunkNewChunk(t *testing.T) {
	shards, reps := fakeShards(t, 3)
	v := pushService(t)
	ch := &api.Chunk{Id: 9, Version: 1, Primary: "c", Replicas: reps,
		Layout: &api.Layout{Kind: api.Layout_EC, DataShards: 2, ParityShards: 1}}
	for _, want := range []bool{true, false} {
		if failed, _ := v.pushChunk(context.Background(), ch, 0, "", want); len(failed) > 0 {
			t.Fatalf("push failed on %v", failed)
		}
		for i, s := range shards {
			s.mu.Lock()
			got := s.newChunk
			s.mu.Unlock()
			if got != want {
				t.Errorf("shard %d got new_chunk %v, want %v", i, got, want)
			}
		}
	}
}
