package cluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// A portLock reserves one loopback TCP port for the life of a cluster.
// Ports must survive restarts (Raft membership names them), so they are
// chosen once and held through a lock file that every cluster in every
// process on this machine respects; the port is also probed by binding it,
// so that unrelated programs holding it are noticed.
type portLock struct {
	port int
	f    *os.File
}

func (p *portLock) release() {
	if p.f != nil {
		p.f.Close() // drops the flock
		p.f = nil
	}
}

func portLockDir() string { return filepath.Join(os.TempDir(), "dfs-ports") }

// lockPort takes the lock for port and checks that it can be bound.
func lockPort(port int) (*portLock, error) {
	dir := portLockDir()
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("port %d is reserved by another dfs cluster", port)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("port %d is in use: %w", port, err)
	}
	l.Close()
	return &portLock{port: port, f: f}, nil
}

// freePort picks a free port below the kernel's ephemeral range, so that
// outgoing connections (which take ephemeral ports) never steal it between
// a restart's stop and start.
func freePort() (*portLock, error) {
	lo, hi := portRange()
	for range 200 {
		p, err := lockPort(lo + rand.IntN(hi-lo))
		if err == nil {
			return p, nil
		}
	}
	return nil, errors.New("no free loopback port found")
}

func portRange() (lo, hi int) {
	ephemeral := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				ephemeral = n
			}
		}
	}
	hi = ephemeral
	lo = max(hi-12000, 10000)
	if lo >= hi {
		lo, hi = 10000, 30000
	}
	return lo, hi
}
