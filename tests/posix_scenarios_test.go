package tests

import (
	"crypto/sha256"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestPosixDifferential runs the checker's scenarios: each is a script of
// system calls whose every outcome on the mount must equal ext4's.
func TestPosixDifferential(t *testing.T) {
	runDifferential(t, []scenario{
		{"perms", scPerms},
		{"sticky", scSticky},
		{"setgid", scSetgid},
		{"killpriv", scKillPriv},
		{"chown_chmod", scChownChmod},
		{"utimes", scUtimes},
		{"times", scTimes},
		{"names", scNames},
		{"errnos", scErrnos},
		{"rename", scRename},
		{"links", scLinks},
		{"open_unlinked", scOpenUnlinked},
		{"truncate", scTruncate},
		{"xattrs", scXattrs},
		{"misc", scMisc},
		{"rename_dirs", scRenameDirs},
	})
}

// scRenameDirs: directories exchanged and moved between parents keep the
// parents' link counts, times and ".." right.
func scRenameDirs(p *px) {
	for _, d := range []string{"p", "q", "p/x", "q/y", "q/y/inner", "p/empty", "q/empty2"} {
		p.mkdir(d, 0o755)
	}
	p.st("p")
	p.st("q")
	p.rename("p/x", "q/y", unix.RENAME_EXCHANGE)
	p.st("p")
	p.st("q")
	p.st("p/x")
	p.st("q/y")
	p.st("p/x/inner")
	var a, b syscall.Stat_t
	syscall.Stat(p.path("p/x/.."), &a)
	syscall.Stat(p.path("p"), &b)
	p.logf("p/x/.. is p: %v", a.Ino == b.Ino)
	p.rename("p/empty", "q/empty2", 0) // over an empty directory elsewhere
	p.st("p")
	p.st("q")
	p.rename("q/empty2", "p/x", unix.RENAME_NOREPLACE)
	p.rename("q/empty2", "p/new", unix.RENAME_NOREPLACE)
	p.st("p")
	p.st("q")
	p.create("p/file", 0o644)
	p.rename("p/file", "q/y", unix.RENAME_EXCHANGE) // a file for a directory
	p.st("p")
	p.st("q")
	p.st("p/file")
	p.st("q/y")
	p.rename("p/file", "p/file", unix.RENAME_EXCHANGE)
	p.rename("p", "p/file/z", unix.RENAME_EXCHANGE)
	p.list("p")
	p.list("q")
}

// scMisc: assorted rules the conformance suites check.
func scMisc(p *px) {
	p.mkdir("d", 0o755)
	p.chown("d", uidA, gidA)
	p.as(userA, func() {
		p.create("d/f", 0o644)
		p.chmod("d/f", 0o1644) // sticky on a file: allowed, kept
		p.st("d/f")
		p.open("d/f", syscall.O_CREAT|syscall.O_WRONLY) // existing: mode kept
		p.st("d/f")
		p.mkdir("d/sub", 0o755)
		p.mkdir("d/other", 0o777)
	})
	p.as(userB, func() {
		p.create("d/nope", 0o644) // no write permission on d
		p.mkdir("d/other/mine", 0o755)
		p.rename("d/other/mine", "d/other/mine2", 0)
		p.rename("d/sub", "d/other/sub", 0) // d not writable
	})
	p.as(userA, func() {
		// Moving a directory to another parent needs write permission on
		// it (its ".." changes); within one parent it does not.
		p.rename("d/other/mine2", "d/mine3", 0)
		p.rename("d/other/mine2", "d/other/mine4", 0)
	})
	p.chmod("d/other/mine4", 0o555)
	p.as(userB, func() {
		p.rename("d/other/mine4", "d/other/mine5", 0)
	})
	p.as(userA, func() {
		p.rename("d/other/mine5", "d/mine6", 0)
		p.rename("d/other/mine4", "d/mine6", 0)
	})
	p.list("d")
	p.list("d/other")
	// The maximum link count is the same.
	p.create("many", 0o644)
	p.st("many")
	p.e("mknod on an existing name", syscall.Mknod(p.path("many"), syscall.S_IFIFO|0o644, 0))
	p.e("symlink on an existing name", syscall.Symlink("x", p.path("many")))
	p.e("mkdir on a symlink", syscall.Mkdir(p.path("d/../many"), 0o755))
	p.symlink("d", "dl")
	p.e("mkdir through a trailing symlink", syscall.Mkdir(p.path("dl/"), 0o755))
	p.e("rmdir a symlink to a dir", syscall.Rmdir(p.path("dl")))
	p.e("unlink a dir via trailing slash", syscall.Unlink(p.path("d/")))
	p.open("d/f/", syscall.O_CREAT|syscall.O_WRONLY)
	p.open("newdir/", syscall.O_CREAT|syscall.O_WRONLY)
}

// scPerms: read, write, execute and search for owner, group and others,
// checked by open, access and lookups through directories.
func scPerms(p *px) {
	p.mkdir("d", 0o755)
	p.chown("d", uidA, gidShared)
	for _, m := range []uint32{0o700, 0o070, 0o007, 0o640, 0o604, 0o500, 0o300, 0o100} {
		name := "d/f" + octal(m)[1:]
		p.create(name, 0o600)
		p.write(name, 0, "#!/bin/sh\n")
		p.chmod(name, m)
		p.chown(name, uidA, gidShared)
		for _, c := range []cred{userA, userB, {uidB, gidB, []uint32{gidShared}}} {
			p.as(c, func() {
				p.open(name, syscall.O_RDONLY)
				p.open(name, syscall.O_WRONLY)
				p.open(name, syscall.O_RDWR)
				p.access(name, unix.R_OK)
				p.access(name, unix.W_OK)
				p.access(name, unix.X_OK)
				p.access(name, unix.R_OK|unix.W_OK)
			})
		}
	}
	// Directories: no search bit, no read bit, no write bit.
	for _, m := range []uint32{0o700, 0o711, 0o744, 0o755, 0o733, 0o777} {
		p.chmod("d", m)
		p.as(userB, func() {
			p.st("d/f700")
			p.list("d")
			p.create("d/new", 0o644)
			p.unlink("d/new")
			p.mkdir("d/sub", 0o755)
			p.rmdir("d/sub")
			p.access("d", unix.X_OK)
			p.access("d", unix.W_OK)
		})
	}
	// Root passes every check except execute without any x bit.
	p.chmod("d", 0o755)
	p.access("d/f640", unix.X_OK)
	p.access("d/f100", unix.X_OK)
	p.access("d/f070", unix.R_OK|unix.W_OK|unix.X_OK)
	p.open("d/f300", syscall.O_RDONLY)
}

// scSticky: in a sticky world-writable directory only the owner of a file,
// of the directory, or root may remove or rename it.
func scSticky(p *px) {
	p.mkdir("t", 0o777)
	p.chmod("t", 0o1777)
	p.st("t")
	p.as(userA, func() {
		p.create("t/a", 0o666)
		p.mkdir("t/ad", 0o777)
	})
	p.as(userB, func() {
		p.create("t/b", 0o666)
		p.unlink("t/a")
		p.rename("t/a", "t/x", 0)
		p.rename("t/b", "t/a", 0)
		p.rmdir("t/ad")
		p.write("t/a", 0, "b was here")
		p.unlink("t/b")
		p.create("t/b2", 0o666)
	})
	p.as(userA, func() {
		p.unlink("t/b2")
		p.unlink("t/a")
		p.rmdir("t/ad")
	})
	p.unlink("t/b2")
	p.list("t")
	// The owner of the sticky directory may remove anything in it.
	p.mkdir("t/own", 0o777)
	p.chown("t/own", uidA, gidA)
	p.chmod("t/own", 0o1777)
	p.as(userB, func() { p.create("t/own/b", 0o644) })
	p.as(userA, func() { p.unlink("t/own/b") })
}

// scSetgid: a setgid directory passes its group to what is created in it,
// and its setgid bit to subdirectories; a non-member's chmod cannot set
// setgid on a file.
func scSetgid(p *px) {
	p.mkdir("g", 0o777)
	p.chown("g", 0, gidShared)
	p.chmod("g", 0o2777)
	p.st("g")
	p.as(userA, func() {
		p.create("g/fa", 0o2755)
		p.st("g/fa")
		p.mkdir("g/da", 0o755)
		p.st("g/da")
		p.mkdir("g/da/deeper", 0o700)
		p.st("g/da/deeper")
		p.symlink("fa", "g/la")
		p.st("g/la")
	})
	p.as(userB, func() {
		p.create("g/fb", 0o2755)
		p.st("g/fb")
		p.create("g/fb2", 0o755)
		p.chmod("g/fb2", 0o2755)
		p.st("g/fb2")
		p.mkdir("g/db", 0o755)
		p.st("g/db")
		p.chmod("g/db", 0o755) // dropping setgid from a directory is allowed
		p.st("g/db")
	})
	// mknod of a fifo inherits the group too.
	p.e("mkfifo g/fifo", syscall.Mkfifo(p.path("g/fifo"), 0o644))
	p.st("g/fifo")
}

// scKillPriv: writing or chowning a setuid/setgid file clears the bits,
// except that root's writes keep them (CAP_FSETID).
func scKillPriv(p *px) {
	for _, m := range []uint32{0o6755, 0o6745, 0o4755, 0o2755, 0o2745} {
		f := "w" + octal(m)
		p.create(f, 0o666)
		p.chown(f, uidA, gidShared)
		p.chmod(f, m|0o022)
		p.st(f)
		p.as(userA, func() { p.write(f, 0, "x") })
		p.st(f)
		p.chmod(f, m|0o022)
		p.as(userB, func() { p.write(f, 1, "y") })
		p.st(f)
		p.chmod(f, m|0o022)
		p.write(f, 2, "z") // root keeps the bits
		p.st(f)
		p.as(userA, func() { p.e("truncate "+f, syscall.Truncate(p.path(f), 1)) })
		p.st(f)
		p.chmod(f, m)
		p.as(userA, func() { p.chown(f, -1, gidA) })
		p.st(f)
		p.chmod(f, m)
		p.chown(f, uidB, -1) // root's chown clears them too
		p.st(f)
		p.chmod(f, m)
		p.chown(f, -1, -1)
		p.st(f)
	}
	// O_TRUNC by another user with write permission clears them; a
	// truncate by root keeps them.
	p.create("o", 0o666)
	p.write("o", 0, "data")
	p.chown("o", uidA, gidShared)
	p.chmod("o", 0o6777)
	p.as(userB, func() { p.open("o", syscall.O_WRONLY|syscall.O_TRUNC) })
	p.st("o")
	p.chmod("o", 0o6777)
	p.e("truncate by root", syscall.Truncate(p.path("o"), 2))
	p.st("o")
	// A setgid directory keeps its bit across chown by root.
	p.mkdir("dir", 0o2755)
	p.chmod("dir", 0o2755)
	p.chown("dir", uidA, gidA)
	p.st("dir")
}

func octal(m uint32) string {
	const digits = "01234567"
	s := ""
	for range 4 {
		s = string(digits[m&7]) + s
		m >>= 3
	}
	return s
}

// scChownChmod: who may change owner, group and mode.
func scChownChmod(p *px) {
	p.create("f", 0o644)
	p.chown("f", uidA, gidA)
	p.as(userA, func() {
		p.chmod("f", 0o600)
		p.chown("f", uidB, -1)      // giving away: EPERM
		p.chown("f", -1, gidShared) // to a group of one's own: ok
		p.chown("f", -1, gidB)      // to another group: EPERM
		p.chown("f", uidA, -1)      // to oneself: ok
		p.chmod("f", 0o2644)
		p.st("f")
		p.chown("f", -1, -1) // no change of owner: ctime still moves
		p.st("f")
		p.chown("f", uidA, gidShared)
		p.st("f")
	})
	p.chmod("f", 0o644)
	p.as(userB, func() {
		p.chmod("f", 0o666)
		p.chown("f", uidB, gidB)
		// On a setgid file without group execute ext4 fails this with
		// EPERM (it would have to clear setgid); FUSE gives the file
		// system no way to tell it from a write (docs/posix.md).
		p.chown("f", -1, -1)
	})
	p.chown("f", uidB, gidB)
	p.st("f")
	// chmod by owner not in the file's group drops setgid.
	p.chown("f", uidA, gidB)
	p.as(userA, func() { p.chmod("f", 0o2755) })
	p.st("f")
	// Symlinks: lchown works, their mode is fixed.
	p.symlink("f", "l")
	p.chown("l", uidA, gidA)
	p.st("l")
}

// scUtimes: explicit times need ownership; UTIME_NOW needs ownership or
// write permission; UTIME_OMIT leaves a time alone; nanoseconds survive.
func scUtimes(p *px) {
	now := unix.Timespec{Nsec: unix.UTIME_NOW}
	omit := unix.Timespec{Nsec: unix.UTIME_OMIT}
	t1 := unix.Timespec{Sec: 1000000000, Nsec: 123456789}
	t2 := unix.Timespec{Sec: 1200000000, Nsec: 987654321}
	p.create("f", 0o644)
	p.chown("f", uidA, gidA)
	p.st("f")
	p.utimes("f", t1, t2)
	p.logStatTimes("f")
	p.utimes("f", omit, t1)
	p.logStatTimes("f")
	p.utimes("f", t2, omit)
	p.logStatTimes("f")
	p.st("f")
	p.utimes("f", omit, omit)
	p.st("f")
	p.as(userB, func() {
		p.utimes("f", now, now) // no write permission: EACCES
		p.utimes("f", t1, t1)   // not owner: EPERM
	})
	p.chmod("f", 0o666)
	p.as(userB, func() {
		p.utimes("f", now, now) // write permission suffices for "now"
		p.utimes("f", t1, t1)
		p.utimes("f", now, omit)
	})
	p.st("f")
	p.as(userA, func() {
		p.utimes("f", t1, t2)
		p.logStatTimes("f")
	})
	// Times before 1970 and far in the future.
	p.utimes("f", unix.Timespec{Sec: -1000, Nsec: 5}, unix.Timespec{Sec: 1 << 33, Nsec: 7})
	p.logStatTimes("f")
	p.symlink("f", "l")
	p.utimes("l", t1, t2) // AT_SYMLINK_NOFOLLOW: the link itself
	p.logStatTimes("l")
}

// logStatTimes records exact atime and mtime (only those set explicitly
// are comparable between file systems).
func (p *px) logStatTimes(name string) {
	var s syscall.Stat_t
	if err := syscall.Lstat(p.path(name), &s); err != nil {
		p.logf("stat %s: %s", name, errnoString(err))
		return
	}
	p.logf("times %s: atime=%d.%09d mtime=%d.%09d", name, s.Atim.Sec, s.Atim.Nsec, s.Mtim.Sec, s.Mtim.Nsec)
}

// scTimes: which of atime, mtime and ctime each call changes, on the
// file and on its directories.
func scTimes(p *px) {
	p.mkdir("a", 0o755)
	p.mkdir("b", 0o755)
	p.st("a")
	p.st("b")
	p.create("a/f", 0o644)
	p.st("a")
	p.st("a/f")
	p.write("a/f", 0, "hello")
	p.st("a/f")
	p.write("a/f", 0, "")
	p.st("a/f")
	p.chmod("a/f", 0o600)
	p.st("a/f")
	p.chown("a/f", uidA, -1)
	p.st("a/f")
	p.e("truncate", syscall.Truncate(p.path("a/f"), 3))
	p.st("a/f")
	p.e("truncate same", syscall.Truncate(p.path("a/f"), 3))
	p.st("a/f")
	p.link("a/f", "b/g")
	p.st("a")
	p.st("b")
	p.st("a/f")
	p.rename("a/f", "b/h", 0)
	p.st("a")
	p.st("b")
	p.st("b/h")
	p.rename("b/h", "b/i", 0)
	p.st("b")
	p.st("b/i")
	p.unlink("b/g")
	p.st("b")
	p.st("b/i")
	p.mkdir("a/sub", 0o755)
	p.st("a")
	p.rename("a/sub", "b/sub", 0)
	p.st("a")
	p.st("b")
	p.st("b/sub")
	p.rmdir("b/sub")
	p.st("b")
	p.symlink("i", "b/l")
	p.st("b")
	p.st("b/l")
	p.e("setxattr", unix.Setxattr(p.path("b/i"), "user.x", []byte("1"), 0))
	p.st("b/i")
	p.e("removexattr", unix.Removexattr(p.path("b/i"), "user.x"))
	p.st("b/i")
	p.create("b/j", 0o644)
	p.st("b")
	p.rename("b/j", "b/i", 0) // replacing
	p.st("b")
	p.st("b/i")
	p.open("b/i", syscall.O_WRONLY|syscall.O_TRUNC) // empty already: ext4 still stamps
	p.st("b/i")
	p.write("b/i", 0, "data")
	p.st("b/i")
	p.open("b/i", syscall.O_WRONLY|syscall.O_TRUNC)
	p.st("b/i")
	p.open("b/i", syscall.O_RDONLY) // open alone changes nothing
	p.st("b/i")
	p.list("b")
	p.st("b")
	// Write through an open descriptor: stat before close sees new times.
	fd, err := syscall.Open(p.path("b/i"), syscall.O_WRONLY, 0)
	p.e("open b/i", err)
	if err == nil {
		p.st("b/i")
		_, err = syscall.Write(fd, []byte("xyz"))
		p.e("write fd", err)
		p.st("b/i")
		var s syscall.Stat_t
		p.e("fstat", syscall.Fstat(fd, &s))
		p.logf("fstat size=%d", s.Size)
		p.e("close", syscall.Close(fd))
		p.st("b/i")
	}
}

// scNames: 255 bytes are fine, 256 are ENAMETOOLONG for every call that
// makes or finds a name.
func scNames(p *px) {
	n255 := strings.Repeat("x", 255)
	n256 := strings.Repeat("y", 256)
	p.create(n255, 0o644)
	p.st(n255)
	p.create(n256, 0o644)
	p.mkdir(n256, 0o755)
	p.st(n256)
	p.link(n255, n256)
	p.symlink(n255, n256)
	p.rename(n255, n256, 0)
	p.unlink(n256)
	p.rmdir(n256)
	p.open(n256, syscall.O_RDONLY)
	p.e("setxattr long value name", unix.Setxattr(p.path(n255), "user."+strings.Repeat("n", 250), []byte("v"), 0))
	p.e("setxattr too long name", unix.Setxattr(p.path(n255), "user."+strings.Repeat("n", 251), []byte("v"), 0))
	p.rename(n255, "short", 0)
	p.list(".")
	p.create("a b\tc\nd", 0o644)
	p.create("ünïcødé", 0o644)
	p.list(".")
}

// scErrnos: the errno of each way a call can fail.
func scErrnos(p *px) {
	p.mkdir("d", 0o755)
	p.create("d/f", 0o644)
	p.mkdir("e", 0o755)
	p.mkdir("d", 0o755)                                 // EEXIST
	p.mkdir("d/f", 0o755)                               // EEXIST
	p.create("d/f", 0o644)                              // EEXIST
	p.mkdir("nope/x", 0o755)                            // ENOENT
	p.create("d/f/x", 0o644)                            // ENOTDIR
	p.open("d/f/", syscall.O_RDONLY)                    // ENOTDIR
	p.rmdir("d/f")                                      // ENOTDIR
	p.unlink("d")                                       // EISDIR
	p.open("d", syscall.O_WRONLY)                       // EISDIR
	p.open("d", syscall.O_RDONLY|syscall.O_DIRECTORY)   // ok
	p.open("d/f", syscall.O_RDONLY|syscall.O_DIRECTORY) // ENOTDIR
	p.rmdir("d")                                        // ENOTEMPTY
	p.rmdir("d/.")                                      // EINVAL
	p.rmdir("d/..")                                     // ENOTEMPTY
	p.rename("d", "d/sub", 0)                           // EINVAL
	p.rename("d", "d/f", 0)                             // ENOTDIR... or EINVAL first
	p.rename("d/f", "e", 0)                             // EISDIR
	p.rename("e", "d/f", 0)                             // ENOTDIR
	p.rename("e", "d", 0)                               // ENOTEMPTY
	p.rename("nope", "x", 0)                            // ENOENT
	p.link("d", "dl")                                   // EPERM
	p.link("nope", "x")                                 // ENOENT
	p.link("d/f", "e")                                  // EEXIST
	p.symlink("loop2", "loop1")
	p.symlink("loop1", "loop2")
	p.open("loop1", syscall.O_RDONLY) // ELOOP
	p.symlink("d/f", "sl")
	p.open("sl", syscall.O_RDONLY|syscall.O_NOFOLLOW) // ELOOP
	p.open("dangling", syscall.O_RDONLY)
	p.symlink("missing", "dangling")
	p.open("dangling", syscall.O_RDONLY)                 // ENOENT
	p.open("dangling", syscall.O_CREAT|syscall.O_WRONLY) // creates "missing"
	p.st("missing")
	p.open("sl", syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY) // EEXIST
	p.e("truncate dir", syscall.Truncate(p.path("d"), 0))         // EISDIR
	p.e("truncate negative", syscall.Truncate(p.path("d/f"), -1))
	p.e("readlink file", func() error { _, err := os.Readlink(p.path("d/f")); return err }())
	p.e("mknod bad type", syscall.Mknod(p.path("bad"), 0o170644, 0))
	p.e("mkfifo", syscall.Mkfifo(p.path("fifo"), 0o644))
	p.st("fifo")
	p.e("mknod sock", syscall.Mknod(p.path("sock"), syscall.S_IFSOCK|0o644, 0))
	p.st("sock")
	p.e("mknod chr", syscall.Mknod(p.path("chr"), syscall.S_IFCHR|0o644, int(unix.Mkdev(1, 3))))
	p.st("chr")
	p.list(".")
}

// scRename: every form of rename, with link counts and which names exist
// afterwards.
func scRename(p *px) {
	p.mkdir("a", 0o755)
	p.mkdir("b", 0o755)
	p.create("a/f", 0o644)
	p.write("a/f", 0, "f")
	p.create("a/g", 0o644)
	p.write("a/g", 0, "gg")
	p.rename("a/f", "a/g", 0) // file over file
	p.content("a/g")
	p.st("a/g")
	p.mkdir("a/d1", 0o755)
	p.mkdir("a/d2", 0o755)
	p.st("a")
	p.rename("a/d1", "a/d2", 0) // directory over empty directory
	p.st("a")
	p.mkdir("b/d3", 0o755)
	p.rename("a/d2", "b/d3", 0) // across directories, replacing
	p.st("a")
	p.st("b")
	p.st("b/d3")
	p.create("a/x", 0o644)
	p.rename("a/x", "b/x", unix.RENAME_NOREPLACE)
	p.create("a/y", 0o644)
	p.rename("a/y", "b/x", unix.RENAME_NOREPLACE) // EEXIST
	p.write("a/y", 0, "yyy")
	p.rename("a/y", "b/x", unix.RENAME_EXCHANGE)
	p.content("a/y")
	p.content("b/x")
	p.rename("a/y", "b/d3", unix.RENAME_EXCHANGE) // file with directory
	p.st("a")
	p.st("b")
	p.st("a/y")
	p.st("b/d3")
	p.rename("a/y", "b/none", unix.RENAME_EXCHANGE)                    // ENOENT
	p.rename("a/y", "b/x", unix.RENAME_EXCHANGE|unix.RENAME_NOREPLACE) // EINVAL
	p.rename("a/y", "a/y", 0)                                          // same name
	p.rename("a/y", "a/y", unix.RENAME_NOREPLACE)                      // EEXIST
	p.link("b/x", "b/x2")
	p.rename("b/x", "b/x2", 0) // two names of one file: nothing happens
	p.st("b/x")
	p.st("b/x2")
	p.rename("a/y", "a/y/z", 0)
	p.mkdir("a/y2", 0o755)
	p.mkdir("a/y2/in", 0o755)
	p.rename("a/y2", "a/y2/in/deeper", 0) // EINVAL
	p.rename("a/y2/in", "a", 0)           // ENOTEMPTY (or EINVAL)
	p.rename("a/y2/in", "a/y2", 0)        // ENOTEMPTY: target is its parent
	p.list("a")
	p.list("b")
	// Renaming a directory between parents moves its "..".
	p.mkdir("a/mv", 0o755)
	p.rename("a/mv", "b/mv", 0)
	p.st("a")
	p.st("b")
	var s1, s2 syscall.Stat_t
	syscall.Stat(p.path("b/mv/.."), &s1)
	syscall.Stat(p.path("b"), &s2)
	p.logf("b/mv/.. is b: %v", s1.Ino == s2.Ino)
}

// scLinks: hard link counts, symlinks (dangling, relative, long targets).
func scLinks(p *px) {
	p.create("f", 0o644)
	p.write("f", 0, "data")
	for i := range 5 {
		p.link("f", "l"+string(rune('0'+i)))
	}
	p.st("f")
	p.unlink("l0")
	p.unlink("f")
	p.st("l1")
	p.content("l4")
	p.symlink(strings.Repeat("a/", 2047)+"b", "long") // 4095 bytes
	p.st("long")
	p.symlink(strings.Repeat("a/", 2048), "toolong") // 4096: ENAMETOOLONG
	target, err := os.Readlink(p.path("long"))
	p.logf("readlink long: %d %v", len(target), err)
	p.symlink("nowhere/at/all", "dangle")
	p.st("dangle")
	target, err = os.Readlink(p.path("dangle"))
	p.logf("readlink dangle: %q %v", target, err)
	p.mkdir("d", 0o755)
	p.symlink("../l1", "d/up")
	p.content("d/up")
	p.link("dangle", "dangle2") // a hard link to a symlink
	p.st("dangle")
	p.symlink("", "empty") // ENOENT
	p.mkdir("sd", 0o755)
	p.symlink("sd", "sdl")
	p.e("rmdir through symlink", syscall.Rmdir(p.path("sdl")))
	p.create("sdl/inside", 0o644)
	p.list("sd")
}

// scOpenUnlinked: an unlinked file or removed directory stays usable
// through an open descriptor.
func scOpenUnlinked(p *px) {
	p.create("f", 0o644)
	fd, err := syscall.Open(p.path("f"), syscall.O_RDWR, 0)
	p.e("open", err)
	if err != nil {
		return
	}
	p.unlink("f")
	_, err = syscall.Pwrite(fd, []byte("still here"), 0)
	p.e("pwrite unlinked", err)
	buf := make([]byte, 32)
	n, err := syscall.Pread(fd, buf, 0)
	p.logf("pread unlinked: %q %s", buf[:max(n, 0)], errnoString(err))
	var s syscall.Stat_t
	p.e("fstat", syscall.Fstat(fd, &s))
	p.logf("fstat: nlink=%d size=%d", s.Nlink, s.Size)
	p.e("ftruncate", syscall.Ftruncate(fd, 4))
	p.e("fstat", syscall.Fstat(fd, &s))
	p.logf("fstat: nlink=%d size=%d", s.Nlink, s.Size)
	p.e("fchmod", syscall.Fchmod(fd, 0o600))
	p.e("close", syscall.Close(fd))
	p.list(".")

	// Renamed over while open (xfstests generic/035): the replaced file
	// and directory live on with no links.
	p.create("victim", 0o644)
	p.create("winner", 0o644)
	p.mkdir("vdir", 0o755)
	p.mkdir("wdir", 0o755)
	vf, err1 := syscall.Open(p.path("victim"), syscall.O_RDWR, 0)
	vd, err2 := syscall.Open(p.path("vdir"), syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err1 == nil && err2 == nil {
		p.rename("winner", "victim", 0)
		p.rename("wdir", "vdir", 0)
		p.e("fstat replaced file", syscall.Fstat(vf, &s))
		p.logf("replaced file: nlink=%d", s.Nlink)
		p.e("fstat replaced dir", syscall.Fstat(vd, &s))
		p.logf("replaced dir: nlink=%d", s.Nlink)
		_, err = syscall.Pwrite(vf, []byte("x"), 0)
		p.e("write replaced file", err)
		syscall.Close(vf)
		syscall.Close(vd)
	}
	p.mkdir("d", 0o755)
	dfd, err := syscall.Open(p.path("d"), syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	p.e("open dir", err)
	if err != nil {
		return
	}
	p.rmdir("d")
	p.e("fstat dir", syscall.Fstat(dfd, &s))
	p.logf("fstat dir: nlink=%d", s.Nlink)
	_, err = unix.Openat(dfd, "x", unix.O_CREAT|unix.O_WRONLY, 0o644)
	p.e("create in removed dir", err)
	buf = make([]byte, 4096)
	n, err = unix.Getdents(dfd, buf)
	p.logf("getdents removed dir: %v %s", n > 0, errnoString(err))
	syscall.Close(dfd)
}

// scTruncate: truncate and ftruncate up and down keep the data below the
// new size and read zeros above the old one.
func scTruncate(p *px) {
	p.create("f", 0o644)
	p.write("f", 0, strings.Repeat("abcdefgh", 1000))
	p.e("truncate down", syscall.Truncate(p.path("f"), 4000))
	p.content("f")
	p.e("truncate up", syscall.Truncate(p.path("f"), 10000))
	p.content("f")
	p.write("f", 20000, "tail")
	p.content("f")
	p.e("truncate 0", syscall.Truncate(p.path("f"), 0))
	p.st("f")
	p.e("truncate huge", syscall.Truncate(p.path("f"), 1<<40))
	p.st("f")
	fd, err := syscall.Open(p.path("f"), syscall.O_RDWR, 0)
	p.e("open", err)
	if err == nil {
		p.e("ftruncate", syscall.Ftruncate(fd, 5))
		_, err = syscall.Pwrite(fd, []byte("z"), 9)
		p.e("pwrite", err)
		buf := make([]byte, 20)
		n, err := syscall.Pread(fd, buf, 0)
		p.logf("pread: %q %s", buf[:max(n, 0)], errnoString(err))
		syscall.Close(fd)
	}
	p.st("f")
	p.as(userB, func() { p.e("truncate not writable", syscall.Truncate(p.path("f"), 0)) })
	fd, err = syscall.Open(p.path("f"), syscall.O_RDONLY, 0)
	if err == nil {
		p.e("ftruncate read-only fd", syscall.Ftruncate(fd, 0))
		syscall.Close(fd)
	}
}

// scXattrs: set, get, list and remove in the user, trusted and security
// namespaces, with create/replace flags and buffer sizes.
func scXattrs(p *px) {
	p.create("f", 0o644)
	get := func(name string, size int) {
		buf := make([]byte, size)
		n, err := unix.Getxattr(p.path("f"), name, buf)
		if err == nil && size > 0 {
			p.logf("getxattr %s %d: %d %x", name, size, n, sha256Sum(buf[:n]))
		} else {
			p.logf("getxattr %s %d: %d %s", name, size, n, errnoString(err))
		}
	}
	for _, ns := range []string{"user.", "trusted.", "security."} {
		p.e("set "+ns+"a", unix.Setxattr(p.path("f"), ns+"a", []byte("one"), 0))
		p.e("create existing", unix.Setxattr(p.path("f"), ns+"a", []byte("two"), unix.XATTR_CREATE))
		p.e("replace existing", unix.Setxattr(p.path("f"), ns+"a", []byte("three"), unix.XATTR_REPLACE))
		p.e("replace missing", unix.Setxattr(p.path("f"), ns+"b", []byte("x"), unix.XATTR_REPLACE))
		p.e("create missing", unix.Setxattr(p.path("f"), ns+"b", nil, unix.XATTR_CREATE))
		get(ns+"a", 0)
		get(ns+"a", 2)
		get(ns+"a", 100)
		get(ns+"b", 100)
		get(ns+"c", 100)
		p.e("remove missing", unix.Removexattr(p.path("f"), ns+"c"))
	}
	// ext4 without ea_inode keeps a value within one block; 64 KiB values
	// are checked on the mount alone (TestPosixXattrLarge).
	big := []byte(strings.Repeat("v", 3000))
	p.e("set 3000", unix.Setxattr(p.path("f"), "user.big", big, 0))
	get("user.big", 3000)
	get("user.big", 2999)
	list := func() {
		n, err := unix.Listxattr(p.path("f"), nil)
		buf := make([]byte, max(n, 1))
		n2, err2 := unix.Listxattr(p.path("f"), buf)
		names := strings.Split(strings.TrimRight(string(buf[:max(n2, 0)]), "\x00"), "\x00")
		sortStrings(names)
		p.logf("listxattr: %d %s %s %v", n, errnoString(err), errnoString(err2), names)
		if n > 1 {
			_, err = unix.Listxattr(p.path("f"), make([]byte, 1))
			p.e("listxattr small", err)
		}
	}
	list()
	p.e("remove", unix.Removexattr(p.path("f"), "user.a"))
	list()
	p.e("bad namespace", unix.Setxattr(p.path("f"), "bogus.a", []byte("x"), 0))
	p.e("empty name", unix.Setxattr(p.path("f"), "", []byte("x"), 0))
	p.as(userB, func() {
		p.e("user. by non-owner", unix.Setxattr(p.path("f"), "user.q", []byte("x"), 0))
		p.e("trusted. by user", unix.Setxattr(p.path("f"), "trusted.q", []byte("x"), 0))
		_, err := unix.Getxattr(p.path("f"), "trusted.a", make([]byte, 10))
		p.e("get trusted. by user", err)
		_, err = unix.Getxattr(p.path("f"), "user.b", make([]byte, 10))
		p.e("get user. by reader", err)
		list() // trusted. names are for root's eyes only
	})
	// user. xattrs are for regular files and directories only.
	p.symlink("f", "l")
	p.e("user. on symlink", unix.Lsetxattr(p.path("l"), "user.a", []byte("x"), 0))
	p.e("trusted. on symlink", unix.Lsetxattr(p.path("l"), "trusted.a", []byte("x"), 0))
	p.mkdir("d", 0o755)
	p.e("user. on dir", unix.Setxattr(p.path("d"), "user.a", []byte("x"), 0))
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func sortStrings(s []string) { sort.Strings(s) }

// TestPosixDifferentialData: the data calls, compared with ext4 the same
// way.
func TestPosixDifferentialData(t *testing.T) {
	runDifferential(t, []scenario{
		{"fallocate", scFallocate},
		{"append", scAppend},
		{"copy_file_range", scCopyFileRange},
		{"mmap", scMmap},
		{"sync", scSync},
		{"direct", scDirect},
		{"readdir", scReaddir},
	})
}

// fd opens name for a scenario, recording failure as a line.
func (p *px) fd(name string, flags int) int {
	fd, err := syscall.Open(p.path(name), flags, 0o644)
	if err != nil {
		p.e("open "+name, err)
		return -1
	}
	return fd
}

// scFallocate: default mode extends, KEEP_SIZE does not, PUNCH_HOLE and
// ZERO_RANGE read back as zeros; bad combinations fail as on ext4.
func scFallocate(p *px) {
	p.create("f", 0o644)
	p.write("f", 0, strings.Repeat("0123456789", 2000))
	fd := p.fd("f", syscall.O_RDWR)
	if fd < 0 {
		return
	}
	defer syscall.Close(fd)
	fa := func(mode uint32, off, n int64) {
		p.e("fallocate", unix.Fallocate(fd, mode, off, n))
		p.st("f")
		p.content("f")
	}
	p.st("f")
	fa(0, 0, 100)       // inside: no change but ctime? (ext4: none)
	fa(0, 15000, 10000) // extends to 25000
	fa(unix.FALLOC_FL_KEEP_SIZE, 20000, 100000)
	fa(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 4096, 8192)
	fa(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 100, 50)
	fa(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 24000, 5000)
	fa(unix.FALLOC_FL_ZERO_RANGE, 1000, 30)
	fa(unix.FALLOC_FL_ZERO_RANGE, 24990, 20)
	fa(unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, 25100, 20)
	fa(unix.FALLOC_FL_PUNCH_HOLE, 0, 10)
	fa(0, -1, 10)
	fa(0, 0, 0)
	ro := p.fd("f", syscall.O_RDONLY)
	if ro >= 0 {
		p.e("fallocate read-only", unix.Fallocate(ro, 0, 0, 10))
		syscall.Close(ro)
	}
}

// scAppend: O_APPEND writes from several descriptors all land at the
// end, whatever the descriptors' offsets.
func scAppend(p *px) {
	p.create("f", 0o644)
	var fds []int
	for range 3 {
		if fd := p.fd("f", syscall.O_WRONLY|syscall.O_APPEND); fd >= 0 {
			fds = append(fds, fd)
		}
	}
	plain := p.fd("f", syscall.O_RDWR)
	for i := range 12 {
		fd := fds[i%len(fds)]
		_, err := syscall.Write(fd, []byte(strings.Repeat(string(rune('a'+i)), i+1)))
		p.e("append", err)
		off, err := unix.Seek(fd, 0, 1)
		p.logf("offset after append: %d %s", off, errnoString(err))
		if i == 5 {
			_, err = syscall.Pwrite(plain, []byte("XY"), 2)
			p.e("pwrite middle", err)
		}
	}
	// pwrite on an O_APPEND descriptor appends too (Linux ignores the offset).
	_, err := syscall.Pwrite(fds[0], []byte("P"), 0)
	p.e("pwrite O_APPEND", err)
	for _, fd := range append(fds, plain) {
		syscall.Close(fd)
	}
	p.content("f")
	p.st("f")
}

// scCopyFileRange: copies within and between files, past EOF, and over
// an overlapping range of one file.
func scCopyFileRange(p *px) {
	p.create("src", 0o644)
	p.write("src", 0, strings.Repeat("abcdefghij", 5000))
	p.create("dst", 0o644)
	in, out := p.fd("src", syscall.O_RDONLY), p.fd("dst", syscall.O_RDWR)
	if in < 0 || out < 0 {
		return
	}
	cp := func(inFd int, inOff int64, outFd int, outOff int64, n int) {
		got, err := unix.CopyFileRange(inFd, &inOff, outFd, &outOff, n, 0)
		p.logf("copy_file_range %d@%d -> @%d: %d %s", n, inOff, outOff, got, errnoString(err))
	}
	cp(in, 0, out, 0, 1000)
	cp(in, 49000, out, 70000, 5000) // short: 1000 bytes left in src
	cp(in, 60000, out, 0, 10)       // past EOF: 0
	cp(out, 0, out, 500, 1000)      // overlapping: EINVAL
	cp(out, 0, out, 2000, 1000)
	cp(in, 0, in, 0, 10) // read-only destination: EBADF
	syscall.Close(in)
	syscall.Close(out)
	p.content("dst")
	p.st("dst")
}

// scMmap: a shared writable mapping's stores reach the file (seen by
// read() before and after msync and munmap); a private one's do not.
func scMmap(p *px) {
	p.create("f", 0o644)
	p.write("f", 0, strings.Repeat("m", 3*4096+100))
	fd := p.fd("f", syscall.O_RDWR)
	if fd < 0 {
		return
	}
	m, err := unix.Mmap(fd, 0, 3*4096+100, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	p.e("mmap shared", err)
	if err != nil {
		return
	}
	p.st("f")
	copy(m[10:], "shared-write")
	copy(m[3*4096+90:], "END")
	buf := make([]byte, 30)
	n, _ := syscall.Pread(fd, buf, 5)
	p.logf("pread before msync: %q", buf[:n])
	p.e("msync", unix.Msync(m, unix.MS_SYNC))
	p.st("f") // mapped writes move mtime and ctime (xfstests generic/215)
	p.content("f")
	// A write through the descriptor shows in the mapping.
	syscall.Pwrite(fd, []byte("via-write"), 4096)
	p.logf("mapping sees write: %q", m[4096:4096+9])
	p.e("munmap", unix.Munmap(m))
	pm, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	p.e("mmap private", err)
	if err == nil {
		copy(pm, "private")
		unix.Munmap(pm)
	}
	syscall.Close(fd)
	p.content("f")
	p.st("f")
	ro := p.fd("f", syscall.O_RDONLY)
	if ro >= 0 {
		_, err = unix.Mmap(ro, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		p.e("shared writable mapping of a read-only fd", err)
		syscall.Close(ro)
	}
}

// scSync: fsync, fdatasync and syncfs succeed on files and directories.
func scSync(p *px) {
	p.create("f", 0o644)
	fd := p.fd("f", syscall.O_RDWR)
	if fd < 0 {
		return
	}
	syscall.Write(fd, []byte("durable"))
	p.e("fsync", syscall.Fsync(fd))
	syscall.Write(fd, []byte(" and more"))
	p.e("fdatasync", syscall.Fdatasync(fd))
	p.e("syncfs", unix.Syncfs(fd))
	syscall.Close(fd)
	p.content("f")
	d := p.fd(".", syscall.O_RDONLY|syscall.O_DIRECTORY)
	if d >= 0 {
		p.e("fsync dir", syscall.Fsync(d))
		syscall.Close(d)
	}
	ro := p.fd("f", syscall.O_RDONLY)
	if ro >= 0 {
		p.e("fsync read-only fd", syscall.Fsync(ro))
		syscall.Close(ro)
	}
}

// scDirect: O_DIRECT reads and writes of aligned buffers see the same
// data as buffered ones.
func scDirect(p *px) {
	p.create("f", 0o644)
	p.write("f", 0, strings.Repeat("b", 8192))
	fd := p.fd("f", syscall.O_RDWR|syscall.O_DIRECT)
	if fd < 0 {
		return
	}
	buf := alignedBlock(4096)
	copy(buf, strings.Repeat("D", 4096))
	_, err := syscall.Pwrite(fd, buf, 4096)
	p.e("direct pwrite", err)
	rb := alignedBlock(8192)
	n, err := syscall.Pread(fd, rb, 0)
	p.logf("direct pread: %d %s %x", n, errnoString(err), sha256Sum(rb[:max(n, 0)]))
	syscall.Close(fd)
	p.content("f")
}

// alignedBlock returns n bytes aligned to 4096, as O_DIRECT wants.
func alignedBlock(n int) []byte {
	b := make([]byte, n+4096)
	off := 4096 - int(uintptrOfSlice(b)%4096)
	return b[off%4096 : off%4096+n]
}

// scReaddir: "." and ".." carry the right inode numbers, telldir and
// seekdir resume a listing where it was, and every entry comes once.
func scReaddir(p *px) {
	p.mkdir("d", 0o755)
	for i := range 300 {
		fd, err := syscall.Open(p.path("d/"+strings.Repeat("n", i%40+1)+octal(uint32(i))), syscall.O_CREAT|syscall.O_WRONLY, 0o644)
		if err != nil {
			p.e("create", err)
			return
		}
		syscall.Close(fd)
	}
	fd := p.fd("d", syscall.O_RDONLY|syscall.O_DIRECTORY)
	if fd < 0 {
		return
	}
	defer syscall.Close(fd)
	ents := readDirents(fd)
	var dSt, pSt syscall.Stat_t
	syscall.Stat(p.path("d"), &dSt)
	syscall.Stat(p.root, &pSt)
	names := map[string]int{}
	for _, e := range ents {
		names[e.name]++
		switch e.name {
		case ".":
			p.logf(". is d: %v", e.ino == dSt.Ino)
		case "..":
			p.logf(".. is parent: %v", e.ino == pSt.Ino)
		}
	}
	dups := 0
	for _, c := range names {
		if c > 1 {
			dups++
		}
	}
	p.logf("entries %d distinct %d duplicated %d", len(ents), len(names), dups)
	// Seek back to after each of a few entries: the rest must follow.
	for _, k := range []int{0, 1, 2, 50, 151, len(ents) - 1} {
		_, err := unix.Seek(fd, ents[k].off, 0)
		rest := readDirents(fd)
		same := err == nil && len(rest) == len(ents)-k-1
		for i := 0; same && i < len(rest); i++ {
			same = rest[i].name == ents[k+1+i].name
		}
		p.logf("seekdir after entry %d resumes exactly: %v", k, same)
	}
	_, err := unix.Seek(fd, 0, 0)
	p.logf("rewind lists all again: %v %s", len(readDirents(fd)) == len(ents), errnoString(err))
	// Entries removed or added during a listing: survivors exactly once.
	unix.Seek(fd, 0, 0)
	first := readDirentsN(fd, 100)
	for i := range 300 {
		if i%3 == 0 {
			syscall.Unlink(p.path("d/" + strings.Repeat("n", i%40+1) + octal(uint32(i))))
		}
	}
	rest := readDirents(fd)
	seen := map[string]int{}
	for _, e := range append(first, rest...) {
		seen[e.name]++
	}
	missing, twice := 0, 0
	for i := range 300 {
		name := strings.Repeat("n", i%40+1) + octal(uint32(i))
		if i%3 != 0 && seen[name] != 1 {
			missing++
		}
		if seen[name] > 1 {
			twice++
		}
	}
	p.logf("survivors missing %d, entries twice %d", missing, twice)
}

type dirent struct {
	name string
	ino  uint64
	off  int64
}

// readDirents reads a directory stream to its end with getdents64.
func readDirents(fd int) []dirent { return readDirentsN(fd, -1) }

// readDirentsN reads at least n entries (all if n < 0); it uses a small
// buffer so that the kernel's position is right after what it returns.
func readDirentsN(fd int, n int) []dirent {
	var out []dirent
	buf := make([]byte, 1024)
	for n < 0 || len(out) < n {
		got, err := unix.Getdents(fd, buf)
		if err != nil || got <= 0 {
			break
		}
		b := buf[:got]
		for len(b) > 0 {
			reclen := int(b[16]) | int(b[17])<<8
			ino := leUint64(b[0:8])
			off := int64(leUint64(b[8:16]))
			name := b[19:reclen]
			if i := strings.IndexByte(string(name), 0); i >= 0 {
				name = name[:i]
			}
			out = append(out, dirent{string(name), ino, off})
			b = b[reclen:]
		}
	}
	return out
}

func leUint64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func uintptrOfSlice(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }
