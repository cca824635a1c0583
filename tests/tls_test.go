package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"dfs/api"
	"dfs/client"
	"dfs/cluster"
	"dfs/mtls"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
)

// TestTLSCluster runs a whole cluster with mutual TLS: file I/O through
// two mounts (short-circuit reads included), fsck through dfsctl, and then
// clients without a certificate, with another CA's certificate and in
// plaintext try to change the namespace, write and read a chunk, and speak
// Raft to every master, and masters without a certificate or with another
// CA's try to join the group. Every one is refused, and afterwards the
// namespace and every chunk file are as they were.
func TestTLSCluster(t *testing.T) {
	c := startCluster(t, cluster.Config{
		Masters: 3, ChunkServers: 3, Mounts: 2, TLS: true,
		ExtraMountArgs: append(mountOpts(), "-debug-addr", "127.0.0.1:0"),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Real file I/O: files of several sizes written on one mount, read
	// back on the other.
	m1, m2 := c.MountDir(0), c.MountDir(1)
	want := map[string][]byte{}
	for i, size := range []int{0, 1, 4096, 100 << 10, 3<<20 + 17} {
		data := make([]byte, size)
		rand.Read(data)
		name := fmt.Sprintf("f%d", i)
		want[name] = data
		if err := os.WriteFile(filepath.Join(m1, name), data, 0o644); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(m1, "d/e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(m1, "f1"), filepath.Join(m1, "d/e/f1")); err != nil {
		t.Fatal(err)
	}
	want["d/e/f1"] = want["f1"]
	delete(want, "f1")
	readBefore := clientCalls(t, c, 1)
	time.Sleep(2 * attrTimeout)
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(m2, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %s on the second mount: %d bytes, %v; want %d bytes written on the first", name, len(got), err, len(data))
		}
	}
	// The chunkservers are on this machine: the second mount read the
	// chunk files directly (short-circuit), asking the chunkservers only
	// where they are.
	readAfter := clientCalls(t, c, 1)
	if d := readAfter["LocalPath"] - readBefore["LocalPath"]; d == 0 {
		t.Errorf("no LocalPath call while reading: short-circuit reads are off (calls before %v, after %v)", readBefore, readAfter)
	}
	if d := readAfter["Read"] - readBefore["Read"]; d != 0 {
		t.Errorf("%d chunkserver Read calls: reads went over the network, not short-circuit", d)
	}
	out, code := dfsctlTLS(t, c, true, "fsck")
	if code != 0 || !strings.Contains(out, "0 at risk") {
		t.Fatalf("dfsctl fsck with the cluster's certificates: exit %d\n%s", code, out)
	}
	if out, code := dfsctlTLS(t, c, false, "status"); code == 0 {
		t.Errorf("dfsctl status without certificates succeeded against a TLS cluster:\n%s", out)
	}

	// What the refused clients must not change.
	snapshot := func() string {
		t.Helper()
		var b strings.Builder
		filepath.WalkDir(m1, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatalf("walk: %v", err)
			}
			fi, _ := d.Info()
			fmt.Fprintf(&b, "%s %v %d %d\n", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
			return nil
		})
		for i := range c.ChunkAddrs() {
			dir := filepath.Join(c.Dir(), fmt.Sprintf("c%d", i+1), "chunks")
			filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatalf("chunk file: %v", err)
				}
				fmt.Fprintf(&b, "%s %x\n", p, sha256.Sum256(data))
				return nil
			})
		}
		return b.String()
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot()
	leaderBefore := st.Leader
	ch := chunkOf(t, c, filepath.Join(m1, "f4"))

	pool := c.TLS().ClientConfig().RootCAs
	other := filepath.Join(t.TempDir(), "other")
	if err := mtls.CreateCA(other, false); err != nil {
		t.Fatal(err)
	}
	if err := mtls.Issue(other, "evil", []string{"127.0.0.1"}, 30, false); err != nil {
		t.Fatal(err)
	}
	foreignID, err := mtls.Load(filepath.Join(other, mtls.CACert), filepath.Join(other, "evil.crt"), filepath.Join(other, "evil.key"))
	if err != nil {
		t.Fatal(err)
	}
	noCert := c.TLS().ClientConfig()
	noCert.GetClientCertificate = nil
	foreign := foreignID.ClientConfig()
	foreign.RootCAs = pool // it trusts our servers: only they can refuse it
	intruders := []struct {
		name string
		conf *tls.Config // nil: plaintext
	}{{"no certificate", noCert}, {"another CA's certificate", foreign}, {"plaintext", nil}}

	for _, in := range intruders {
		t.Run("client/"+strings.ReplaceAll(in.name, " ", "_"), func(t *testing.T) {
			// The master: a create, and a session through the client library.
			conn, err := grpc.NewClient(leaderBefore, api.Credentials(in.conf))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
			defer ccancel()
			resp, err := api.NewMasterClient(conn).Mutate(cctx, &api.MutateRequest{Op: &api.Op{Op: &api.Op_Create{Create: &api.CreateOp{Parent: 1, Name: "intruder", Mode: 0o100644}}}})
			if err == nil {
				t.Errorf("master: create answered %v", resp)
			}
			if _, err := api.NewMasterClient(conn).Status(cctx, &api.StatusRequest{}); err == nil {
				t.Error("master: Status answered")
			}
			if in.conf != foreign {
				ident := foreignID
				if in.conf == nil {
					ident = nil
				}
				if cl, err := client.New(cctx, client.Config{Masters: c.MasterAddrs(), TLS: ident, Logf: t.Logf}); err == nil {
					cl.Close(cctx)
					t.Error("client library: opened a session")
				}
			}
			// Every chunkserver holding the chunk: overwrite it, read it.
			for _, r := range ch.Replicas {
				cc, err := grpc.NewClient(r.Addr, api.Credentials(in.conf))
				if err != nil {
					t.Fatal(err)
				}
				cs := api.NewChunkServerClient(cc)
				if resp, err := cs.Write(cctx, &api.WriteRequest{Id: ch.Id, Version: ch.Version, Data: []byte("overwritten by an intruder"), Forward: ch.Replicas, Sync: true}); err == nil {
					t.Errorf("chunkserver %s: Write answered %v", r.Addr, resp)
				}
				if resp, err := cs.Read(cctx, &api.ReadRequest{Id: ch.Id, Version: ch.Version, Length: 4096}); err == nil {
					t.Errorf("chunkserver %s: Read answered %d bytes", r.Addr, len(resp.GetData()))
				}
				cc.Close()
			}
			// Raft on every master: a vote and entries from a far
			// future term would depose the leader if heard.
			for _, m := range st.Masters {
				if err := raftIntrude(in.conf, m.RaftAddr); err != nil {
					t.Errorf("Raft port of %s (%s): %v", m.Id, m.RaftAddr, err)
				}
			}
		})
	}

	// Masters that are not ours try to join.
	for _, in := range []struct {
		name string
		id   *mtls.Identity
	}{{"plaintext", nil}, {"another CA's certificate", foreignID}} {
		t.Run("master/"+strings.ReplaceAll(in.name, " ", "_"), func(t *testing.T) {
			rogueJoin(t, ctx, c, other, in.id)
		})
	}

	if got := snapshot(); got != before {
		t.Errorf("the namespace or chunk files changed:\nbefore:\n%s\nafter:\n%s", before, got)
	}
	st2, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Leader != leaderBefore || st2.Inodes != st.Inodes || st2.Chunks != st.Chunks {
		t.Errorf("leader %s -> %s, inodes %d -> %d, chunks %d -> %d", leaderBefore, st2.Leader, st.Inodes, st2.Inodes, st.Chunks, st2.Chunks)
	}
	if _, err := os.Stat(filepath.Join(m1, "intruder")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("intruder's file: %v", err)
	}
	// The cluster still works.
	if err := os.WriteFile(filepath.Join(m1, "after"), []byte("still here"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, data := range want {
		if got, err := os.ReadFile(filepath.Join(m1, name)); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s after the intruders: %d bytes, %v", name, len(got), err)
		}
	}
}

// dfsctlTLS runs dfsctl against c, with the cluster's client certificate
// or without any.
func dfsctlTLS(t *testing.T, c *cluster.Cluster, withCert bool, args ...string) (string, int) {
	t.Helper()
	argv := []string{"-masters", strings.Join(c.MasterAddrs(), ",")}
	if withCert {
		d := c.TLSDir()
		argv = append(argv, "-tls-ca", filepath.Join(d, mtls.CACert),
			"-tls-cert", filepath.Join(d, cluster.ClientCert+".crt"), "-tls-key", filepath.Join(d, cluster.ClientCert+".key"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binaries(t), cluster.CtlBinary), append(argv, args...)...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "DFS_") })
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("dfsctl %v: %v", args, err)
	}
	return string(out), 0
}

// clientCalls returns mount i's count of calls by method, from its admin
// listener's /metrics (dfs_rpc_client_sent_total).
func clientCalls(t *testing.T, c *cluster.Cluster, i int) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := scrape(ctx, t, adminAddrFromLog(ctx, t, filepath.Join(c.LogDir(), fmt.Sprintf("mount%d.log", i+1))))
	calls := map[string]int64{}
	for _, m := range f["dfs_rpc_client_sent_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "method" {
				calls[l.GetValue()] += int64(m.GetCounter().GetValue())
			}
		}
	}
	return calls
}

// intruderStream is a Raft stream layer that dials with conf (nil:
// plaintext TCP).
type intruderStream struct {
	net.Listener
	conf *tls.Config
}

func (s intruderStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if s.conf == nil {
		return d.Dial("tcp", string(addr))
	}
	return tls.DialWithDialer(d, "tcp", string(addr), s.conf)
}

func (s intruderStream) Addr() net.Addr { return s.Listener.Addr() }

// raftIntrude sends a RequestVote and an AppendEntries with a far future
// term to the Raft transport at addr, and returns an error if either is
// answered.
func raftIntrude(conf *tls.Config, addr string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	trans := raft.NewNetworkTransport(intruderStream{ln, conf}, 1, 5*time.Second, os.Stderr)
	defer trans.Close()
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("m9"), Addr: []byte(ln.Addr().String())}
	var vote raft.RequestVoteResponse
	errVote := trans.RequestVote("m1", raft.ServerAddress(addr), &raft.RequestVoteRequest{RPCHeader: hdr, Term: 1 << 40, LastLogIndex: 1 << 40, LastLogTerm: 1 << 40}, &vote)
	var app raft.AppendEntriesResponse
	errApp := trans.AppendEntries("m1", raft.ServerAddress(addr), &raft.AppendEntriesRequest{RPCHeader: hdr, Term: 1 << 40, PrevLogEntry: 0, PrevLogTerm: 0,
		Entries: []*raft.Log{{Index: 1, Term: 1 << 40, Type: raft.LogCommand, Data: []byte("garbage")}}, LeaderCommitIndex: 1}, &app)
	if errVote == nil {
		return fmt.Errorf("RequestVote answered: %+v", vote)
	}
	if errApp == nil {
		return fmt.Errorf("AppendEntries answered: %+v", app)
	}
	return nil
}

// rogueJoin starts a master with identity id (nil: plaintext) and -join,
// has the leader add it as a non-voter, and checks that it never receives
// the group's state; then removes it again.
func rogueJoin(t *testing.T, ctx context.Context, c *cluster.Cluster, certDir string, id *mtls.Identity) {
	port := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	listen, raftAddr := port(), port()
	args := []string{"-id", "m9", "-join", "-data", filepath.Join(t.TempDir(), "m9"), "-listen", listen, "-raft", raftAddr}
	if id != nil {
		args = append(args, "-tls-ca", filepath.Join(certDir, mtls.CACert),
			"-tls-cert", filepath.Join(certDir, "evil.crt"), "-tls-key", filepath.Join(certDir, "evil.key"))
	}
	logf, err := os.Create(filepath.Join(c.LogDir(), "rogue-"+filepath.Base(t.Name())+".log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(binaries(t), cluster.MasterBinary), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	rogue := func() (*api.StatusResponse, error) {
		return cluster.AskMaster(ctx, listen, api.Credentials(id.ClientConfig()))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := rogue(); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the rogue master never answered: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := onLeader(ctx, c, func(m api.MasterClient) error {
		_, err := m.AddMaster(ctx, &api.AddMasterRequest{Id: "m9", RaftAddr: raftAddr, NonVoter: true})
		return err
	}); err != nil {
		t.Fatalf("adding m9: %v", err)
	}
	defer func() {
		if err := onLeader(ctx, c, func(m api.MasterClient) error {
			_, err := m.RemoveMaster(ctx, &api.RemoveMasterRequest{Id: "m9"})
			return err
		}); err != nil {
			t.Errorf("removing m9: %v", err)
		}
	}()
	// A master that joined receives the log within a heartbeat or two;
	// give the leader several seconds of retries.
	time.Sleep(5 * time.Second)
	st, err := rogue()
	if err != nil {
		t.Fatalf("asking the rogue master: %v", err)
	}
	if st.AppliedIndex != 0 || len(st.Masters) != 0 || st.Inodes > 1 { // an empty FSM has the root
		t.Errorf("the rogue master received the group's state: applied index %d, members %v, inodes %d", st.AppliedIndex, st.Masters, st.Inodes)
	}
}

// TestTLSBadFlags: daemons given incomplete or mismatched TLS files refuse
// to start, naming the problem.
func TestTLSBadFlags(t *testing.T) {
	bin := binaries(t)
	dir, other := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, other} {
		if err := mtls.CreateCA(d, false); err != nil {
			t.Fatal(err)
		}
		if err := mtls.Issue(d, "n", []string{"127.0.0.1"}, 10, false); err != nil {
			t.Fatal(err)
		}
	}
	ca, crt, key := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "n.crt"), filepath.Join(dir, "n.key")
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"-tls-ca", ca}, "-tls-cert -tls-key] not set"},
		{[]string{"-tls-ca", ca, "-tls-cert", crt}, "[-tls-key] not set"},
		{[]string{"-tls-ca", filepath.Join(dir, "missing.crt"), "-tls-cert", crt, "-tls-key", key}, "-tls-ca: open"},
		{[]string{"-tls-ca", ca, "-tls-cert", filepath.Join(other, "n.crt"), "-tls-key", filepath.Join(other, "n.key")}, "does not verify against -tls-ca"},
		{[]string{"-tls-ca", ca, "-tls-cert", crt, "-tls-key", filepath.Join(other, "n.key")}, "private key does not match public key"},
	} {
		for _, prog := range []struct {
			bin  string
			args []string
		}{
			{cluster.MasterBinary, []string{"-data", t.TempDir(), "-listen", "127.0.0.1:0", "-raft", "127.0.0.1:0"}},
			{cluster.ChunkBinary, []string{"-data", t.TempDir(), "-listen", "127.0.0.1:0"}},
			{cluster.MountBinary, []string{"-masters", "127.0.0.1:1", t.TempDir()}},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			args := slices.Concat(tc.flags, prog.args)
			if prog.bin == cluster.MountBinary {
				args = slices.Concat(prog.args[:2], tc.flags, prog.args[2:])
			}
			out, err := exec.CommandContext(ctx, filepath.Join(bin, prog.bin), args...).CombinedOutput()
			cancel()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("%s %q: %v, output %q; want a refusal naming %q", prog.bin, tc.flags, err, out, tc.want)
			}
		}
	}
}

// TestTLSDev: `dfsctl dev -tls` runs a TLS cluster, and the command it
// runs gets the certificates in $DFS_TLS_*, with which dfsctl talks to it.
func TestTLSDev(t *testing.T) {
	requireFUSE(t)
	ctl := filepath.Join(binaries(t), cluster.CtlBinary)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	script := `set -e
mkdir "$DFS_MOUNT/d"
echo hello > "$DFS_MOUNT/d/f"
test -n "$DFS_TLS_CA"
"$CTL" status
if env -u DFS_TLS_CA -u DFS_TLS_CERT -u DFS_TLS_KEY "$CTL" status >/dev/null 2>&1; then echo "status without certificates worked"; exit 1; fi`
	cmd := exec.CommandContext(ctx, ctl, "dev", "-tls", "-dir", filepath.Join(dir, ".dfs"), "-mnt", filepath.Join(dir, "mnt"),
		"-masters", "1", "-chunkservers", "3", "--", "sh", "-c", script)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "DFS_") }), "CTL="+ctl)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dfsctl dev -tls: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Leader") {
		t.Errorf("dfsctl status inside dfsctl dev -tls printed no leader:\n%s", out)
	}
	for _, f := range []string{"ca.crt", "m1.crt", "c3.key", "mount1.crt", "client.key"} {
		if _, err := os.Stat(filepath.Join(dir, ".dfs", "tls", f)); err != nil {
			t.Errorf("certificate file: %v", err)
		}
	}
}
