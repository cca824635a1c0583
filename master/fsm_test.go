package master

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"dfs/api"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// harness applies commands to an FSM the way Raft would.
type harness struct {
	t     *testing.T
	f     *FSM
	index uint64
	now   int64
	sess  uint64
	seq   uint64
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, f: NewFSM(), now: 1_000_000_000}
	r := h.apply(&api.Command{Op: &api.Op{Op: &api.Op_OpenSession{OpenSession: &api.OpenSessionOp{Client: "test"}}}})
	h.sess = r.Session
	return h
}

func (h *harness) apply(cmds ...*api.Command) *api.MutateResponse {
	h.t.Helper()
	for _, c := range cmds {
		h.now += 1000
		c.NowNs = h.now
	}
	data, err := proto.Marshal(&api.Batch{Commands: cmds})
	if err != nil {
		h.t.Fatal(err)
	}
	h.index++
	out := h.f.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: data}).([]*api.MutateResponse)
	return out[len(out)-1]
}

// op sends a client op with a fresh sequence number.
func (h *harness) op(o any) *api.MutateResponse {
	h.seq++
	op := &api.Op{}
	reflect.ValueOf(op).Elem().FieldByName("Op").Set(reflect.ValueOf(o))
	return h.apply(&api.Command{Session: h.sess, Seq: h.seq, Caller: &api.Caller{Uid: 10, Gid: 20}, Op: op})
}

func (h *harness) must(o any, want api.Errno) *api.MutateResponse {
	h.t.Helper()
	r := h.op(o)
	if r.Errno != want {
		h.t.Fatalf("%T: errno %v (%s), want %v", o, r.Errno, r.Message, want)
	}
	return r
}

func (h *harness) mkdir(parent uint64, name string) uint64 {
	h.t.Helper()
	return h.must(&api.Op_Mkdir{Mkdir: &api.MkdirOp{Parent: parent, Name: name, Mode: 0o755}}, api.Errno_OK).Attr.Ino
}

func (h *harness) create(parent uint64, name string) uint64 {
	h.t.Helper()
	return h.must(&api.Op_Create{Create: &api.CreateOp{Parent: parent, Name: name, Mode: 0o644, Exclusive: true}}, api.Errno_OK).Attr.Ino
}

// reclaim checks that ino is an orphan, not yet freed, and has the
// leader reclaim it.
func (h *harness) reclaim(ino uint64) {
	h.t.Helper()
	if _, e := h.f.GetAttr(ino); e != api.Errno_OK || !h.f.orphans[ino] {
		h.t.Fatalf("inode %d: %v, orphan %v: want an orphan waiting for the leader", ino, e, h.f.orphans[ino])
	}
	h.apply(&api.Command{Reclaim: []uint64{ino}})
}

func (h *harness) attr(ino uint64) *api.Attr {
	h.t.Helper()
	a, e := h.f.GetAttr(ino)
	if e != api.Errno_OK {
		h.t.Fatalf("GetAttr(%d): %v", ino, e)
	}
	return a
}

func (h *harness) names(dir uint64) []string {
	var out []string
	cookie := uint64(0)
	for {
		r := h.f.ReadDir(dir, cookie, 3, false)
		for _, e := range r.Entries {
			out = append(out, e.Name)
			cookie = e.Cookie
		}
		if r.Eof {
			return out
		}
	}
}

func TestNamespaceBasics(t *testing.T) {
	h := newHarness(t)
	d := h.mkdir(api.RootIno, "d")
	if n := h.attr(api.RootIno).Nlink; n != 3 {
		t.Fatalf("root nlink %d after mkdir, want 3", n)
	}
	f := h.create(d, "f")
	h.must(&api.Op_Create{Create: &api.CreateOp{Parent: d, Name: "f", Exclusive: true}}, api.Errno_EEXIST)
	if r := h.must(&api.Op_Create{Create: &api.CreateOp{Parent: d, Name: "f"}}, api.Errno_OK); r.Attr.Ino != f {
		t.Fatalf("non-exclusive create returned ino %d, want existing %d", r.Attr.Ino, f)
	}
	h.must(&api.Op_Link{Link: &api.LinkOp{Ino: f, NewParent: api.RootIno, NewName: "g"}}, api.Errno_OK)
	if n := h.attr(f).Nlink; n != 2 {
		t.Fatalf("nlink %d after link, want 2", n)
	}
	h.must(&api.Op_Link{Link: &api.LinkOp{Ino: d, NewParent: api.RootIno, NewName: "dl"}}, api.Errno_EPERM)
	h.must(&api.Op_Rmdir{Rmdir: &api.RmdirOp{Parent: api.RootIno, Name: "d"}}, api.Errno_ENOTEMPTY)
	h.must(&api.Op_Unlink{Unlink: &api.UnlinkOp{Parent: api.RootIno, Name: "d"}}, api.Errno_EISDIR)
	h.must(&api.Op_Unlink{Unlink: &api.UnlinkOp{Parent: d, Name: "f"}}, api.Errno_OK)
	h.must(&api.Op_Rmdir{Rmdir: &api.RmdirOp{Parent: api.RootIno, Name: "d"}}, api.Errno_OK)
	if n := h.attr(f).Nlink; n != 1 {
		t.Fatalf("nlink %d after unlink, want 1", n)
	}
	h.must(&api.Op_Mkdir{Mkdir: &api.MkdirOp{Parent: api.RootIno, Name: strings.Repeat("x", 256)}}, api.Errno_ENAMETOOLONG)
	h.mkdir(api.RootIno, strings.Repeat("x", 255))
	s := h.must(&api.Op_Symlink{Symlink: &api.SymlinkOp{Parent: api.RootIno, Name: "s", Target: "/no/where"}}, api.Errno_OK)
	if s.Attr.Symlink != "/no/where" || s.Attr.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		t.Fatalf("symlink attr %v", s.Attr)
	}
}

func TestRenameRules(t *testing.T) {
	h := newHarness(t)
	a := h.mkdir(api.RootIno, "a")
	b := h.mkdir(a, "b")
	h.create(api.RootIno, "f")
	h.create(api.RootIno, "g")
	rn := func(p uint64, n string, np uint64, nn string, flags uint32, want api.Errno) {
		t.Helper()
		h.must(&api.Op_Rename{Rename: &api.RenameOp{Parent: p, Name: n, NewParent: np, NewName: nn, Flags: flags}}, want)
	}
	rn(api.RootIno, "a", b, "x", 0, api.Errno_EINVAL)            // into itself
	rn(api.RootIno, "f", api.RootIno, "a", 0, api.Errno_EISDIR)  // file over dir
	rn(api.RootIno, "a", api.RootIno, "f", 0, api.Errno_ENOTDIR) // dir over file
	rn(api.RootIno, "f", api.RootIno, "g", api.RenameNoReplace, api.Errno_EEXIST)
	rn(api.RootIno, "f", api.RootIno, "nope", api.RenameExchange, api.Errno_ENOENT)
	rn(api.RootIno, "f", api.RootIno, "g", api.RenameExchange, api.Errno_OK)
	rn(api.RootIno, "f", api.RootIno, "g", 0, api.Errno_OK) // replace
	if got := h.names(api.RootIno); fmt.Sprint(got) != "[a g]" {
		t.Fatalf("root after rename = %v", got)
	}
	rn(a, "b", api.RootIno, "b", 0, api.Errno_OK)
	if h.attr(a).Nlink != 2 || h.attr(api.RootIno).Nlink != 4 {
		t.Fatalf("nlink after moving dir: a=%d root=%d", h.attr(a).Nlink, h.attr(api.RootIno).Nlink)
	}
	if p, _ := h.f.Lookup(b, ".."); p.Ino != api.RootIno {
		t.Fatalf(".. of moved dir is %d", p.Ino)
	}
	rn(api.RootIno, "b", api.RootIno, "a", 0, api.Errno_OK) // empty dir over empty dir
	if _, e := h.f.GetAttr(a); e != api.Errno_ENOENT {
		t.Fatalf("replaced directory still exists")
	}
}

func TestUnlinkedOpenFileLivesUntilRelease(t *testing.T) {
	h := newHarness(t)
	f := h.must(&api.Op_Create{Create: &api.CreateOp{Parent: api.RootIno, Name: "f", Open: true}}, api.Errno_OK).Attr.Ino
	h.must(&api.Op_Unlink{Unlink: &api.UnlinkOp{Parent: api.RootIno, Name: "f"}}, api.Errno_OK)
	if a := h.attr(f); a.Nlink != 0 {
		t.Fatalf("nlink %d", a.Nlink)
	}
	h.must(&api.Op_Release{Release: &api.ReleaseOp{Ino: f}}, api.Errno_OK)
	h.reclaim(f)
	if _, e := h.f.GetAttr(f); e != api.Errno_ENOENT {
		t.Fatal("inode survived its last release")
	}
	// Session expiry releases too.
	g := h.must(&api.Op_Create{Create: &api.CreateOp{Parent: api.RootIno, Name: "g", Open: true}}, api.Errno_OK).Attr.Ino
	h.must(&api.Op_Unlink{Unlink: &api.UnlinkOp{Parent: api.RootIno, Name: "g"}}, api.Errno_OK)
	h.apply(&api.Command{ExpireSession: &api.ExpireSessionCmd{Session: h.sess}})
	h.reclaim(g)
	if _, e := h.f.GetAttr(g); e != api.Errno_ENOENT {
		t.Fatal("inode survived its session's expiry")
	}
}

func TestRetriedRequestHasOneEffect(t *testing.T) {
	h := newHarness(t)
	cmd := func() *api.Command {
		return &api.Command{Session: h.sess, Seq: 7, Op: &api.Op{Op: &api.Op_Create{Create: &api.CreateOp{Parent: api.RootIno, Name: "x", Exclusive: true}}}}
	}
	first := h.apply(cmd())
	again := h.apply(cmd())
	if first.Errno != api.Errno_OK || again.Errno != api.Errno_OK || first.Attr.Ino != again.Attr.Ino {
		t.Fatalf("retry answered %v/%v, first %v", again.Errno, again.GetAttr().GetIno(), first.GetAttr().GetIno())
	}
	ren := func() *api.Command {
		return &api.Command{Session: h.sess, Seq: 8, Op: &api.Op{Op: &api.Op_Rename{Rename: &api.RenameOp{Parent: api.RootIno, Name: "x", NewParent: api.RootIno, NewName: "y"}}}}
	}
	if r := h.apply(ren()); r.Errno != api.Errno_OK {
		t.Fatal(r.Errno)
	}
	if r := h.apply(ren()); r.Errno != api.Errno_OK {
		t.Fatalf("retried rename answered %v", r.Errno)
	}
	// Once acknowledged, the answer may be forgotten.
	h.apply(&api.Command{Session: h.sess, Seq: 9, Acked: 9, Op: &api.Op{Op: &api.Op_Open{Open: &api.OpenOp{Ino: api.RootIno}}}})
	if len(h.f.sessions[h.sess].responses) != 1 {
		t.Fatalf("responses kept: %d", len(h.f.sessions[h.sess].responses))
	}
}

func TestReadDirCookiesStable(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 50; i++ {
		h.create(api.RootIno, fmt.Sprintf("f%02d", i))
	}
	// List in small pages while deleting and adding: survivors appear once.
	seen := map[string]int{}
	cookie := uint64(0)
	step := 0
	for {
		r := h.f.ReadDir(api.RootIno, cookie, 4, false)
		for _, e := range r.Entries {
			seen[e.Name]++
			cookie = e.Cookie
		}
		h.must(&api.Op_Unlink{Unlink: &api.UnlinkOp{Parent: api.RootIno, Name: fmt.Sprintf("f%02d", 49-step)}}, api.Errno_OK)
		h.create(api.RootIno, fmt.Sprintf("new%02d", step))
		step++
		if r.Eof {
			break
		}
	}
	for i := 0; i < 49-step+1; i++ {
		if n := seen[fmt.Sprintf("f%02d", i)]; n != 1 {
			t.Fatalf("survivor f%02d listed %d times", i, n)
		}
	}
}

func TestChunkAllocLeaseAndVersion(t *testing.T) {
	h := newHarness(t)
	f := h.create(api.RootIno, "f")
	alloc := func(lease int64, placement ...string) *api.MutateResponse {
		h.seq++
		return h.apply(&api.Command{Session: h.sess, Seq: h.seq, Placement: placement, Primary: "cs1", LeaseNs: lease,
			Op: &api.Op{Op: &api.Op_AllocChunk{AllocChunk: &api.AllocChunkOp{Ino: f, Index: 2}}}})
	}
	if r := alloc(0); r.Errno != api.Errno_ENOSPC {
		t.Fatalf("no placement: %v", r.Errno)
	}
	r := alloc(int64(60e9), "cs1", "cs2", "cs3")
	if r.Errno != api.Errno_OK || r.Chunk.Version != 1 || len(r.Chunk.Replicas) != 3 || r.Chunk.Primary != "cs1" {
		t.Fatalf("alloc: %v", r)
	}
	id := r.Chunk.Id
	if r2 := alloc(int64(60e9)); r2.Chunk.Id != id || r2.Chunk.Version != 1 {
		t.Fatalf("second alloc with live lease: %v", r2.Chunk)
	}
	h.now += int64(120e9)
	if r3 := alloc(int64(60e9)); r3.Chunk.Id != id || r3.Chunk.Version != 2 {
		t.Fatalf("alloc after lease ran out: %v (want version 2)", r3.Chunk)
	}
	h.must(&api.Op_CommitWrite{CommitWrite: &api.CommitWriteOp{Ino: f, Size: 3 * api.DefaultChunkSize}}, api.Errno_OK)
	h.must(&api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_SIZE), Size: api.DefaultChunkSize}}, api.Errno_OK)
	if c := h.f.GetChunks(f, 0, 10); len(c.Chunks) != 0 || c.Attr.Size != api.DefaultChunkSize {
		t.Fatalf("after truncate: %d chunks, size %d", len(c.Chunks), c.Attr.Size)
	}
	if _, found := h.f.chunks[id]; found {
		t.Fatal("truncated chunk still referenced")
	}
}

func TestLayoutXattr(t *testing.T) {
	h := newHarness(t)
	d := h.mkdir(api.RootIno, "ec")
	set := func(ino uint64, v string, want api.Errno) {
		t.Helper()
		h.must(&api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: ino, Name: LayoutXattr, Value: []byte(v)}}, want)
	}
	set(d, "ec:4+2", api.Errno_OK)
	set(d, "ec:4", api.Errno_EINVAL)
	set(d, "mirror:2", api.Errno_EINVAL)
	f := h.create(d, "f")
	if v, _ := h.f.GetXattr(f, LayoutXattr); string(v) != "ec:4+2" {
		t.Fatalf("inherited layout %q", v)
	}
	sub := h.mkdir(d, "sub")
	if v, _ := h.f.GetXattr(sub, LayoutXattr); string(v) != "ec:4+2" {
		t.Fatalf("subdirectory layout %q", v)
	}
	if v, _ := h.f.GetXattr(api.RootIno, LayoutXattr); string(v) != "replicated:3" {
		t.Fatalf("root layout %q", v)
	}
}

// TestSnapshotRoundTrip builds a random namespace, snapshots and restores
// it, and checks the copy answers every query the same.
func TestSnapshotRoundTrip(t *testing.T) {
	h := newHarness(t)
	rng := rand.New(rand.NewSource(1))
	dirs := []uint64{api.RootIno}
	var files []uint64
	for i := 0; i < 400; i++ {
		p := dirs[rng.Intn(len(dirs))]
		name := fmt.Sprintf("n%d", i)
		switch rng.Intn(6) {
		case 0:
			dirs = append(dirs, h.mkdir(p, name))
		case 1, 2:
			files = append(files, h.create(p, name))
		case 3:
			if len(files) > 0 {
				h.op(&api.Op_Link{Link: &api.LinkOp{Ino: files[rng.Intn(len(files))], NewParent: p, NewName: name}})
			}
		case 4:
			if len(files) > 0 {
				f := files[rng.Intn(len(files))]
				h.op(&api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: f, Name: "user.k", Value: []byte(name)}})
				h.seq++
				h.apply(&api.Command{Session: h.sess, Seq: h.seq, Placement: []string{"a", "b"}, Primary: "a", LeaseNs: 5,
					Op: &api.Op{Op: &api.Op_AllocChunk{AllocChunk: &api.AllocChunkOp{Ino: f, Index: uint64(rng.Intn(4))}}}})
			}
		case 5:
			h.op(&api.Op_Symlink{Symlink: &api.SymlinkOp{Parent: p, Name: name, Target: "t" + name}})
		}
	}
	h.apply(&api.Command{RegisterServer: &api.RegisterServerCmd{Id: "a", Addr: "127.0.0.1:1", Zone: "z"}})
	g, data := restored(t, h.f)
	again, _ := g.Snapshot()
	if !bytes.Equal(dump(h.f), dump(g)) {
		t.Fatal("restored state differs")
	}
	if len(again.(*fsmSnapshot).data) != len(data) {
		t.Fatalf("re-snapshot is %d bytes, first %d", len(again.(*fsmSnapshot).data), len(data))
	}
	// Corrupt snapshots are refused with a reason.
	for _, bad := range [][]byte{nil, []byte("garbage"), data[:len(data)/2], append(append([]byte{}, data...), 1, 2, 3)} {
		if err := NewFSM().Restore(io.NopCloser(bytes.NewReader(bad))); err == nil {
			t.Fatalf("corrupt snapshot of %d bytes accepted", len(bad))
		}
	}
}

// restored snapshots f and restores the snapshot into a new FSM.
func restored(t *testing.T, f *FSM) (*FSM, []byte) {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	data := snap.(*fsmSnapshot).data
	g := NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	return g, data
}

// dump renders an FSM's observable state deterministically.
func dump(f *FSM) []byte {
	var b bytes.Buffer
	var walk func(ino uint64, path string)
	walk = func(ino uint64, path string) {
		a, _ := f.GetAttr(ino)
		x, _ := f.ListXattr(ino)
		fmt.Fprintf(&b, "%s %v %v\n", path, a, x)
		if a.Mode&syscall.S_IFMT == syscall.S_IFREG {
			fmt.Fprintln(&b, f.GetChunks(ino, 0, 100).Chunks)
		}
		if a.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			for _, e := range f.ReadDir(ino, 0, 1<<20, false).Entries {
				walk(e.Ino, path+"/"+e.Name)
			}
		}
	}
	walk(api.RootIno, "")
	fmt.Fprintln(&b, f.nextIno, f.nextChunk, f.nextSession, f.logical, len(f.sessions))
	return b.Bytes()
}

func TestReportFailureDropsReplicasAndBumpsVersion(t *testing.T) {
	h := newHarness(t)
	f := h.create(api.RootIno, "f")
	h.seq++
	c := h.apply(&api.Command{Session: h.sess, Seq: h.seq, Placement: []string{"a", "b", "c"}, Primary: "a", LeaseNs: 1e12,
		Op: &api.Op{Op: &api.Op_AllocChunk{AllocChunk: &api.AllocChunkOp{Ino: f}}}}).Chunk
	report := func(version uint64, primary string, failed ...string) *api.MutateResponse {
		return h.apply(&api.Command{Primary: primary, LeaseNs: 1e12, Op: &api.Op{Op: &api.Op_ReportFailure{
			ReportFailure: &api.ReportFailureOp{Ino: f, ChunkId: c.Id, Version: version, Failed: failed}}}})
	}
	r := report(c.Version, "b", "a")
	if r.Errno != api.Errno_OK || r.Chunk.Version != c.Version+1 || r.Chunk.Primary != "b" || len(r.Chunk.Replicas) != 2 {
		t.Fatalf("after dropping the primary: %v", r)
	}
	// A late report against the old version changes nothing.
	if r2 := report(c.Version, "c", "b"); r2.Chunk.Version != r.Chunk.Version || len(r2.Chunk.Replicas) != 2 {
		t.Fatalf("stale report changed the chunk: %v", r2.Chunk)
	}
	if r3 := report(r.Chunk.Version, "", "b", "c"); r3.Errno != api.Errno_EIO {
		t.Fatalf("dropping every replica answered %v", r3.Errno)
	}
	if got := h.f.GetChunks(f, 0, 1).Chunks[0]; len(got.Replicas) != 2 {
		t.Fatalf("refused report still changed replicas: %v", got)
	}
}
