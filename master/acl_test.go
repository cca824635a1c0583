package master

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"dfs/api"
)

// minimalACL is the ACL a mode alone implies (owner, group, other).
func minimalACL(mode uint32) acl {
	return acl{{aclUserObj, uint16(mode >> 6 & 7), aclUndefinedID}, {aclGroupObj, uint16(mode >> 3 & 7), aclUndefinedID},
		{aclOther, uint16(mode & 7), aclUndefinedID}}
}

// TestACLValidExhaustive checks every tag sequence of up to six entries
// against the order rule written as a pattern: owner, named users, owning
// group, named groups, an optional mask, other; a mask wherever there
// are named entries.
func TestACLValidExhaustive(t *testing.T) {
	tags := []uint16{aclUserObj, aclUser, aclGroupObj, aclGroup, aclMask, aclOther, 0x40}
	letters := "abcdefz"
	order := regexp.MustCompile(`^a(b*)c(d*)(e?)f$`)
	var walk func(seq []int)
	walk = func(seq []int) {
		if len(seq) > 0 {
			var s strings.Builder
			a := make(acl, len(seq))
			for i, k := range seq {
				s.WriteByte(letters[k])
				a[i] = aclEntry{tag: tags[k], perm: uint16(i % 8), id: uint32(1000 + i)}
			}
			m := order.FindStringSubmatch(s.String())
			want := m != nil && (m[3] != "" || m[1] == "" && m[2] == "")
			got, err := parseACL(a.encode())
			if (err == nil) != want {
				t.Fatalf("%s: parse error %v, want valid=%v", s.String(), err, want)
			}
			if err == nil {
				for i, e := range got {
					if e.tag != aclUser && e.tag != aclGroup && e.id != aclUndefinedID {
						t.Fatalf("%s: entry %d keeps id %d, want undefined", s.String(), i, e.id)
					}
				}
			}
		}
		if len(seq) == 6 {
			return
		}
		for k := range tags {
			walk(append(seq, k))
		}
	}
	walk(nil)
}

func TestACLParseRejectsGarbage(t *testing.T) {
	good := minimalACL(0o640).encode()
	perm := append([]byte{}, good...)
	perm[6] = 8 // a permission bit beyond rwx
	for name, b := range map[string][]byte{
		"empty":        nil,
		"header only":  good[:4],
		"short entry":  good[:len(good)-1],
		"long":         append(append([]byte{}, good...), 0),
		"version 1":    append([]byte{1, 0, 0, 0}, good[4:]...),
		"bad perm":     perm,
		"missing user": append([]byte{2, 0, 0, 0}, good[12:]...),
	} {
		if _, err := parseACL(b); err == nil {
			t.Errorf("%s: accepted %x", name, b)
		}
	}
	if a, err := parseACL(good); err != nil || !bytes.Equal(a.encode(), good) {
		t.Errorf("minimal ACL: %v, round trip %x want %x", err, a.encode(), good)
	}
}

// TestACLModeRulesExhaustive checks equivMode, chmod and createMasq for
// every mode against ACLs with and without named entries and a mask.
func TestACLModeRulesExhaustive(t *testing.T) {
	for m := uint32(0); m < 0o1000; m++ {
		// A minimal ACL says exactly its mode.
		got, equiv := minimalACL(m).equivMode(syscall.S_IFREG | syscall.S_ISGID)
		if got != syscall.S_IFREG|syscall.S_ISGID|m || !equiv {
			t.Fatalf("minimal %o: equivMode %o %v", m, got, equiv)
		}
		for d := uint32(0); d < 0o1000; d += 0o111 {
			full := acl{{aclUserObj, uint16(d >> 6), aclUndefinedID}, {aclUser, 7, 5}, {aclGroupObj, uint16(d >> 3 & 7), aclUndefinedID},
				{aclGroup, 5, 6}, {aclMask, uint16(d >> 3 & 7), aclUndefinedID}, {aclOther, uint16(d & 7), aclUndefinedID}}
			// chmod then equivMode gives the mode back; named entries
			// and the owning group under a mask stay.
			c := full.chmod(m)
			if got, equiv := c.equivMode(syscall.S_IFDIR); got != syscall.S_IFDIR|m || equiv {
				t.Fatalf("chmod %o of %v: equivMode %o %v", m, full, got, equiv)
			}
			if c[1] != full[1] || c[2] != full[2] || c[3] != full[3] {
				t.Fatalf("chmod %o changed named or group entries: %v -> %v", m, full, c)
			}
			if got := minimalACL(d).chmod(m); !equalACL(got, minimalACL(m)) {
				t.Fatalf("chmod %o of minimal %o: %v", m, d, got)
			}
			// createMasq: each class's permissions are the default's and
			// the create mode's in common; with a mask, the mask is cut
			// and the owning group kept.
			inh, mode, notEquiv := full.createMasq(syscall.S_IFREG | m)
			want := d & m
			if mode != syscall.S_IFREG|want || !notEquiv {
				t.Fatalf("createMasq %o from %o: mode %o notEquiv %v", m, d, mode, notEquiv)
			}
			if inh[0].perm != uint16(want>>6) || inh[4].perm != uint16(want>>3&7) || inh[5].perm != uint16(want&7) ||
				inh[2] != full[2] || inh[1] != full[1] || inh[3] != full[3] {
				t.Fatalf("createMasq %o from %v: %v", m, full, inh)
			}
			inh, mode, notEquiv = minimalACL(d).createMasq(syscall.S_IFDIR | syscall.S_ISGID | m)
			if mode != syscall.S_IFDIR|syscall.S_ISGID|want || notEquiv || !equalACL(inh, minimalACL(want)) {
				t.Fatalf("createMasq %o from minimal %o: mode %o notEquiv %v acl %v", m, d, mode, notEquiv, inh)
			}
		}
	}
}

func equalACL(a, b acl) bool { return bytes.Equal(a.encode(), b.encode()) }

func (h *harness) setACL(ino uint64, name string, a acl, want api.Errno) *api.Attr {
	h.t.Helper()
	return h.must(&api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: ino, Name: name, Value: a.encode()}}, want).Attr
}

func (h *harness) acl(ino uint64, name string) acl {
	h.t.Helper()
	v, e := h.f.GetXattr(ino, name)
	if e == api.Errno_ENODATA {
		return nil
	}
	a, err := parseACL(v)
	if err != nil {
		h.t.Fatalf("stored %s: %v", name, err)
	}
	return a
}

func TestACLAccessSetsMode(t *testing.T) {
	h := newHarness(t)
	f := h.create(api.RootIno, "f")
	// Equivalent to a mode: the mode changes, nothing is stored.
	if a := h.setACL(f, ACLAccessXattr, minimalACL(0o751), api.Errno_OK); a.Mode != syscall.S_IFREG|0o751 {
		t.Errorf("minimal ACL: mode %o", a.Mode)
	}
	if x, _ := h.f.ListXattr(f); len(x) != 0 {
		t.Errorf("minimal ACL stored: %v", x)
	}
	// With a named user: stored, group bits from the mask.
	full := acl{{aclUserObj, 6, aclUndefinedID}, {aclUser, 7, 1001}, {aclGroupObj, 4, aclUndefinedID},
		{aclMask, 5, aclUndefinedID}, {aclOther, 0, aclUndefinedID}}
	if a := h.setACL(f, ACLAccessXattr, full, api.Errno_OK); a.Mode != syscall.S_IFREG|0o650 || a.Acls != api.AttrACLAccess {
		t.Errorf("ACL with mask r-x: mode %o acls %d, want 650 and the access bit", a.Mode, a.Acls)
	}
	if got := h.acl(f, ACLAccessXattr); !equalACL(got, full) {
		t.Errorf("stored %v, want %v", got, full)
	}
	// chmod rewrites owner, mask and other; the named user stays.
	h.must(&api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_MODE), Mode: 0o704}}, api.Errno_OK)
	want := acl{{aclUserObj, 7, aclUndefinedID}, {aclUser, 7, 1001}, {aclGroupObj, 4, aclUndefinedID},
		{aclMask, 0, aclUndefinedID}, {aclOther, 4, aclUndefinedID}}
	if got := h.acl(f, ACLAccessXattr); !equalACL(got, want) {
		t.Errorf("after chmod 704: %v, want %v", got, want)
	}
	// Setting the access ACL as someone outside the group clears setgid.
	h.must(&api.Op_SetAttr{SetAttr: &api.SetAttrOp{Ino: f, Valid: uint32(api.SetAttrOp_MODE), Mode: 0o2770}}, api.Errno_OK)
	r := h.must(&api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: f, Name: ACLAccessXattr, Value: full.encode(), KillSgid: true}}, api.Errno_OK)
	if r.Attr.Mode != syscall.S_IFREG|0o650 {
		t.Errorf("kill_sgid: mode %o, want 650", r.Attr.Mode)
	}
	// Removing it leaves the mode; removing an absent ACL succeeds and
	// changes nothing.
	h.must(&api.Op_RemoveXattr{RemoveXattr: &api.RemoveXattrOp{Ino: f, Name: ACLAccessXattr}}, api.Errno_OK)
	before := h.attr(f)
	r = h.must(&api.Op_RemoveXattr{RemoveXattr: &api.RemoveXattrOp{Ino: f, Name: ACLAccessXattr}}, api.Errno_OK)
	if r.Attr.Mode != syscall.S_IFREG|0o650 || r.Attr.CtimeNs != before.CtimeNs || h.acl(f, ACLAccessXattr) != nil || r.Attr.Acls != 0 {
		t.Errorf("after removal: mode %o ctime %d (was %d)", r.Attr.Mode, r.Attr.CtimeNs, before.CtimeNs)
	}
	// Garbage and default ACLs on files are refused.
	h.must(&api.Op_SetXattr{SetXattr: &api.SetXattrOp{Ino: f, Name: ACLAccessXattr, Value: []byte("garbage!")}}, api.Errno_EINVAL)
	h.setACL(f, ACLDefaultXattr, minimalACL(0o755), api.Errno_EACCES)
}

func TestACLInheritance(t *testing.T) {
	h := newHarness(t)
	plain := h.mkdir(api.RootIno, "plain")
	// Without a default ACL the umask applies; with one it does not.
	r := h.must(&api.Op_Create{Create: &api.CreateOp{Parent: plain, Name: "f", Mode: 0o666, Umask: 0o027}}, api.Errno_OK)
	if r.Attr.Mode != syscall.S_IFREG|0o640 {
		t.Errorf("umask 027 without default ACL: mode %o", r.Attr.Mode)
	}
	d := h.mkdir(api.RootIno, "d")
	def := acl{{aclUserObj, 7, aclUndefinedID}, {aclUser, 6, 1001}, {aclGroupObj, 5, aclUndefinedID},
		{aclMask, 7, aclUndefinedID}, {aclOther, 1, aclUndefinedID}}
	h.setACL(d, ACLDefaultXattr, def, api.Errno_OK)
	r = h.must(&api.Op_Create{Create: &api.CreateOp{Parent: d, Name: "f", Mode: 0o664, Umask: 0o077}}, api.Errno_OK)
	f := r.Attr.Ino
	if r.Attr.Mode != syscall.S_IFREG|0o660 {
		t.Errorf("file under default ACL: mode %o, want 660 (umask ignored)", r.Attr.Mode)
	}
	want := acl{{aclUserObj, 6, aclUndefinedID}, {aclUser, 6, 1001}, {aclGroupObj, 5, aclUndefinedID},
		{aclMask, 6, aclUndefinedID}, {aclOther, 0, aclUndefinedID}}
	if got := h.acl(f, ACLAccessXattr); !equalACL(got, want) {
		t.Errorf("file's access ACL %v, want %v", got, want)
	}
	if h.acl(f, ACLDefaultXattr) != nil || r.Attr.Acls != api.AttrACLAccess {
		t.Errorf("a file inherited a default ACL (acls %d)", r.Attr.Acls)
	}
	r = h.must(&api.Op_Mkdir{Mkdir: &api.MkdirOp{Parent: d, Name: "s", Mode: 0o777, Umask: 0o077}}, api.Errno_OK)
	if r.Attr.Mode != syscall.S_IFDIR|0o771 || r.Attr.Acls != api.AttrACLAccess|api.AttrACLDefault ||
		!equalACL(h.acl(r.Attr.Ino, ACLDefaultXattr), def) ||
		!equalACL(h.acl(r.Attr.Ino, ACLAccessXattr), def) {
		t.Errorf("subdirectory: mode %o access %v default %v", r.Attr.Mode, h.acl(r.Attr.Ino, ACLAccessXattr), h.acl(r.Attr.Ino, ACLDefaultXattr))
	}
	// Grandchildren inherit through the subdirectory.
	g := h.must(&api.Op_Mkdir{Mkdir: &api.MkdirOp{Parent: r.Attr.Ino, Name: "g", Mode: 0o750}}, api.Errno_OK).Attr
	if g.Mode != syscall.S_IFDIR|0o750 || !equalACL(h.acl(g.Ino, ACLDefaultXattr), def) {
		t.Errorf("grandchild: mode %o", g.Mode)
	}
	// A minimal default ACL gives no stored access ACL; symlinks take none.
	m := h.mkdir(api.RootIno, "m")
	h.setACL(m, ACLDefaultXattr, minimalACL(0o750), api.Errno_OK)
	r = h.must(&api.Op_Create{Create: &api.CreateOp{Parent: m, Name: "f", Mode: 0o666, Umask: 0o022}}, api.Errno_OK)
	if r.Attr.Mode != syscall.S_IFREG|0o640 || h.acl(r.Attr.Ino, ACLAccessXattr) != nil {
		t.Errorf("under a minimal default: mode %o access %v", r.Attr.Mode, h.acl(r.Attr.Ino, ACLAccessXattr))
	}
	l := h.must(&api.Op_Symlink{Symlink: &api.SymlinkOp{Parent: d, Name: "l", Target: "f"}}, api.Errno_OK).Attr
	if l.Mode != syscall.S_IFLNK|0o777 || h.acl(l.Ino, ACLAccessXattr) != nil {
		t.Errorf("symlink: mode %o", l.Mode)
	}
	tf := h.must(&api.Op_Create{Create: &api.CreateOp{Parent: d, Mode: 0o600, Open: true, Tmpfile: true, Umask: 0o077}}, api.Errno_OK).Attr
	if tf.Mode != syscall.S_IFREG|0o600 || h.acl(tf.Ino, ACLAccessXattr) == nil {
		t.Errorf("tmpfile under default ACL: mode %o access %v", tf.Mode, h.acl(tf.Ino, ACLAccessXattr))
	}

	// ACLs survive a snapshot; a snapshot with a broken one is refused.
	g2, _ := restored(t, h.f)
	if !bytes.Equal(dump(h.f), dump(g2)) {
		t.Fatal("restored state differs")
	}
	if v, _ := g2.GetXattr(f, ACLAccessXattr); !bytes.Equal(v, want.encode()) {
		t.Errorf("restored access ACL %x", v)
	}
	h.f.inodes[f].attr.Acls = 0
	snap, _ := h.f.Snapshot()
	if err := NewFSM().Restore(io.NopCloser(bytes.NewReader(snap.(*fsmSnapshot).data))); err == nil {
		t.Error("snapshot with wrong ACL bits accepted")
	}
	h.f.inodes[f].attr.Acls = api.AttrACLAccess
	h.f.inodes[f].xattrs[ACLAccessXattr] = []byte{2, 0, 0, 0, 1}
	snap, _ = h.f.Snapshot()
	if err := NewFSM().Restore(io.NopCloser(bytes.NewReader(snap.(*fsmSnapshot).data))); err == nil ||
		!strings.Contains(err.Error(), ACLAccessXattr) {
		t.Errorf("snapshot with a broken ACL: %v", err)
	}
}
