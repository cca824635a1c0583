package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"dfs/cluster"

	"golang.org/x/sys/unix"
)

// POSIX ACLs: the same steps on local ext4 and on the mount, compared by
// the differential checker (getfacl output, modes, errnos, access by
// other users), real copy tools round-tripping ACLs, and a second mount
// seeing and enforcing them.

// userC is in no group the scenarios name.
var userC = cred{1003, 1003, []uint32{1003}}

// TestPosixACL runs the ACL scenarios on ext4 and on the mount.
func TestPosixACL(t *testing.T) {
	requireTool(t, "setfacl", "getfacl")
	runDifferential(t, []scenario{
		{"acl_user", scACLUser},
		{"acl_default", scACLDefault},
		{"acl_raw", scACLRaw},
	})
}

func requireTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s is missing: install the Debian packages in the Makefile's TEST_PACKAGES (make deps)", n)
		}
	}
}

// tool runs a program in the scenario's root, as root or as c, and
// records its exit and output, in which names are relative to the root.
// (A child does not inherit p.as's per-thread credentials.)
func (p *px) tool(c *cred, name string, args ...string) []string {
	cmd := exec.Command(name, args...)
	cmd.Dir = p.root
	who := ""
	if c != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: c.uid, Gid: c.gid, Groups: c.groups}}
		who = fmt.Sprintf("[%d] ", c.uid)
	}
	out, err := cmd.CombinedOutput()
	status := "ok"
	if err != nil {
		status = "failed"
	}
	p.logf("%s%s %s: %s", who, name, strings.Join(args, " "), status)
	return strings.Split(strings.TrimRight(string(out), "\n"), "\n")
}

func (p *px) setfacl(args ...string) { p.setfaclAs(nil, args...) }

func (p *px) setfaclAs(c *cred, args ...string) {
	for _, l := range p.tool(c, "setfacl", args...) {
		if l != "" {
			p.logf("  %s", l)
		}
	}
}

// getfacl records name's ACLs as getfacl shows them, numerically.
func (p *px) getfacl(name string) {
	for _, l := range p.tool(nil, "getfacl", "-n", name) {
		p.logf("  %s", l)
	}
}

func (p *px) mknod(name string, mode uint32) {
	p.e(fmt.Sprintf("mknod %s %o", name, mode), syscall.Mknod(p.path(name), mode, 0))
}

// tmpfile makes an O_TMPFILE file in dir and links it as name.
func (p *px) tmpfile(dir, name string, mode uint32) {
	fd, err := unix.Open(p.path(dir), unix.O_TMPFILE|unix.O_WRONLY, mode)
	p.e("O_TMPFILE "+name, err)
	if err == nil {
		p.e("linkat "+name, unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD,
			p.path(name), unix.AT_SYMLINK_FOLLOW))
		unix.Close(fd)
	}
}

// listx records name's extended attribute names.
func (p *px) listx(name string) {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p.path(name), buf)
	if err != nil {
		p.e("listxattr "+name, err)
		return
	}
	names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	sort.Strings(names)
	p.logf("listxattr %s: %q", name, names)
}

// withUmask runs f with the process umask set to m.
func (p *px) withUmask(m int, f func()) {
	old := syscall.Umask(m)
	defer syscall.Umask(old)
	p.logf("umask %03o", m)
	f()
}

// scACLUser: a named user's entry grants what the mode bits deny, the
// mask limits it, chmod moves the mask, and setfacl -b takes it away.
func scACLUser(p *px) {
	p.as(userA, func() {
		p.create("f", 0o600)
		p.write("f", 0, "data")
	})
	p.st("f")
	p.as(userB, func() { p.read("f") })
	p.setfacl("-m", "u:1002:rw", "f")
	p.st("f")
	p.getfacl("f")
	p.listx("f")
	p.as(userB, func() {
		p.read("f")
		p.write("f", 0, "b")
		p.access("f", unix.R_OK|unix.W_OK)
		p.access("f", unix.X_OK)
	})
	p.as(userC, func() {
		p.read("f")
		p.write("f", 0, "c")
	})
	// A named group widens the mask, and with it the group mode bits.
	p.setfacl("-m", fmt.Sprintf("g:%d:rwx", gidShared), "f")
	p.st("f")
	p.getfacl("f")
	// chmod sets the mask: user B keeps only read.
	p.chmod("f", 0o640)
	p.st("f")
	p.getfacl("f")
	p.as(userB, func() {
		p.read("f")
		p.write("f", 0, "d")
	})
	p.setfacl("-m", "m::rw", "f")
	p.st("f")
	p.as(userB, func() { p.write("f", 0, "e") })
	// Removing an entry recalculates the mask, unless told not to.
	p.setfacl("-x", fmt.Sprintf("g:%d", gidShared), "f")
	p.st("f")
	p.getfacl("f")
	p.setfacl("-n", "-m", "u:1002:rwx", "f")
	p.getfacl("f")
	// The owner may change the ACL, others may not.
	p.setfaclAs(&userA, "-m", "u:1003:r", "f")
	p.setfaclAs(&userB, "-m", "u:1002:r", "f")
	p.as(userC, func() { p.read("f") })
	// chown leaves the ACL alone.
	p.chown("f", uidB, gidB)
	p.getfacl("f")
	p.setfacl("-b", "f")
	p.st("f")
	p.getfacl("f")
	p.listx("f")
	p.as(userC, func() { p.read("f") })
	// A directory's named user may search and list it.
	p.mkdir("d", 0o700)
	p.create("d/x", 0o644)
	p.as(userB, func() { p.list("d") })
	p.setfacl("-m", "u:1002:rx", "d")
	p.as(userB, func() {
		p.list("d")
		p.read("d/x")
		p.create("d/y", 0o644)
	})
	p.st("d")
}

// scACLDefault: default ACLs pass on to files, directories, fifos and
// temporary files made in the directory whatever the umask, directories
// also get the default ACL itself, symlinks nothing; without one the
// umask applies; setfacl -k removes it.
func scACLDefault(p *px) {
	p.mkdir("d", 0o755)
	p.setfacl("-m", "u:1002:rwx", "d")
	p.setfacl("-d", "-m", fmt.Sprintf("u:1002:rwx,g:%d:r-x,o::---", gidShared), "d")
	p.st("d")
	p.getfacl("d")
	p.listx("d")
	for _, um := range []int{0, 0o022, 0o027, 0o077, 0o777} {
		p.withUmask(um, func() {
			sfx := fmt.Sprintf("%03o", um)
			p.create("d/f"+sfx, 0o666)
			p.create("d/x"+sfx, 0o751)
			p.mkdir("d/s"+sfx, 0o777)
			p.mkdir("d/t"+sfx, 0o710)
			p.mknod("d/p"+sfx, syscall.S_IFIFO|0o644)
			p.symlink("f"+sfx, "d/l"+sfx)
			p.tmpfile("d", "d/o"+sfx, 0o640)
			for _, n := range []string{"f", "x", "s", "t", "p", "l", "o"} {
				p.st("d/" + n + sfx)
				if n != "l" {
					p.getfacl("d/" + n + sfx)
				}
			}
		})
	}
	// Grandchildren inherit through a subdirectory.
	p.withUmask(0o022, func() {
		p.create("d/s022/inner", 0o644)
		p.mkdir("d/s022/sub", 0o700)
		p.st("d/s022/inner")
		p.getfacl("d/s022/inner")
		p.getfacl("d/s022/sub")
	})
	// The inherited entries are enforced.
	p.as(userB, func() {
		p.create("d/byB", 0o640)
		p.write("d/f022", 0, "b")
		p.list("d/s077")
	})
	p.as(userC, func() { p.read("d/f000") })
	p.st("d/byB")
	p.getfacl("d/byB")
	// chmod changes the access ACL, not the default one.
	p.chmod("d", 0o750)
	p.st("d")
	p.getfacl("d")
	// Without the default ACL the umask is back.
	p.setfacl("-k", "d")
	p.getfacl("d")
	p.withUmask(0o027, func() {
		p.create("d/after", 0o666)
		p.mkdir("d/afterdir", 0o777)
		p.mknod("d/afterfifo", syscall.S_IFIFO|0o666)
		p.tmpfile("d", "d/aftertmp", 0o666)
	})
	for _, n := range []string{"after", "afterdir", "afterfifo", "aftertmp"} {
		p.st("d/" + n)
		p.getfacl("d/" + n)
	}
	p.setfacl("-b", "d")
	p.getfacl("d")
	p.listx("d")
}

// aclValue is an ACL's binary xattr value; entries are (tag, perm, id).
func aclValue(entries ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

const (
	aclAccess  = "system.posix_acl_access"
	aclDefault = "system.posix_acl_default"
	noID       = 0xffffffff
)

// scACLRaw: the xattr interface itself: malformed values, default ACLs
// on files, removing absent ACLs, the value read back, and setgid
// cleared by an owner outside the file's group.
func scACLRaw(p *px) {
	p.create("f", 0o644)
	p.mkdir("d", 0o755)
	p.symlink("f", "l")
	p.st("f")
	set := func(name, attr string, v []byte) {
		p.e(fmt.Sprintf("setxattr %s %s %x", name, attr, v), unix.Lsetxattr(p.path(name), attr, v, 0))
	}
	get := func(name, attr string) {
		buf := make([]byte, 4096)
		n, err := unix.Lgetxattr(p.path(name), attr, buf)
		if err != nil {
			p.e(fmt.Sprintf("getxattr %s %s", name, attr), err)
			return
		}
		p.logf("getxattr %s %s: %x", name, attr, buf[:n])
	}
	named := aclValue([3]uint32{1, 6, noID}, [3]uint32{2, 7, 1002}, [3]uint32{4, 4, noID}, [3]uint32{0x10, 5, noID}, [3]uint32{0x20, 0, noID})
	for _, bad := range [][]byte{
		[]byte("garbage"),
		{2, 0, 0, 0, 1},
		aclValue(),
		aclValue([3]uint32{1, 6, noID}, [3]uint32{0x20, 4, noID}),                                                           // no group
		aclValue([3]uint32{1, 6, noID}, [3]uint32{2, 7, 1002}, [3]uint32{4, 4, noID}, [3]uint32{0x20, 0, noID}),             // no mask
		aclValue([3]uint32{4, 4, noID}, [3]uint32{1, 6, noID}, [3]uint32{0x20, 0, noID}),                                    // out of order
		aclValue([3]uint32{1, 9, noID}, [3]uint32{4, 4, noID}, [3]uint32{0x20, 0, noID}),                                    // bad perm
		aclValue([3]uint32{1, 6, noID}, [3]uint32{4, 4, noID}, [3]uint32{0x40, 0, noID}, [3]uint32{0x20, 0, noID}),          // bad tag
		append([]byte{1, 0, 0, 0}, aclValue([3]uint32{1, 6, noID}, [3]uint32{4, 4, noID}, [3]uint32{0x20, 0, noID})[4:]...), // version
	} {
		set("f", aclAccess, bad)
		set("d", aclDefault, bad)
	}
	p.st("f")
	get("f", aclAccess)
	// The ids of unnamed entries read back as undefined.
	set("f", aclAccess, aclValue([3]uint32{1, 7, 5}, [3]uint32{4, 5, 6}, [3]uint32{0x20, 1, 7}))
	p.st("f")
	get("f", aclAccess)
	p.listx("f")
	set("f", aclAccess, named)
	p.st("f")
	get("f", aclAccess)
	p.listx("f")
	p.e("remove access", unix.Removexattr(p.path("f"), aclAccess))
	p.st("f")
	p.e("remove access again", unix.Removexattr(p.path("f"), aclAccess))
	p.st("f")
	get("f", aclAccess)
	// Default ACLs: only directories hold them.
	set("f", aclDefault, named)
	p.e("remove default of a file", unix.Removexattr(p.path("f"), aclDefault))
	set("d", aclDefault, aclValue([3]uint32{1, 7, noID}, [3]uint32{4, 5, noID}, [3]uint32{0x20, 5, noID}))
	p.st("d")
	get("d", aclDefault)
	get("d", aclAccess)
	p.listx("d")
	p.e("remove default", unix.Removexattr(p.path("d"), aclDefault))
	p.st("d")
	p.e("remove default again", unix.Removexattr(p.path("d"), aclDefault))
	set("l", aclAccess, named)
	get("l", aclAccess)
	// An owner outside the file's group loses setgid by setting an
	// access ACL, as by chmod; one in the group keeps it.
	p.create("g", 0o644)
	p.chown("g", uidA, gidB)
	p.chmod("g", 0o2770)
	p.chown("f", uidA, gidShared)
	p.chmod("f", 0o2770)
	p.create("h", 0o644)
	p.chown("h", uidA, gidB)
	p.chmod("h", 0o2770)
	p.as(userA, func() {
		set("g", aclAccess, named)
		set("f", aclAccess, named)
		set("h", aclAccess, aclValue([3]uint32{1, 7, noID}, [3]uint32{4, 5, noID}, [3]uint32{0x20, 0, noID}))
	})
	p.st("g")
	p.st("f")
	p.st("h")
	// A setgid directory with a default ACL: what a non-member makes in
	// it keeps the group, and subdirectories keep setgid.
	p.mkdir("sg", 0o777)
	p.chown("sg", 0, gidShared)
	p.chmod("sg", 0o2777)
	set("sg", aclDefault, named)
	p.as(userC, func() {
		p.mkdir("sg/sub", 0o755)
		p.create("sg/file", 0o755)
	})
	p.st("sg/sub")
	p.st("sg/file")
	get("sg/sub", aclAccess)
	get("sg/sub", aclDefault)
}

// aclTree builds a small tree with access and default ACLs in dir.
func aclTree(t *testing.T, dir string) {
	t.Helper()
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	for _, d := range []string{"a", "a/b", "plain"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run("setfacl", "-m", "u:1002:rwx,g:2000:rx", "a")
	run("setfacl", "-d", "-m", "u:1001:rw,g:2000:r,o::-", "a", "a/b")
	for i, f := range []string{"a/f", "a/b/g", "plain/h", "top"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(strings.Repeat("x", i+1)), 0o664); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "a/inherited"), 0o775); err != nil {
		t.Fatal(err)
	}
	run("setfacl", "-m", "u:1003:r,m::rwx", "top")
	run("setfacl", "-m", "g:2000:rw", "plain/h")
	run("chmod", "640", "plain/h")
	if err := os.Symlink("top", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
}

// aclDump is getfacl -R of dir, entries sorted by name (directory order
// differs between file systems).
func aclDump(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command("getfacl", "-R", "-n", "-P", ".")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("getfacl -R %s: %v\n%s", dir, err, out)
	}
	blocks := strings.Split(strings.TrimSpace(string(out)), "\n\n")
	sort.Strings(blocks)
	return strings.Join(blocks, "\n\n")
}

// TestPosixACLTools: cp -a, tar --acls and rsync -A carry ACLs to and
// from the mount and within it, exactly as between ext4 directories.
func TestPosixACLTools(t *testing.T) {
	requireTool(t, "setfacl", "getfacl", "tar", "rsync")
	mnt, local := testDir(t, 0), localDir(t)
	for _, root := range []string{mnt, local} {
		if err := os.Mkdir(filepath.Join(root, "src"), 0o755); err != nil {
			t.Fatal(err)
		}
		aclTree(t, filepath.Join(root, "src"))
	}
	want := aclDump(t, filepath.Join(local, "src"))
	if got := aclDump(t, filepath.Join(mnt, "src")); got != want {
		t.Fatalf("the tree built on the mount differs from ext4's:\n--- ext4\n%s\n--- mount\n%s", want, got)
	}
	if !strings.Contains(want, "user:1002:rwx") || !strings.Contains(want, "default:user:1001:rw-") {
		t.Fatalf("the reference tree lacks its ACLs:\n%s", want)
	}
	tarFile := filepath.Join(local, "t.tar")
	steps := []struct {
		name string
		dst  string
		cmd  [][]string
	}{
		{"cp -a within the mount", filepath.Join(mnt, "cp"), [][]string{{"cp", "-a", filepath.Join(mnt, "src"), filepath.Join(mnt, "cp")}}},
		{"cp -a to ext4", filepath.Join(local, "cp"), [][]string{{"cp", "-a", filepath.Join(mnt, "src"), filepath.Join(local, "cp")}}},
		{"cp -a from ext4", filepath.Join(mnt, "cp2"), [][]string{{"cp", "-a", filepath.Join(local, "src"), filepath.Join(mnt, "cp2")}}},
		{"tar --acls", filepath.Join(mnt, "tar"), [][]string{
			{"tar", "--acls", "-cf", tarFile, "-C", filepath.Join(mnt, "src"), "."},
			{"mkdir", filepath.Join(mnt, "tar")},
			{"tar", "--acls", "-xpf", tarFile, "-C", filepath.Join(mnt, "tar")},
		}},
		{"rsync -aA within the mount", filepath.Join(mnt, "rs"), [][]string{{"rsync", "-aA", filepath.Join(mnt, "src") + "/", filepath.Join(mnt, "rs") + "/"}}},
		{"rsync -aA from ext4", filepath.Join(mnt, "rs2"), [][]string{{"rsync", "-aA", filepath.Join(local, "src") + "/", filepath.Join(mnt, "rs2") + "/"}}},
		{"rsync -aA to ext4", filepath.Join(local, "rs"), [][]string{{"rsync", "-aA", filepath.Join(mnt, "src") + "/", filepath.Join(local, "rs") + "/"}}},
	}
	for _, s := range steps {
		for _, c := range s.cmd {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v: %v\n%s", s.name, c, err, out)
			}
		}
		if got := aclDump(t, s.dst); got != want {
			t.Errorf("%s: ACLs differ:\n--- source\n%s\n--- copy\n%s", s.name, want, got)
		}
	}
}

// TestPosixACLTwoMounts: an ACL set through one mount shows through the
// other, which enforces it, and a change to it reaches the other within
// the attribute cache time.
func TestPosixACLTwoMounts(t *testing.T) {
	requireTool(t, "setfacl", "getfacl")
	a, b := mountPair(t)
	posixRoot(t, a)
	f := filepath.Join(a, "f")
	if err := os.WriteFile(f, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(f, uidA, gidA); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("setfacl", "-m", "u:1002:r", f).CombinedOutput(); err != nil {
		t.Fatalf("setfacl: %v\n%s", err, out)
	}
	getfacl := func(path string) string {
		out, err := exec.Command("getfacl", "-n", "--omit-header", path).CombinedOutput()
		if err != nil {
			t.Fatalf("getfacl %s: %v\n%s", path, err, out)
		}
		return string(out)
	}
	want := getfacl(f)
	if !strings.Contains(want, "user:1002:r--") {
		t.Fatalf("ACL not set on the first mount:\n%s", want)
	}
	deadline := 2*attrTimeout + time.Second
	waitFor(t, deadline, "the ACL on mount 1", func() bool { return getfacl(filepath.Join(b, "f")) == want })
	reads := func(c cred) error {
		p := &px{t: t, root: b, times: map[string][3]int64{}}
		var err error
		p.as(c, func() { _, err = os.ReadFile(filepath.Join(b, "f")) })
		return err
	}
	if err := reads(userB); err != nil {
		t.Errorf("user B reading through mount 1: %v, want allowed by the ACL", err)
	}
	if err := reads(userC); errno(err) != syscall.EACCES {
		t.Errorf("user C reading through mount 1: %v, want EACCES", err)
	}
	// Changes on mount 0 reach mount 1 within the entry and attribute
	// time (the kernel drops cached ACLs when it revalidates a name or
	// refreshes attributes for a permission check).
	if out, err := exec.Command("setfacl", "-m", "u:1003:r", f).CombinedOutput(); err != nil {
		t.Fatalf("setfacl -m: %v\n%s", err, out)
	}
	want = getfacl(f)
	waitFor(t, deadline, "the changed ACL on mount 1", func() bool { return getfacl(filepath.Join(b, "f")) == want })
	if err := reads(userC); err != nil {
		t.Errorf("user C reading through mount 1 after being granted: %v", err)
	}
	// Taking an entry away takes the access away.
	if out, err := exec.Command("setfacl", "-x", "u:1002", f).CombinedOutput(); err != nil {
		t.Fatalf("setfacl -x: %v\n%s", err, out)
	}
	want = getfacl(f)
	waitFor(t, deadline, "the removal on mount 1", func() bool {
		os.Stat(filepath.Join(b, "f"))
		return errno(reads(userB)) == syscall.EACCES
	})
	waitFor(t, deadline, "the new ACL on mount 1", func() bool { return getfacl(filepath.Join(b, "f")) == want })
}

// TestACLRestartFromSnapshot: ACLs and the modes they set come back
// whole when the masters restart from a Raft snapshot.
func TestACLRestartFromSnapshot(t *testing.T) {
	requireTool(t, "setfacl", "getfacl")
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 3, Mounts: 1,
		ExtraMasterArgs: []string{"-snapshot-interval", "200ms", "-snapshot-threshold", "4"}})
	dir := filepath.Join(c.MountDir(0), "t")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	aclTree(t, dir)
	want := aclDump(t, dir)
	// Enough commands after the ACLs for the next snapshot to hold them.
	for i := range 8 {
		if err := os.Mkdir(filepath.Join(c.MountDir(0), fmt.Sprint("pad", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "a snapshot holding the ACLs", func() bool {
		states, _ := filepath.Glob(filepath.Join(c.Dir(), "m1", "snapshots", "*", "state.bin"))
		for _, st := range states {
			if b, err := os.ReadFile(st); err == nil && bytes.Contains(b, []byte(aclDefault)) && bytes.Contains(b, []byte(aclAccess)) {
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if got := aclDump(t, dir); got != want {
		t.Errorf("ACLs after a restart from a snapshot:\n%s\nwant\n%s", got, want)
	}
}
