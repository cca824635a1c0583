package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"dfs/api"
	"dfs/client"
	"dfs/cluster"

	"golang.org/x/sys/unix"
)

// TestPermsDirectClient acts on the cluster through the client library,
// with no kernel in between, as uid 1000, and shows that the master
// refuses what Linux would (EACCES or EPERM) and that nothing it sent
// changed the namespace, as the root mount sees it; then the same calls
// made as the owner (or root) succeed.
func TestPermsDirectClient(t *testing.T) {
	c := shared(t)
	dir := testDir(t, 0)
	mk := func(name string, mode uint32, uid, gid int, dirent bool) uint64 {
		t.Helper()
		p := filepath.Join(dir, name)
		var err error
		if dirent {
			err = os.Mkdir(p, 0o700)
		} else {
			err = os.WriteFile(p, []byte("data of "+name), 0o600)
		}
		if err == nil {
			err = os.Chown(p, uid, gid)
		}
		if err == nil {
			err = syscall.Chmod(p, mode)
		}
		if err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	secret := mk("secret", 0o600, 0, 0, false)
	rootDir := mk("rootdir", 0o755, 0, 0, true)
	private := mk("private", 0o700, 0, 0, true)
	mk("private/x", 0o644, 0, 0, false)
	tmp := mk("tmp", 0o1777, 0, 0, true)
	mk("tmp/bfile", 0o644, 2000, 2000, false)
	other := mk("other", 0o644, 2000, 2000, false)
	own := mk("own", 0o644, 1000, 1000, false)
	before := namespaceOf(t, dir)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := client.New(ctx, client.Config{Masters: c.MasterAddrs(), Name: "perms-direct"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close(context.Background())
	as := func(uid, gid uint32, groups ...uint32) context.Context {
		return client.WithCaller(ctx, &api.Caller{Uid: uid, Gid: gid, Groups: groups})
	}
	user := as(1000, 1000, 1000)
	refused := []struct {
		what string
		want syscall.Errno
		call func(context.Context) error
	}{
		{"open root's 0600 file for read", syscall.EACCES, func(ctx context.Context) error {
			_, _, err := cl.OpenUnrecorded(ctx, secret, api.MayRead)
			return err
		}},
		{"read the chunks of root's 0600 file", syscall.EACCES, func(ctx context.Context) error {
			_, _, err := cl.GetChunks(ctx, secret, 0, 1)
			return err
		}},
		{"truncate root's 0600 file", syscall.EACCES, func(ctx context.Context) error {
			_, err := cl.SetAttr(ctx, &api.SetAttrOp{Ino: secret, Valid: uint32(api.SetAttrOp_SIZE)})
			return err
		}},
		{"grow root's 0600 file by a commit", syscall.EACCES, func(ctx context.Context) error {
			_, err := cl.CommitWrite(ctx, secret, 1<<20, 0)
			return err
		}},
		{"create in root's 0755 directory", syscall.EACCES, func(ctx context.Context) error {
			_, err := cl.Create(ctx, rootDir, "new", 0o644, 0, true, false)
			return err
		}},
		{"mkdir in root's 0755 directory", syscall.EACCES, func(ctx context.Context) error {
			_, err := cl.Mkdir(ctx, rootDir, "newdir", 0o755)
			return err
		}},
		{"look up in root's 0700 directory", syscall.EACCES, func(ctx context.Context) error {
			_, err := cl.Lookup(ctx, private, "x")
			return err
		}},
		{"list root's 0700 directory", syscall.EACCES, func(ctx context.Context) error {
			_, err := cl.ReadDir(ctx, private, 0, 0, true)
			return err
		}},
		{"unlink another user's file in a sticky directory", syscall.EPERM, func(ctx context.Context) error {
			return cl.Unlink(ctx, tmp, "bfile")
		}},
		{"rename another user's file out of a sticky directory", syscall.EPERM, func(ctx context.Context) error {
			return cl.Rename(ctx, tmp, "bfile", tmp, "mine", 0)
		}},
		{"chmod another user's file", syscall.EPERM, func(ctx context.Context) error {
			_, err := cl.SetAttr(ctx, &api.SetAttrOp{Ino: other, Valid: uint32(api.SetAttrOp_MODE), Mode: 0o777})
			return err
		}},
		{"chown another user's file to oneself", syscall.EPERM, func(ctx context.Context) error {
			_, err := cl.SetAttr(ctx, &api.SetAttrOp{Ino: other, Valid: uint32(api.SetAttrOp_UID), Uid: 1000})
			return err
		}},
		{"give one's own file away", syscall.EPERM, func(ctx context.Context) error {
			_, err := cl.SetAttr(ctx, &api.SetAttrOp{Ino: own, Valid: uint32(api.SetAttrOp_UID), Uid: 0})
			return err
		}},
		{"chgrp one's own file to a group one is not in", syscall.EPERM, func(ctx context.Context) error {
			_, err := cl.SetAttr(ctx, &api.SetAttrOp{Ino: own, Valid: uint32(api.SetAttrOp_GID), Gid: 0})
			return err
		}},
		{"set another user's file's times", syscall.EPERM, func(ctx context.Context) error {
			_, err := cl.SetAttr(ctx, &api.SetAttrOp{Ino: other, Valid: uint32(api.SetAttrOp_MTIME), MtimeNs: 1})
			return err
		}},
		{"touch another user's file without write permission", syscall.EACCES, func(ctx context.Context) error {
			_, err := cl.SetAttr(ctx, &api.SetAttrOp{Ino: other,
				Valid: uint32(api.SetAttrOp_ATIME_NOW | api.SetAttrOp_MTIME_NOW)})
			return err
		}},
		{"set a trusted.* xattr on one's own file", syscall.EPERM, func(ctx context.Context) error {
			return cl.SetXattr(ctx, own, "trusted.x", []byte("v"), 0)
		}},
		{"set a user.* xattr on another user's 0644 file", syscall.EACCES, func(ctx context.Context) error {
			return cl.SetXattr(ctx, other, "user.x", []byte("v"), 0)
		}},
		{"set an ACL on another user's file", syscall.EPERM, func(ctx context.Context) error {
			return cl.SetXattr(ctx, other, api.ACLAccessXattr, []byte{2, 0, 0, 0, 1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff,
				4, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 7, 0, 0xff, 0xff, 0xff, 0xff}, 0)
		}},
		{"hard-link another user's file it may not write", syscall.EPERM, func(ctx context.Context) error {
			_, err := cl.Link(ctx, other, tmp, "pinned")
			return err
		}},
	}
	for _, r := range refused {
		if err := r.call(user); !errors.Is(err, r.want) {
			t.Errorf("uid 1000: %s: got %v, want %v", r.what, err, r.want)
		}
	}
	// A raw call that names no caller is made as nobody.
	conn, err := api.DialData(c.MasterAddrs()[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if resp, err := api.NewMasterClient(conn).GetChunks(ctx, &api.GetChunksRequest{Ino: secret, Count: 1}); err == nil && resp.Errno != api.Errno_EACCES {
		t.Errorf("GetChunks of root's 0600 file with no caller: %v, want EACCES", resp.Errno)
	}

	time.Sleep(attrTimeout + 100*time.Millisecond) // past the root mount's caches
	if after := namespaceOf(t, dir); after != before {
		t.Fatalf("refused calls changed the namespace:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// The same calls made by those who may.
	rootCtx, owner := as(0, 0), as(2000, 2000, 2000)
	allowed := []struct {
		what string
		ctx  context.Context
		call func(context.Context) error
	}{
		{"root opens its 0600 file", rootCtx, refused[0].call},
		{"root creates in its directory", rootCtx, refused[4].call},
		{"root lists its 0700 directory", rootCtx, refused[7].call},
		{"the owner unlinks its file in the sticky directory", owner, refused[8].call},
		{"the owner chmods its file", owner, refused[10].call},
		{"root chowns another's file", rootCtx, refused[11].call},
		{"root sets a trusted.* xattr", rootCtx, refused[16].call},
		{"uid 1000 sets a user.* xattr on its own file", user, func(ctx context.Context) error {
			return cl.SetXattr(ctx, own, "user.x", []byte("v"), 0)
		}},
		{"uid 1000 touches its own file", user, func(ctx context.Context) error {
			_, err := cl.SetAttr(ctx, &api.SetAttrOp{Ino: own, Valid: uint32(api.SetAttrOp_MTIME), MtimeNs: 1})
			return err
		}},
	}
	for _, a := range allowed {
		if err := a.call(a.ctx); err != nil {
			t.Errorf("%s: %v", a.what, err)
		}
	}
	time.Sleep(attrTimeout + 100*time.Millisecond)
	after := namespaceOf(t, dir)
	for _, want := range []string{"rootdir/new ", "other mode=100777 uid=1000", "user.x", "trusted.x"} {
		if !strings.Contains(after, want) {
			t.Errorf("after the permitted calls the namespace lacks %q:\n%s", want, after)
		}
	}
	if strings.Contains(after, "tmp/bfile") {
		t.Errorf("tmp/bfile survived its owner's unlink:\n%s", after)
	}
}

// namespaceOf describes every entry under dir as root sees it: type and
// mode, owner, size, mtime and xattrs.
func namespaceOf(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(dir, p)
		size := fmt.Sprint(st.Size)
		if fi.IsDir() {
			size = "-"
		}
		var xs []string
		buf := make([]byte, 4096)
		if n, err := unix.Llistxattr(p, buf); err == nil {
			for _, x := range strings.Split(string(buf[:n]), "\x00") {
				if x != "" {
					v := make([]byte, 4096)
					m, _ := unix.Lgetxattr(p, x, v)
					xs = append(xs, fmt.Sprintf("%s=%q", x, v[:max(m, 0)]))
				}
			}
		}
		sort.Strings(xs)
		lines = append(lines, fmt.Sprintf("%s mode=%o uid=%d gid=%d size=%s mtime=%d xattrs=%v",
			rel, st.Mode, st.Uid, st.Gid, size, st.Mtim.Nano(), xs))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// TestPermsAllowOther mounts with -o allow_other and has two
// unprivileged users work in it at once, each trying a script of
// operations on its own files, the other's and root's; every outcome
// (errno, and the state stat shows) must be what the same script gives
// on the machine's own disk.
func TestPermsAllowOther(t *testing.T) {
	s := attrTimeout.Seconds()
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 3, Mounts: 1,
		ExtraMountArgs: []string{"-o", fmt.Sprintf("allow_other,attr_timeout=%g,entry_timeout=%g", s, s)}})
	mnt := posixRoot(t, c.MountDir(0))
	local := posixRoot(t, localDir(t))
	var got [2][2][]string // [local, mount][user]
	for i, root := range []string{local, mnt} {
		dir := filepath.Join(root, "shared")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		setup := &px{t: t, root: dir, times: map[string][3]int64{}}
		permsSetup(setup)
		var wg, setUp sync.WaitGroup
		setUp.Add(2)
		ready := func() { setUp.Done(); setUp.Wait() }
		for u, who := range []cred{userA, userB} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := &px{t: t, root: dir, times: map[string][3]int64{}}
				p.as(who, func() { permsScript(p, who, []cred{userA, userB}[1-u], ready) })
				got[i][u] = p.lines
			}()
		}
		wg.Wait()
		if len(setup.lines) == 0 || len(got[i][0]) == 0 {
			t.Fatal("the script recorded nothing")
		}
	}
	for u := range 2 {
		if d := transcriptDiff(got[0][u], got[1][u]); d != "" {
			t.Errorf("user %d: the mount differs from the local disk (-local +mount):\n%s", u, d)
		}
	}
	denied := 0
	for _, l := range append(got[1][0], got[1][1]...) {
		if strings.HasSuffix(l, "EACCES") || strings.HasSuffix(l, "EPERM") {
			denied++
		}
	}
	t.Logf("%d + %d steps, %d refused with EACCES or EPERM on both", len(got[1][0]), len(got[1][1]), denied)
	if denied < 20 {
		t.Errorf("only %d refusals: the script no longer tests permissions", denied)
	}
}

// permsSetup makes, as root, what the users' scripts work on: a 0755
// root directory with a 0600 file, a sticky world-writable directory,
// and one 0755 home directory per user.
func permsSetup(p *px) {
	p.mkdir("rootdir", 0o755)
	p.create("rootdir/secret", 0o600)
	p.write("rootdir/secret", 0, "root's secret")
	p.mkdir("tmp", 0o777)
	p.chmod("tmp", 0o1777)
	for _, c := range []cred{userA, userB} {
		home := fmt.Sprintf("home%d", c.uid)
		p.mkdir(home, 0o755)
		p.chown(home, int(c.uid), int(c.gid))
	}
}

// permsScript is what user me does while user other does the same:
// it makes its own files, waits (ready) until the other has made theirs,
// then tries what it may and may not do. Nothing one user does changes
// the outcome of the other's steps, so each transcript is the same
// whatever the interleaving.
func permsScript(p *px, me, other cred, ready func()) {
	mine := fmt.Sprintf("home%d", me.uid)
	theirs := fmt.Sprintf("home%d", other.uid)
	t := fmt.Sprintf("tmp/f%d", me.uid)
	// Own things first, so that the other's attempts find them.
	p.create(mine+"/f", 0o644)
	p.write(mine+"/f", 0, "mine")
	p.create(t, 0o644)
	p.mkdir(mine+"/d", 0o700)
	p.create(mine+"/d/inner", 0o644)
	p.create(mine+"/shared", 0o664)
	p.chmod(mine+"/shared", 0o664)
	p.chown(mine+"/shared", -1, gidShared)
	p.st(mine + "/shared")
	p.create(mine+"/own", 0o644)
	ready()
	other0 := fmt.Sprintf("tmp/f%d", other.uid)
	for range 2 {
		// Root's things.
		p.open("rootdir/secret", syscall.O_RDONLY)
		p.open("rootdir/secret", syscall.O_WRONLY)
		p.create("rootdir/new", 0o644)
		p.mkdir("rootdir/newdir", 0o755)
		p.unlink("rootdir/secret")
		p.rename("rootdir/secret", mine+"/stolen", 0)
		p.chmod("rootdir/secret", 0o666)
		p.chown("rootdir/secret", int(me.uid), -1)
		p.e("truncate rootdir/secret", syscall.Truncate(p.path("rootdir/secret"), 0))
		p.e("setxattr trusted", unix.Setxattr(p.path(mine+"/f"), "trusted.x", []byte("v"), 0))
		p.e("setxattr user secret", unix.Setxattr(p.path("rootdir/secret"), "user.x", []byte("v"), 0))
		// The other user's things.
		p.unlink(other0)
		p.rename(other0, t+"x", 0)
		p.create(theirs+"/g", 0o644)
		p.open(theirs+"/f", syscall.O_WRONLY)
		p.open(theirs+"/f", syscall.O_RDONLY)
		p.list(theirs + "/d")
		p.open(theirs+"/d/inner", syscall.O_RDONLY)
		p.chmod(theirs+"/f", 0o777)
		p.chown(theirs+"/f", int(me.uid), -1)
		p.utimes(theirs+"/f", unix.Timespec{Sec: 1}, unix.Timespec{Sec: 1})
		p.utimes(theirs+"/f", unix.Timespec{Nsec: unix.UTIME_NOW}, unix.Timespec{Nsec: unix.UTIME_NOW})
		p.link(theirs+"/f", mine+"/pinned")
		p.e("setxattr user other", unix.Setxattr(p.path(theirs+"/f"), "user.x", []byte("v"), 0))
		p.e("setfacl other", unix.Setxattr(p.path(theirs+"/f"), api.ACLAccessXattr, []byte{2, 0, 0, 0,
			1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 7, 0, 0xff, 0xff, 0xff, 0xff}, 0))
		p.open(theirs+"/shared", syscall.O_RDWR) // only a member of gidShared may
		p.chown(mine+"/f", -1, gidShared)        // only a member may give it the group
		p.st(mine + "/f")
		p.e("mknod chr", syscall.Mknod(p.path(mine+"/dev"), syscall.S_IFCHR|0o644, 0x0101))
		// Own things stay one's own.
		p.chmod(mine+"/own", 0o600)
		p.st(mine + "/own")
		p.chmod(mine+"/own", 0o644)
		p.utimes(mine+"/own", unix.Timespec{Sec: 2}, unix.Timespec{Sec: 2})
		p.st(mine + "/own")
	}
	p.st("rootdir/secret")
}
