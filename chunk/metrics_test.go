package chunk

import (
	"testing"
	"time"

	"dfs/api"
	"dfs/metrics/metricstest"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetrics writes through a primary to two replicas and reads back:
// the bytes, the RPCs and the space each server exports must match.
func TestMetrics(t *testing.T) {
	var ss []*testServer
	var regs []*prometheus.Registry
	for range 3 {
		reg := prometheus.NewRegistry()
		regs = append(regs, reg)
		ss = append(ss, startServer(t, t.TempDir(), Config{Metrics: reg}))
	}
	gather := func(i int) metricstest.Families {
		f, err := metricstest.Gather(regs[i])
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	const id, size, n = 9, 4 * bs, 100_000
	setChunk(t, ss, id, 1, size, time.Minute)
	if r := write(t, ss, &api.WriteRequest{Id: id, Version: 1, Data: pattern(n, 1)}); r.Errno != api.Errno_OK {
		t.Fatalf("write: %v %s", r.Errno, r.Message)
	}
	readAll(t, ss[1], id, 1, size)
	if r, _ := ss[2].c.Read(ctxT(t), &api.ReadRequest{Id: id, Version: 7, Length: 10}); r.Errno != api.Errno_ESTALE {
		t.Fatalf("read of a newer version: %v", r.Errno)
	}

	for i, want := range []map[string]float64{
		{"primary": n, "forwarded": 0, "repair": 0},
		{"primary": 0, "forwarded": n, "repair": 0},
		{"primary": 0, "forwarded": n, "repair": 0},
	} {
		f := gather(i)
		for reason, bytes := range want {
			if got, _ := f.Sum("dfs_chunk_written_bytes_total", "reason="+reason); got != bytes {
				t.Errorf("server %d: %v bytes written for reason %s, want %v", i, got, reason, bytes)
			}
		}
		if got, _ := f.Sum("dfs_chunk_chunks"); got != 1 {
			t.Errorf("server %d: %v chunks, want 1", i, got)
		}
		used, _ := f.Sum("dfs_chunk_used_bytes")
		capacity, _ := f.Sum("dfs_chunk_capacity_bytes")
		free, _ := f.Sum("dfs_chunk_free_bytes")
		if used < n || capacity <= used || free <= 0 || free > capacity-used {
			t.Errorf("server %d: capacity %v, used %v, free %v", i, capacity, used, free)
		}
		if got, _ := f.Sum("dfs_rpc_server_handled_total", "service=ChunkServer", "method=SetChunk", "code=OK"); got != 1 {
			t.Errorf("server %d: %v SetChunk calls answered OK, want 1", i, got)
		}
	}
	if got, _ := gather(1).Sum("dfs_chunk_read_bytes_total", "reason=rpc"); got != n {
		t.Errorf("server 1: %v bytes read, want %d", got, n)
	}
	if got, _ := gather(0).Sum("dfs_rpc_server_handled_total", "method=Write", "code=OK"); got != 1 {
		t.Errorf("primary: %v writes answered OK, want 1", got)
	}
	if got, _ := gather(2).Sum("dfs_rpc_server_handled_total", "method=Read", "code=ESTALE"); got != 1 {
		t.Errorf("server 2: %v reads answered ESTALE, want 1", got)
	}
	if got, _ := gather(2).Sum("dfs_rpc_server_handling_seconds", "method=Read"); got != 1 {
		t.Errorf("server 2: %v reads timed, want 1", got)
	}
}
