package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"dfs/api"
	"dfs/chunk"
	"dfs/cluster"
)

// Chunk tokens (docs/operations.md, "Chunk tokens") on a cluster whose
// tokens live tokenLife and whose key rotates every 2*tokenLife, so that
// a test sees tokens expire and keys change within seconds.
const tokenLife = 3 * time.Second

func startTokenCluster(t *testing.T, mountArgs ...string) *cluster.Cluster {
	return startCluster(t, cluster.Config{
		Masters: 1, ChunkServers: 3, Mounts: 1,
		ExtraMasterArgs: []string{"-chunk-token-lifetime", tokenLife.String(), "-chunk-key-rotation", (2 * tokenLife).String()},
		ExtraMountArgs:  append(mountOpts(), mountArgs...),
	})
}

// rawChunk is a client that knows where a chunk is and speaks to its
// chunkservers directly, without the mount.
type rawChunk struct {
	t  *testing.T
	c  *cluster.Cluster
	cs []api.ChunkServerClient // by replica
}

func dialRaw(t *testing.T, c *cluster.Cluster, ch *api.Chunk) *rawChunk {
	r := &rawChunk{t: t, c: c}
	for _, rep := range ch.Replicas {
		cc, err := api.DialData(rep.Addr, c.TLS().ClientConfig())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		r.cs = append(r.cs, api.NewChunkServerClient(cc))
	}
	return r
}

// allocChunk asks the leader, as a mount about to write does, for chunk
// 0 of the file at path with a write lease: its answer has a write token.
func allocChunk(t *testing.T, c *cluster.Cluster, path string) *api.Chunk {
	t.Helper()
	var resp *api.MutateResponse
	askLeader(t, c, path, func(ctx context.Context, m api.MasterClient, ino uint64) (err error) {
		resp, err = m.Mutate(ctx, &api.MutateRequest{Caller: &api.Caller{}, Op: &api.Op{Op: &api.Op_AllocChunk{AllocChunk: &api.AllocChunkOp{Ino: ino}}}})
		return err
	})
	if resp.Errno != api.Errno_OK || resp.Chunk == nil || resp.Chunk.Token.GetAccess() != api.ChunkToken_WRITE {
		t.Fatalf("AllocChunk %s: %v %s, chunk %v", path, resp.Errno, resp.Message, resp.Chunk)
	}
	return resp.Chunk
}

// TestTokensRefused: a client that talks to the chunkservers itself,
// knowing the chunk's id, version and servers, is refused every read and
// write without a token, with a forged or expired one, with a read token
// for a write, with another chunk's token, and every master command
// without the master's token; afterwards the chunk's bytes (read through
// a fresh mount) and its version on every replica are as before. The
// same client with a token the master granted succeeds.
func TestTokensRefused(t *testing.T) {
	c := startTokenCluster(t)
	dir := filepath.Join(c.MountDir(0), "tokens")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path, other := filepath.Join(dir, "victim"), filepath.Join(dir, "other")
	want := bytes.Repeat([]byte("precious data. "), 70_000) // about 1 MiB
	for _, p := range []string{path, other} {
		if err := os.WriteFile(p, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	readTok := chunkOf(t, c, path)
	ch := allocChunk(t, c, path) // the current version, primary and a write token
	otherCh := allocChunk(t, c, other)
	if readTok.Token.GetAccess() != api.ChunkToken_READ || readTok.Id != ch.Id {
		t.Fatalf("GetChunks answered token %v for chunk %d", readTok.Token, readTok.Id)
	}
	raw := dialRaw(t, c, ch)
	primary := 0
	for i, r := range ch.Replicas {
		if r.Server == ch.Primary {
			primary = i
		}
	}
	// Tokens the master would never have given for what they are used for.
	forgedWrite := proto.Clone(readTok.Token).(*api.ChunkToken)
	forgedWrite.Access = api.ChunkToken_WRITE
	badMAC := proto.Clone(ch.Token).(*api.ChunkToken)
	badMAC.Mac[0] ^= 1
	forgedMaster := proto.Clone(ch.Token).(*api.ChunkToken)
	forgedMaster.Access = api.ChunkToken_MASTER
	type attempt struct {
		name  string
		tok   *api.ChunkToken
		want  api.Errno
		reads bool // reads are refused too
	}
	bad := []attempt{
		{"no token", nil, api.Errno_EACCES, true},
		{"a read token raised to write", forgedWrite, api.Errno_EACCES, true},
		{"a write token with a bad MAC", badMAC, api.Errno_EACCES, true},
		{"a read token", readTok.Token, api.Errno_EACCES, false},
		{"another chunk's write token", otherCh.Token, api.Errno_EACCES, true},
	}
	junk := bytes.Repeat([]byte{0xee}, 4096)
	tryAll := func(attempts []attempt, master []attempt) {
		t.Helper()
		for _, a := range attempts {
			for i, cs := range raw.cs {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				answers := map[string]func() (api.Errno, error){
					"write": func() (api.Errno, error) {
						r, err := cs.Write(ctx, &api.WriteRequest{Id: ch.Id, Version: ch.Version, Offset: 100, Data: junk, Forward: ch.Replicas, Token: a.tok})
						return r.GetErrno(), err
					},
					"vectored write": func() (api.Errno, error) {
						r, err := cs.Write(ctx, &api.WriteRequest{Id: ch.Id, Version: ch.Version, Extents: []*api.Extent{{Offset: 7, Data: junk}}, Forward: ch.Replicas, Token: a.tok})
						return r.GetErrno(), err
					},
					"truncate": func() (api.Errno, error) {
						r, err := cs.Write(ctx, &api.WriteRequest{Id: ch.Id, Version: ch.Version, ZeroLength: 1 << 30, Forward: ch.Replicas, Token: a.tok})
						return r.GetErrno(), err
					},
					"forwarded write": func() (api.Errno, error) {
						r, err := cs.Write(ctx, &api.WriteRequest{Id: ch.Id, Version: ch.Version, Offset: 0, Data: junk, Forwarded: true, Token: a.tok})
						return r.GetErrno(), err
					},
				}
				if a.reads {
					answers["read"] = func() (api.Errno, error) {
						r, err := cs.Read(ctx, &api.ReadRequest{Id: ch.Id, Version: ch.Version, Length: 4096, Token: a.tok})
						if len(r.GetData()) > 0 {
							t.Errorf("replica %d answered %d bytes to a read with %s", i, len(r.Data), a.name)
						}
						return r.GetErrno(), err
					}
					answers["local path"] = func() (api.Errno, error) {
						r, err := cs.LocalPath(ctx, &api.LocalPathRequest{Id: ch.Id, Version: ch.Version, Token: a.tok})
						if r.GetStoreDir() != "" {
							t.Errorf("replica %d named its store to a LocalPath with %s", i, a.name)
						}
						return r.GetErrno(), err
					}
					answers["sync"] = func() (api.Errno, error) {
						r, err := cs.Sync(ctx, &api.SyncRequest{Id: ch.Id, Forward: ch.Replicas, Token: a.tok})
						return r.GetErrno(), err
					}
				}
				for what, call := range answers {
					if errno, err := call(); err != nil || errno != a.want {
						t.Errorf("%s to replica %d (primary %v) with %s: %v %v, want %v", what, i, i == primary, a.name, err, errno, a.want)
					}
				}
				cancel()
			}
		}
		for _, a := range master {
			for i, cs := range raw.cs {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				sr, err := cs.SetChunk(ctx, &api.SetChunkRequest{Id: ch.Id, Version: ch.Version + 10, ChunkSize: api.DefaultChunkSize,
					Primary: ch.Replicas[i].Server, LeaseNs: int64(time.Hour), Replicas: ch.Replicas, Token: a.tok})
				if err != nil || sr.Errno != a.want {
					t.Errorf("SetChunk on replica %d with %s: %v %v, want %v", i, a.name, err, sr.GetErrno(), a.want)
				}
				src := ch.Replicas[(i+1)%len(ch.Replicas)]
				rr, err := cs.Replicate(ctx, &api.ReplicateRequest{Id: ch.Id, Version: ch.Version, ChunkSize: api.DefaultChunkSize, Source: src, Token: a.tok})
				if err != nil || rr.Errno != a.want {
					t.Errorf("Replicate on replica %d with %s: %v %v, want %v", i, a.name, err, rr.GetErrno(), a.want)
				}
				cancel()
			}
		}
	}
	tryAll(bad, append(bad, attempt{"the client's write token", ch.Token, api.Errno_EACCES, true},
		attempt{"a write token raised to master", forgedMaster, api.Errno_EACCES, true}))

	// Tokens the master gave, once they expired.
	time.Sleep(time.Until(time.Unix(0, ch.Token.ExpiryNs)) + time.Second)
	tryAll([]attempt{{"an expired write token", ch.Token, api.Errno_EKEYEXPIRED, true}}, nil)

	// Nothing changed: the bytes through a fresh mount, the version the
	// master knows, and the version in every replica's chunk file.
	if got := remountRead(t, c, path); !bytes.Equal(got, want) {
		t.Fatalf("the file changed: %d bytes, want %d", len(got), len(want))
	}
	if now := chunkOf(t, c, path); now.Version != ch.Version {
		t.Fatalf("chunk version %d after refused calls, want %d", now.Version, ch.Version)
	}
	for _, rep := range ch.Replicas {
		file := chunkFile(c, serverIndex(t, c, rep), ch.Id)
		k := chunk.Key{ID: ch.Id}
		if lc, err := chunk.OpenLocal(file, k, ch.Version); err != nil {
			t.Errorf("replica %s: %v", rep.Server, err)
		} else {
			lc.Close()
		}
		if lc, err := chunk.OpenLocal(file, k, ch.Version+1); err == nil {
			lc.Close()
			t.Errorf("replica %s holds a version newer than %d", rep.Server, ch.Version)
		}
	}

	// The same client with a token the master grants now can write.
	ch = allocChunk(t, c, path)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var pcs api.ChunkServerClient
	for i, r := range ch.Replicas {
		if r.Server == ch.Primary {
			pcs = raw.cs[i]
		}
	}
	if pcs == nil {
		t.Fatalf("primary %s is not among the replicas the chunk had", ch.Primary)
	}
	w, err := pcs.Write(ctx, &api.WriteRequest{Id: ch.Id, Version: ch.Version, Data: []byte("GRANTED"), Forward: ch.Replicas, Token: ch.Token})
	if err != nil || w.Errno != api.Errno_OK {
		t.Fatalf("write with the master's token: %v %v %s", err, w.GetErrno(), w.GetMessage())
	}
	copy(want, "GRANTED")
	if got := remountRead(t, c, path); !bytes.Equal(got, want) {
		t.Fatalf("a write with a granted token is not in the file: starts %q", got[:min(len(got), 20)])
	}
}

// TestTokensLongOpenFile keeps files open (replicated and ec:2+1) across
// several token lifetimes and key rotations: writes, fsyncs and reads
// through the same descriptors keep working, the mount getting fresh
// tokens when the chunkservers refuse expired ones. With short-circuit
// reads (the default here, every chunkserver being on this machine) the
// reads find the chunk and shard files through LocalPath and need no
// token after that; with -no-local-reads every read is a Read call, and
// reads past the tokens' expiry make the mount ask the master again.
func TestTokensLongOpenFile(t *testing.T) {
	t.Run("local", func(t *testing.T) { tokensLongOpenFile(t, true) })
	t.Run("remote", func(t *testing.T) { tokensLongOpenFile(t, false) })
}

func tokensLongOpenFile(t *testing.T, local bool) {
	args := []string{"-debug-addr", "127.0.0.1:0"}
	if !local {
		args = append(args, "-no-local-reads")
	}
	c := startTokenCluster(t, args...)
	root := c.MountDir(0)
	dirs := map[string]string{"replicated": filepath.Join(root, "rep"), "ec": ecDir(t, c, "ec", "ec:2+1")}
	if err := os.Mkdir(dirs["replicated"], 0o755); err != nil {
		t.Fatal(err)
	}
	type open struct {
		f    *os.File
		want []byte
	}
	files := map[string]*open{}
	for kind, dir := range dirs {
		f, err := os.OpenFile(filepath.Join(dir, "long"), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		files[kind] = &open{f: f}
	}
	first := map[string]*api.Chunk{}
	step := func(round int) {
		for kind, o := range files {
			data := bytes.Repeat([]byte(fmt.Sprintf("%s round %d|", kind, round)), 40_000)
			off := int64(round) * 300_000
			if _, err := o.f.WriteAt(data, off); err != nil {
				t.Fatalf("%s round %d: write: %v", kind, round, err)
			}
			if err := o.f.Sync(); err != nil {
				t.Fatalf("%s round %d: fsync: %v", kind, round, err)
			}
			if end := off + int64(len(data)); end > int64(len(o.want)) {
				o.want = append(o.want, make([]byte, end-int64(len(o.want)))...)
			}
			copy(o.want[off:], data)
			// Drop the kernel's pages so that the read reaches the mount.
			if err := unix.Fadvise(int(o.f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(o.want))
			if _, err := o.f.ReadAt(got, 0); err != nil || !bytes.Equal(got, o.want) {
				t.Fatalf("%s round %d: read back through the open file: %v (equal %v)", kind, round, err, bytes.Equal(got, o.want))
			}
			if round == 0 {
				first[kind] = chunkOf(t, c, o.f.Name())
			}
		}
	}
	start := time.Now()
	for round := 0; round < 4; round++ {
		if round > 0 {
			time.Sleep(tokenLife + time.Second)
		}
		step(round)
	}
	// Reads alone, once the tokens of the last writes expired: Read calls
	// are refused, and the mount asks the master again.
	before := clientCalls(t, c, 0)
	time.Sleep(tokenLife + time.Second)
	for kind, o := range files {
		if err := unix.Fadvise(int(o.f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(o.want))
		if _, err := o.f.ReadAt(got, 0); err != nil || !bytes.Equal(got, o.want) {
			t.Fatalf("%s: read back after the tokens expired: %v (equal %v)", kind, err, bytes.Equal(got, o.want))
		}
	}
	if after := clientCalls(t, c, 0); !local && after["GetChunks"] <= before["GetChunks"] {
		t.Errorf("reads past the tokens' expiry asked the master for no new ones (GetChunks calls %d, then %d)", before["GetChunks"], after["GetChunks"])
	}
	// The tokens of the first round are refused now: the mount must have
	// replaced them.
	for kind, ch := range first {
		cs := dialRaw(t, c, ch).cs[0]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r, err := cs.Read(ctx, &api.ReadRequest{Id: ch.Id, Shard: ch.Replicas[0].Shard, Version: ch.Version, Length: 10, Token: ch.Token})
		cancel()
		if err != nil || r.Errno != api.Errno_EKEYEXPIRED {
			t.Fatalf("%s: a first-round token, %v later: %v %v, want EKEYEXPIRED", kind, time.Since(start), err, r.GetErrno())
		}
	}
	calls := clientCalls(t, c, 0)
	t.Logf("mount's chunkserver calls over %v: %v", time.Since(start).Round(time.Second), calls)
	// Every round re-read both files, from their chunk and shard files
	// or through Read calls.
	if local && calls["LocalPath"] == 0 {
		t.Errorf("no short-circuit reads: LocalPath never called (%v)", calls)
	}
	if !local && (calls["Read"] == 0 || calls["LocalPath"] != 0) {
		t.Errorf("with -no-local-reads: %d Read and %d LocalPath calls, want some and none (%v)", calls["Read"], calls["LocalPath"], calls)
	}
}

// remountRead reads the file at path on a new mount process (mount 0's
// replacement), so that no cache of the old one can answer.
func remountRead(t *testing.T, c *cluster.Cluster, path string) []byte {
	t.Helper()
	if err := c.KillMount(0); err != nil {
		t.Fatal(err)
	}
	return readFresh(t, c, 0, path)
}
