package master

import (
	"slices"
	"syscall"
	"testing"

	"dfs/api"
)

// The FSM's parts of the mount's POSIX behaviour: access-time updates,
// write times, temporary files.

func TestAccessTimeLeavesCtime(t *testing.T) {
	h := newHarness(t)
	f := h.create(api.RootIno, "f")
	before := h.attr(f)
	h.must(&api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f,
		Valid: uint32(api.SetAttrOp_ACCESS | api.SetAttrOp_ATIME_NOW)}}, api.Errno_OK)
	after := h.attr(f)
	if after.AtimeNs <= before.AtimeNs || after.CtimeNs != before.CtimeNs || after.MtimeNs != before.MtimeNs {
		t.Errorf("access update: atime %d->%d ctime %d->%d mtime %d->%d; want only atime to move",
			before.AtimeNs, after.AtimeNs, before.CtimeNs, after.CtimeNs, before.MtimeNs, after.MtimeNs)
	}
	// Without ACCESS, an atime update is a utimensat: ctime moves.
	h.must(&api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_ATIME_NOW)}}, api.Errno_OK)
	if a := h.attr(f); a.CtimeNs <= after.CtimeNs {
		t.Errorf("utimensat(atime): ctime %d, want later than %d", a.CtimeNs, after.CtimeNs)
	}
}

// An AccessOp sets the access time of every inode it names to the
// command's time, leaves ctime and mtime alone, and skips inodes that
// are gone.
func TestAccessOpMany(t *testing.T) {
	h := newHarness(t)
	d := h.mkdir(api.RootIno, "d")
	a, b := h.create(d, "a"), h.create(d, "b")
	gone := h.create(d, "gone")
	h.must(&api.Op_Unlink{Unlink: &api.UnlinkOp{Parent: d, Name: "gone"}}, api.Errno_OK)
	h.reclaim(gone)
	before := map[uint64]*api.Attr{a: h.attr(a), b: h.attr(b), d: h.attr(d)}
	r := h.must(&api.Op_Access{Access: &api.AccessOp{Inos: []uint64{a, gone, b, d, a}}}, api.Errno_OK)
	if r.AtimeNs != h.now {
		t.Fatalf("answer's atime %d, want the command's time %d", r.AtimeNs, h.now)
	}
	for ino, was := range before {
		now := h.attr(ino)
		if now.AtimeNs != h.now || now.CtimeNs != was.CtimeNs || now.MtimeNs != was.MtimeNs {
			t.Errorf("inode %d: atime %d ctime %d->%d mtime %d->%d; want atime %d and the rest unchanged",
				ino, now.AtimeNs, was.CtimeNs, now.CtimeNs, was.MtimeNs, now.MtimeNs, h.now)
		}
	}
	if _, ok := h.f.inodes[gone]; ok {
		t.Errorf("an access-time update brought back reclaimed inode %d", gone)
	}
}

// The leader drops from an AccessOp the files the caller may not read
// (and does not hold open), keeping the rest.
func TestPermitAccessDropsUnreadable(t *testing.T) {
	h := newHarness(t)
	open := h.create(api.RootIno, "open")     // owner uid 10, mode 0644
	secret := h.create(api.RootIno, "secret") // made unreadable below
	held := h.create(api.RootIno, "held")     // unreadable, but held open
	for _, ino := range []uint64{secret, held} {
		h.must(&api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: ino, Valid: uint32(api.SetAttrOp_MODE), Mode: 0o600}}, api.Errno_OK)
	}
	cmd := &api.Command{Caller: &api.Caller{Uid: 11, Gid: 21}}
	op := &api.AccessOp{Inos: []uint64{secret, open, held, 999999}}
	h.f.permitAccess(cmd, op, []bool{false, false, true, false})
	want := []uint64{open, held, 999999}
	if !slices.Equal(op.Inos, want) {
		t.Errorf("kept %v, want %v (secret %d dropped)", op.Inos, want, secret)
	}
}

func TestCommitWriteTimes(t *testing.T) {
	h := newHarness(t)
	f := h.create(api.RootIno, "f")
	// The writer's time becomes mtime, and ctime when that is later.
	wt := h.now + 500
	h.must(&api.Op_CommitWrite{CommitWrite: &api.CommitWriteOp{Ino: f, Size: 10, MtimeNs: wt}}, api.Errno_OK)
	if a := h.attr(f); a.MtimeNs != wt || a.CtimeNs != wt || a.Size != 10 {
		t.Errorf("after commit: mtime %d ctime %d size %d, want %d %d 10", a.MtimeNs, a.CtimeNs, a.Size, wt, wt)
	}
	// A chmod between the write and its commit: ctime stays at the chmod.
	h.must(&api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_MODE), Mode: 0o600}}, api.Errno_OK)
	chmodAt := h.attr(f).CtimeNs
	h.must(&api.Op_CommitWrite{CommitWrite: &api.CommitWriteOp{Ino: f, Size: 5, MtimeNs: chmodAt - 100}}, api.Errno_OK)
	if a := h.attr(f); a.MtimeNs != chmodAt-100 || a.CtimeNs != chmodAt || a.Size != 10 {
		t.Errorf("late commit: mtime %d ctime %d size %d, want %d %d 10 (a commit never shrinks)", a.MtimeNs, a.CtimeNs, a.Size, chmodAt-100, chmodAt)
	}
	// Without a writer's time, the leader's clock stamps both.
	r := h.must(&api.Op_CommitWrite{CommitWrite: &api.CommitWriteOp{Ino: f, Size: 20}}, api.Errno_OK)
	if r.Attr.MtimeNs != h.now || r.Attr.CtimeNs != h.now {
		t.Errorf("commit without a time: mtime %d ctime %d, want %d", r.Attr.MtimeNs, r.Attr.CtimeNs, h.now)
	}
}

func TestTmpfile(t *testing.T) {
	h := newHarness(t)
	d := h.mkdir(api.RootIno, "d")
	dirBefore := h.attr(d)
	r := h.must(&api.Op_Create{Create: &api.CreateOp{Parent: d, Mode: 0o640, Open: true, Tmpfile: true}}, api.Errno_OK)
	tf := r.Attr.Ino
	if r.Attr.Nlink != 0 || r.Attr.Mode != syscall.S_IFREG|0o640 || r.Attr.Uid != 10 {
		t.Errorf("tmpfile attr: nlink %d mode %o uid %d", r.Attr.Nlink, r.Attr.Mode, r.Attr.Uid)
	}
	if names := h.names(d); len(names) != 0 {
		t.Errorf("tmpfile shows in its directory: %v", names)
	}
	if a := h.attr(d); a.MtimeNs != dirBefore.MtimeNs {
		t.Error("tmpfile changed its directory's mtime")
	}
	// Linked while open, it gets a name and outlives its release.
	h.must(&api.Op_Link{Link: &api.LinkOp{Ino: tf, NewParent: d, NewName: "kept"}}, api.Errno_OK)
	h.must(&api.Op_Release{Release: &api.ReleaseOp{Ino: tf}}, api.Errno_OK)
	if a := h.attr(tf); a.Nlink != 1 {
		t.Errorf("linked tmpfile: nlink %d", a.Nlink)
	}
	// Released without a name, it is gone, and can no longer be linked.
	tf2 := h.must(&api.Op_Create{Create: &api.CreateOp{Parent: d, Mode: 0o600, Open: true, Tmpfile: true}}, api.Errno_OK).Attr.Ino
	h.must(&api.Op_Release{Release: &api.ReleaseOp{Ino: tf2}}, api.Errno_OK)
	h.reclaim(tf2)
	if _, e := h.f.GetAttr(tf2); e != api.Errno_ENOENT {
		t.Errorf("released tmpfile: %v, want ENOENT", e)
	}
	h.must(&api.Op_Link{Link: &api.LinkOp{Ino: tf2, NewParent: d, NewName: "late"}}, api.Errno_ENOENT)
	// Only regular files, and only with an open.
	h.must(&api.Op_Create{Create: &api.CreateOp{Parent: d, Mode: syscall.S_IFIFO | 0o600, Open: true, Tmpfile: true}}, api.Errno_EINVAL)
	f := h.create(d, "plain")
	h.must(&api.Op_Create{Create: &api.CreateOp{Parent: f, Mode: 0o600, Open: true, Tmpfile: true}}, api.Errno_ENOTDIR)
}
