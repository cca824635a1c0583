package chunk

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"dfs/api"
	"dfs/ec"
)

// ecSetup makes chunk id an ec:4+2 chunk on six servers, shard i on
// ss[i], with ss[4] (a parity shard) as primary.
func ecSetup(t *testing.T, ss []*testServer, id, version uint64) []*api.Replica {
	t.Helper()
	return ecPush(t, ss, id, version, false)
}

// ecPush is ecSetup with SetChunk's new_chunk as given.
func ecPush(t *testing.T, ss []*testServer, id, version uint64, newChunk bool) []*api.Replica {
	t.Helper()
	reps := replicas(ss)
	for i, r := range reps {
		r.Shard = uint32(i)
	}
	for i, s := range ss {
		r, err := s.c.SetChunk(ctxT(t), &api.SetChunkRequest{Id: id, Shard: uint32(i), Version: version,
			ChunkSize: ec.ShardSize(1<<20, 4), Primary: ss[4].ID(), LeaseNs: int64(time.Minute), Replicas: reps, NewChunk: newChunk})
		if err != nil || r.Errno != api.Errno_OK {
			t.Fatalf("SetChunk on %s: %v %v %s", s.ID(), err, r.GetErrno(), r.GetMessage())
		}
	}
	return reps
}

// ecShards reads every shard whole, zero-padded to the shard size.
func ecShards(t *testing.T, ss []*testServer, id, version uint64) [][]byte {
	t.Helper()
	size := ec.ShardSize(1<<20, 4)
	out := make([][]byte, len(ss))
	for i, s := range ss {
		b, err := api.ReadRange(ctxT(t), s.c, id, uint32(i), version, 0, size, nil, 5*time.Second)
		if err != nil {
			t.Fatalf("reading shard %d: %v", i, err)
		}
		out[i] = append(b, make([]byte, size-uint64(len(b)))...)
	}
	return out
}

// checkStripes says whether the data shards hold want and the parity
// agrees with them.
func checkStripes(t *testing.T, c *ec.Codec, shards [][]byte, want []byte, what string) {
	t.Helper()
	got := make([]byte, len(want))
	c.Join(shards, got)
	for j := range got {
		if got[j] != want[j] {
			t.Fatalf("%s: chunk byte %d is %#x, want %#x", what, j, got[j], want[j])
		}
	}
	if ok, err := c.Verify(shards); !ok || err != nil {
		t.Fatalf("%s: parity disagrees with data (%v)", what, err)
	}
}

// TestECPrimaryWrites drives the primary with random writes and zeroings
// (partial stripes, whole stripes, to the end) and checks after each that
// the data shards hold a reference copy and the parity agrees.
func TestECPrimaryWrites(t *testing.T) {
	ss := startServers(t, 6)
	reps := ecSetup(t, ss, 7, 1)
	c, _ := ec.New(4, 2)
	capacity := int(ec.ShardSize(1<<20, 4)) * 4
	ref := make([]byte, capacity)
	rnd := rand.New(rand.NewPCG(1, 2))
	send := func(req *api.WriteRequest) {
		t.Helper()
		req.Id, req.Shard, req.Version, req.Forward, req.DataShards, req.ParityShards = 7, 4, 1, reps, 4, 2
		r, err := ss[4].c.Write(ctxT(t), req)
		if err != nil || r.Errno != api.Errno_OK {
			t.Fatalf("EC write %d bytes / zero %d at %d: %v %v %s", len(req.Data), req.ZeroLength, req.Offset, err, r.GetErrno(), r.GetMessage())
		}
	}
	for i := range 60 {
		off := rnd.IntN(capacity)
		n := 1 + rnd.IntN(min(capacity-off, []int{100, 70000, 600000}[rnd.IntN(3)]))
		var what string
		if rnd.IntN(5) == 0 {
			// Whole stripes the writer encoded.
			ss := int(c.StripeSize())
			off = off / ss * ss
			n = (1 + rnd.IntN(min(8, (capacity-off)/ss))) * ss
			b := make([]byte, n)
			for j := range b {
				b[j] = byte(rnd.Uint32() | 1)
			}
			shards := c.Split(b)
			if err := c.Encode(shards); err != nil {
				t.Fatal(err)
			}
			send(&api.WriteRequest{Offset: uint64(off), ShardData: shards})
			copy(ref[off:], b)
			what = "encoded write"
		} else if rnd.IntN(4) == 0 {
			if rnd.IntN(2) == 0 {
				n = capacity - off // to the end: a truncate
			}
			send(&api.WriteRequest{Offset: uint64(off), ZeroLength: uint64(n)})
			clear(ref[off : off+n])
			what = "zero"
		} else {
			b := make([]byte, n)
			for j := range b {
				b[j] = byte(rnd.Uint32() | 1)
			}
			send(&api.WriteRequest{Offset: uint64(off), Data: b})
			copy(ref[off:], b)
			what = "write"
		}
		checkStripes(t, c, ecShards(t, ss, 7, 1), ref, fmt.Sprintf("%s %d, [%d,+%d)", what, i, off, n))
	}
	// Encoded writes that are not whole stripes, or not one per shard,
	// are refused.
	for _, bad := range []struct {
		off    uint64
		shards [][]byte
	}{
		{100, c.Split(make([]byte, c.StripeSize()))},
		{0, c.Split(make([]byte, c.StripeSize()))[:5]},
		{0, [][]byte{{1}, {2}, {3}, {4}, {5}, {6}}},
	} {
		r, err := ss[4].c.Write(ctxT(t), &api.WriteRequest{Id: 7, Shard: 4, Version: 1, Forward: reps, DataShards: 4, ParityShards: 2,
			Offset: bad.off, ShardData: bad.shards})
		if err != nil || r.Errno != api.Errno_EINVAL {
			t.Errorf("malformed encoded write at %d, %d shards: %v %v, want EINVAL", bad.off, len(bad.shards), err, r.GetErrno())
		}
	}
	// A plain (replicated-style) write to an EC shard is refused.
	r, err := ss[4].c.Write(ctxT(t), &api.WriteRequest{Id: 7, Shard: 4, Version: 1, Forward: reps, Data: []byte("raw")})
	if err != nil || r.Errno != api.Errno_EINVAL {
		t.Errorf("plain write to shard 4: %v %v, want EINVAL", err, r.GetErrno())
	}
	// A write beyond the chunk is refused.
	r, err = ss[4].c.Write(ctxT(t), &api.WriteRequest{Id: 7, Shard: 4, Version: 1, Forward: reps, DataShards: 4, ParityShards: 2,
		Offset: uint64(capacity - 1), Data: []byte("xy")})
	if err != nil || r.Errno != api.Errno_EFBIG {
		t.Fatalf("write past the chunk: %v %v, want EFBIG", err, r.GetErrno())
	}
}

// TestECReencodeAndRebuild: parity spoiled behind the primary's back is
// recomputed by a re-encode (no lease needed), and a lost shard is
// rebuilt on another server by decoding the others.
func TestECReencodeAndRebuild(t *testing.T) {
	ss := startServers(t, 7)
	reps := ecSetup(t, ss[:6], 8, 1)
	c, _ := ec.New(4, 2)
	data := make([]byte, 300000)
	for i := range data {
		data[i] = byte(i*13 + 1)
	}
	r, err := ss[4].c.Write(ctxT(t), &api.WriteRequest{Id: 8, Shard: 4, Version: 1, Forward: reps, DataShards: 4, ParityShards: 2, Data: data})
	if err != nil || r.Errno != api.Errno_OK {
		t.Fatalf("write: %v %v %s", err, r.GetErrno(), r.GetMessage())
	}
	ref := make([]byte, int(ec.ShardSize(1<<20, 4))*4)
	copy(ref, data)
	// Spoil parity shard 5 as a primary dying mid-write would, in the
	// first stripe and the second (the re-encode's first round reads
	// one cell, later rounds more).
	for _, off := range []uint64{1000, ec.CellSize + 1000} {
		r, err = ss[5].c.Write(ctxT(t), &api.WriteRequest{Id: 8, Shard: 5, Version: 1, Forwarded: true, Offset: off, Data: []byte("garbage")})
		if err != nil || r.Errno != api.Errno_OK {
			t.Fatalf("spoiling parity at %d: %v %v", off, err, r.GetErrno())
		}
	}
	if ok, _ := c.Verify(ecShards(t, ss[:6], 8, 1)); ok {
		t.Fatal("spoiled parity still verifies")
	}
	r, err = ss[5].c.Write(ctxT(t), &api.WriteRequest{Id: 8, Shard: 5, Version: 1, Forward: reps, DataShards: 4, ParityShards: 2, Reencode: true})
	if err != nil || r.Errno != api.Errno_OK {
		t.Fatalf("re-encode: %v %v %s", err, r.GetErrno(), r.GetMessage())
	}
	checkStripes(t, c, ecShards(t, ss[:6], 8, 1), ref, "after re-encode")
	// Rebuild data shard 1 on ss[6] from the others, as the repair loop
	// asks after losing ss[1].
	others := append(append([]*api.Replica{}, reps[:1]...), reps[2:]...)
	rr, err := ss[6].c.Replicate(ctxT(t), &api.ReplicateRequest{Id: 8, Shard: 1, Version: 1, ChunkSize: ec.ShardSize(1<<20, 4),
		Source: others[0], DataShards: 4, ParityShards: 2, Sources: others})
	if err != nil || rr.Errno != api.Errno_OK {
		t.Fatalf("rebuild: %v %v %s", err, rr.GetErrno(), rr.GetMessage())
	}
	shards := ecShards(t, ss[:6], 8, 1)
	rebuilt := ecShards(t, []*testServer{ss[0], ss[6]}, 8, 1)[1]
	if !bytes.Equal(rebuilt, shards[1]) {
		t.Fatal("rebuilt shard 1 differs from the lost one")
	}
}

// TestECFreshChunkSkipsSettling: the first write to a chunk its primary
// created new (SetChunk's new_chunk) at version 1 trusts the shards to
// be empty and consistent (no earlier primary can have written them), so
// it neither settles nor re-encodes. A chunk whose file already existed
// when SetChunk named the primary (a repeated push), or created by a
// push the master did not mark new (a lease renewal reaching a server
// that lost its copy), is re-encoded first, as after a restart. Parity
// spoiled behind the primary's back shows which path a write took.
func TestECFreshChunkSkipsSettling(t *testing.T) {
	ss := startServers(t, 6)
	c, _ := ec.New(4, 2)
	spoil := func(id uint64) {
		r, err := ss[5].c.Write(ctxT(t), &api.WriteRequest{Id: id, Shard: 5, Version: 1, Forwarded: true, Offset: 10000, Data: []byte("garbage")})
		if err != nil || r.Errno != api.Errno_OK {
			t.Fatalf("spoiling parity: %v %v", err, r.GetErrno())
		}
	}
	write := func(id uint64, reps []*api.Replica) {
		r, err := ss[4].c.Write(ctxT(t), &api.WriteRequest{Id: id, Shard: 4, Version: 1, Forward: reps, DataShards: 4, ParityShards: 2, Data: bytes.Repeat([]byte{7}, 4096)})
		if err != nil || r.Errno != api.Errno_OK {
			t.Fatalf("write: %v %v %s", err, r.GetErrno(), r.GetMessage())
		}
	}
	reps := ecPush(t, ss, 20, 1, true)
	spoil(20)
	write(20, reps)
	if ok, _ := c.Verify(ecShards(t, ss, 20, 1)); ok {
		t.Error("the first write to a fresh chunk re-encoded it")
	}
	reps = ecPush(t, ss, 21, 1, true)
	ecPush(t, ss, 21, 1, true) // pushed again: the primary's file exists
	spoil(21)
	write(21, reps)
	if ok, _ := c.Verify(ecShards(t, ss, 21, 1)); !ok {
		t.Error("a chunk pushed twice was written without re-encoding")
	}
	reps = ecPush(t, ss, 22, 1, false)
	spoil(22)
	write(22, reps)
	if ok, _ := c.Verify(ecShards(t, ss, 22, 1)); !ok {
		t.Error("a chunk the master did not call new was written without re-encoding")
	}
}
