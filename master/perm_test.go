package master

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"syscall"
	"testing"
	"unsafe"

	"dfs/api"
)

// The callers every case is tried as: the file's owner is 1000, its
// group 2000; 1004 and group 4000 are the ACLs' named user and group.
var permCallers = []principal{
	{uid: 0, gid: 0},
	{uid: 1000, gid: 3000},
	{uid: 1000, gid: 2000, groups: []uint32{4000}},
	{uid: 1001, gid: 2000},
	{uid: 1002, gid: 3000, groups: []uint32{2000}},
	{uid: 1003, gid: 3000},
	{uid: 1004, gid: 3000},
	{uid: 1004, gid: 2000},
	{uid: 1005, gid: 3000, groups: []uint32{4000}},
	{uid: 1006, gid: 2000, groups: []uint32{4000}},
}

// kernelCase is one inode made on a local file system, for the kernel to
// judge access to.
type kernelCase struct {
	name string
	attr *attrs
	acl  acl
}

// TestPermissionMatchesKernel compares permission with the running
// kernel's own decision (faccessat2 with AT_EACCESS, made with each
// caller's credentials on one thread) for every permission mode of files
// and directories and for ACLs with every combination of named user,
// named group and mask permissions, as every caller, for every access.
func TestPermissionMatchesKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as other users")
	}
	dir, err := os.MkdirTemp("", "perm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil { // every caller walks into it
		t.Fatal(err)
	}
	var cases []kernelCase
	add := func(name string, isDir bool, mode uint32, a acl) {
		path := filepath.Join(dir, name)
		if isDir {
			err = os.Mkdir(path, 0)
		} else {
			err = os.WriteFile(path, nil, 0)
		}
		if err == nil {
			err = os.Lchown(path, 1000, 2000)
		}
		if err == nil {
			err = syscall.Chmod(path, mode)
		}
		if err == nil && a != nil {
			err = syscall.Setxattr(path, ACLAccessXattr, a.encode(), 0)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		c := kernelCase{name: name, attr: &attrs{Mode: st.Mode, Uid: st.Uid, Gid: st.Gid}}
		// The ACL as the kernel keeps it (none when the mode says it all).
		buf := make([]byte, 1024)
		if n, err := syscall.Getxattr(path, ACLAccessXattr, buf); err == nil {
			if c.acl, err = parseACL(buf[:n]); err != nil {
				t.Fatal(err)
			}
		}
		cases = append(cases, c)
	}
	for mode := uint32(0); mode < 0o1000; mode++ {
		add(fmt.Sprintf("f%o", mode), false, mode, nil)
		add(fmt.Sprintf("d%o", mode), true, mode, nil)
	}
	for _, base := range []uint32{0o750, 0o705, 0o077, 0o641} {
		for u := uint16(0); u < 8; u++ {
			for g := uint16(0); g < 8; g++ {
				for m := uint16(0); m < 8; m++ {
					a := acl{
						{tag: aclUserObj, perm: uint16(base >> 6 & 7), id: aclUndefinedID},
						{tag: aclUser, perm: u, id: 1004},
						{tag: aclGroupObj, perm: uint16(base >> 3 & 7), id: aclUndefinedID},
						{tag: aclGroup, perm: g, id: 4000},
						{tag: aclMask, perm: m, id: aclUndefinedID},
						{tag: aclOther, perm: uint16(base & 7), id: aclUndefinedID},
					}
					add(fmt.Sprintf("a%o-%d%d%d", base, u, g, m), false, base, a)
					if u == g {
						add(fmt.Sprintf("A%o-%d%d%d", base, u, g, m), true, base, a)
					}
				}
			}
		}
	}
	dirfd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(dirfd)

	type verdict struct {
		caller, c, want int
		kernel          bool
	}
	results := make(chan []verdict)
	go func() {
		// The credentials change on this thread only; it is never
		// unlocked, so it ends with the goroutine.
		runtime.LockOSThread()
		var out []verdict
		for ci, p := range permCallers {
			if err := setThreadCreds(p); err != nil {
				t.Error(err)
				break
			}
			for i, c := range cases {
				for want := 1; want <= 7; want++ {
					out = append(out, verdict{ci, i, want, faccessat2(dirfd, c.name, uint32(want)) == nil})
				}
			}
		}
		results <- out
	}()
	withACL := 0
	for _, c := range cases {
		if c.acl != nil {
			withACL++
		}
	}
	checked, wrong := 0, 0
	for _, v := range <-results {
		p, c := permCallers[v.caller], cases[v.c]
		got := permission(p, c.attr, c.acl, uint32(v.want))
		checked++
		if got != v.kernel {
			wrong++
			if wrong <= 20 {
				t.Errorf("%s (mode %o, acl %v) as %+v asking %s: kernel %v, permission %v",
					c.name, c.attr.Mode, c.acl, p, accessName(uint32(v.want)), v.kernel, got)
			}
		}
	}
	t.Logf("%d inodes (%d with an ACL), %d decisions compared with the kernel, %d differ", len(cases), withACL, checked, wrong)
	if checked == 0 || withACL == 0 {
		t.Fatal("nothing compared")
	}
}

// setThreadCreds makes the calling thread act as p (effective ids; the
// real and saved ids stay root, so the next call may switch again).
func setThreadCreds(p principal) error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), 0, ^uintptr(0)); e != 0 {
		return fmt.Errorf("setresuid back to root: %v", e)
	}
	var gs unsafe.Pointer
	if len(p.groups) > 0 {
		gs = unsafe.Pointer(&p.groups[0])
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, uintptr(len(p.groups)), uintptr(gs), 0); e != 0 {
		return fmt.Errorf("setgroups: %v", e)
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, ^uintptr(0), uintptr(p.gid), ^uintptr(0)); e != 0 {
		return fmt.Errorf("setresgid: %v", e)
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), uintptr(p.uid), ^uintptr(0)); e != 0 {
		return fmt.Errorf("setresuid: %v", e)
	}
	return nil
}

// faccessat2 asks the kernel for access with the effective credentials
// (AT_EACCESS), which the plain faccessat cannot.
func faccessat2(dirfd int, name string, mode uint32) error {
	const sysFaccessat2 = 439
	const atEaccess = 0x200
	b, err := syscall.BytePtrFromString(name)
	if err != nil {
		return err
	}
	_, _, e := syscall.Syscall6(sysFaccessat2, uintptr(dirfd), uintptr(unsafe.Pointer(b)), uintptr(mode), atEaccess, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// root is the caller of tests that act as an administrator.
var root = &api.Caller{}

// TestPermitOps checks the rules of namespace calls beyond access bits,
// each with the errno Linux answers, on a small tree made by root: a
// sticky 1777 directory holding a file of uid 10, a 0755 directory, and
// a 0644 file of uid 10 in group 20.
func TestPermitOps(t *testing.T) {
	h := newHarness(t)
	mk := func(o any) uint64 {
		t.Helper()
		h.seq++
		op := &api.Op{}
		reflect.ValueOf(op).Elem().FieldByName("Op").Set(reflect.ValueOf(o))
		r := h.apply(&api.Command{Session: h.sess, Seq: h.seq, Caller: root, Op: op})
		if r.Errno != api.Errno_OK {
			t.Fatalf("%v: %v", o, r)
		}
		return r.Attr.Ino
	}
	tmp := mk(&api.Op_Mkdir{Mkdir: &api.MkdirOp{Parent: api.RootIno, Name: "tmp", Mode: 0o1777}})
	dir := mk(&api.Op_Mkdir{Mkdir: &api.MkdirOp{Parent: api.RootIno, Name: "dir", Mode: 0o755}})
	f := mk(&api.Op_Create{Create: &api.CreateOp{Parent: tmp, Name: "f", Mode: 0o644}})
	mk(&api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_UID | api.SetAttrOp_GID), Uid: 10, Gid: 20}})
	g := mk(&api.Op_Create{Create: &api.CreateOp{Parent: tmp, Name: "g", Mode: 0o644}})
	mk(&api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: g, Valid: uint32(api.SetAttrOp_UID | api.SetAttrOp_GID | api.SetAttrOp_MODE),
		Uid: 10, Gid: 20, Mode: 0o6664}})
	owner := &api.Caller{Uid: 10, Gid: 10}
	member := &api.Caller{Uid: 11, Gid: 11, Groups: []uint32{20, 30}}
	stranger := &api.Caller{Uid: 12, Gid: 12}
	cases := []struct {
		what   string
		caller *api.Caller
		op     any
		want   api.Errno
	}{
		{"unlink another's file in a sticky dir", stranger, &api.Op_Unlink{Unlink: &api.UnlinkOp{Parent: tmp, Name: "f"}}, api.Errno_EPERM},
		{"unlink one's file in a sticky dir", owner, &api.Op_Unlink{Unlink: &api.UnlinkOp{Parent: tmp, Name: "f"}}, api.Errno_OK},
		{"unlink a missing name: the FSM answers", stranger, &api.Op_Unlink{Unlink: &api.UnlinkOp{Parent: tmp, Name: "none"}}, api.Errno_OK},
		{"create in root's 0755 dir", owner, &api.Op_Create{Create: &api.CreateOp{Parent: dir, Name: "g"}}, api.Errno_EACCES},
		{"create a device in a writable dir", owner, &api.Op_Create{Create: &api.CreateOp{Parent: tmp, Name: "dev", Mode: syscall.S_IFCHR | 0o600}}, api.Errno_EPERM},
		{"open an existing 0644 file for write", stranger, &api.Op_Create{Create: &api.CreateOp{Parent: tmp, Name: "f", Open: true, Access: api.MayWrite}}, api.Errno_EACCES},
		{"open an existing 0644 file for read", stranger, &api.Op_Create{Create: &api.CreateOp{Parent: tmp, Name: "f", Open: true}}, api.Errno_OK},
		{"rename a dir's entry into root's dir", owner, &api.Op_Rename{Rename: &api.RenameOp{Parent: tmp, Name: "f", NewParent: dir, NewName: "f"}}, api.Errno_EACCES},
		{"chmod by a non-owner", member, &api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_MODE), Mode: 0o600}}, api.Errno_EPERM},
		{"clearing setuid by a writer", member, &api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: g, Valid: uint32(api.SetAttrOp_MODE), Mode: 0o2664}}, api.Errno_OK},
		{"clearing setuid and setting x by a writer", member, &api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: g, Valid: uint32(api.SetAttrOp_MODE), Mode: 0o2665}}, api.Errno_EPERM},
		{"clearing setuid by a reader", stranger, &api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: g, Valid: uint32(api.SetAttrOp_MODE), Mode: 0o2664}}, api.Errno_EPERM},
		{"chmod by the owner", owner, &api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_MODE), Mode: 0o600}}, api.Errno_OK},
		{"chown to oneself by a non-owner", member, &api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_UID), Uid: 11}}, api.Errno_EPERM},
		{"chown to the same uid by the owner", owner, &api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_UID), Uid: 10}}, api.Errno_OK},
		{"chown by root", root, &api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_UID), Uid: 11}}, api.Errno_OK},
		{"chgrp by the owner to a group it is not in", owner, &api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_GID), Gid: 30}}, api.Errno_EPERM},
		{"chgrp by the owner to its own group", owner, &api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_GID), Gid: 10}}, api.Errno_OK},
		{"utimes to a time by a non-owner", member, &api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_MTIME), MtimeNs: 5}}, api.Errno_EPERM},
		{"utimes to now by a non-owner who may not write", stranger, &api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_ATIME_NOW | api.SetAttrOp_MTIME_NOW)}}, api.Errno_EACCES},
		{"one time to now by a non-owner", stranger, &api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_MTIME_NOW)}}, api.Errno_EPERM},
		{"truncate without write permission", member, &api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_SIZE)}}, api.Errno_EACCES},
		{"trusted xattr by its owner", owner, &api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: f, Name: "trusted.x"}}, api.Errno_EPERM},
		{"security xattr by its owner", owner, &api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: f, Name: "security.x"}}, api.Errno_EPERM},
		{"user xattr by a reader", member, &api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: f, Name: "user.x"}}, api.Errno_EACCES},
		{"user xattr by the owner", owner, &api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: f, Name: "user.x"}}, api.Errno_OK},
		{"user xattr on a sticky dir by a writer not its owner", owner, &api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: tmp, Name: "user.x"}}, api.Errno_EPERM},
		{"ACL by a non-owner", member, &api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: f, Name: ACLAccessXattr}}, api.Errno_EPERM},
		{"layout by a reader", member, &api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: f, Name: LayoutXattr}}, api.Errno_EACCES},
		{"layout of a writable dir by a writer", owner, &api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: tmp, Name: LayoutXattr}}, api.Errno_OK},
		{"hard link to a file one may not write", member, &api.Op_Link{Link: &api.LinkOp{Ino: f, NewParent: tmp, NewName: "l"}}, api.Errno_EPERM},
		{"write data of a file one may not write", member, &api.Op_CommitWrite{CommitWrite: &api.CommitWriteOp{Ino: f, Size: 1}}, api.Errno_EACCES},
		{"no caller: nobody", nil, &api.Op_Mkdir{Mkdir: &api.MkdirOp{Parent: dir, Name: "d"}}, api.Errno_EACCES},
	}
	for _, c := range cases {
		op := &api.Op{}
		reflect.ValueOf(op).Elem().FieldByName("Op").Set(reflect.ValueOf(c.op))
		got := api.Errno_OK
		if d := h.f.permit(&api.Command{Caller: c.caller, Op: op}, false); d != nil {
			got = d.errno
		}
		if got != c.want {
			t.Errorf("%s: %v, want %v", c.what, got, c.want)
		}
	}
}

// BenchmarkPermitCreate is the leader's cost of checking a create by a
// user other than the directory's owner, through a group ACL entry.
func BenchmarkPermitCreate(b *testing.B) {
	h := newHarness(&testing.T{})
	r := h.apply(&api.Command{Caller: root, Op: &api.Op{Op: &api.Op_Mkdir{Mkdir: &api.MkdirOp{Parent: api.RootIno, Name: "d", Mode: 0o775}}}})
	a := acl{{aclUserObj, 7, aclUndefinedID}, {aclGroupObj, 5, aclUndefinedID}, {aclGroup, 7, 30}, {aclMask, 7, aclUndefinedID}, {aclOther, 5, aclUndefinedID}}
	h.apply(&api.Command{Caller: root, Op: &api.Op{Op: &api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: r.Attr.Ino, Name: ACLAccessXattr, Value: a.encode()}}}})
	cmd := &api.Command{Caller: &api.Caller{Uid: 11, Gid: 11, Groups: []uint32{20, 30}},
		Op: &api.Op{Op: &api.Op_Create{Create: &api.CreateOp{Parent: r.Attr.Ino, Name: "f", Mode: 0o644}}}}
	for b.Loop() {
		if d := h.f.permit(cmd, false); d != nil {
			b.Fatal(d.msg)
		}
	}
}
