package master

import (
	"bytes"
	"io"
	"testing"

	"dfs/api"
)

// A create for writing with a placement makes chunk 0 in the same
// command, leased like AllocChunk's; without a placement it makes none,
// and a retried create answers the same chunk.
func TestCreateWithFirstChunk(t *testing.T) {
	h := newHarness(t)
	create := func(seq uint64, name string, placement ...string) *api.MutateResponse {
		return h.apply(&api.Command{Session: h.sess, Seq: seq, Placement: placement, Primary: "cs2", LeaseNs: int64(60e9),
			Op: &api.Op{Op: &api.Op_Create{Create: &api.CreateOp{Parent: api.RootIno, Name: name, Mode: 0o644,
				Exclusive: true, Open: true, FirstChunk: true}}}})
	}
	r := create(1, "f", "cs2", "cs1")
	if r.Errno != api.Errno_OK || r.Chunk == nil {
		t.Fatalf("create: %v", r)
	}
	if c := r.Chunk; c.Index != 0 || c.Version != 1 || c.Primary != "cs2" || len(c.Replicas) != 2 || c.LeaseExpiryNs != h.now+int64(60e9) {
		t.Fatalf("first chunk: %v", c)
	}
	got := h.f.GetChunks(r.Attr.Ino, 0, 4)
	if len(got.Chunks) != 1 || got.Chunks[0].Id != r.Chunk.Id {
		t.Fatalf("chunk map after create: %v", got.Chunks)
	}
	if again := create(1, "f", "cs3"); again.Chunk.GetId() != r.Chunk.Id {
		t.Fatalf("retried create answered chunk %v, first %v", again.Chunk, r.Chunk)
	}
	if r := create(2, "g"); r.Errno != api.Errno_OK || r.Chunk != nil || len(h.f.GetChunks(r.Attr.Ino, 0, 4).Chunks) != 0 {
		t.Fatalf("create without placement: %v", r)
	}
	// Not for an existing file opened by a non-exclusive create.
	ex := h.apply(&api.Command{Session: h.sess, Seq: 3, Placement: []string{"cs1"}, Primary: "cs1",
		Op: &api.Op{Op: &api.Op_Create{Create: &api.CreateOp{Parent: api.RootIno, Name: "g", FirstChunk: true}}}})
	if ex.Errno != api.Errno_OK || ex.Chunk != nil {
		t.Fatalf("create of an existing file: %v", ex)
	}
}

// Namespace changes answer their directories' new attributes.
func TestMutationsAnswerParent(t *testing.T) {
	h := newHarness(t)
	d := h.mkdir(api.RootIno, "d")
	e := h.mkdir(api.RootIno, "e")
	check := func(what string, r *api.MutateResponse, dir uint64) {
		t.Helper()
		want := h.attr(dir)
		if r.Parent.GetIno() != dir || r.Parent.CtimeNs != want.CtimeNs || r.Parent.Nlink != want.Nlink {
			t.Fatalf("%s: parent %v, want %v", what, r.Parent, want)
		}
	}
	check("create", h.must(&api.Op_Create{Create: &api.CreateOp{Parent: d, Name: "f"}}, api.Errno_OK), d)
	check("mkdir", h.must(&api.Op_Mkdir{Mkdir: &api.MkdirOp{Parent: d, Name: "sub"}}, api.Errno_OK), d)
	check("symlink", h.must(&api.Op_Symlink{Symlink: &api.SymlinkOp{Parent: d, Name: "s", Target: "f"}}, api.Errno_OK), d)
	f, _ := h.f.Lookup(d, "f")
	check("link", h.must(&api.Op_Link{Link: &api.LinkOp{Ino: f.Ino, NewParent: e, NewName: "l"}}, api.Errno_OK), e)
	check("unlink", h.must(&api.Op_Unlink{Unlink: &api.UnlinkOp{Parent: e, Name: "l"}}, api.Errno_OK), e)
	check("rmdir", h.must(&api.Op_Rmdir{Rmdir: &api.RmdirOp{Parent: d, Name: "sub"}}, api.Errno_OK), d)
	r := h.must(&api.Op_Rename{Rename: &api.RenameOp{Parent: d, Name: "f", NewParent: e, NewName: "g"}}, api.Errno_OK)
	check("rename source", r, d)
	if r.NewParent.GetIno() != e || r.NewParent.CtimeNs != h.attr(e).CtimeNs {
		t.Fatalf("rename target: %v", r.NewParent)
	}
}

// Releases carried by a request end opens before its op, once: a retry
// of the request does not release again.
func TestReleasesRideOnRequests(t *testing.T) {
	h := newHarness(t)
	f := h.must(&api.Op_Create{Create: &api.CreateOp{Parent: api.RootIno, Name: "f", Open: true}}, api.Errno_OK).Attr.Ino
	h.must(&api.Op_Open{Open: &api.OpenOp{Ino: f}}, api.Errno_OK) // open twice
	h.must(&api.Op_Unlink{Unlink: &api.UnlinkOp{Parent: api.RootIno, Name: "f"}}, api.Errno_OK)
	carry := func() *api.Command {
		return &api.Command{Session: h.sess, Seq: 50, Releases: []uint64{f},
			Op: &api.Op{Op: &api.Op_Mkdir{Mkdir: &api.MkdirOp{Parent: api.RootIno, Name: "d"}}}}
	}
	if r := h.apply(carry()); r.Errno != api.Errno_OK {
		t.Fatal(r.Errno)
	}
	if r := h.apply(carry()); r.Errno != api.Errno_OK {
		t.Fatal(r.Errno)
	}
	if _, e := h.f.GetAttr(f); e != api.Errno_OK {
		t.Fatal("a retried request released a second time: the inode open once more is gone")
	}
	h.apply(&api.Command{Session: h.sess, Seq: 51, Releases: []uint64{f},
		Op: &api.Op{Op: &api.Op_Release{Release: &api.ReleaseOp{}}}})
	h.reclaim(f)
	if _, e := h.f.GetAttr(f); e != api.Errno_ENOENT {
		t.Fatal("inode survived its last release")
	}
}

// An orphan is freed only by the leader's reclaim, and not once an open
// recorded in Raft holds it again; restoring a snapshot finds orphans.
func TestOrphansWaitForReclaim(t *testing.T) {
	h := newHarness(t)
	f := h.create(api.RootIno, "f")
	h.must(&api.Op_Unlink{Unlink: &api.UnlinkOp{Parent: api.RootIno, Name: "f"}}, api.Errno_OK)
	if a := h.attr(f); a.Nlink != 0 || !h.f.orphans[f] {
		t.Fatalf("unlinked file: nlink %d, orphan %v", a.Nlink, h.f.orphans[f])
	}
	snap, _ := h.f.Snapshot()
	restored := NewFSM()
	if err := restored.Restore(io.NopCloser(bytes.NewReader(snap.(*fsmSnapshot).data))); err != nil {
		t.Fatal(err)
	}
	if !restored.orphans[f] {
		t.Fatal("restored state lost the orphan")
	}
	h.must(&api.Op_Open{Open: &api.OpenOp{Ino: f}}, api.Errno_OK)
	h.apply(&api.Command{Reclaim: []uint64{f}})
	if _, e := h.f.GetAttr(f); e != api.Errno_OK {
		t.Fatal("reclaimed while an open recorded in Raft holds it")
	}
	h.must(&api.Op_Release{Release: &api.ReleaseOp{Ino: f}}, api.Errno_OK)
	h.reclaim(f)
	if _, e := h.f.GetAttr(f); e != api.Errno_ENOENT || h.f.orphans[f] {
		t.Fatal("not reclaimed")
	}
	// Directories and symlinks have no opens to wait for.
	d := h.mkdir(api.RootIno, "d")
	h.must(&api.Op_Rmdir{Rmdir: &api.RmdirOp{Parent: api.RootIno, Name: "d"}}, api.Errno_OK)
	if _, e := h.f.GetAttr(d); e != api.Errno_ENOENT {
		t.Fatal("removed directory kept")
	}
}

// A new chunk takes the id the leader chose, unless an earlier chunk has
// it; ids stay unique and below the next one.
func TestChunkIDsChosenByLeader(t *testing.T) {
	h := newHarness(t)
	f := h.create(api.RootIno, "f")
	alloc := func(index, id uint64) *api.Chunk {
		h.seq++
		r := h.apply(&api.Command{Session: h.sess, Seq: h.seq, Placement: []string{"cs1"}, Primary: "cs1", LeaseNs: 1e9, ChunkId: id,
			Op: &api.Op{Op: &api.Op_AllocChunk{AllocChunk: &api.AllocChunkOp{Ino: f, Index: index}}}})
		if r.Errno != api.Errno_OK {
			t.Fatalf("alloc: %v", r.Errno)
		}
		return r.Chunk
	}
	if c := alloc(0, 10); c.Id != 10 || h.f.nextChunk != 11 {
		t.Fatalf("chosen id 10: got %d, next %d", c.Id, h.f.nextChunk)
	}
	if c := alloc(1, 5); c.Id != 11 || h.f.nextChunk != 12 {
		t.Fatalf("taken id 5: got %d, next %d (want 11, 12)", c.Id, h.f.nextChunk)
	}
	if c := alloc(2, 0); c.Id != 12 {
		t.Fatalf("no chosen id: got %d", c.Id)
	}
}

// A create in an EC directory makes chunk 0 too: shards numbered in
// placement order, leased to the first parity shard, and exactly the
// chunk the leader planned and pushed to the shards before the commit.
func TestCreateWithFirstChunkEC(t *testing.T) {
	h := newHarness(t)
	d := h.mkdir(api.RootIno, "d")
	h.must(&api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: d, Name: LayoutXattr, Value: []byte("ec:4+2")}}, api.Errno_OK)
	l := h.f.layoutOf(d)
	placement := []string{"cs1", "cs2", "cs3", "cs4", "cs5", "cs6"}
	cmd := &api.Command{Session: h.sess, Seq: 100, Placement: placement, Primary: firstParity(l, placement),
		LeaseNs: int64(60e9), ChunkId: 42,
		Op: &api.Op{Op: &api.Op_Create{Create: &api.CreateOp{Parent: d, Name: "f", Mode: 0o644, Exclusive: true, Open: true, FirstChunk: true}}}}
	r := h.apply(cmd)
	if r.Errno != api.Errno_OK || r.Chunk == nil {
		t.Fatalf("create: %v", r)
	}
	c := r.Chunk
	if c.Primary != "cs5" || len(c.Replicas) != 6 {
		t.Fatalf("first EC chunk: primary %q, %d shards, want cs5 (shard 4, the first parity) and 6", c.Primary, len(c.Replicas))
	}
	for i, rep := range c.Replicas {
		if rep.Shard != uint32(i) || rep.Server != placement[i] {
			t.Fatalf("shard %d: %v", i, rep)
		}
	}
	v := &service{fsm: h.f}
	planned := v.plannedChunk(cmd, l)
	if !sameChunk(c, planned) {
		t.Fatalf("committed chunk %v differs from the planned %v", c, planned)
	}
	planned.Replicas[1].Shard = 2
	if sameChunk(c, planned) {
		t.Fatal("sameChunk ignores shard numbers")
	}
}
