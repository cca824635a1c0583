package tests

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The engine of the pjdfstest port (pjd_test.go). pjdfstest's test files
// are shell scripts of lines "expect RESULT [-u UID] [-g GIDS] [-U UMASK]
// SYSCALL ARGS [: SYSCALL ARGS ...]", each line one run of its fstest
// program, which makes the calls in order as the given user and prints one
// line per call: the errno's name on failure (and stops), the requested
// stat fields, or 0. RESULT is an extended regular expression the last
// line must match. pj.expect takes the same words, so the port reads line
// for line like the original.

var pjdSleep = flag.Duration("pjd.sleep", 20*time.Millisecond,
	"pause where pjdfstest sleeps 1s before checking that a time changed "+
		"(the port compares nanoseconds; -pjd.sleep=1s replays the original)")

// pj runs one pjdfstest file in a directory of its own.
type pj struct {
	t    *testing.T
	root string
	todo string // why pjdfstest expects the next check to fail on Linux
}

// expect runs one fstest command line and checks its last output line.
func (p *pj) expect(want string, args ...string) {
	p.t.Helper()
	got := p.fstest(args...)
	p.result(regexp.MustCompile("^("+want+")$").MatchString(got), "%s: expected %s, got %s", shortArgs(args), want, got)
}

// result reports a failed check, or only logs it after p.todo was set:
// pjdfstest counts "not ok # TODO" lines as passes.
func (p *pj) result(ok bool, format string, args ...any) {
	p.t.Helper()
	todo := p.todo
	p.todo = ""
	switch {
	case ok:
	case todo != "":
		p.t.Logf("TODO (%s): "+format, append([]any{todo}, args...)...)
	default:
		p.t.Errorf(format, args...)
	}
}

func shortArgs(args []string) string {
	var b []string
	for _, a := range args {
		if len(a) > 60 {
			a = fmt.Sprintf("%.20s...(%d bytes)", a, len(a))
		}
		b = append(b, a)
	}
	return strings.Join(b, " ")
}

// check is pjdfstest's test_check.
func (p *pj) check(ok bool, what string, args ...any) {
	p.t.Helper()
	p.result(ok, "test_check failed: "+what, args...)
}

// sleep stands in for pjdfstest's "sleep 1" before a time comparison.
func (p *pj) sleep() { time.Sleep(*pjdSleep) }

// time returns a time field of a stat call in nanoseconds: pjdfstest
// compares seconds after sleeping a second, the port compares
// nanoseconds after a short pause.
func (p *pj) time(call, path, field string) int64 {
	p.t.Helper()
	out := p.fstest(call, path, field+"_full")
	n, err := strconv.ParseInt(out, 10, 64)
	if err != nil {
		p.t.Fatalf("%s %s %s: %s", call, path, field, out)
	}
	return n
}

// cd changes the working directory, which the tests' relative names use.
func (p *pj) cd(dir string) {
	p.t.Helper()
	if err := syscall.Chdir(dir); err != nil {
		p.t.Fatalf("cd %s: %v", dir, err)
	}
}

// name is pjdfstest's namegen: a fresh 42-byte name.
func (p *pj) name() string { return "pjdfstest_" + randHex(32) }

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// nameMax is namegen_max: a name of exactly NAME_MAX bytes.
func (p *pj) nameMax() string { return randHex(p.pathconf("_PC_NAME_MAX")) }

// dirMax is dirgen_max: a relative path of exactly PATH_MAX-1 bytes made
// of NAME_MAX/2-byte components.
func (p *pj) dirMax() string {
	comp := p.pathconf("_PC_NAME_MAX") / 2
	max := p.pathconf("_PC_PATH_MAX") - 1
	var b strings.Builder
	for b.Len() < max {
		b.WriteString(randHex(comp) + "/")
	}
	s := b.String()[:max]
	if strings.HasSuffix(s, "/") {
		s = s[:len(s)-1] + "x"
	}
	return s
}

func (p *pj) pathconf(name string) int {
	p.t.Helper()
	n, err := strconv.Atoi(p.fstest("pathconf", ".", name))
	if err != nil {
		p.t.Fatalf("pathconf %s: %v", name, err)
	}
	return n
}

// createFile is misc.sh's create_file: make a file of the given type and
// optionally set its mode and owner.
func (p *pj) createFile(typ, name string, extra ...string) {
	p.t.Helper()
	switch typ {
	case "none":
		return
	case "regular":
		p.expect("0", "create", name, "0644")
	case "dir":
		p.expect("0", "mkdir", name, "0755")
	case "fifo":
		p.expect("0", "mkfifo", name, "0644")
	case "block":
		p.expect("0", "mknod", name, "b", "0644", "1", "2")
	case "char":
		p.expect("0", "mknod", name, "c", "0644", "1", "2")
	case "socket":
		p.expect("0", "bind", name)
	case "symlink":
		p.expect("0", "symlink", "test", name)
	default:
		p.t.Fatalf("create_file: unknown type %s", typ)
	}
	switch len(extra) {
	case 3:
		p.chmodAny(typ, name, extra[0])
		p.expect("0", "lchown", name, extra[1], extra[2])
	case 2:
		p.expect("0", "lchown", name, extra[0], extra[1])
	case 1:
		p.chmodAny(typ, name, extra[0])
	}
}

// chmodAny: create_file sets a symlink's mode with lchmod, which Linux
// does not have; misc.sh's callers only pass modes for symlinks on
// systems with lchmod.
func (p *pj) chmodAny(typ, name, mode string) {
	p.t.Helper()
	if typ == "symlink" {
		return
	}
	p.expect("0", "chmod", name, mode)
}

// remove deletes what createFile made (the tests' rmdir-or-unlink).
func (p *pj) remove(typ, name string) {
	p.t.Helper()
	if typ == "dir" {
		p.expect("0", "rmdir", name)
	} else {
		p.expect("0", "unlink", name)
	}
}

// fstest runs one command line as fstest would and returns its last line.
func (p *pj) fstest(args ...string) string {
	p.t.Helper()
	uid, gid := -1, -1
	var groups []uint32
	umask := 0
	for len(args) >= 2 && strings.HasPrefix(args[0], "-") && len(args[0]) == 2 {
		if args[0] == "--" {
			args = args[1:]
			break
		}
		v := args[1]
		switch args[0] {
		case "-u":
			uid = atoi(p.t, v)
		case "-g":
			for _, g := range strings.Split(v, ",") {
				groups = append(groups, uint32(atoi(p.t, g)))
			}
			gid = int(groups[0])
		case "-U":
			umask = atoi(p.t, v)
		default:
			p.t.Fatalf("fstest: unknown option %s", args[0])
		}
		args = args[2:]
	}
	old := syscall.Umask(umask)
	defer syscall.Umask(old)
	var out string
	run := func() { out = fstestCalls(p.t, args) }
	if uid < 0 && gid < 0 {
		run()
	} else if err := asThread(uid, gid, groups, run); err != nil {
		p.t.Fatalf("fstest %v: %v", args, err)
	}
	return out
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		t.Fatalf("fstest: %q is not a number", s)
	}
	return int(n)
}

// fstestCalls makes the calls of one command line, separated by ":".
// Descriptors are numbered in the order opened, as fstest numbers them.
func fstestCalls(t *testing.T, args []string) string {
	var fds, socks []int // sockets are not numbered, as in fstest
	defer func() {
		for _, fd := range append(fds, socks...) {
			syscall.Close(fd)
		}
	}()
	fd := func(s string) int {
		switch s {
		case "AT_FDCWD":
			return unix.AT_FDCWD
		case "BADFD":
			return -1
		}
		i := atoi(t, s)
		if i < 0 || i >= len(fds) {
			t.Fatalf("fstest: invalid descriptor %s", s)
		}
		return fds[i]
	}
	num := func(s string) int64 { return int64(atoi(t, s)) }
	last := ""
	for len(args) > 0 {
		n := len(args)
		for i, a := range args {
			if a == ":" {
				n = i
				break
			}
		}
		call, a := args[0], args[1:n]
		if n < len(args) {
			args = args[n+1:]
		} else {
			args = nil
		}
		res, err := fstestCall(t, call, a, fd, num, &fds, &socks)
		if err != nil {
			return unix.ErrnoName(errno(err))
		}
		last = res
	}
	return last
}

func fstestCall(t *testing.T, call string, a []string, fd func(string) int, num func(string) int64, fds, socks *[]int) (string, error) {
	need := func(n int) {
		if len(a) != n {
			t.Fatalf("fstest: %s takes %d arguments, got %v", call, n, a)
		}
	}
	for _, s := range a {
		if s == "NULL" || s == "DEADCODE" {
			return "0", rawBadPointer(t, call, a)
		}
	}
	var st unix.Stat_t
	switch call {
	case "open", "openat":
		dirfd := unix.AT_FDCWD
		if call == "openat" {
			dirfd, a = fd(a[0]), a[1:]
		}
		flags := fstestFlags(t, openFlags, a[1])
		var mode int64
		if flags&unix.O_CREAT != 0 {
			need(3)
			mode = num(a[2])
		} else {
			need(2)
		}
		f, err := unix.Openat(dirfd, a[0], flags, uint32(mode))
		if err != nil {
			return "", err
		}
		*fds = append(*fds, f)
	case "create":
		need(2)
		f, err := unix.Open(a[0], unix.O_CREAT|unix.O_EXCL, uint32(num(a[1])))
		if err != nil {
			return "", err
		}
		unix.Close(f)
	case "unlink":
		need(1)
		return "0", unix.Unlink(a[0])
	case "unlinkat":
		need(3)
		return "0", unix.Unlinkat(fd(a[0]), a[1], fstestFlags(t, map[string]int{"AT_REMOVEDIR": unix.AT_REMOVEDIR}, a[2]))
	case "mkdir":
		need(2)
		return "0", unix.Mkdir(a[0], uint32(num(a[1])))
	case "mkdirat":
		need(3)
		return "0", unix.Mkdirat(fd(a[0]), a[1], uint32(num(a[2])))
	case "rmdir":
		need(1)
		return "0", unix.Rmdir(a[0])
	case "link":
		need(2)
		return "0", unix.Link(a[0], a[1])
	case "linkat":
		need(5)
		return "0", unix.Linkat(fd(a[0]), a[1], fd(a[2]), a[3], fstestFlags(t, map[string]int{"AT_SYMLINK_FOLLOW": unix.AT_SYMLINK_FOLLOW}, a[4]))
	case "symlink":
		need(2)
		return "0", unix.Symlink(a[0], a[1])
	case "symlinkat":
		need(3)
		return "0", unix.Symlinkat(a[0], fd(a[1]), a[2])
	case "rename":
		need(2)
		return "0", unix.Rename(a[0], a[1])
	case "renameat":
		need(4)
		return "0", unix.Renameat(fd(a[0]), a[1], fd(a[2]), a[3])
	case "mkfifo":
		need(2)
		return "0", unix.Mkfifo(a[0], uint32(num(a[1])))
	case "mkfifoat":
		need(3)
		return "0", unix.Mkfifoat(fd(a[0]), a[1], uint32(num(a[2])))
	case "mknod", "mknodat":
		dirfd := unix.AT_FDCWD
		if call == "mknodat" {
			dirfd, a = fd(a[0]), a[1:]
		}
		need(5)
		types := map[string]uint32{"c": unix.S_IFCHR, "b": unix.S_IFBLK, "f": unix.S_IFIFO, "d": unix.S_IFDIR, "o": unix.S_IFREG}
		typ, ok := types[a[1]]
		if !ok {
			t.Fatalf("fstest: mknod: unknown type %s", a[1])
		}
		dev := unix.Mkdev(uint32(num(a[3])), uint32(num(a[4])))
		return "0", unix.Mknodat(dirfd, a[0], typ|uint32(num(a[2])), int(dev))
	case "bind", "connect":
		need(1)
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			return "", err
		}
		*socks = append(*socks, s) // fstest leaves it open until it exits
		if call == "bind" {
			return "0", unix.Bind(s, &unix.SockaddrUnix{Name: a[0]})
		}
		return "0", unix.Connect(s, &unix.SockaddrUnix{Name: a[0]})
	case "chmod":
		need(2)
		return "0", unix.Chmod(a[0], uint32(num(a[1])))
	case "fchmod":
		need(2)
		return "0", unix.Fchmod(fd(a[0]), uint32(num(a[1])))
	case "fchmodat":
		need(4)
		return "0", unix.Fchmodat(fd(a[0]), a[1], uint32(num(a[2])), fstestFlags(t, map[string]int{"AT_SYMLINK_NOFOLLOW": unix.AT_SYMLINK_NOFOLLOW}, a[3]))
	case "chown":
		need(3)
		return "0", unix.Chown(a[0], int(num(a[1])), int(num(a[2])))
	case "fchown":
		need(3)
		return "0", unix.Fchown(fd(a[0]), int(num(a[1])), int(num(a[2])))
	case "lchown":
		need(3)
		return "0", unix.Lchown(a[0], int(num(a[1])), int(num(a[2])))
	case "fchownat":
		need(5)
		return "0", unix.Fchownat(fd(a[0]), a[1], int(num(a[2])), int(num(a[3])), fstestFlags(t, map[string]int{"AT_SYMLINK_NOFOLLOW": unix.AT_SYMLINK_NOFOLLOW}, a[4]))
	case "truncate":
		need(2)
		return "0", unix.Truncate(a[0], num(a[1]))
	case "ftruncate":
		need(2)
		return "0", unix.Ftruncate(fd(a[0]), num(a[1]))
	case "posix_fallocate":
		need(3)
		// posix_fallocate is fallocate mode 0, retried on EINTR.
		return "0", unix.Fallocate(fd(a[0]), 0, num(a[1]), num(a[2]))
	case "stat":
		need(2)
		if err := unix.Stat(a[0], &st); err != nil {
			return "", err
		}
		return statFields(&st, a[1]), nil
	case "lstat":
		need(2)
		if err := unix.Lstat(a[0], &st); err != nil {
			return "", err
		}
		return statFields(&st, a[1]), nil
	case "fstat":
		need(2)
		if err := unix.Fstat(fd(a[0]), &st); err != nil {
			return "", err
		}
		return statFields(&st, a[1]), nil
	case "fstatat":
		need(4)
		if err := unix.Fstatat(fd(a[0]), a[1], &st, fstestFlags(t, map[string]int{"AT_SYMLINK_NOFOLLOW": unix.AT_SYMLINK_NOFOLLOW}, a[2])); err != nil {
			return "", err
		}
		return statFields(&st, a[3]), nil
	case "pathconf", "fpathconf":
		need(2)
		names := map[string]int{"_PC_LINK_MAX": 0, "_PC_NAME_MAX": 3, "_PC_PATH_MAX": 4}
		if _, ok := names[a[1]]; !ok {
			t.Fatalf("fstest: unknown pathconf name %s", a[1])
		}
		return pathconf(call, a, fd)
	case "pwrite":
		need(3)
		_, err := unix.Pwrite(fd(a[0]), []byte(a[1]), num(a[2]))
		return "0", err
	case "pread":
		// "pread FD LEN OFFSET"; the older "pread FD OFFSET" reads what
		// there is.
		size, off := int64(4096), int64(0)
		if len(a) == 2 {
			off = num(a[1])
		} else {
			need(3)
			size, off = num(a[1]), num(a[2])
		}
		buf := make([]byte, size)
		n, err := unix.Pread(fd(a[0]), buf, off)
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case "write":
		need(2)
		_, err := unix.Write(fd(a[0]), []byte(a[1]))
		return "0", err
	case "utimensat":
		if len(a) == 6 { // utimensat/07 leaves the flags out
			a = append(a, "0")
		}
		need(7)
		ts := []unix.Timespec{{Sec: num(a[2]), Nsec: utimeNsec(t, a[3])}, {Sec: num(a[4]), Nsec: utimeNsec(t, a[5])}}
		return "0", unix.UtimesNanoAt(fd(a[0]), a[1], ts, fstestFlags(t, map[string]int{"AT_SYMLINK_NOFOLLOW": unix.AT_SYMLINK_NOFOLLOW}, a[6]))
	default:
		t.Fatalf("fstest: syscall %q not supported", call)
	}
	return "0", nil
}

// pathconf answers as glibc's pathconf does on Linux: NAME_MAX from
// statfs, and the kernel's fixed PATH_MAX and (for ext4) LINK_MAX.
func pathconf(call string, a []string, fd func(string) int) (string, error) {
	var fs unix.Statfs_t
	var err error
	if call == "fpathconf" {
		err = unix.Fstatfs(fd(a[0]), &fs)
	} else {
		err = unix.Statfs(a[0], &fs)
	}
	if err != nil {
		return "", err
	}
	switch a[1] {
	case "_PC_NAME_MAX":
		return fmt.Sprint(fs.Namelen), nil
	case "_PC_PATH_MAX":
		return "4096", nil
	default: // _PC_LINK_MAX
		if fs.Type == unix.EXT4_SUPER_MAGIC {
			return "65000", nil
		}
		return "127", nil
	}
}

func utimeNsec(t *testing.T, s string) int64 {
	switch s {
	case "UTIME_NOW":
		return unix.UTIME_NOW
	case "UTIME_OMIT":
		return unix.UTIME_OMIT
	}
	return int64(atoi(t, s))
}

var openFlags = map[string]int{
	"O_RDONLY": unix.O_RDONLY, "O_WRONLY": unix.O_WRONLY, "O_RDWR": unix.O_RDWR,
	"O_NONBLOCK": unix.O_NONBLOCK, "O_APPEND": unix.O_APPEND, "O_CREAT": unix.O_CREAT,
	"O_TRUNC": unix.O_TRUNC, "O_EXCL": unix.O_EXCL, "O_DIRECT": unix.O_DIRECT,
	"O_FSYNC": unix.O_FSYNC, "O_SYNC": unix.O_SYNC, "O_NOFOLLOW": unix.O_NOFOLLOW,
	"O_NOCTTY": unix.O_NOCTTY, "O_DIRECTORY": unix.O_DIRECTORY,
}

// fstestFlags parses "none", "0" or names joined by "," or "|".
func fstestFlags(t *testing.T, names map[string]int, s string) int {
	if s == "none" || s == "0" {
		return 0
	}
	flags := 0
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '|' }) {
		v, ok := names[f]
		if !ok {
			t.Fatalf("fstest: unknown flag %s", f)
		}
		flags |= v
	}
	return flags
}

// statFields prints the requested fields as fstest does; the _full forms
// (seconds and nanoseconds in one number) are the port's own (see pj.time).
func statFields(st *unix.Stat_t, what string) string {
	var out []string
	for _, w := range strings.Split(what, ",") {
		var v string
		switch w {
		case "mode":
			v = fmt.Sprintf("0%o", st.Mode&07777)
		case "inode":
			v = fmt.Sprint(st.Ino)
		case "nlink":
			v = fmt.Sprint(st.Nlink)
		case "uid":
			v = fmt.Sprint(st.Uid)
		case "gid":
			v = fmt.Sprint(st.Gid)
		case "size":
			v = fmt.Sprint(st.Size)
		case "blocks":
			v = fmt.Sprint(st.Blocks)
		case "atime":
			v = fmt.Sprint(st.Atim.Sec)
		case "mtime":
			v = fmt.Sprint(st.Mtim.Sec)
		case "ctime":
			v = fmt.Sprint(st.Ctim.Sec)
		case "atime_ns":
			v = fmt.Sprint(st.Atim.Nsec)
		case "mtime_ns":
			v = fmt.Sprint(st.Mtim.Nsec)
		case "ctime_ns":
			v = fmt.Sprint(st.Ctim.Nsec)
		case "atime_full":
			v = fmt.Sprint(st.Atim.Nano())
		case "mtime_full":
			v = fmt.Sprint(st.Mtim.Nano())
		case "ctime_full":
			v = fmt.Sprint(st.Ctim.Nano())
		case "major":
			v = fmt.Sprint(unix.Major(st.Rdev))
		case "minor":
			v = fmt.Sprint(unix.Minor(st.Rdev))
		case "type":
			v = map[uint32]string{unix.S_IFIFO: "fifo", unix.S_IFCHR: "char", unix.S_IFDIR: "dir",
				unix.S_IFBLK: "block", unix.S_IFREG: "regular", unix.S_IFLNK: "symlink",
				unix.S_IFSOCK: "socket"}[st.Mode&unix.S_IFMT]
			if v == "" {
				v = "unknown"
			}
		default:
			v = "unknown"
		}
		out = append(out, v)
	}
	return strings.Join(out, ",")
}

// pjFile is one ported .t file.
type pjFile struct {
	name string // syscall/NN
	run  func(p *pj)
}

// runPjd runs every file in a fresh directory below root, with root as
// the working directory and umask 0 (fstest's default).
func runPjd(t *testing.T, root string, files []pjFile) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			dir := root + "/" + strings.ReplaceAll(f.name, "/", "_")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chdir(dir); err != nil {
				t.Fatal(err)
			}
			p := &pj{t: t, root: dir}
			f.run(p)
		})
	}
}

// mkdirAll is the tests' "mkdir -p" of the directories of a path.
func (p *pj) mkdirAll(path string) {
	p.t.Helper()
	if i := strings.LastIndex(path, "/"); i > 0 {
		if err := os.MkdirAll(path[:i], 0o755); err != nil {
			p.t.Fatal(err)
		}
	}
}

// The templates shared by most syscalls' 01.t (ENOTDIR), 06.t/07.t
// (ELOOP) and EFAULT files; cmd builds the call on a path.

func pjENOTDIR(p *pj, cmds ...func(path string) []string) {
	p.t.Helper()
	n0, n1 := p.name(), p.name()
	p.expect("0", "mkdir", n0, "0755")
	for _, typ := range []string{"regular", "fifo", "block", "char", "socket"} {
		p.createFile(typ, n0+"/"+n1)
		for _, cmd := range cmds {
			p.expect("ENOTDIR", cmd(n0+"/"+n1+"/test")...)
		}
		p.expect("0", "unlink", n0+"/"+n1)
	}
	p.expect("0", "rmdir", n0)
}

func pjELOOP(p *pj, cmd func(path string) []string) {
	p.t.Helper()
	n0, n1 := p.name(), p.name()
	p.expect("0", "symlink", n0, n1)
	p.expect("0", "symlink", n1, n0)
	for _, path := range []string{n0, n1, n0 + "/test", n1 + "/test"} {
		p.expect("ELOOP", cmd(path)...)
	}
	p.expect("0", "unlink", n0)
	p.expect("0", "unlink", n1)
}

// pjEFAULT: the NULL and DEADCODE pointers of the EFAULT files, as the
// path argument at position i of call.
func pjEFAULT(p *pj, call string, args ...string) {
	p.t.Helper()
	for _, bad := range []string{"NULL", "DEADCODE"} {
		p.expect("EFAULT", append([]string{call, bad}, args...)...)
	}
}

// rawPathCalls are the calls fstest can make with a bad path pointer
// (NULL, DEADCODE): Go's wrappers take strings, so they are made raw.
var rawPathCalls = map[string]uintptr{
	"chmod": unix.SYS_CHMOD, "chown": unix.SYS_CHOWN, "lchown": unix.SYS_LCHOWN,
	"link": unix.SYS_LINK, "symlink": unix.SYS_SYMLINK, "rename": unix.SYS_RENAME,
	"mkdir": unix.SYS_MKDIR, "rmdir": unix.SYS_RMDIR, "unlink": unix.SYS_UNLINK,
	"truncate": unix.SYS_TRUNCATE, "open": unix.SYS_OPEN, "create": unix.SYS_OPEN,
	"mkfifo": unix.SYS_MKNOD, "mknod": unix.SYS_MKNOD,
}

func num(t *testing.T, s string) uint32 { return uint32(atoi(t, s)) }

// rawBadPointer makes call with a as its arguments, NULL and DEADCODE
// standing for those pointers.
func rawBadPointer(t *testing.T, call string, a []string) error {
	nr, ok := rawPathCalls[call]
	if !ok {
		t.Fatalf("fstest: %s with a bad pointer is not supported", call)
	}
	if call == "mknod" { // path type mode major minor -> path mode dev
		if a[1] != "f" {
			t.Fatalf("fstest: mknod %s with a bad pointer is not supported", a[1])
		}
		a = []string{a[0], fmt.Sprint(unix.S_IFIFO | num(t, a[2])), fmt.Sprint(unix.Mkdev(uint32(num(t, a[3])), uint32(num(t, a[4]))))}
	}
	var keep [][]byte
	var args [3]uintptr
	for i, s := range a {
		switch {
		case s == "NULL":
		case s == "DEADCODE":
			args[i] = 0xdeadc0de
		case call == "open" && i == 1:
			args[i] = uintptr(fstestFlags(t, openFlags, s))
		case s != "" && (s[0] >= '0' && s[0] <= '9' || s[0] == '-'):
			args[i] = uintptr(atoi(t, s))
		default:
			b := append([]byte(s), 0)
			keep = append(keep, b)
			args[i] = uintptr(unsafe.Pointer(&b[0]))
		}
	}
	switch call {
	case "create":
		args[2], args[1] = args[1], unix.O_CREAT|unix.O_EXCL
	case "mkfifo":
		args[1] |= unix.S_IFIFO
	}
	r, _, e := syscall.Syscall(nr, args[0], args[1], args[2])
	runtime.KeepAlive(keep)
	if e != 0 {
		return e
	}
	if call == "open" || call == "create" {
		syscall.Close(int(r))
	}
	return nil
}

// creator describes a call that makes a new name, for the templates that
// most creating syscalls share (02-09 of mkfifo, mknod, mkdir, ...).
type creator struct {
	mk   func(path string) []string // the call, expected to answer 0
	rm   string                     // unlink or rmdir
	stat []string                   // if set, what "stat NAME stat[1]" shows after mk
}

// tplNameMax: a NAME_MAX name works, one byte more is ENAMETOOLONG.
func tplNameMax(p *pj, c creator) {
	p.t.Helper()
	nx := p.nameMax()
	p.expect("0", c.mk(nx)...)
	if c.stat != nil {
		p.expect(c.stat[0], "stat", nx, c.stat[1])
	}
	p.expect("0", c.rm, nx)
	p.expect("ENAMETOOLONG", c.mk(nx+"x")...)
}

// tplPathMax: a PATH_MAX-1 path works, one byte more is ENAMETOOLONG.
func tplPathMax(p *pj, c creator) {
	p.t.Helper()
	nx := p.dirMax()
	p.mkdirAll(nx)
	p.expect("0", c.mk(nx)...)
	if c.stat != nil {
		p.expect(c.stat[0], "stat", nx, c.stat[1])
	}
	p.expect("0", c.rm, nx)
	p.expect("ENAMETOOLONG", c.mk(nx+"x")...)
}

// tplENOENT: a missing directory in the prefix.
func tplENOENT(p *pj, c creator) {
	p.t.Helper()
	n0, n1 := p.name(), p.name()
	p.expect("0", "mkdir", n0, "0755")
	p.expect("ENOENT", c.mk(n0+"/"+n1+"/test")...)
	p.expect("0", "rmdir", n0)
}

// tplEACCES: no search (mode 0644) or no write (0555) permission on the
// parent, for user 65534.
func tplEACCES(p *pj, c creator, parentMode string) {
	p.t.Helper()
	n0, n1, n2 := p.name(), p.name(), p.name()
	p.expect("0", "mkdir", n0, "0755")
	p.cd(n0)
	as := []string{"-u", "65534", "-g", "65534"}
	path := n1 + "/" + n2
	p.expect("0", "mkdir", n1, "0755")
	p.expect("0", "chown", n1, "65534", "65534")
	p.expect("0", append(as, c.mk(path)...)...)
	p.expect("0", append(as, c.rm, path)...)
	p.expect("0", "chmod", n1, parentMode)
	p.expect("EACCES", append(as, c.mk(path)...)...)
	p.expect("0", "chmod", n1, "0755")
	p.expect("0", append(as, c.mk(path)...)...)
	p.expect("0", append(as, c.rm, path)...)
	p.expect("0", "rmdir", n1)
	p.cd("..")
	p.expect("0", "rmdir", n0)
}

// tplELOOPCreate: a symlink loop in the prefix.
func tplELOOPCreate(p *pj, c creator) {
	p.t.Helper()
	n0, n1 := p.name(), p.name()
	p.expect("0", "symlink", n0, n1)
	p.expect("0", "symlink", n1, n0)
	p.expect("ELOOP", c.mk(n0+"/test")...)
	p.expect("ELOOP", c.mk(n1+"/test")...)
	p.expect("0", "unlink", n0)
	p.expect("0", "unlink", n1)
}

// tplEEXIST: the name exists, as any type.
func tplEEXIST(p *pj, mks ...func(string) []string) {
	p.t.Helper()
	n0 := p.name()
	for _, typ := range allTypes {
		p.createFile(typ, n0)
		for _, mk := range mks {
			p.expect("EEXIST", mk(n0)...)
		}
		p.remove(typ, n0)
	}
}

// newTimes: a created name's times and its parent's mtime and ctime are
// all later than the parent's ctime before the call.
func (p *pj) newTimes(create []string, name string) {
	p.t.Helper()
	before := p.time("stat", ".", "ctime")
	p.sleep()
	p.expect("0", create...)
	for _, c := range []struct{ path, field string }{
		{name, "atime"}, {name, "mtime"}, {name, "ctime"}, {".", "mtime"}, {".", "ctime"},
	} {
		after := p.time("lstat", c.path, c.field)
		p.check(before < after, "%s %s: %d then %d", c.path, c.field, before, after)
	}
}

// TestPjdEngine checks the engine's output formats against known answers,
// so that a port whose every line passes is not passing by accident.
func TestPjdEngine(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: mknod of devices needs root")
	}
	dir := t.TempDir()
	f, dev := dir+"/f", dir+"/dev"
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"create", f, "01644"}, "0"},
		{[]string{"create", f, "0644"}, "EEXIST"},
		{[]string{"open", f, "O_WRONLY", ":", "write", "0", "hello", ":", "fstat", "0", "type,mode,nlink,size"}, "regular,01644,1,5"},
		{[]string{"open", f, "O_RDONLY", ":", "pread", "0", "3", "1"}, "ell"},
		{[]string{"open", f, "O_RDONLY", ":", "open", f, "O_RDWR", ":", "ftruncate", "0", "1"}, "EINVAL"}, // descriptor 0 is read-only
		{[]string{"open", f, "O_RDONLY", ":", "open", f, "O_RDWR", ":", "ftruncate", "1", "1"}, "0"},
		{[]string{"stat", f, "size"}, "1"},
		{[]string{"mknod", dev, "c", "0600", "1", "2"}, "0"},
		{[]string{"lstat", dev, "type,mode,major,minor"}, "char,0600,1,2"},
		{[]string{"unlink", dir + "/missing"}, "ENOENT"},
		{[]string{"utimensat", "AT_FDCWD", f, "1900000000", "5", "0", "UTIME_OMIT", "0"}, "0"},
		{[]string{"stat", f, "atime,atime_ns"}, "1900000000,5"},
		{[]string{"chmod", "NULL", "0644"}, "EFAULT"},
	} {
		if got := fstestCalls(t, c.args); got != c.want {
			t.Errorf("%v: got %q, want %q", c.args, got, c.want)
		}
	}
	p := &pj{t: t, root: dir}
	// t.TempDir is private to root: another user cannot reach it.
	if got := p.fstest("-u", "65534", "-g", "65534", "--", "stat", f, "uid"); got != "EACCES" {
		t.Errorf("stat as user 65534 in a private directory: %q, want EACCES", got)
	}
	if got := p.fstest("-U", "077", "mkdir", dir+"/d", "0777", ":", "stat", dir+"/d", "mode"); got != "0700" {
		t.Errorf("mkdir under umask 077: %q, want 0700", got)
	}
}
