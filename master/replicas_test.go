package master

import (
	"testing"

	"dfs/api"
)

func TestReplicaChange(t *testing.T) {
	h := newHarness(t)
	dir := h.mkdir(api.RootIno, "d")
	f := h.create(dir, "f")
	h.seq++
	c := h.apply(&api.Command{Session: h.sess, Seq: h.seq, Placement: []string{"a", "b", "c"}, Primary: "a", LeaseNs: 1e12,
		Op: &api.Op{Op: &api.Op_AllocChunk{AllocChunk: &api.AllocChunkOp{Ino: f}}}}).Chunk
	change := func(version uint64, add, drop []string, fence bool) *api.MutateResponse {
		return h.apply(&api.Command{Op: &api.Op{Op: &api.Op_ReplicaChange{ReplicaChange: &api.ReplicaChangeOp{
			Ino: f, ChunkId: c.Id, Version: version, Add: add, Drop: drop, Fence: fence}}}})
	}
	servers := func(ch *api.Chunk) []string {
		var s []string
		for _, r := range ch.Replicas {
			s = append(s, r.Server)
		}
		return s
	}
	// Fence and drop: version bumped, lease revoked.
	r := change(c.Version, nil, []string{"b"}, true)
	if r.Errno != api.Errno_OK || r.Chunk.Version != c.Version+1 || r.Chunk.Primary != "" || r.Chunk.LeaseExpiryNs != 0 {
		t.Fatalf("fence+drop: %v", r)
	}
	if got := servers(r.Chunk); len(got) != 2 || got[0] != "a" || got[1] != "c" {
		t.Fatalf("after dropping b: %v", got)
	}
	v := r.Chunk.Version
	// A change against an older version is refused and changes nothing.
	if r := change(c.Version, []string{"d"}, nil, false); r.Errno != api.Errno_ESTALE || r.Chunk.Version != v {
		t.Fatalf("stale change: %v", r)
	}
	// Adding a copy keeps the version its copy was made at.
	r = change(v, []string{"d", "a"}, nil, false)
	if r.Errno != api.Errno_OK || r.Chunk.Version != v {
		t.Fatalf("add: %v", r)
	}
	if got := servers(r.Chunk); len(got) != 3 || got[2] != "d" {
		t.Fatalf("after adding d (and a again): %v", got)
	}
	// Dropping everything is refused.
	if r := change(v, nil, []string{"a", "c", "d"}, false); r.Errno != api.Errno_EIO {
		t.Fatalf("dropping every replica: %v", r.Errno)
	}
	// The next lease bumps the version again and picks a primary.
	h.seq++
	a := h.apply(&api.Command{Session: h.sess, Seq: h.seq, Primary: "c", LeaseNs: 1e12,
		Op: &api.Op{Op: &api.Op_AllocChunk{AllocChunk: &api.AllocChunkOp{Ino: f}}}}).Chunk
	if a.Version != v+1 || a.Primary != "c" {
		t.Fatalf("lease after repair: %v", a)
	}
	// A chunk that is not there.
	h.must(&api.Op_ReplicaChange{ReplicaChange: &api.ReplicaChangeOp{Ino: f, ChunkId: 999, Version: 1}}, api.Errno_ESTALE)

	recs := h.f.fileChunks()
	if len(recs) != 1 || recs[0].id != c.Id || recs[0].want != 3 || recs[0].version != a.Version {
		t.Fatalf("fileChunks: %+v", recs)
	}
	if p := h.f.paths(map[uint64]bool{f: true, dir: true}); p[f] != "/d/f" || p[dir] != "/d" {
		t.Fatalf("paths: %v", p)
	}
	// GC view: versions and sets, 0 for unknown chunks.
	vs, sets, next := h.f.chunkSets([]uint64{c.Id, 12345})
	if vs[0] != a.Version || len(sets[0]) != 3 || vs[1] != 0 || next <= c.Id {
		t.Fatalf("chunkSets: %v %v %d", vs, sets, next)
	}
}
