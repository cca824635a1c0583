package master

import (
	"slices"
	"testing"

	"dfs/api"
	"dfs/ec"
)

// ecFile creates an ec:2+2 file and allocates its first chunk on servers
// a..d (parity shards on c and d, so c leads).
func ecFile(t *testing.T, h *harness) (uint64, *api.Chunk) {
	t.Helper()
	d := h.mkdir(api.RootIno, "ec")
	h.must(&api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: d, Name: LayoutXattr, Value: []byte("ec:2+2")}}, api.Errno_OK)
	f := h.create(d, "f")
	h.seq++
	r := h.apply(&api.Command{Session: h.sess, Seq: h.seq, Placement: []string{"a", "b", "c", "d"}, Primary: "c", LeaseNs: 1e12,
		Op: &api.Op{Op: &api.Op_AllocChunk{AllocChunk: &api.AllocChunkOp{Ino: f}}}})
	if r.Errno != api.Errno_OK {
		t.Fatalf("alloc: %v %s", r.Errno, r.Message)
	}
	return f, r.Chunk
}

func shardOf(ch *api.Chunk) map[string]uint32 {
	out := map[string]uint32{}
	for _, r := range ch.Replicas {
		out[r.Server] = r.Shard
	}
	return out
}

// TestECFailureLeavesHoles: a failed shard leaves a hole (shard numbers
// of the others do not move), the version moves on, the lease goes to a
// parity shard first, and no report may leave fewer than K shards.
func TestECFailureLeavesHoles(t *testing.T) {
	h := newHarness(t)
	f, c := ecFile(t, h)
	report := func(version uint64, primary string, failed ...string) *api.MutateResponse {
		return h.apply(&api.Command{Primary: primary, LeaseNs: 1e12, Op: &api.Op{Op: &api.Op_ReportFailure{
			ReportFailure: &api.ReportFailureOp{Ino: f, ChunkId: c.Id, Version: version, Failed: failed}}}})
	}
	r := report(c.Version, "", "a", "c")
	if r.Errno != api.Errno_OK || r.Chunk.Version != c.Version+1 {
		t.Fatalf("dropping shards 0 and 2: %v", r)
	}
	if got := shardOf(r.Chunk); len(got) != 2 || got["b"] != 1 || got["d"] != 3 {
		t.Fatalf("shards after the drop: %v, want b=1 d=3", got)
	}
	if r.Chunk.Primary != "d" {
		t.Fatalf("primary %q, want the surviving parity shard d", r.Chunk.Primary)
	}
	if r2 := report(r.Chunk.Version, "", "b"); r2.Errno != api.Errno_EIO {
		t.Fatalf("dropping below K answered %v", r2.Errno)
	}
	if got := h.f.GetChunks(f, 0, 1).Chunks[0]; len(got.Replicas) != 2 {
		t.Fatalf("refused report changed the shards: %v", got.Replicas)
	}
}

// TestECReplicaChangeFillsHoles: the repair loop's change puts rebuilt
// shards back at their numbers, fences with a version bump, and refuses
// a shard that is taken or a server already in the set.
func TestECReplicaChangeFillsHoles(t *testing.T) {
	h := newHarness(t)
	f, c := ecFile(t, h)
	change := func(version uint64, add []string, shards []uint32, drop []string, fence bool) *api.MutateResponse {
		return h.apply(&api.Command{Op: &api.Op{Op: &api.Op_ReplicaChange{ReplicaChange: &api.ReplicaChangeOp{
			Ino: f, ChunkId: c.Id, Version: version, Add: add, AddShards: shards, Drop: drop, Fence: fence}}}})
	}
	r := change(c.Version, nil, nil, []string{"b"}, true)
	if r.Errno != api.Errno_OK || r.Chunk.Version != c.Version+1 || r.Chunk.Primary != "" {
		t.Fatalf("fence and drop: %v", r)
	}
	v := r.Chunk.Version
	for _, bad := range []struct {
		add    []string
		shards []uint32
	}{
		{[]string{"e"}, []uint32{0}},      // shard 0 is held by a
		{[]string{"a"}, []uint32{1}},      // a is already in the set
		{[]string{"e"}, nil},              // no shard named
		{[]string{"e"}, []uint32{9}},      // no such shard
		{[]string{"e", "f"}, []uint32{1}}, // counts differ
	} {
		if r := change(v, bad.add, bad.shards, nil, false); r.Errno != api.Errno_EINVAL {
			t.Errorf("add %v as shards %v: %v, want EINVAL", bad.add, bad.shards, r.Errno)
		}
	}
	r = change(v, []string{"e"}, []uint32{1}, nil, false)
	if r.Errno != api.Errno_OK || r.Chunk.Version != v {
		t.Fatalf("add e as shard 1: %v", r)
	}
	if got := shardOf(r.Chunk); len(got) != 4 || got["e"] != 1 || got["a"] != 0 || got["d"] != 3 {
		t.Fatalf("shards after the rebuild: %v", got)
	}
	recs := h.f.fileChunks()
	i := slices.IndexFunc(recs, func(rc chunkRecord) bool { return rc.id == c.Id })
	if i < 0 || !recs[i].ec || recs[i].want != 4 || recs[i].dataShards != 2 || recs[i].chunkSize != ec.ShardSize(api.DefaultChunkSize, 2) {
		t.Fatalf("repair record: %+v", recs)
	}
}

// TestLayoutOfOpenFile: an empty file's layout may be set, but not while
// it is open (its openers' data paths follow the layout at open).
func TestLayoutOfOpenFile(t *testing.T) {
	h := newHarness(t)
	f := h.create(api.RootIno, "f")
	set := func(want api.Errno) {
		t.Helper()
		h.must(&api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: f, Name: LayoutXattr, Value: []byte("ec:4+2")}}, want)
	}
	set(api.Errno_OK)
	h.must(&api.Op_Open{Open: &api.OpenOp{Ino: f}}, api.Errno_OK)
	set(api.Errno_EBUSY)
	h.must(&api.Op_Release{Release: &api.ReleaseOp{Ino: f}}, api.Errno_OK)
	set(api.Errno_OK)
}
