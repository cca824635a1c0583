package tests

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"dfs/cluster"

	"golang.org/x/sys/unix"
)

// Lock tests run on one private cluster of three mounts with a short
// session TTL, so that a killed mount's locks are freed quickly.
const (
	lockTTL   = 6 * time.Second
	lockGrace = 2 * time.Second
)

func startLockCluster(t *testing.T) *cluster.Cluster {
	return startCluster(t, cluster.Config{
		Masters: 3, ChunkServers: 3, Mounts: 3,
		ExtraMasterArgs: []string{"-session-grace", lockGrace.String()},
		ExtraMountArgs:  append(mountOpts(), "-session-ttl", lockTTL.String()),
	})
}

// TestLocks runs the lock scenarios in order on one cluster.
func TestLocks(t *testing.T) {
	c := startLockCluster(t)
	dirs := make([]string, c.NumMounts())
	for i := range dirs {
		dirs[i] = filepath.Join(c.MountDir(i), "locks")
	}
	if err := os.MkdirAll(dirs[0], 0o755); err != nil {
		t.Fatal(err)
	}
	t.Run("FlockCounter", func(t *testing.T) { testFlockCounter(t, dirs) })
	t.Run("FcntlAcrossMounts", func(t *testing.T) { testFcntlAcrossMounts(t, c, dirs) })
	t.Run("CloseReleases", func(t *testing.T) { testCloseReleases(t, dirs) })
	t.Run("Interrupt", func(t *testing.T) { testLockInterrupt(t, c, dirs) })
	t.Run("SQLite", func(t *testing.T) { testSQLiteTwoMounts(t, dirs) })
	t.Run("LeaderKilled", func(t *testing.T) { testLockLeaderKilled(t, c, dirs) })
	t.Run("Fence", func(t *testing.T) { testFence(t, dirs) })
	t.Run("SessionLost", func(t *testing.T) { testLockSessionLost(t, c, dirs) })
	t.Run("MountKilled", func(t *testing.T) { testLockMountKilled(t, c, dirs) })
}

// testFlockCounter: three mounts each increment a counter file N times
// under flock(1); the count ends exactly at 3N.
func testFlockCounter(t *testing.T, dirs []string) {
	n := 200
	if os.Getenv("DFS_LONG") != "" {
		n = 1000
	}
	if err := os.WriteFile(filepath.Join(dirs[0], "counter"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`for i in $(seq %d); do flock counter sh -c 'v=$(cat counter); echo $((v+1)) > counter' || exit 1; done`, n)
	var wg sync.WaitGroup
	errs := make([]error, len(dirs))
	for i, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("sh", "-c", script)
			cmd.Dir = d
			out, err := cmd.CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("mount %d: %v: %s", i, err, out)
			}
		}()
	}
	within(t, 10*time.Minute, "flock counter", func() error { wg.Wait(); return nil })
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "counter"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(b)); got != strconv.Itoa(len(dirs)*n) {
			t.Errorf("mount %d reads counter %q, want %d", i, got, len(dirs)*n)
		}
	}
}

// holder is a Python process that takes fcntl locks on a file and holds
// them until told to go on.
type holder struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

const holderScript = `
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
for line in sys.stdin:
    w = line.split()
    if w[0] == "lock":
        t = {"r": fcntl.F_RDLCK, "w": fcntl.F_WRLCK, "u": fcntl.F_UNLCK}[w[1]]
        cmd = fcntl.F_SETLKW if w[4:] == ["wait"] else fcntl.F_SETLK
        try:
            fcntl.fcntl(fd, cmd, struct.pack("hhqqixxxx", t, 0, int(w[2]), int(w[3]), 0))
            print("ok", flush=True)
        except OSError as e:
            print("errno", e.errno, flush=True)
    elif w[0] == "pid":
        print(os.getpid(), flush=True)
`

func startHolder(t *testing.T, path string) *holder {
	t.Helper()
	cmd := exec.Command("python3", "-c", holderScript, path)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &holder{cmd: cmd, in: in, out: bufio.NewReader(out)}
	t.Cleanup(func() { h.in.Close(); h.cmd.Process.Kill(); h.cmd.Wait() })
	return h
}

// do sends one command and returns the answer line.
func (h *holder) do(t *testing.T, line string) string {
	t.Helper()
	if _, err := fmt.Fprintln(h.in, line); err != nil {
		t.Fatal(err)
	}
	var ans string
	within(t, time.Minute, "holder: "+line, func() error {
		s, err := h.out.ReadString('\n')
		ans = strings.TrimSpace(s)
		return err
	})
	return ans
}

func getlk(t *testing.T, f *os.File, typ int16, start, length int64) unix.Flock_t {
	t.Helper()
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: start, Len: length}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil {
		t.Fatalf("F_GETLK: %v", err)
	}
	return lk
}

func setlk(f *os.File, cmd int, typ int16, start, length int64) error {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: start, Len: length}
	return unix.FcntlFlock(f.Fd(), cmd, &lk)
}

// testFcntlAcrossMounts: byte-range locks of a process on one mount and a
// process on another conflict exactly as two processes on one host.
func testFcntlAcrossMounts(t *testing.T, c *cluster.Cluster, dirs []string) {
	a := startHolder(t, filepath.Join(dirs[0], "ranges"))
	pid, _ := strconv.Atoi(a.do(t, "pid"))
	if got := a.do(t, "lock w 10 10"); got != "ok" {
		t.Fatalf("holder write lock: %s", got)
	}
	if got := a.do(t, "lock r 30 10"); got != "ok" {
		t.Fatalf("holder read lock: %s", got)
	}
	f, err := os.OpenFile(filepath.Join(dirs[1], "ranges"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// F_GETLK reports the conflicting range and type; the pid of a
	// holder on another mount is 0.
	lk := getlk(t, f, unix.F_WRLCK, 0, 100)
	if lk.Type != unix.F_WRLCK || lk.Start != 10 || lk.Len != 10 || lk.Pid != 0 {
		t.Errorf("F_GETLK write [0,100) = %+v, want write lock [10,20) pid 0", lk)
	}
	lk = getlk(t, f, unix.F_WRLCK, 25, 0)
	if lk.Type != unix.F_RDLCK || lk.Start != 30 || lk.Len != 10 {
		t.Errorf("F_GETLK write [25,EOF) = %+v, want read lock [30,40)", lk)
	}
	if lk = getlk(t, f, unix.F_RDLCK, 30, 10); lk.Type != unix.F_UNLCK {
		t.Errorf("F_GETLK read over a read lock = %+v, want F_UNLCK", lk)
	}
	// The same query from the holder's own mount shows its pid.
	g, err := os.Open(filepath.Join(dirs[0], "ranges"))
	if err != nil {
		t.Fatal(err)
	}
	if lk = getlk(t, g, unix.F_WRLCK, 0, 0); int(lk.Pid) != pid {
		t.Errorf("F_GETLK on the holder's mount: pid %d, want %d", lk.Pid, pid)
	}
	g.Close()

	for _, tc := range []struct {
		typ           int16
		start, length int64
		want          error
	}{
		{unix.F_WRLCK, 15, 1, unix.EAGAIN},
		{unix.F_RDLCK, 19, 2, unix.EAGAIN},
		{unix.F_RDLCK, 35, 1, nil},
		{unix.F_WRLCK, 20, 10, nil},
		{unix.F_WRLCK, 39, 1, unix.EAGAIN},
		{unix.F_WRLCK, 40, 0, nil},
	} {
		if err := setlk(f, unix.F_SETLK, tc.typ, tc.start, tc.length); err != tc.want {
			t.Errorf("F_SETLK type %d [%d,+%d) = %v, want %v", tc.typ, tc.start, tc.length, err, tc.want)
		}
	}
	// The holder now conflicts with us the other way round.
	if got := a.do(t, "lock w 20 1"); got != fmt.Sprint("errno ", int(unix.EAGAIN)) {
		t.Errorf("holder locking our range: %s, want EAGAIN", got)
	}
	// A blocked F_SETLKW is granted when the holder unlocks part of
	// its range (a split): waiting on the master, not by polling.
	done := make(chan error, 1)
	go func() { done <- setlk(f, unix.F_SETLKW, unix.F_WRLCK, 12, 2) }()
	select {
	case err := <-done:
		t.Fatalf("F_SETLKW over a held range returned early: %v", err)
	case <-time.After(time.Second):
	}
	if got := a.do(t, "lock u 11 4"); got != "ok" {
		t.Fatalf("holder partial unlock: %s", got)
	}
	within(t, 30*time.Second, "F_SETLKW after the holder's unlock", func() error { return <-done })
	// What is left of the holder's write lock is [10,11) and [15,20).
	if lk = getlk(t, f, unix.F_RDLCK, 0, 0); lk.Start != 10 || lk.Len != 1 {
		t.Errorf("after the split: F_GETLK = %+v, want [10,11)", lk)
	}
	if lk = getlk(t, f, unix.F_RDLCK, 11, 0); lk.Start != 15 || lk.Len != 5 {
		t.Errorf("after the split: F_GETLK from 11 = %+v, want [15,20)", lk)
	}
	// Sequencers are visible to applications that hold a lock.
	buf := make([]byte, 32)
	n, err := unix.Getxattr(filepath.Join(dirs[1], "ranges"), "dfs.lock.sequencer", buf)
	if err != nil {
		t.Fatalf("getxattr dfs.lock.sequencer: %v", err)
	}
	if s, err := strconv.ParseUint(string(buf[:n]), 10, 64); err != nil || s == 0 {
		t.Errorf("dfs.lock.sequencer = %q", buf[:n])
	}
}

// testCloseReleases: closing any descriptor of the file releases the
// process's POSIX locks; OFD and flock locks live until the last close of
// their open file description.
func testCloseReleases(t *testing.T, dirs []string) {
	path := filepath.Join(dirs[0], "close")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := startHolder(t, filepath.Join(dirs[2], "close"))
	f1, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := setlk(f1, unix.F_SETLK, unix.F_WRLCK, 0, 0); err != nil {
		t.Fatal(err)
	}
	if got := other.do(t, "lock w 0 1"); got == "ok" {
		t.Fatal("other mount got a lock we hold")
	}
	f2, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	f2.Close() // POSIX: releases our locks although f1 is open
	if got := other.do(t, "lock w 0 1"); got != "ok" {
		t.Fatalf("after closing another descriptor: other mount's lock: %s, want ok", got)
	}
	other.do(t, "lock u 0 0")

	// OFD locks: two descriptions in one process conflict; closing one
	// descriptor of a description keeps its lock while a dup lives.
	if err := setlk(f1, unix.F_OFD_SETLK, unix.F_WRLCK, 0, 1); err != nil {
		t.Fatalf("OFD lock: %v", err)
	}
	f3, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := setlk(f3, unix.F_OFD_SETLK, unix.F_WRLCK, 0, 1); err != unix.EAGAIN {
		t.Errorf("second OFD lock in the same process: %v, want EAGAIN", err)
	}
	dup, err := unix.Dup(int(f1.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	f1.Close()
	if err := setlk(f3, unix.F_OFD_SETLK, unix.F_WRLCK, 0, 1); err != unix.EAGAIN {
		t.Errorf("OFD lock while a dup of the holder lives: %v, want EAGAIN", err)
	}
	unix.Close(dup)
	within(t, 30*time.Second, "OFD lock after the last close", func() error {
		for {
			err := setlk(f3, unix.F_OFD_SETLK, unix.F_WRLCK, 0, 1)
			if err != unix.EAGAIN {
				return err
			}
			// RELEASE reaches the mount asynchronously after close.
			time.Sleep(50 * time.Millisecond)
		}
	})
	f3.Close()

	// flock: held by the description, independent of fcntl locks.
	f4, _ := os.Open(path)
	if err := unix.Flock(int(f4.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("flock: %v", err)
	}
	if got := other.do(t, "lock w 0 0"); got != "ok" {
		t.Errorf("fcntl lock while a flock is held: %s, want ok (they are independent)", got)
	}
	out, err := exec.Command("flock", "-n", filepath.Join(dirs[1], "close"), "true").CombinedOutput()
	if err == nil {
		t.Errorf("flock -n on another mount succeeded while we hold LOCK_EX: %s", out)
	}
	f4.Close()
	within(t, 30*time.Second, "flock after close", func() error {
		for {
			if err := exec.Command("flock", "-n", filepath.Join(dirs[1], "close"), "true").Run(); err == nil {
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// testLockInterrupt: a signal ends a blocked wait with EINTR (flock -w
// times out through SIGALRM) and removes the waiter from the master.
func testLockInterrupt(t *testing.T, c *cluster.Cluster, dirs []string) {
	path := filepath.Join(dirs[0], "intr")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd := exec.Command("flock", "-w", "1", filepath.Join(dirs[1], "intr"), "true")
	var out []byte
	within(t, 30*time.Second, "flock -w 1", func() error { out, err = cmd.CombinedOutput(); return nil })
	if err == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Errorf("flock -w 1 on a held lock: %v (%s), want exit status 1 (timeout)", err, out)
	}
	if strings.Contains(string(out), "512") || strings.Contains(string(out), "Unknown error") {
		t.Errorf("flock -w leaked a kernel-internal error: %s", out)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("flock -w 1 took %v", d)
	}
	// A waiter killed by a signal is gone too.
	bg := exec.Command("flock", filepath.Join(dirs[2], "intr"), "true")
	if err := bg.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	bg.Process.Signal(syscall.SIGTERM)
	within(t, 30*time.Second, "killed waiter exits", func() error { bg.Wait(); return nil })
	within(t, 30*time.Second, "waiters removed on the master", func() error {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			st, err := c.Status(ctx)
			cancel()
			if err == nil && st.LockWaiters == 0 {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	within(t, 30*time.Second, "lock free after unlock", func() error {
		return exec.Command("flock", "-w", "20", filepath.Join(dirs[1], "intr"), "true").Run()
	})
}

// testSQLiteTwoMounts: two sqlite3 processes on two mounts insert into
// one database at the same time; nothing is lost or corrupted.
func testSQLiteTwoMounts(t *testing.T, dirs []string) {
	db := "shared.db"
	init := exec.Command("sqlite3", filepath.Join(dirs[0], db), "CREATE TABLE t(who TEXT, n INTEGER);")
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("create: %v %s", err, out)
	}
	const rows = 60
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for m := 0; m < 2; m++ {
		var sql strings.Builder
		sql.WriteString(".timeout 60000\n")
		for i := 0; i < rows; i++ {
			fmt.Fprintf(&sql, "INSERT INTO t VALUES('m%d', %d);\n", m, i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("sqlite3", filepath.Join(dirs[m], db))
			cmd.Stdin = strings.NewReader(sql.String())
			if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
				errs[m] = fmt.Errorf("mount %d: %v: %s", m, err, out)
			}
		}()
	}
	within(t, 10*time.Minute, "sqlite writers", func() error { wg.Wait(); return nil })
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for m := 0; m < 2; m++ {
		out, err := exec.Command("sqlite3", filepath.Join(dirs[m], db),
			"PRAGMA integrity_check; SELECT count(*), count(DISTINCT who || n) FROM t;").CombinedOutput()
		if err != nil {
			t.Fatalf("check: %v %s", err, out)
		}
		if got, want := strings.TrimSpace(string(out)), fmt.Sprintf("ok\n%d|%d", 2*rows, 2*rows); got != want {
			t.Errorf("mount %d: integrity and count %q, want %q", m, got, want)
		}
	}
}

// sequencer reads the dfs.lock.sequencer xattr.
func sequencer(path string) (uint64, error) {
	buf := make([]byte, 32)
	n, err := unix.Getxattr(path, "dfs.lock.sequencer", buf)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(buf[:n]), 10, 64)
}

// testLockLeaderKilled: killing the master leader loses neither the held
// lock nor the queued waiter, and sequencers keep growing.
func testLockLeaderKilled(t *testing.T, c *cluster.Cluster, dirs []string) {
	path := filepath.Join(dirs[0], "leader")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	before, err := sequencer(path)
	if err != nil {
		t.Fatalf("sequencer: %v", err)
	}
	// The waiter prints the sequencer it got.
	waiter := exec.Command("flock", filepath.Join(dirs[1], "leader"),
		"getfattr", "--absolute-names", "--only-values", "-n", "dfs.lock.sequencer", filepath.Join(dirs[1], "leader"))
	var out strings.Builder
	waiter.Stdout, waiter.Stderr = &out, &out
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- waiter.Wait() }()
	time.Sleep(time.Second)

	leader := killLeader(t, c)
	t.Cleanup(func() { c.RestartMaster(leader) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	within(t, time.Minute, "a new leader", func() error {
		for {
			if l, err := c.Leader(ctx); err == nil && l != leader {
				return nil
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	// Longer than a TTL: the holder's session is kept and the waiter
	// still waits.
	select {
	case err := <-waited:
		t.Fatalf("waiter finished while the lock is held: %v: %s", err, out.String())
	case <-time.After(lockTTL + time.Second):
	}
	st, err := c.Status(ctx)
	if err != nil || st.Locks == 0 || st.LockWaiters != 1 {
		t.Errorf("after failover: status %v, %d locks and %d waiters, want the lock and 1 waiter", err, st.GetLocks(), st.GetLockWaiters())
	}
	if out, err := exec.Command("flock", "-n", filepath.Join(dirs[2], "leader"), "true").CombinedOutput(); err == nil {
		t.Errorf("a third mount got the lock after the failover: %s", out)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	within(t, time.Minute, "waiter granted after the unlock", func() error { return <-waited })
	after, err := strconv.ParseUint(strings.TrimSpace(out.String()), 10, 64)
	if err != nil || after <= before {
		t.Errorf("waiter's sequencer %q, want a number above the holder's %d", out.String(), before)
	}
	if err := c.RestartMaster(leader); err != nil {
		t.Fatal(err)
	}
}

// testLockMountKilled: a mount killed with SIGKILL while holding a lock
// loses it within TTL + grace, and a waiter on another mount gets it.
func testLockMountKilled(t *testing.T, c *cluster.Cluster, dirs []string) {
	victim := 2
	path := filepath.Join(dirs[victim], "crash")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("flock", path, "sleep", "600")
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	killHolder := func() { syscall.Kill(-holder.Process.Pid, syscall.SIGKILL); holder.Wait() }
	t.Cleanup(killHolder)
	within(t, 30*time.Second, "holder has the lock", func() error {
		for exec.Command("flock", "-n", filepath.Join(dirs[0], "crash"), "true").Run() == nil {
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	})
	waiter := exec.Command("flock", filepath.Join(dirs[0], "crash"), "true")
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- waiter.Wait() }()
	time.Sleep(500 * time.Millisecond)
	killed := time.Now()
	if err := c.KillMount(victim); err != nil {
		t.Fatal(err)
	}
	// TTL + grace, plus the leader's expiry tick and scheduling slack.
	limit := lockTTL + lockGrace + 5*time.Second
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("waiter: %v", err)
		}
		t.Logf("lock granted %v after kill -9 of its holder's mount (TTL %v, grace %v)", time.Since(killed).Round(10*time.Millisecond), lockTTL, lockGrace)
	case <-time.After(limit):
		t.Fatalf("waiter not granted within %v of the holder's mount being killed", limit)
	}
	killHolder()
	if err := c.RestartMount(victim); err != nil {
		t.Fatal(err)
	}
}

// mountPid finds the dfsmount process serving dir (a path unique to this
// test run).
func mountPid(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 1 && filepath.Base(args[0]) == "dfsmount" && args[len(args)-1] == dir {
			return pid
		}
	}
	t.Fatalf("no dfsmount process for %s", dir)
	return 0
}

// testLockSessionLost: a mount that stops answering (paused here, as a
// long GC pause or a partition would) loses its lock to a waiter on
// another mount after the TTL; when it runs again, I/O through the
// descriptor that held the lock fails with EIO instead of writing as if
// it still held it, until the file is reopened.
func testLockSessionLost(t *testing.T, c *cluster.Cluster, dirs []string) {
	path := filepath.Join(dirs[0], "paused")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("held\n"), 0); err != nil {
		t.Fatal(err)
	}
	waiter := exec.Command("flock", filepath.Join(dirs[1], "paused"), "sh", "-c", "echo taken > "+filepath.Join(dirs[1], "paused"))
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- waiter.Wait() }()
	time.Sleep(500 * time.Millisecond)

	pid := mountPid(t, c.MountDir(0))
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	resumed := false
	resume := func() {
		if !resumed {
			syscall.Kill(pid, syscall.SIGCONT)
			resumed = true
		}
	}
	t.Cleanup(resume)
	limit := lockTTL + lockGrace + 5*time.Second
	select {
	case err := <-waited:
		if err != nil {
			resume()
			t.Fatalf("waiter: %v", err)
		}
		t.Logf("paused mount's lock granted elsewhere after %v", time.Since(stopped).Round(10*time.Millisecond))
	case <-time.After(limit):
		resume()
		t.Fatalf("waiter not granted within %v of the holder's mount pausing", limit)
	}
	resume()
	// Right away (the mount's own clock says the session may be gone)
	// and after it has learnt that it was (a new session).
	for i, when := range []string{"just resumed", "after a new session"} {
		if i > 0 {
			time.Sleep(lockTTL) // the mount learns its session is gone
		}
		if _, err := f.WriteAt([]byte("stale\n"), 0); !errors.Is(err, unix.EIO) {
			t.Errorf("%s: write through the descriptor that held the lock: %v, want EIO", when, err)
		}
		if _, err := f.ReadAt(make([]byte, 4), 0); !errors.Is(err, unix.EIO) {
			t.Errorf("%s: read through the descriptor that held the lock: %v, want EIO", when, err)
		}
	}
	f.Close()
	got, err := os.ReadFile(filepath.Join(dirs[1], "paused"))
	if err != nil || string(got) != "taken\n" {
		t.Errorf("file after the new holder wrote: %q %v, want \"taken\\n\"", got, err)
	}
	// A new descriptor works.
	within(t, 30*time.Second, "reopen after the session loss", func() error {
		return os.WriteFile(path, []byte("again\n"), 0o644)
	})
}

// testFence: a file with the fence xattr takes writes only from a mount
// holding an exclusive lock on it.
func testFence(t *testing.T, dirs []string) {
	path := filepath.Join(dirs[0], "fenced")
	if err := os.WriteFile(path, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(path, "user.dfs.lock.fence", []byte("1"), 0); err != nil {
		t.Fatalf("setting the fence: %v", err)
	}
	other := filepath.Join(dirs[1], "fenced")
	if err := os.WriteFile(other, []byte("b"), 0o644); !errors.Is(err, unix.ENOLCK) {
		t.Errorf("write to a fenced file without a lock: %v, want ENOLCK", err)
	}
	f, err := os.Open(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("c"), 0o644); err != nil {
		t.Errorf("write to a fenced file under flock: %v", err)
	}
	f.Close()
	within(t, 30*time.Second, "read back", func() error {
		for {
			if b, err := os.ReadFile(path); err != nil || string(b) == "c" {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// TestLockPartition: a mount holding a lock is cut off from the masters
// by a network partition. The lock goes to a waiter on the other side
// after the TTL, and by then the cut-off mount already refuses writes on
// the descriptor that held it (EIO): there is no moment when both sides
// write as holders.
func TestLockPartition(t *testing.T) {
	requireFUSE(t)
	// One master and one chunkserver are enough: the cut is between a
	// mount and everything else.
	lab := newNetLab(t, []string{"m1", "c1", "mount1", "mount2"})
	c := startCluster(t, cluster.Config{Masters: 1, ChunkServers: 1, Mounts: 2,
		Host: lab.host, Wrap: lab.wrap,
		ExtraMasterArgs: []string{"-session-grace", lockGrace.String()},
		ExtraMountArgs:  append(mountOpts(), "-session-ttl", lockTTL.String())})
	t.Cleanup(func() {
		for _, n := range lab.names {
			exec.Command("ip", "link", "set", lab.veth(n), "master", labBridge).Run()
		}
	})
	cutOff, other := c.MountDir(0), c.MountDir(1)
	path := filepath.Join(cutOff, "p")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("holder\n"), 0); err != nil {
		t.Fatal(err)
	}
	waiter := exec.Command("flock", filepath.Join(other, "p"), "sh", "-c", "echo taken > "+filepath.Join(other, "p"))
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- waiter.Wait() }()
	time.Sleep(500 * time.Millisecond)

	lab.partition("mount1")
	cut := time.Now()
	limit := lockTTL + lockGrace + 10*time.Second
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("waiter: %v", err)
		}
		t.Logf("the cut-off mount's lock went to the other side %v after the cut", time.Since(cut).Round(10*time.Millisecond))
	case <-time.After(limit):
		t.Fatalf("waiter not granted within %v of the cut", limit)
	}
	// The other side holds the lock now; the cut-off side must not act
	// as a holder. (The kernel asks the mount for security.capability
	// before a write, which waits for the unreachable masters: this
	// takes a call timeout. Reads and what happens after the heal are
	// covered by TestLocks/SessionLost.)
	wrote := time.Now()
	if _, err := f.WriteAt([]byte("stale!\n"), 0); !errors.Is(err, unix.EIO) {
		t.Errorf("write on the cut-off side after the lock moved: %v, want EIO", err)
	}
	t.Logf("the cut-off side's write answered in %v", time.Since(wrote).Round(10*time.Millisecond))
	lab.heal()
	f.Close()
	t.Logf("healed; reading back %v after the cut", time.Since(cut).Round(10*time.Millisecond))
	within(t, time.Minute, "reading the file after the heal", func() error {
		for {
			b, err := os.ReadFile(path)
			if err == nil && string(b) == "taken\n" {
				return nil
			}
			if err == nil {
				return fmt.Errorf("file reads %q, want the new holder's \"taken\\n\"", b)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}
