package chunk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"dfs/api"
	"dfs/ec"
)

// TestECUndoCutWrite: an EC primary dies part way through a write, and
// with it the server of data shard 0, which the write also touches. The
// new primary's re-encode and the rebuild of shard 0 decode from the
// survivors; those must agree, or shard 0 comes back wrong in the stripe
// the write touched, also outside the write. A write that did not reach
// every surviving participant is rolled back (the old stripe); one that
// did is kept (the new stripe).
func TestECUndoCutWrite(t *testing.T) {
	for _, tc := range []struct {
		name    string
		applied map[int]float64 // shard -> part of its piece that reached it
		kept    bool
	}{
		{"reached shard 1 only", map[int]float64{4: 1, 1: 1}, false},
		{"half of parity 5", map[int]float64{4: 1, 0: 1, 1: 1, 5: 0.5}, false},
		{"reached every survivor", map[int]float64{4: 1, 1: 1, 5: 1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := startServers(t, 7)
			reps := ecSetup(t, ss[:6], 9, 1)
			c, _ := ec.New(4, 2)
			capacity := int(ec.ShardSize(1<<20, 4)) * 4
			ref := make([]byte, capacity)
			rnd := rand.New(rand.NewPCG(3, 4))
			for i := range 600000 {
				ref[i] = byte(rnd.Uint32())
			}
			r, err := ss[4].c.Write(ctxT(t), &api.WriteRequest{Id: 9, Shard: 4, Version: 1, Forward: reps, DataShards: 4, ParityShards: 2, Data: ref[:600000]})
			if err != nil || r.Errno != api.Errno_OK {
				t.Fatalf("write: %v %v %s", err, r.GetErrno(), r.GetMessage())
			}
			old := ecShards(t, ss[:6], 9, 1)

			// The write the primary (ss[4], parity 4) was carrying out:
			// chunk bytes [CellSize-100, CellSize+5000), the end of
			// shard 0's first cell and the start of shard 1's, and the
			// parity of stripe 0.
			off, n := uint64(ec.CellSize-100), uint64(5100)
			next := bytes.Clone(ref)
			for i := range n {
				next[off+i] = byte(i*31 + 200)
			}
			want := c.Split(next)
			if err := c.Encode(want); err != nil {
				t.Fatal(err)
			}
			pieces := map[int][2]uint64{4: {0, ec.CellSize}, 5: {0, ec.CellSize}}
			for d := range 2 {
				so, l := c.DataRange(d, off, n)
				pieces[d] = [2]uint64{so, l}
			}
			var shards uint64
			for i := range pieces {
				shards |= 1 << i
			}
			for i, part := range tc.applied {
				p := pieces[i]
				l := uint64(float64(p[1]) * part)
				r, err := ss[i].c.Write(ctxT(t), &api.WriteRequest{Id: 9, Shard: uint32(i), Version: 1, Forwarded: true,
					Offset: p[0], Data: want[i][p[0] : p[0]+l], UndoSeq: 1 << 62, UndoShards: shards, UndoOffset: p[0], UndoLength: p[1]})
				if err != nil || r.Errno != api.Errno_OK {
					t.Fatalf("piece of shard %d: %v %v %s", i, err, r.GetErrno(), r.GetMessage())
				}
			}

			// The primary and shard 0 die. The master fences the chunk
			// at version 2 on the survivors and has parity 5 re-encode.
			ss[4].Close()
			ss[0].Close()
			live := []*api.Replica{reps[1], reps[2], reps[3], reps[5]}
			for _, i := range []int{1, 2, 3, 5} {
				r, err := ss[i].c.SetChunk(ctxT(t), &api.SetChunkRequest{Id: 9, Shard: uint32(i), Version: 2,
					ChunkSize: ec.ShardSize(1<<20, 4), Replicas: live})
				if err != nil || r.Errno != api.Errno_OK {
					t.Fatalf("fence of shard %d: %v %v %s", i, err, r.GetErrno(), r.GetMessage())
				}
			}
			r, err = ss[5].c.Write(ctxT(t), &api.WriteRequest{Id: 9, Shard: 5, Version: 2, Forward: live, DataShards: 4, ParityShards: 2, Reencode: true})
			if err != nil || r.Errno != api.Errno_OK {
				t.Fatalf("re-encode: %v %v %s", err, r.GetErrno(), r.GetMessage())
			}
			// Shard 0 rebuilt on ss[6] from the survivors.
			rr, err := ss[6].c.Replicate(ctxT(t), &api.ReplicateRequest{Id: 9, Shard: 0, Version: 2, ChunkSize: ec.ShardSize(1<<20, 4),
				Source: live[0], DataShards: 4, ParityShards: 2, Sources: live})
			if err != nil || rr.Errno != api.Errno_OK {
				t.Fatalf("rebuild: %v %v %s", err, rr.GetErrno(), rr.GetMessage())
			}
			expect, what := old, "old"
			if tc.kept {
				expect, what = want, "new"
			}
			for i, s := range map[int]*testServer{0: ss[6], 1: ss[1], 2: ss[2], 3: ss[3], 5: ss[5]} {
				got, err := api.ReadRange(ctxT(t), s.c, 9, uint32(i), 2, 0, ec.ShardSize(1<<20, 4), nil, 5*time.Second)
				if err != nil {
					t.Fatalf("reading shard %d: %v", i, err)
				}
				got = append(got, make([]byte, len(expect[i])-len(got))...)
				if j := firstDiff(got, expect[i]); j >= 0 {
					t.Errorf("shard %d differs from the %s stripe at byte %d", i, what, j)
				}
			}
			// The survivors that hold the write keep it settled.
			settled := uint32(undoRolledBack)
			if tc.kept {
				settled = undoCommitted
			}
			for _, i := range []int{1, 5} {
				if _, ok := tc.applied[i]; !ok {
					continue
				}
				if h, err := ss[i].undos.head(Key{9, uint32(i)}); err != nil || h.Seq != 1<<62 || h.State != settled {
					t.Errorf("shard %d holds record %+v (%v), want write %d in state %d", i, h, err, uint64(1<<62), settled)
				}
			}
		})
	}
}

func openUndoT(t *testing.T, dir string) *undoLog {
	u, err := openUndo(dir)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// TestECUndoWrites: every piece of a primary's writes leaves a record on
// its shard; a later piece replaces it, and the shards a write leaves
// alone keep theirs.
func TestECUndoWrites(t *testing.T) {
	ss := startServers(t, 6)
	reps := ecSetup(t, ss, 10, 1)
	write := func(off uint64, n int) {
		t.Helper()
		r, err := ss[4].c.Write(ctxT(t), &api.WriteRequest{Id: 10, Shard: 4, Version: 1, Forward: reps, DataShards: 4, ParityShards: 2,
			Offset: off, Data: bytes.Repeat([]byte{9}, n)})
		if err != nil || r.Errno != api.Errno_OK {
			t.Fatalf("write: %v %v %s", err, r.GetErrno(), r.GetMessage())
		}
	}
	heads := func() []undoHead {
		var hs []undoHead
		for i, s := range ss {
			h, err := s.undos.head(Key{10, uint32(i)})
			if err != nil {
				t.Fatal(err)
			}
			hs = append(hs, h)
		}
		return hs
	}
	write(0, 3*ec.CellSize) // shards 0-2, parity
	first := heads()
	if first[3].Seq != 0 {
		t.Errorf("shard 3 has a record of a write that left it alone: %+v", first[3])
	}
	for _, i := range []int{0, 1, 2, 4, 5} {
		h := first[i]
		if h.Seq == 0 || h.Seq != first[4].Seq || h.Shards != 0b110111 || h.Done != h.Len || h.Len == 0 {
			t.Errorf("shard %d: record %+v, want the write's, whole", i, h)
		}
	}
	write(3*ec.CellSize+10, 10) // shard 3 and parity
	second := heads()
	if second[3].Seq <= first[4].Seq || second[3].Seq != second[4].Seq || second[0] != first[0] {
		t.Errorf("after a second write: %+v, before %+v", second, first)
	}
	// The primary's restart does not reuse ids.
	ss[4].Close()
	s4 := startServer(t, ss[4].dir, Config{})
	if s4.undoSeq.Load() <= second[4].Seq {
		t.Errorf("restarted primary starts ids at %d, not past %d", s4.undoSeq.Load(), second[4].Seq)
	}
}

// TestUndoRecordFile: records survive reopening, a damaged one is an
// error naming the file, and records of chunks gone are pruned.
func TestUndoRecordFile(t *testing.T) {
	dir := t.TempDir()
	u, err := openUndo(dir)
	if err != nil {
		t.Fatal(err)
	}
	k := Key{5, 2}
	rec := &undoRecord{undoHead: undoHead{Version: 3, Seq: 44, Shards: 0b101, Len: 100}, Off: 64, OldLength: 90, Old: []byte("old bytes")}
	if err := u.put(k, rec); err != nil {
		t.Fatal(err)
	}
	if err := u.advance(k, 3, 44, 60); err != nil {
		t.Fatal(err)
	}
	if err := u.advance(k, 3, 45, 100); err != nil { // another write's: ignored
		t.Fatal(err)
	}
	if err := u.sync(k); err != nil {
		t.Fatal(err)
	}
	u2, _ := openUndo(dir)
	got, err := u2.load(k)
	if err != nil || got == nil {
		t.Fatalf("reload: %v %v", got, err)
	}
	if got.Seq != 44 || got.Done != 60 || got.Off != 64 || got.OldLength != 90 || string(got.Old) != "old bytes" || got.Shards != 0b101 {
		t.Fatalf("reloaded %+v", got)
	}
	// A flipped byte in the old bytes.
	b, _ := os.ReadFile(u.path(k))
	b[len(b)-1] ^= 1
	os.WriteFile(u.path(k), b, 0o644)
	var ce *CorruptError
	if _, err := u2.load(k); !errors.As(err, &ce) || ce.Path != u.path(k) {
		t.Fatalf("damaged record: %v, want a CorruptError naming the file", err)
	}
	// A record cut short (a crash while it was written).
	os.WriteFile(u.path(k), b[:undoHeader-3], 0o644)
	if _, err := u2.load(k); !errors.As(err, &ce) {
		t.Fatalf("short record: %v, want a CorruptError", err)
	}
	// More records than files kept open.
	for i := range maxUndoFiles + 50 {
		if err := u2.put(Key{100, uint32(i)}, &undoRecord{undoHead: undoHead{Version: 1, Seq: uint64(i + 1), Len: 4}, Old: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if len(u2.files) > maxUndoFiles {
		t.Errorf("%d record files open, at most %d wanted", len(u2.files), maxUndoFiles)
	}
	for i := range maxUndoFiles + 50 {
		k := Key{100, uint32(i)}
		if err := u2.advance(k, 1, uint64(i+1), 2); err != nil {
			t.Fatal(err)
		}
		if r, err := openUndoT(t, dir).load(k); err != nil || r.Done != 2 || r.Old[0] != byte(i) {
			t.Fatalf("record %d: %+v %v", i, r, err)
		}
	}
	other := Key{6, 0}
	if err := u2.put(other, &undoRecord{undoHead: undoHead{Version: 1, Seq: 1, Len: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := u2.prune(func(k Key) bool { return k == other }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(u.path(k)); !os.IsNotExist(err) {
		t.Errorf("record of a chunk gone survives pruning: %v", err)
	}
	if _, err := os.Stat(u.path(other)); err != nil {
		t.Errorf("record of a chunk held was pruned: %v", err)
	}
}

// TestECUndoRefusesStrayPiece: a piece outside the range its undo record
// covers is refused before anything is written.
func TestECUndoRefusesStrayPiece(t *testing.T) {
	ss := startServers(t, 6)
	ecSetup(t, ss, 11, 1)
	for _, tc := range []struct{ off, n, uoff, ulen uint64 }{
		{0, 10, 5, 100},
		{100, 10, 0, 105},
		{0, 10, 0, 1 << 40},
	} {
		r, err := ss[1].c.Write(ctxT(t), &api.WriteRequest{Id: 11, Shard: 1, Version: 1, Forwarded: true, Offset: tc.off,
			Data: make([]byte, tc.n), UndoSeq: 1, UndoOffset: tc.uoff, UndoLength: tc.ulen})
		if err != nil || r.Errno != api.Errno_EINVAL {
			t.Errorf("piece %s: %v %v, want EINVAL", fmt.Sprint(tc), err, r.GetErrno())
		}
	}
	if info, _ := ss[1].Store().Stat(Key{11, 1}); info.Length != 0 {
		t.Errorf("a refused piece wrote %d bytes", info.Length)
	}
}

// TestSettlementModel runs a model of one stripe of an ec:2+2 chunk
// through many random histories: writes to random shard subsets cut
// short at random points, servers lost, new primaries that die part way
// through settling, shards rebuilt with no record. After every complete
// settlement the shards in the set must hold exactly the acknowledged
// writes, plus the cut-short one either everywhere or nowhere.
func TestSettlementModel(t *testing.T) {
	const n = 4
	rnd := rand.New(rand.NewPCG(5, 6))
	type shard struct {
		in      bool
		content uint64 // seq of the last write applied here
		rec     undoHead
		old     uint64 // content before rec's write
	}
	for run := range 20000 {
		var sh [n]shard
		for i := range sh {
			sh[i].in = true
		}
		truth := [n]uint64{} // what each shard must hold once settled
		seq, version := uint64(0), uint64(1)
		for step := range 6 {
			// A write to a random non-empty subset, cut short maybe.
			seq++
			var parts uint64
			for parts == 0 {
				parts = rnd.Uint64N(1 << n)
			}
			order := rnd.Perm(n)
			cut := rnd.IntN(3) == 0
			reach := n
			if cut {
				reach = rnd.IntN(n + 1)
			}
			for _, i := range order[:reach] {
				if parts&(1<<i) == 0 || !sh[i].in {
					continue
				}
				done := uint64(2)
				if cut && rnd.IntN(3) == 0 {
					done = 1 // half its piece
				}
				sh[i].old, sh[i].rec = sh[i].content, undoHead{Version: version, Seq: seq, Shards: parts, Len: 2, Done: done}
				sh[i].content = seq
			}
			if !cut {
				for i := range sh {
					if parts&(1<<i) != 0 && sh[i].in {
						truth[i] = seq
					}
				}
				continue
			}
			// The primary died: lose up to one more server, then
			// settle, maybe dying part way and starting again.
			if lost := rnd.IntN(n + 2); lost < n {
				sh[lost].in = false
			}
			version++
			for attempt := 0; ; attempt++ {
				in := make([]bool, n)
				heads := make([]undoHead, n)
				for i := range sh {
					in[i], heads[i] = sh[i].in, sh[i].rec
				}
				last, state := settlement(in, heads)
				die := attempt < 2 && rnd.IntN(2) == 0
				for _, i := range rnd.Perm(n) {
					s := settledAs(sh[i].rec, last, state)
					if !sh[i].in || s == sh[i].rec.State || die && rnd.IntN(2) == 0 {
						continue
					}
					if sh[i].rec.State != undoPending {
						t.Fatalf("run %d step %d: shard %d settled %d, now %d", run, step, i, sh[i].rec.State, s)
					}
					if s == undoRolledBack {
						sh[i].content = sh[i].old
					}
					sh[i].rec.State = s
				}
				if !die {
					// Settled: the cut write is kept or gone on every
					// shard in the set.
					for i := range sh {
						if sh[i].in && parts&(1<<i) != 0 && last.Seq == seq && state == undoCommitted {
							truth[i] = seq
						}
					}
					for i := range sh {
						if sh[i].in && sh[i].content != truth[i] {
							t.Fatalf("run %d step %d: shard %d holds write %d, want %d (state %d)", run, step, i, sh[i].content, truth[i], state)
						}
					}
					break
				}
			}
			// Lost shards are rebuilt from the others, with no record.
			for i := range sh {
				if !sh[i].in && rnd.IntN(2) == 0 {
					sh[i] = shard{in: true, content: truth[i]}
				}
			}
		}
	}
}

// olderServer is a chunkserver from before undo records: it does not
// know the Undo call.
type olderServer struct{ *Server }

func (olderServer) Undo(context.Context, *api.UndoRequest) (*api.UndoResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method Undo not implemented")
}

// TestECUndoOlderServer: during an upgrade a shard's server may not know
// Undo. A new primary takes it as holding no records instead of as
// failed, so that the upgrade does not drop its shards.
func TestECUndoOlderServer(t *testing.T) {
	ss := startServers(t, 6)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.MaxRecvMsgSize(api.MaxMessage), grpc.MaxSendMsgSize(api.MaxMessage))
	api.RegisterChunkServerServer(g, olderServer{ss[2].Server})
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	reps := ecSetup(t, ss, 12, 1)
	reps[2].Addr = ln.Addr().String()
	write := func(version uint64) {
		t.Helper()
		r, err := ss[4].c.Write(ctxT(t), &api.WriteRequest{Id: 12, Shard: 4, Version: version, Forward: reps, DataShards: 4, ParityShards: 2,
			Data: bytes.Repeat([]byte{byte(version)}, 300000)})
		if err != nil || r.Errno != api.Errno_OK || len(r.Failed) > 0 {
			t.Fatalf("write at version %d: %v %v %s, failed %v", version, err, r.GetErrno(), r.GetMessage(), r.GetFailed())
		}
	}
	write(1)
	// A new version: the primary settles before it writes again.
	for i, s := range ss {
		r, err := s.c.SetChunk(ctxT(t), &api.SetChunkRequest{Id: 12, Shard: uint32(i), Version: 2,
			ChunkSize: ec.ShardSize(1<<20, 4), Primary: ss[4].ID(), LeaseNs: int64(time.Minute), Replicas: reps})
		if err != nil || r.Errno != api.Errno_OK {
			t.Fatalf("SetChunk: %v %v", err, r.GetErrno())
		}
	}
	write(2)
}
