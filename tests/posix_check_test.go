package tests

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The differential POSIX checker: a scenario is a script of system calls
// that records every outcome (errno, and the attributes of the files it
// touched) in a transcript. Each scenario runs once in a directory on local
// ext4 and once on the mount; the two transcripts must be identical.
// Scenarios switch to other users with per-thread credentials (see as), so
// the kernel checks permissions exactly as it would for another process.

// Identities the scenarios act as. They need no /etc/passwd entries.
const (
	uidA, uidB = 1001, 1002
	gidA, gidB = 1001, 1002
	gidShared  = 2000 // a group uidA belongs to, uidB does not
)

// cred is who a step runs as.
type cred struct {
	uid, gid uint32
	groups   []uint32
}

var (
	userA = cred{uidA, gidA, []uint32{gidA, gidShared}}
	userB = cred{uidB, gidB, []uint32{gidB}}
)

// px runs one scenario in one root directory and keeps its transcript.
type px struct {
	t     *testing.T
	root  string
	lines []string
	times map[string][3]int64 // atime, mtime, ctime at the last stat
	who   string              // identity prefix of recorded lines
}

func (p *px) path(name string) string {
	if name == "" || name == "." {
		return p.root
	}
	return filepath.Join(p.root, name)
}

// logf appends one line to the transcript.
func (p *px) logf(format string, args ...any) {
	p.lines = append(p.lines, p.who+fmt.Sprintf(format, args...))
}

// e records the outcome of a call.
func (p *px) e(what string, err error) {
	p.logf("%s: %s", what, errnoString(err))
}

// st records name's type and mode, owner, link count, size (not for
// directories: ext4 sizes them in blocks), and which of atime, mtime and
// ctime changed since the previous st of that name.
func (p *px) st(name string) {
	var s syscall.Stat_t
	if err := syscall.Lstat(p.path(name), &s); err != nil {
		p.logf("stat %s: %s", name, errnoString(err))
		return
	}
	size := fmt.Sprint(s.Size)
	if s.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		size = "-"
	}
	now := [3]int64{s.Atim.Nano(), s.Mtim.Nano(), s.Ctim.Nano()}
	changed := "new"
	if old, ok := p.times[name]; ok {
		changed = ""
		for i, c := range "amc" {
			if now[i] != old[i] {
				changed += string(c)
			} else {
				changed += "-"
			}
		}
	}
	p.times[name] = now
	p.logf("stat %s: mode=%o uid=%d gid=%d nlink=%d size=%s times=%s", name, s.Mode, s.Uid, s.Gid, s.Nlink, size, changed)
	// The next change must land on a later clock reading than this one.
	time.Sleep(2 * time.Millisecond)
}

// content records a hash of name's data.
func (p *px) content(name string) {
	b, err := os.ReadFile(p.path(name))
	if err != nil {
		p.logf("read %s: %s", name, errnoString(err))
		return
	}
	p.logf("content %s: %d bytes %x", name, len(b), sha256.Sum256(b))
}

// as runs f as c (see asThread); the transcript's lines are prefixed
// with c's uid meanwhile.
func (p *px) as(c cred, f func()) {
	saved := p.who
	p.who = fmt.Sprintf("[%d] ", c.uid)
	defer func() { p.who = saved }()
	if err := asThread(int(c.uid), int(c.gid), c.groups, f); err != nil {
		p.t.Fatalf("switching to uid %d: %v", c.uid, err)
	}
}

// asThread runs f with the given credentials on a thread of its own:
// setresuid, setresgid and setgroups made with raw system calls change
// only the calling thread, and the thread is thrown away afterwards (the
// goroutine exits locked), so no other goroutine ever runs with these
// credentials. A negative uid or gid, or nil groups, keeps the caller's.
func asThread(uid, gid int, groups []uint32, f func()) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		if groups != nil {
			gs := append(append([]uint32(nil), groups...), 0) // never empty, so &gs[0] exists
			if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, uintptr(len(gs)-1), uintptr(unsafe.Pointer(&gs[0])), 0); e != 0 {
				done <- fmt.Errorf("setgroups: %v", e)
				return
			}
		}
		if gid >= 0 {
			if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
				done <- fmt.Errorf("setresgid: %v", e)
				return
			}
		}
		if uid >= 0 {
			if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
				done <- fmt.Errorf("setresuid: %v", e)
				return
			}
		}
		defer func() { done <- nil }()
		f()
	}()
	return <-done
}

// Small wrappers so scenarios read as scripts.

func (p *px) mkdir(name string, mode uint32) {
	p.e("mkdir "+name, syscall.Mkdir(p.path(name), mode))
}

func (p *px) create(name string, mode uint32) {
	fd, err := syscall.Open(p.path(name), syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY, mode)
	if err == nil {
		syscall.Close(fd)
	}
	p.e("create "+name, err)
}

func (p *px) write(name string, off int64, data string) {
	fd, err := syscall.Open(p.path(name), syscall.O_WRONLY, 0)
	if err == nil {
		_, err = syscall.Pwrite(fd, []byte(data), off)
		if cerr := syscall.Close(fd); err == nil {
			err = cerr
		}
	}
	p.e(fmt.Sprintf("write %s@%d", name, off), err)
}

func (p *px) read(name string) {
	fd, err := syscall.Open(p.path(name), syscall.O_RDONLY, 0)
	if err == nil {
		buf := make([]byte, 1<<16)
		_, err = syscall.Read(fd, buf)
		syscall.Close(fd)
	}
	p.e("read "+name, err)
}

func (p *px) open(name string, flags int) {
	fd, err := syscall.Open(p.path(name), flags, 0o644)
	if err == nil {
		syscall.Close(fd)
	}
	p.e(fmt.Sprintf("open %s %#x", name, flags), err)
}

func (p *px) chmod(name string, mode uint32) {
	p.e(fmt.Sprintf("chmod %s %o", name, mode), syscall.Chmod(p.path(name), mode))
}

func (p *px) chown(name string, uid, gid int) {
	p.e(fmt.Sprintf("chown %s %d:%d", name, uid, gid), syscall.Lchown(p.path(name), uid, gid))
}

func (p *px) access(name string, mode uint32) {
	p.e(fmt.Sprintf("access %s %o", name, mode), unix.Faccessat(unix.AT_FDCWD, p.path(name), mode, unix.AT_EACCESS))
}

func (p *px) unlink(name string) { p.e("unlink "+name, syscall.Unlink(p.path(name))) }
func (p *px) rmdir(name string)  { p.e("rmdir "+name, syscall.Rmdir(p.path(name))) }

func (p *px) rename(from, to string, flags uint) {
	p.e(fmt.Sprintf("rename %s %s %d", from, to, flags),
		unix.Renameat2(unix.AT_FDCWD, p.path(from), unix.AT_FDCWD, p.path(to), flags))
}

func (p *px) link(from, to string) {
	p.e(fmt.Sprintf("link %s %s", from, to), syscall.Link(p.path(from), p.path(to)))
}

func (p *px) symlink(target, name string) {
	p.e(fmt.Sprintf("symlink %.40s %s", target, name), syscall.Symlink(target, p.path(name)))
}

func (p *px) utimes(name string, at, mt unix.Timespec) {
	p.e(fmt.Sprintf("utimensat %s %d.%d %d.%d", name, at.Sec, at.Nsec, mt.Sec, mt.Nsec),
		unix.UtimesNanoAt(unix.AT_FDCWD, p.path(name), []unix.Timespec{at, mt}, unix.AT_SYMLINK_NOFOLLOW))
}

func (p *px) list(name string) {
	ents, err := os.ReadDir(p.path(name))
	if err != nil {
		p.e("readdir "+name, err)
		return
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	p.logf("readdir %s: %s", name, strings.Join(names, ","))
}

// scenario is one script of the checker.
type scenario struct {
	name string
	run  func(p *px)
}

// runDifferential runs every scenario on local disk and on the mount and
// reports where the transcripts differ.
func runDifferential(t *testing.T, scenarios []scenario) {
	mnt := posixRoot(t, testDir(t, 0))
	local := posixRoot(t, localDir(t))
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			var got [2][]string
			for i, root := range []string{local, mnt} {
				dir := filepath.Join(root, sc.name)
				if err := os.Mkdir(dir, 0o777); err != nil {
					t.Fatal(err)
				}
				os.Chmod(dir, 0o777) // past the umask
				p := &px{t: t, root: dir, times: map[string][3]int64{}}
				sc.run(p)
				got[i] = p.lines
			}
			if d := transcriptDiff(got[0], got[1]); d != "" {
				t.Errorf("mount differs from ext4 (-ext4 +mount):\n%s", d)
			}
		})
	}
}

// transcriptDiff lists the lines that differ, with a little context.
func transcriptDiff(want, got []string) string {
	var b strings.Builder
	for i := 0; i < max(len(want), len(got)); i++ {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			fmt.Fprintf(&b, "  %3d -%s\n      +%s\n", i, w, g)
		}
	}
	return b.String()
}

// localDir is a directory on the machine's own disk that other users can
// reach (t.TempDir's parent is private to root).
func localDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dfs-posix-local-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err == nil && fs.Type != unix.EXT4_SUPER_MAGIC {
		t.Logf("note: the local reference %s is not ext4 (f_type %#x)", dir, fs.Type)
	}
	return dir
}

// posixRoot makes dir and every directory above it searchable by others,
// so the scenarios' users can reach it.
func posixRoot(t *testing.T, dir string) string {
	t.Helper()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o005 != 0o005 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o005); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}
