// Package cluster boots a whole dfs system on loopback as real processes:
// N masters forming one Raft group, M chunkservers and K FUSE mounts, each
// started from the dfsmaster, dfschunk and dfsmount binaries with its own
// data directory, free 127.0.0.1 ports and a log file. Integration tests,
// benchmarks and `dfsctl dev` (make run) use it to start, crash, restart
// and stop clusters; it never leaves a mount behind.
//
// A cluster's base directory holds everything: cluster.json (the ports,
// reused when a cluster is started again on the same directory, since Raft
// membership names them), m1/.. and c1/.. (data), logs/*.log, tls/ (the
// CA and certificates of a cluster run with Config.TLS), and by default
// the mount points mnt1/...
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"dfs/api"
	"dfs/mtls"
)

// Config declares a cluster.
type Config struct {
	Masters      int // Raft group size: 1, 3 or 5
	ChunkServers int
	Mounts       int

	// Dir is the base directory for data, logs and default mount points.
	// Starting a cluster again on the same Dir resumes its data.
	Dir string
	// Bin is the directory holding dfsmaster, dfschunk and dfsmount (see
	// Build and BuildOnce).
	Bin string
	// MountDirs, if set, are the mount points (one per mount) instead of
	// Dir/mnt1, Dir/mnt2, ...
	MountDirs []string

	// Zones, if set, label chunkserver i with Zones[i%len(Zones)].
	Zones []string
	// ChunkCapacity, if not zero, is passed to every chunkserver as
	// -capacity.
	ChunkCapacity uint64

	// Extra arguments, placed before the contract's own flags.
	ExtraMasterArgs []string
	ExtraChunkArgs  []string
	ExtraMountArgs  []string // e.g. "-o", "attr_timeout=0.5"

	// ReadyTimeout bounds each wait for the cluster to become ready;
	// default 60s.
	ReadyTimeout time.Duration

	// Host, if set, gives the IP address process name (m1, c2, mount1)
	// listens on and is reached at, instead of 127.0.0.1; Wrap, if set,
	// gives a command prefix to run it under (e.g. nsenter into a network
	// namespace). Partition tests put each process in its own namespace.
	Host func(name string) string
	Wrap func(name string) []string

	// TLS runs the cluster with mutual TLS: a CA and a certificate per
	// process are made under Dir/tls (kept, like the data, when the
	// cluster is started again on the same Dir) and passed as -tls-ca,
	// -tls-cert and -tls-key; the harness's own calls use
	// Dir/tls/client.crt.
	TLS bool
}

// Cluster is a running (or stopped) set of dfs processes. Its methods are
// safe for concurrent use.
type Cluster struct {
	cfg Config

	mu      sync.Mutex
	masters []*member
	chunks  []*member
	mounts  []*member
	ports   []*portLock
	stopped bool

	tls *mtls.Identity // the harness's client identity; nil: plaintext
}

// A member is one process of the cluster and whether it should be running.
type member struct {
	*proc
	addr     string // gRPC address (masters, chunkservers)
	raftAddr string // masters
	id       string // masters
	dataDir  string
	mountDir string // mounts
	wanted   bool   // started and not deliberately stopped
}

// layoutFile is cluster.json: the ports a cluster's processes use.
type layoutFile struct {
	Masters      []masterPorts `json:"masters"`
	ChunkServers []chunkPorts  `json:"chunkservers"`
	// TLS is the certificate directory of a TLS cluster, "" otherwise.
	TLS string `json:"tls,omitempty"`
}

type masterPorts struct {
	ID     string `json:"id"`
	Listen string `json:"listen"`
	Raft   string `json:"raft"`
}

type chunkPorts struct {
	Listen string `json:"listen"`
}

// Start lays out the cluster under cfg.Dir, starts masters and
// chunkservers, waits for a leader and for every chunkserver to be
// registered alive, then starts the mounts and waits until they answer.
// On failure it stops whatever it started; the error says which process
// failed and ends with its log.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Masters < 1 {
		return nil, errors.New("cluster: need at least one master")
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if len(cfg.MountDirs) != 0 && len(cfg.MountDirs) != cfg.Mounts {
		return nil, fmt.Errorf("cluster: %d mount dirs for %d mounts", len(cfg.MountDirs), cfg.Mounts)
	}
	var err error
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, err
	}
	if cfg.Bin, err = filepath.Abs(cfg.Bin); err != nil {
		return nil, err
	}
	for _, b := range []struct {
		name string
		need bool
	}{{MasterBinary, true}, {ChunkBinary, cfg.ChunkServers > 0}, {MountBinary, cfg.Mounts > 0}} {
		if _, err := os.Stat(filepath.Join(cfg.Bin, b.name)); b.need && err != nil {
			return nil, fmt.Errorf("cluster: binary %s missing in %s (build with `make build` or cluster.Build)", b.name, cfg.Bin)
		}
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg}
	if err := c.layout(); err != nil {
		c.releasePorts()
		return nil, err
	}
	if err := c.launch(ctx); err != nil {
		c.StopAll()
		return nil, err
	}
	return c, nil
}

// layout assigns ports (reusing cluster.json's when present) and builds
// every process's command line.
func (c *Cluster) layout() error {
	cfg := c.cfg
	path := filepath.Join(cfg.Dir, "cluster.json")
	var lf layoutFile
	if got, err := readLayout(cfg.Dir); err == nil {
		lf = *got
		if len(lf.Masters) != cfg.Masters {
			return fmt.Errorf("cluster: %s has %d masters, not %d: Raft membership cannot change this way; use a new directory",
				cfg.Dir, len(lf.Masters), cfg.Masters)
		}
	} else if !os.IsNotExist(err) {
		return fmt.Errorf("cluster: %w", err)
	}
	take := func(addr string) (string, error) {
		var p *portLock
		var err error
		if addr != "" {
			_, ps, _ := net.SplitHostPort(addr)
			n, _ := strconv.Atoi(ps)
			if p, err = lockPort(n); err != nil {
				return "", fmt.Errorf("cluster: %s asks for %s: %w", path, addr, err)
			}
		} else if p, err = freePort(); err != nil {
			return "", err
		}
		c.ports = append(c.ports, p)
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)), nil
	}
	for i := range cfg.Masters {
		if i >= len(lf.Masters) {
			lf.Masters = append(lf.Masters, masterPorts{ID: fmt.Sprintf("m%d", i+1)})
		}
		m := &lf.Masters[i]
		var err error
		if m.Listen, err = take(m.Listen); err != nil {
			return err
		}
		if m.Raft, err = take(m.Raft); err != nil {
			return err
		}
	}
	if len(lf.ChunkServers) > cfg.ChunkServers {
		lf.ChunkServers = lf.ChunkServers[:cfg.ChunkServers]
	}
	for i := range cfg.ChunkServers {
		if i >= len(lf.ChunkServers) {
			lf.ChunkServers = append(lf.ChunkServers, chunkPorts{})
		}
		var err error
		if lf.ChunkServers[i].Listen, err = take(lf.ChunkServers[i].Listen); err != nil {
			return err
		}
	}
	var tlsArgs func(name string) []string
	lf.TLS = ""
	if cfg.TLS {
		lf.TLS = filepath.Join(cfg.Dir, "tls")
		var err error
		if tlsArgs, err = c.makeCerts(lf); err != nil {
			return err
		}
	} else {
		tlsArgs = func(string) []string { return nil }
	}
	b, _ := json.MarshalIndent(lf, "", "  ")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}

	// at moves a 127.0.0.1 address to process name's host.
	at := func(name, addr string) string {
		if cfg.Host == nil {
			return addr
		}
		_, port, _ := net.SplitHostPort(addr)
		return net.JoinHostPort(cfg.Host(name), port)
	}
	wrap := func(name string) []string {
		if cfg.Wrap == nil {
			return nil
		}
		return cfg.Wrap(name)
	}
	var raftPeers, masterAddrs []string
	for _, m := range lf.Masters {
		raftPeers = append(raftPeers, m.ID+"="+at(m.ID, m.Raft))
		masterAddrs = append(masterAddrs, at(m.ID, m.Listen))
	}
	logPath := func(name string) string { return filepath.Join(cfg.Dir, "logs", name+".log") }
	for _, m := range lf.Masters {
		data := filepath.Join(cfg.Dir, m.ID)
		args := append(slices.Clone(cfg.ExtraMasterArgs),
			"-id", m.ID, "-data", data, "-listen", at(m.ID, m.Listen), "-raft", at(m.ID, m.Raft),
			"-cluster", strings.Join(raftPeers, ","))
		args = append(args, tlsArgs(m.ID)...)
		c.masters = append(c.masters, &member{
			proc:    &proc{name: m.ID, bin: filepath.Join(cfg.Bin, MasterBinary), args: args, prefix: wrap(m.ID), log: logPath(m.ID), deathSig: syscall.SIGKILL},
			addr:    at(m.ID, m.Listen),
			id:      m.ID,
			dataDir: data, raftAddr: m.Raft,
		})
	}
	for i, cs := range lf.ChunkServers {
		name := fmt.Sprintf("c%d", i+1)
		data := filepath.Join(cfg.Dir, name)
		args := append(slices.Clone(cfg.ExtraChunkArgs),
			"-data", data, "-listen", at(name, cs.Listen), "-masters", strings.Join(masterAddrs, ","))
		if len(cfg.Zones) > 0 {
			args = append(args, "-zone", cfg.Zones[i%len(cfg.Zones)])
		}
		if cfg.ChunkCapacity > 0 {
			args = append(args, "-capacity", strconv.FormatUint(cfg.ChunkCapacity, 10))
		}
		args = append(args, tlsArgs(name)...)
		c.chunks = append(c.chunks, &member{
			proc:    &proc{name: name, bin: filepath.Join(cfg.Bin, ChunkBinary), args: args, prefix: wrap(name), log: logPath(name), deathSig: syscall.SIGKILL},
			addr:    at(name, cs.Listen),
			dataDir: data,
		})
	}
	for i := range cfg.Mounts {
		name := fmt.Sprintf("mount%d", i+1)
		dir := filepath.Join(cfg.Dir, fmt.Sprintf("mnt%d", i+1))
		if len(cfg.MountDirs) > 0 {
			var err error
			if dir, err = filepath.Abs(cfg.MountDirs[i]); err != nil {
				return err
			}
		}
		args := slices.Concat(cfg.ExtraMountArgs, tlsArgs(name), []string{"-masters", strings.Join(masterAddrs, ","), dir})
		c.mounts = append(c.mounts, &member{
			proc:     &proc{name: name, bin: filepath.Join(cfg.Bin, MountBinary), args: args, prefix: wrap(name), log: logPath(name), deathSig: syscall.SIGTERM},
			mountDir: dir,
		})
	}
	return nil
}

// launch starts every process that is not running, servers first, and
// waits for the cluster to be ready.
func (c *Cluster) launch(ctx context.Context) error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return errors.New("cluster: already stopped")
	}
	for _, m := range append(slices.Clone(c.masters), c.chunks...) {
		if err := c.startLocked(m); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	c.mu.Unlock()
	if err := c.waitServers(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	for _, m := range c.mounts {
		if err := c.startLocked(m); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	c.mu.Unlock()
	return c.WaitReady(ctx)
}

func (c *Cluster) startLocked(m *member) error {
	if m.running() {
		m.wanted = true
		return nil
	}
	for _, d := range []string{m.dataDir, m.mountDir} {
		if d == "" {
			continue
		}
		if err := forceUnmount(d); err != nil { // a stale mount from a crashed run
			return err
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := m.start(); err != nil {
		return err
	}
	m.wanted = true
	return nil
}

// WaitReady waits until a master is leader by its own Status, every
// running chunkserver is registered alive with it, and every running mount
// answers stat and statfs. It fails early if a process that should be
// running has exited.
func (c *Cluster) WaitReady(ctx context.Context) error {
	if err := c.waitServers(ctx); err != nil {
		return err
	}
	return c.wait(ctx, "mounts", func(ctx context.Context) error {
		for _, m := range c.wantedOf(c.mounts) {
			if err := mountAnswers(m.mountDir, 5*time.Second); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
		}
		return nil
	})
}

func (c *Cluster) waitServers(ctx context.Context) error {
	return c.wait(ctx, "leader and chunkservers", func(ctx context.Context) error {
		var addrs []string
		for _, m := range c.wantedOf(c.masters) {
			addrs = append(addrs, m.addr)
		}
		st, err := LeaderStatus(ctx, addrs, c.DialOption())
		if err != nil {
			return err
		}
		var missing []string
		for _, m := range c.wantedOf(c.chunks) {
			i := slices.IndexFunc(st.Servers, func(s *api.ChunkServerInfo) bool { return s.Addr == m.addr })
			if i < 0 || !st.Servers[i].Alive {
				missing = append(missing, m.name+"="+m.addr)
			}
		}
		if len(missing) > 0 {
			var seen []string
			for _, s := range st.Servers {
				seen = append(seen, fmt.Sprintf("%s(alive=%v)", s.Addr, s.Alive))
			}
			return fmt.Errorf("chunkservers %v not registered alive with leader %s (it lists %v)", missing, st.Leader, seen)
		}
		return nil
	})
}

// wait polls check until it succeeds, the ready timeout passes, or a
// wanted process exits.
func (c *Cluster) wait(ctx context.Context, what string, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer cancel()
	var last error
	for {
		if dead := c.deadMembers(); len(dead) > 0 {
			var b strings.Builder
			for _, m := range dead {
				b.WriteString("\n" + m.describe())
			}
			return fmt.Errorf("cluster: waiting for %s: process exited:%s", what, b.String())
		}
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s not ready after %v: %v\nlogs in %s\n%s",
				what, c.cfg.ReadyTimeout, last, filepath.Join(c.cfg.Dir, "logs"), c.LogTails(8))
		case <-time.After(150 * time.Millisecond):
		}
	}
}

func (c *Cluster) wantedOf(ms []*member) []*member {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*member
	for _, m := range ms {
		if m.wanted {
			out = append(out, m)
		}
	}
	return out
}

func (c *Cluster) all() []*member {
	return slices.Concat(c.masters, c.chunks, c.mounts)
}

func (c *Cluster) deadMembers() []*member {
	c.mu.Lock()
	defer c.mu.Unlock()
	var dead []*member
	for _, m := range c.all() {
		if m.wanted && !m.running() {
			dead = append(dead, m)
		}
	}
	return dead
}

// Dead returns the names of processes (m1, c2, mount1, ...) that should be
// running but have exited.
func (c *Cluster) Dead() []string {
	var names []string
	for _, m := range c.deadMembers() {
		names = append(names, m.name)
	}
	return names
}

// LogTails returns the last n lines of every process's log, headed by its
// name and state, for test failure reports.
func (c *Cluster) LogTails(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, m := range c.all() {
		state := "running"
		if ok, err := m.exited(); ok {
			state = fmt.Sprintf("exited (%v)", err)
		} else if !m.running() {
			state = "stopped"
		}
		fmt.Fprintf(&b, "--- %s (%s), %s:\n%s\n", m.name, state, m.log, indent(m.tail(n)))
	}
	return b.String()
}

// Dir returns the cluster's base directory.
func (c *Cluster) Dir() string { return c.cfg.Dir }

// LogDir returns the directory of the per-process log files.
func (c *Cluster) LogDir() string { return filepath.Join(c.cfg.Dir, "logs") }

// MasterAddrs returns the masters' gRPC client addresses, m1 first.
func (c *Cluster) MasterAddrs() []string {
	var a []string
	for _, m := range c.masters {
		a = append(a, m.addr)
	}
	return a
}

// ChunkAddrs returns the chunkservers' gRPC addresses, c1 first.
func (c *Cluster) ChunkAddrs() []string {
	var a []string
	for _, m := range c.chunks {
		a = append(a, m.addr)
	}
	return a
}

// MountDir returns mount i's mount point (i from 0).
func (c *Cluster) MountDir(i int) string { return c.mounts[i].mountDir }

// NumMounts returns the number of mounts.
func (c *Cluster) NumMounts() int { return len(c.mounts) }

// Status returns the leader's Status answer.
func (c *Cluster) Status(ctx context.Context) (*api.StatusResponse, error) {
	return LeaderStatus(ctx, c.MasterAddrs(), c.DialOption())
}

// Leader returns the index of the master that is leader now.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return -1, err
	}
	i := slices.Index(c.MasterAddrs(), st.Leader)
	if i < 0 {
		return -1, fmt.Errorf("cluster: leader %q is not one of %v", st.Leader, c.MasterAddrs())
	}
	return i, nil
}

// KillMaster kills master i with SIGKILL, as a crash would.
func (c *Cluster) KillMaster(i int) { c.killMember(c.masters[i]) }

// StopMaster stops master i with SIGTERM (SIGKILL after 10s).
func (c *Cluster) StopMaster(i int) error { return c.stopMember(c.masters[i]) }

// RestartMaster starts master i again on its data directory and ports. It
// does not wait; use WaitReady.
func (c *Cluster) RestartMaster(i int) error { return c.restartMember(c.masters[i]) }

// KillChunk kills chunkserver i with SIGKILL.
func (c *Cluster) KillChunk(i int) { c.killMember(c.chunks[i]) }

// StopChunk stops chunkserver i with SIGTERM (SIGKILL after 10s).
func (c *Cluster) StopChunk(i int) error { return c.stopMember(c.chunks[i]) }

// RestartChunk starts chunkserver i again on its data directory and port.
// It does not wait; use WaitReady.
func (c *Cluster) RestartChunk(i int) error { return c.restartMember(c.chunks[i]) }

// KillMount kills mount i with SIGKILL, then detaches the dead mount so
// that its mount point can be used again.
func (c *Cluster) KillMount(i int) error {
	m := c.mounts[i]
	c.killMember(m)
	return forceUnmount(m.mountDir)
}

// RestartMount mounts mount i again. It does not wait; use WaitReady.
func (c *Cluster) RestartMount(i int) error { return c.restartMember(c.mounts[i]) }

func (c *Cluster) killMember(m *member) {
	c.mu.Lock()
	m.wanted = false
	c.mu.Unlock()
	m.kill()
}

func (c *Cluster) stopMember(m *member) error {
	c.mu.Lock()
	m.wanted = false
	c.mu.Unlock()
	return c.stopProc(m)
}

func (c *Cluster) restartMember(m *member) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("cluster: already stopped")
	}
	return c.startLocked(m)
}

// stopProc stops one process the way an operator would: SIGTERM, and for a
// mount, a forced detach if the process did not unmount. Having to
// SIGKILL or force is reported as an error: the binaries promise a clean
// exit on SIGTERM.
func (c *Cluster) stopProc(m *member) error {
	if !m.running() {
		if m.mountDir != "" {
			return forceUnmount(m.mountDir)
		}
		return nil
	}
	var errs []error
	if m.stop(syscall.SIGTERM, 10*time.Second) {
		errs = append(errs, fmt.Errorf("%s did not exit within 10s of SIGTERM; killed", m.name))
	}
	if m.mountDir != "" && isMounted(m.mountDir) {
		errs = append(errs, fmt.Errorf("%s exited but left %s mounted", m.name, m.mountDir))
		if err := forceUnmount(m.mountDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stopProcs stops mounts first (they flush to the servers), then
// chunkservers, then masters, each group in parallel. With crash set,
// servers are killed with SIGKILL instead; mounts are always unmounted.
func (c *Cluster) stopProcs(crash bool) error {
	var mu sync.Mutex
	var errs []error
	for _, group := range [][]*member{c.mounts, c.chunks, c.masters} {
		var wg sync.WaitGroup
		for _, m := range group {
			c.mu.Lock()
			m.wanted = false
			c.mu.Unlock()
			wg.Go(func() {
				if crash && m.mountDir == "" {
					m.kill()
					return
				}
				if err := c.stopProc(m); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	return errors.Join(errs...)
}

// Restart stops every process (SIGTERM) and starts them again on the same
// data directories and ports, then waits until the cluster is ready.
func (c *Cluster) Restart(ctx context.Context) error {
	stopErr := c.stopProcs(false)
	if err := c.launch(ctx); err != nil {
		return errors.Join(stopErr, err)
	}
	return stopErr
}

// CrashRestart unmounts the mounts, kills every master and chunkserver
// with SIGKILL, and starts everything again, then waits until the cluster
// is ready: what a power cut does to the servers, minus the page cache.
func (c *Cluster) CrashRestart(ctx context.Context) error {
	stopErr := c.stopProcs(true)
	if err := c.launch(ctx); err != nil {
		return errors.Join(stopErr, err)
	}
	return stopErr
}

// StopAll unmounts every mount and stops every process, then gives up the
// cluster's ports. It is safe to call more than once. The error reports
// processes that did not stop cleanly on SIGTERM and mounts that had to be
// detached by force; everything is stopped either way.
func (c *Cluster) StopAll() error {
	err := c.stopProcs(false)
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.releasePorts()
	return err
}

func (c *Cluster) releasePorts() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.ports {
		p.release()
	}
	c.ports = nil
}

// MasterAddrsIn returns the master client addresses recorded in the
// cluster.json of a cluster base directory, so that tools can find a
// cluster started by another process (dfsctl finds `dfsctl dev`'s).
func MasterAddrsIn(dir string) ([]string, error) {
	lf, err := readLayout(dir)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, m := range lf.Masters {
		addrs = append(addrs, m.Listen)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s lists no masters", filepath.Join(dir, "cluster.json"))
	}
	return addrs, nil
}

// readLayout reads dir/cluster.json.
func readLayout(dir string) (*layoutFile, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cluster.json"))
	if err != nil {
		return nil, err
	}
	var lf layoutFile
	if err := json.Unmarshal(b, &lf); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "cluster.json"), err)
	}
	return &lf, nil
}
