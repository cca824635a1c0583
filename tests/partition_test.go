package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"dfs/cluster"
)

// netLab puts each process of a cluster in its own network namespace,
// joined to the test's bridge by a veth pair, so that a test can cut the
// network between groups of processes: a partition moves some veths to a
// second bridge; healing moves them back. Addresses are in 10.231.0.0/24,
// private to these namespaces and the root namespace's bridge.
type netLab struct {
	t     *testing.T
	names []string
}

const (
	labBridge  = "d5br1" // the connected network (the test process is on it too)
	labIsland  = "d5br2" // where a partition puts the minority
	labNetmask = "/24"
)

func (l *netLab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func labNS(name string) string { return "d5-" + name }

func (l *netLab) veth(name string) string {
	return fmt.Sprintf("d5h%d", slices.Index(l.names, name))
}

// newNetLab creates a namespace for each name and removes them all when
// the test ends (register it before the cluster, so it outlives it).
func newNetLab(t *testing.T, names []string) *netLab {
	t.Helper()
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: no %s", tool)
		}
	}
	l := &netLab{t: t, names: names}
	cleanup := func() {
		for _, n := range names {
			exec.Command("ip", "link", "del", l.veth(n)).Run()
			exec.Command("ip", "netns", "del", labNS(n)).Run()
		}
		exec.Command("ip", "link", "del", labBridge).Run()
		exec.Command("ip", "link", "del", labIsland).Run()
	}
	cleanup() // what an interrupted run left
	if out, err := exec.Command("ip", "link", "add", labBridge, "type", "bridge").CombinedOutput(); err != nil {
		t.Skipf("skipping: cannot create a bridge: %v: %s", err, out)
	}
	t.Cleanup(cleanup)
	l.ip("addr", "add", "10.231.0.1"+labNetmask, "dev", labBridge)
	l.ip("link", "set", labBridge, "up")
	l.ip("link", "add", labIsland, "type", "bridge")
	l.ip("link", "set", labIsland, "up")
	for _, n := range names {
		ns := labNS(n)
		l.ip("netns", "add", ns)
		l.ip("link", "add", l.veth(n), "type", "veth", "peer", "name", "eth0", "netns", ns)
		l.ip("-n", ns, "addr", "add", l.host(n)+labNetmask, "dev", "eth0")
		l.ip("-n", ns, "link", "set", "eth0", "up")
		l.ip("-n", ns, "link", "set", "lo", "up")
		l.ip("link", "set", l.veth(n), "master", labBridge)
		l.ip("link", "set", l.veth(n), "up")
	}
	return l
}

func (l *netLab) host(name string) string {
	return fmt.Sprintf("10.231.0.%d", 10+slices.Index(l.names, name))
}

func (l *netLab) wrap(name string) []string {
	return []string{"nsenter", "--net=/var/run/netns/" + labNS(name), "--"}
}

// partition cuts the named processes off from the others (and from the
// test process); they still reach each other.
func (l *netLab) partition(names ...string) {
	l.t.Helper()
	for _, n := range names {
		l.ip("link", "set", l.veth(n), "master", labIsland)
	}
}

// heal reconnects everything.
func (l *netLab) heal() {
	l.t.Helper()
	for _, n := range l.names {
		l.ip("link", "set", l.veth(n), "master", labBridge)
	}
}

// TestFaultPartition: the leader is cut off in a minority with one
// chunkserver and one mount. The majority elects a new leader and goes
// on; the minority side accepts no write; once the network heals,
// everything converges.
func TestFaultPartition(t *testing.T) {
	requireFUSE(t)
	lab := newNetLab(t, []string{"m1", "m2", "m3", "c1", "c2", "c3", "mount1", "mount2"})
	c := startCluster(t, cluster.Config{Masters: 3, ChunkServers: 3, Mounts: 2,
		Host: lab.host, Wrap: lab.wrap,
		ExtraMasterArgs: []string{"-server-dead-after", "3s"}})
	// A failing test must not leave the minority cut off: stopping its
	// mount needs the masters.
	t.Cleanup(func() {
		for _, n := range lab.names {
			exec.Command("ip", "link", "set", lab.veth(n), "master", labBridge).Run()
		}
	})
	major, minor := c.MountDir(1), c.MountDir(0)
	writeFile(t, filepath.Join(major, "before"), 1, 1<<20)
	ctx := t.Context()
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lab.partition(fmt.Sprintf("m%d", leader+1), "c1", "mount1")
	cut := time.Now()

	// The minority's mount tries a write; it must not be acknowledged
	// while the partition lasts.
	minorDone := make(chan error, 1)
	go func() { minorDone <- os.Mkdir(filepath.Join(minor, "from-minority"), 0o755) }()

	within(t, time.Minute, "mkdir on the majority side", func() error {
		return os.Mkdir(filepath.Join(major, "majority"), 0o755)
	})
	t.Logf("majority side served a mkdir %v after the cut", time.Since(cut).Round(time.Millisecond))
	writeFile(t, filepath.Join(major, "majority", "f"), 2, 3<<20)
	time.Sleep(2 * time.Second)
	select {
	case err := <-minorDone:
		if err == nil {
			t.Fatal("the minority side acknowledged a mkdir during the partition")
		}
		t.Logf("minority mkdir during the partition: %v", err)
		minorDone <- err
	default:
	}
	if _, err := os.Lstat(filepath.Join(major, "from-minority")); !os.IsNotExist(err) {
		t.Fatalf("the minority's mkdir is visible on the majority side during the partition (%v)", err)
	}

	lab.heal()
	within(t, time.Minute, "mkdir on the healed minority side", func() error {
		return os.Mkdir(filepath.Join(minor, "after-heal"), 0o755)
	})
	var pending error
	within(t, time.Minute, "the minority's pending mkdir", func() error {
		pending = <-minorDone
		return nil
	})
	t.Logf("the minority's mkdir, retried after the heal: %v", pending)
	checkFile(t, filepath.Join(minor, "majority", "f"), 2, 3<<20)
	checkFile(t, filepath.Join(minor, "before"), 1, 1<<20)
	// Both mounts converge on one tree.
	time.Sleep(2 * attrTimeout)
	list := func(dir string) []string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	if a, b := list(major), list(minor); !slices.Equal(a, b) {
		t.Fatalf("the mounts disagree after the heal: %v vs %v", a, b)
	}
	if exists := slices.Contains(list(major), "from-minority"); exists != (pending == nil) {
		t.Fatalf("the minority's mkdir answered %v but exists=%v", pending, exists)
	}
}
