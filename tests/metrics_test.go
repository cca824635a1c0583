package tests

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"dfs/cluster"
	"dfs/metrics/metricstest"
)

// adminLine is how a daemon logs its admin listener's address (slog).
var adminLine = regexp.MustCompile(`msg="admin listener" addr=(\S+)`)

// adminAddrFromLog waits for a process's log to name its admin listener.
func adminAddrFromLog(ctx context.Context, t *testing.T, log string) string {
	t.Helper()
	for {
		b, _ := os.ReadFile(log)
		if m := adminLine.FindAllSubmatch(b, -1); len(m) > 0 {
			return string(m[len(m)-1][1]) // the latest start's
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s names no admin listener:\n%s", log, b)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// scrape reads one process's /metrics.
func scrape(ctx context.Context, t *testing.T, addr string) metricstest.Families {
	t.Helper()
	f, err := metricstest.Scrape(ctx, addr)
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	return f
}

// sumOver adds a metric over several processes' scrapes.
func sumOver(fams []metricstest.Families, name string, labels ...string) float64 {
	var total float64
	for _, f := range fams {
		v, _ := f.Sum(name, labels...)
		total += v
	}
	return total
}

// TestMetrics boots a cluster whose masters, chunkservers and mount all
// serve /metrics, writes and reads a file through the mount, and checks
// that what must move moved: bytes on the chunkservers (times the
// replication), Mutate RPCs on the leader and from the mount, the
// mount's own bytes, exactly one Raft leader, at least one session,
// healthy chunks and live chunkservers.
func TestMetrics(t *testing.T) {
	admin := []string{"-debug-addr", "127.0.0.1:0"}
	c := startCluster(t, cluster.Config{Masters: 3, ChunkServers: 3, Mounts: 1,
		ExtraMasterArgs: append(admin, "-server-dead-after", "3s"), ExtraChunkArgs: admin, ExtraMountArgs: admin})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var masters []string
	for i, addr := range c.MasterAddrs() {
		st, err := cluster.AskMaster(ctx, addr)
		if err != nil {
			t.Fatalf("status of master %d: %v", i, err)
		}
		if st.AdminAddr == "" {
			t.Fatalf("master %d reports no admin address", i)
		}
		masters = append(masters, st.AdminAddr)
	}
	var chunks []string
	for i := range c.ChunkAddrs() {
		chunks = append(chunks, adminAddrFromLog(ctx, t, filepath.Join(c.LogDir(), fmt.Sprintf("c%d.log", i+1))))
	}
	mount := adminAddrFromLog(ctx, t, filepath.Join(c.LogDir(), "mount1.log"))
	scrapeAll := func(addrs []string) []metricstest.Families {
		var out []metricstest.Families
		for _, a := range addrs {
			out = append(out, scrape(ctx, t, a))
		}
		return out
	}
	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}

	chunkBefore := scrapeAll(chunks)
	leaderBefore := scrape(ctx, t, masters[leader])
	mountBefore := scrape(ctx, t, mount)

	const size = 8 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*31 + i>>13)
	}
	path := filepath.Join(c.MountDir(0), "metered")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// O_DIRECT: every read reaches the mount, not the page cache.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || len(got) != size {
		t.Fatalf("read back %d bytes: %v", len(got), err)
	}

	chunkAfter := scrapeAll(chunks)
	leaderAfter := scrape(ctx, t, masters[leader])
	mountAfter := scrape(ctx, t, mount)
	delta := func(before, after []metricstest.Families, name string, labels ...string) float64 {
		return sumOver(after, name, labels...) - sumOver(before, name, labels...)
	}
	one := func(f metricstest.Families) []metricstest.Families { return []metricstest.Families{f} }

	t.Logf("after writing and reading %d bytes: chunkservers wrote %v and served %v (short-circuit %v); leader answered %v Mutate calls; mount sent %v",
		size, delta(chunkBefore, chunkAfter, "dfs_chunk_written_bytes_total"),
		delta(chunkBefore, chunkAfter, "dfs_chunk_read_bytes_total", "reason=rpc"),
		delta(one(mountBefore), one(mountAfter), "dfs_client_short_circuit_read_bytes_total"),
		delta(one(leaderBefore), one(leaderAfter), "dfs_rpc_server_handled_total", "method=Mutate"),
		delta(one(mountBefore), one(mountAfter), "dfs_rpc_client_sent_total", "method=Mutate"))
	// Three replicas of every byte written (replicated:3, the default).
	if d := delta(chunkBefore, chunkAfter, "dfs_chunk_written_bytes_total"); d < 3*size {
		t.Errorf("chunkservers wrote %v bytes, want at least 3 x %d", d, size)
	}
	if d := delta(chunkBefore, chunkAfter, "dfs_chunk_written_bytes_total", "reason=primary"); d < size {
		t.Errorf("primaries wrote %v bytes, want at least %d", d, size)
	}
	if d := delta(chunkBefore, chunkAfter, "dfs_rpc_server_handled_total", "method=Write", "code=OK"); d < 1 {
		t.Errorf("chunkservers answered %v writes", d)
	}
	// The read went to a chunkserver or, on this machine, to its chunk
	// files directly.
	served := delta(chunkBefore, chunkAfter, "dfs_chunk_read_bytes_total", "reason=rpc") +
		delta(one(mountBefore), one(mountAfter), "dfs_client_short_circuit_read_bytes_total")
	if served < size {
		t.Errorf("%v bytes read from chunkservers and their files, want at least %d", served, size)
	}
	if d := delta(one(leaderBefore), one(leaderAfter), "dfs_rpc_server_handled_total", "service=Master", "method=Mutate"); d < 2 {
		t.Errorf("leader answered %v Mutate calls, want at least 2 (create, size commit)", d)
	}
	if d := delta(one(leaderBefore), one(leaderAfter), "dfs_rpc_server_handled_total", "method=Mutate", "op=Create", "code=OK"); d != 1 {
		t.Errorf("leader answered %v creates, want 1", d)
	}
	if d := delta(one(mountBefore), one(mountAfter), "dfs_rpc_client_sent_total", "service=Master", "method=Mutate"); d < 2 {
		t.Errorf("mount sent %v Mutate calls, want at least 2", d)
	}
	if d := delta(one(mountBefore), one(mountAfter), "dfs_mount_written_bytes_total"); d != size {
		t.Errorf("mount counted %v bytes written, want %d", d, size)
	}
	if d := delta(one(mountBefore), one(mountAfter), "dfs_mount_read_bytes_total"); d != size {
		t.Errorf("mount counted %v bytes read, want %d", d, size)
	}
	if d := delta(one(mountBefore), one(mountAfter), "dfs_rpc_client_seconds", "service=ChunkServer", "method=Write"); d < 1 {
		t.Errorf("mount timed %v chunk writes", d)
	}
	if n, _ := leaderAfter.Sum("dfs_raft_apply_seconds"); n < 1 {
		t.Errorf("leader timed %v Raft entries", n)
	}

	// Exactly one leader among the masters, and the leader's view of the
	// cluster (soft state, rebuilt from heartbeats: waited for).
	masterScrapes := scrapeAll(masters)
	leaders := sumOver(masterScrapes, "dfs_raft_state", "state=Leader")
	if leaders != 1 {
		t.Errorf("dfs_raft_state{state=Leader} sums to %v over the masters, want 1", leaders)
	}
	// waitLeader polls the leader's metrics until check finds nothing
	// wrong.
	waitLeader := func(check func(metricstest.Families) string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			why := check(scrape(ctx, t, masters[leader]))
			if why == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("leader's metrics: %s", why)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	health := func(lf metricstest.Families, up, healthy, under float64) string {
		gotUp, _ := lf.Sum("dfs_master_chunkserver_up")
		gotHealthy, _ := lf.Sum("dfs_master_chunks_by_health", "health=healthy")
		gotUnder, _ := lf.Sum("dfs_master_chunks_by_health", "health=under_replicated")
		others, series := lf.Sum("dfs_master_chunks_by_health")
		others -= gotHealthy + gotUnder
		if gotUp != up || gotHealthy != healthy || gotUnder != under || others != 0 || series != 4 {
			return fmt.Sprintf("%v chunkservers up, %v chunks healthy, %v under-replicated, %v others (%d series); want %v, %v, %v, 0",
				gotUp, gotHealthy, gotUnder, others, series, up, healthy, under)
		}
		return ""
	}
	var chunksHeld float64 // the file's chunks (8 MiB: one, at the default chunk size)
	waitLeader(func(lf metricstest.Families) string {
		if sessions, _ := lf.Sum("dfs_master_sessions"); sessions < 1 {
			return fmt.Sprintf("%v sessions, want at least 1", sessions)
		}
		chunksHeld, _ = lf.Sum("dfs_master_chunks")
		if chunksHeld < 1 {
			return "no chunks"
		}
		return health(lf, 3, chunksHeld, 0)
	})
	// A chunkserver stops: the leader counts it down and every chunk
	// under-replicated (3 copies wanted, 2 live).
	if err := c.StopChunk(0); err != nil {
		t.Fatal(err)
	}
	waitLeader(func(lf metricstest.Families) string { return health(lf, 2, 0, chunksHeld) })
	checkNamesKnown(t, append(append(masterScrapes, chunkAfter...), mountAfter))
}

// dfsName matches a dfs metric's name in text.
var dfsName = regexp.MustCompile(`\bdfs_[a-z0-9_]+`)

// checkNamesKnown checks that every dfs_ metric the processes export is
// documented in docs/operations.md, and that every one the alert rules
// use is exported.
func checkNamesKnown(t *testing.T, scrapes []metricstest.Families) {
	t.Helper()
	exported := map[string]bool{}
	for _, f := range scrapes {
		for name := range f {
			exported[name] = true
		}
	}
	docs, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, n := range dfsName.FindAllString(string(docs), -1) {
		documented[n] = true
	}
	for name := range exported {
		if strings.HasPrefix(name, "dfs_") && !documented[name] {
			t.Errorf("%s is exported but not described in docs/operations.md", name)
		}
	}
	rules, err := os.ReadFile("../deploy/dfs-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range dfsName.FindAllString(string(rules), -1) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")
		if !exported[base] {
			t.Errorf("deploy/dfs-alerts.yml uses %s, which no process exports", n)
		}
	}
}

// TestAlertRules checks deploy/dfs-alerts.yml with promtool and runs its
// unit tests (deploy/dfs-alerts.test.yml).
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian package prometheus)")
	}
	for _, args := range [][]string{{"check", "rules", "dfs-alerts.yml"}, {"test", "rules", "dfs-alerts.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../deploy"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
