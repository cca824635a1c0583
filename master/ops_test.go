package master

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"dfs/api"
)

func TestDrainServerCommand(t *testing.T) {
	h, _, _, _ := repairHarness(t) // one chunk on a, b, c
	drain := func(id string, undrain bool) *api.MutateResponse {
		return h.apply(&api.Command{DrainServer: &api.DrainServerCmd{Id: id, Undrain: undrain}})
	}
	if r := drain("nosuch", false); r.Errno != api.Errno_ENOENT || !strings.Contains(r.Message, "nosuch") {
		t.Fatalf("drain of an unknown server: %v", r)
	}
	drain("a", false)
	if s := h.f.servers["a"]; !s.draining || s.drainTotal != 1 {
		t.Fatalf("after drain: %+v", s)
	}
	// A second drain keeps the first total; re-registering (new address)
	// keeps the drain; snapshots carry it.
	g := h.create(api.RootIno, "g")
	h.seq++
	h.apply(&api.Command{Session: h.sess, Seq: h.seq, Placement: []string{"a", "b", "c"}, Primary: "a", LeaseNs: 1e12,
		Op: &api.Op{Op: &api.Op_AllocChunk{AllocChunk: &api.AllocChunkOp{Ino: g}}}})
	drain("a", false)
	h.apply(&api.Command{RegisterServer: &api.RegisterServerCmd{Id: "a", Addr: "a:2"}})
	back, _ := restored(t, h.f)
	for _, f := range []*FSM{h.f, back} {
		if s := f.servers["a"]; !s.draining || s.drainTotal != 1 || s.addr != "a:2" {
			t.Fatalf("drain after a second drain, a re-registration and a snapshot: %+v", s)
		}
		if n := f.referencedBy()["a"]; n != 2 {
			t.Fatalf("a is in %d sets, want 2", n)
		}
	}
	drain("a", true)
	if s := h.f.servers["a"]; s.draining || s.drainTotal != 0 {
		t.Fatalf("after undrain: %+v", s)
	}
}

func TestDrainPlacementAndJobs(t *testing.T) {
	h, v, f, c := repairHarness(t) // chunk c on a, b, c; d free
	now := time.Now()
	v.promoted = now.Add(-time.Hour)
	zones := map[string]string{"a": "z1", "b": "z2", "c": "z3", "d": "z1", "e": "z4"}
	h.apply(&api.Command{RegisterServer: &api.RegisterServerCmd{Id: "e", Addr: "e:1", Zone: "z4"}})
	for id, z := range zones {
		h.apply(&api.Command{RegisterServer: &api.RegisterServerCmd{Id: id, Addr: id + ":1", Zone: z}})
		v.servers[id] = &serverState{lastSeen: now, free: 1 << 40, zone: z}
	}
	v.servers["d"].free = 1 << 50 // most room, but in a zone a survivor uses
	if jobs := v.repair.jobs(now); len(jobs) != 0 {
		t.Fatalf("nothing draining: %+v", jobs)
	}
	h.apply(&api.Command{DrainServer: &api.DrainServerCmd{Id: "b"}})
	for range 20 {
		for _, s := range v.place(&api.Layout{Kind: api.Layout_REPLICATED, Replicas: 3, ChunkSize: 1 << 20}) {
			if s == "b" {
				t.Fatal("placement chose a draining server")
			}
		}
	}
	jobs := v.repair.jobs(now)
	if len(jobs) != 1 || jobs[0].c.id != c.Id || len(jobs[0].moves) != 1 || jobs[0].moves[0] != "b" || jobs[0].need != 0 || len(jobs[0].drop) != 0 {
		t.Fatalf("drain job: %+v", jobs)
	}
	// The copy leaves z2; survivors a (z1) and c (z3) hold their zones,
	// so e (z4) is chosen over d (z1) despite d's room.
	if got := v.repair.targets(jobs[0]); len(got) != 1 || got[0] != "e" {
		t.Fatalf("drain targets: %v, want [e]", got)
	}
	// A draining server is never a target, for a drain or a repair.
	h.apply(&api.Command{DrainServer: &api.DrainServerCmd{Id: "e"}})
	if got := v.repair.targets(jobs[0]); len(got) != 1 || got[0] != "d" {
		t.Fatalf("drain targets with e draining too: %v, want [d]", got)
	}
	// A chunk at risk goes before drains.
	h.seq++
	c2 := h.apply(&api.Command{Session: h.sess, Seq: h.seq, Placement: []string{"a", "c", "d"}, Primary: "a", LeaseNs: 1e12,
		Op: &api.Op{Op: &api.Op_AllocChunk{AllocChunk: &api.AllocChunkOp{Ino: f, Index: 1}}}}).Chunk
	v.repair.observe(&api.HeartbeatRequest{Server: "d", Corrupt: []*api.ChunkReport{{Id: c2.Id, Version: c2.Version}}}, now)
	jobs = v.repair.jobs(now)
	if len(jobs) != 2 || jobs[0].c.id != c2.Id || len(jobs[0].moves) != 0 || jobs[1].c.id != c.Id {
		t.Fatalf("repairs before drains: %+v", jobs)
	}
	for _, target := range v.repair.targets(jobs[0]) {
		if target == "b" || target == "e" {
			t.Fatalf("repair target %s is draining", target)
		}
	}
	// The move itself: the target joins and the draining copy leaves in
	// one change, so the count never drops.
	r := h.apply(&api.Command{Op: &api.Op{Op: &api.Op_ReplicaChange{ReplicaChange: &api.ReplicaChangeOp{
		Ino: f, ChunkId: c.Id, Version: c.Version, Add: []string{"e"}, Drop: []string{"b"}}}}})
	if got := h.f.chunks[c.Id].replicas; len(got) != 3 || contains(got, "b") || r.Chunk.Version != c.Version+1 {
		t.Fatalf("after the move: replicas %v, %v", got, r)
	}
}

func TestDrainRefusedWhenTheRestCannotHoldTheLayout(t *testing.T) {
	h, v, _, _ := repairHarness(t) // replicated:3 chunk on a, b, c
	now := time.Now()
	for _, id := range []string{"a", "b", "c"} {
		v.servers[id] = &serverState{lastSeen: now, free: 1 << 40}
	}
	err := v.canDrain("a")
	if err == nil || !strings.Contains(err.Error(), "needs 3 chunkservers") || !strings.Contains(err.Error(), "only 2 others") {
		t.Fatalf("drain with 3 servers for replicated:3: %v", err)
	}
	v.servers["d"] = &serverState{lastSeen: now, free: 1 << 40}
	if err := v.canDrain("a"); err != nil {
		t.Fatalf("drain with a fourth server: %v", err)
	}
	ec4 := &api.SetXattrOp{Name: LayoutXattr, Value: []byte("ec:2+2")}
	if r := v.checkECLayout(ec4); r != nil {
		t.Fatalf("ec:2+2 with 4 servers: %v", r)
	}
	// A draining server does not count as room.
	h.apply(&api.Command{DrainServer: &api.DrainServerCmd{Id: "d"}})
	if err := v.canDrain("a"); err == nil {
		t.Fatal("drain counted a draining server as room")
	}
	if r := v.checkECLayout(ec4); r == nil || r.Errno != api.Errno_EINVAL {
		t.Fatalf("ec:2+2 with 3 servers not draining: %v", r)
	}
}

func TestForceReleaseSessionAndLocks(t *testing.T) {
	h := newHarness(t)
	ino := h.create(api.RootIno, "f")
	s2, s3 := h.openSession(), h.openSession()
	h.must(flockOp(ino, 1, api.LockType_WRITE, false), api.Errno_OK)
	if r := h.opAs(s2, 1, flockOp(ino, 9, api.LockType_WRITE, true)); !r.Waiting {
		t.Fatalf("s2 wait: %v", r)
	}
	forceUnlock := func(op *api.ForceUnlockCmd) uint32 {
		return h.apply(&api.Command{ForceUnlock: op}).Released
	}
	// Filters that match nothing release nothing.
	if n := forceUnlock(&api.ForceUnlockCmd{Ino: ino, Session: s3}); n != 0 {
		t.Fatalf("another session's filter released %d", n)
	}
	if n := forceUnlock(&api.ForceUnlockCmd{Ino: ino, Session: h.sess, Owner: 2, HasOwner: true}); n != 0 {
		t.Fatalf("another owner's filter released %d", n)
	}
	if a := h.answer(s2, 1); !a.Waiting {
		t.Fatalf("s2 granted before any release: %v", a)
	}
	// The holder's lock goes; the waiter is granted, as on a close.
	if n := forceUnlock(&api.ForceUnlockCmd{Ino: ino, Session: h.sess, Owner: 1, HasOwner: true}); n != 1 {
		t.Fatalf("released %d, want 1", n)
	}
	if a := h.answer(s2, 1); a.Waiting || a.Errno != api.Errno_OK || a.Lock.GetSession() != s2 {
		t.Fatalf("s2 after the force-release: %v", a)
	}
	// Every holder: two POSIX ranges of s3 and s2's flock.
	for i, start := range []uint64{0, 100} {
		op := &api.Op_Lock{Lock: &api.LockOp{Ino: ino, Kind: api.LockKind_POSIX, Owner: 7, Type: api.LockType_WRITE, Start: start, End: start + 10}}
		if r := h.opAs(s3, uint64(i+1), op); r.Errno != api.Errno_OK {
			t.Fatalf("posix lock: %v", r)
		}
	}
	if n := forceUnlock(&api.ForceUnlockCmd{Ino: ino}); n != 3 {
		t.Fatalf("release every lock: %d, want 3", n)
	}
	if held, waiting := h.f.lockCounts(); held != 0 || waiting != 0 {
		t.Fatalf("after releasing all: %d held, %d waiting", held, waiting)
	}

	// A released session's locks and opens go; a second release finds
	// nothing.
	h.opAs(s3, 3, &api.Op_Open{Open: &api.OpenOp{Ino: ino}})
	h.opAs(s3, 4, flockOp(ino, 3, api.LockType_WRITE, false))
	if r := h.apply(&api.Command{ExpireSession: &api.ExpireSessionCmd{Session: s3}}); r.Released != 1 {
		t.Fatalf("release session: %v", r)
	}
	if h.f.sessions[s3] != nil || h.f.inodes[ino].opens != 0 {
		t.Fatalf("session %d still there (%v) or its open (%d)", s3, h.f.sessions[s3] != nil, h.f.inodes[ino].opens)
	}
	if held, _ := h.f.lockCounts(); held != 0 {
		t.Fatalf("released session still holds %d locks", held)
	}
	if r := h.apply(&api.Command{ExpireSession: &api.ExpireSessionCmd{Session: s3}}); r.Released != 0 {
		t.Fatalf("second release: %v", r)
	}
}

func TestBackupFile(t *testing.T) {
	h := newHarness(t)
	h.create(h.mkdir(api.RootIno, "d"), "f")
	data, _ := h.f.backup()
	path := t.TempDir() + "/backup"
	if err := WriteBackup(path, 42, data); err != nil {
		t.Fatal(err)
	}
	applied, got, err := ReadBackup(path)
	if err != nil || applied != 42 || !bytes.Equal(got, data) {
		t.Fatalf("read back: index %d, %d bytes, %v", applied, len(got), err)
	}
	raw, _ := os.ReadFile(path)
	for _, c := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"flipped byte", append(append([]byte{}, raw[:len(raw)-5]...), append([]byte{raw[len(raw)-5] ^ 1}, raw[len(raw)-4:]...)...), "checksum mismatch"},
		{"truncated", raw[:len(raw)-1], "truncated"},
		{"not a backup", data, "not a dfs master backup"},
	} {
		os.WriteFile(path, c.raw, 0o644)
		if _, _, err := ReadBackup(path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}
