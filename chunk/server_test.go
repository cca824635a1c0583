package chunk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"dfs/api"
	"dfs/chunktoken"
)

var quiet = slog.New(slog.DiscardHandler)

type testServer struct {
	*Server
	dir string
	c   api.ChunkServerClient
}

func startServer(t *testing.T, dir string, cfg Config) *testServer {
	t.Helper()
	cfg.DataDir, cfg.Listen, cfg.Logger = dir, "127.0.0.1:0", quiet
	if cfg.RPCTimeout == 0 {
		cfg.RPCTimeout = 5 * time.Second
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.keys.Set(testKeys)
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{Server: s, dir: dir, c: dialTest(t, s.Addr(), grpc.WithUnaryInterceptor(masterTokens))}
}

func dialTest(t *testing.T, addr string, opts ...grpc.DialOption) api.ChunkServerClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(api.MaxMessage), grpc.MaxCallSendMsgSize(api.MaxMessage)))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return api.NewChunkServerClient(cc)
}

// testKeys are the chunk keys of the test servers, as a master would
// have sent them.
var testKeys = []*api.ChunkKey{{Id: 1, Secret: bytes.Repeat([]byte{7}, chunktoken.SecretSize)}}

// masterTokens stands in for the master on the test servers' clients:
// a call that carries no chunk token gets a MASTER token for its chunk,
// so that tests of everything else need not sign. Tests of the checks
// themselves dial without it.
func masterTokens(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	m := req.(proto.Message).ProtoReflect()
	fields := m.Descriptor().Fields()
	if tf, idf := fields.ByName("token"), fields.ByName("id"); tf != nil && idf != nil && !m.Has(tf) {
		t := chunktoken.Sign(testKeys[0], m.Get(idf).Uint(), api.ChunkToken_MASTER, time.Now().Add(time.Hour))
		m.Set(tf, protoreflect.ValueOfMessage(t.ProtoReflect()))
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func startServers(t *testing.T, n int) []*testServer {
	var out []*testServer
	for range n {
		out = append(out, startServer(t, t.TempDir(), Config{}))
	}
	return out
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func replicas(ss []*testServer) []*api.Replica {
	var rs []*api.Replica
	for _, s := range ss {
		rs = append(rs, &api.Replica{Server: s.ID(), Addr: s.Addr()})
	}
	return rs
}

// setChunk sends SetChunk to every server, making ss[0] primary.
func setChunk(t *testing.T, ss []*testServer, id, version, size uint64, lease time.Duration) {
	t.Helper()
	for _, s := range ss {
		r, err := s.c.SetChunk(ctxT(t), &api.SetChunkRequest{Id: id, Version: version, ChunkSize: size,
			Primary: ss[0].ID(), LeaseNs: int64(lease), Replicas: replicas(ss)})
		if err != nil || r.Errno != api.Errno_OK {
			t.Fatalf("SetChunk on %s: %v %v %s", s.ID(), err, r.GetErrno(), r.GetMessage())
		}
	}
}

func write(t *testing.T, ss []*testServer, req *api.WriteRequest) *api.WriteResponse {
	t.Helper()
	req.Forward = replicas(ss[1:])
	r, err := ss[0].c.Write(ctxT(t), req)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return r
}

func readAll(t *testing.T, s *testServer, id, version uint64, n int) []byte {
	t.Helper()
	r, err := s.c.Read(ctxT(t), &api.ReadRequest{Id: id, Version: version, Length: uint64(n)})
	if err != nil || r.Errno != api.Errno_OK {
		t.Fatalf("Read from %s: %v %v %s", s.ID(), err, r.GetErrno(), r.GetMessage())
	}
	return r.Data
}

func TestReplicatedWrites(t *testing.T) {
	ss := startServers(t, 3)
	const id, size = 7, 6 * bs
	setChunk(t, ss, id, 1, size, time.Minute)
	m := &model{chunkSize: size}
	steps := []step{w(0, 100), w(bs-7, 2*bs+14), w(4*bs, bs), z(10, 20), w(5*bs+1, bs-1), z(bs, bs), z(3*bs+5, 10*bs)}
	for i, st := range steps {
		req := &api.WriteRequest{Id: id, Version: 1, Offset: uint64(st.off), Sync: i == 2}
		if st.zero {
			req.ZeroLength = uint64(st.n)
			m.zero(st.off, min(st.n, size-st.off))
		} else {
			req.Data = pattern(int(st.n), byte(i))
			m.write(st.off, req.Data)
		}
		if r := write(t, ss, req); r.Errno != api.Errno_OK {
			t.Fatalf("step %d: %v %s failed=%v", i, r.Errno, r.Message, r.Failed)
		}
		for _, s := range ss {
			if got := readAll(t, s, id, 1, size); !bytes.Equal(got, m.data) {
				t.Fatalf("step %d: replica %s holds %d bytes differing from the %d written", i, s.ID(), len(got), len(m.data))
			}
		}
	}
	// Partial reads, reads past the end, and a replica with a newer version.
	r, _ := ss[1].c.Read(ctxT(t), &api.ReadRequest{Id: id, Version: 1, Offset: 3 * bs, Length: bs})
	if r.Errno != api.Errno_OK || len(r.Data) != 5 || !bytes.Equal(r.Data, m.data[3*bs:]) {
		t.Fatalf("read at end: %v %d bytes", r.Errno, len(r.Data))
	}
	r, _ = ss[2].c.Read(ctxT(t), &api.ReadRequest{Id: id, Version: 0, Offset: 5 * bs, Length: 10})
	if r.Errno != api.Errno_OK || len(r.Data) != 0 {
		t.Fatalf("read past end: %v %d bytes", r.Errno, len(r.Data))
	}
	for _, s := range ss {
		if r, err := s.c.Sync(ctxT(t), &api.SyncRequest{Id: id}); err != nil || r.Errno != api.Errno_OK {
			t.Fatalf("Sync: %v %v", err, r)
		}
	}
	if r, _ := ss[0].c.Sync(ctxT(t), &api.SyncRequest{Id: id, Forward: replicas(ss[1:])}); r.Errno != api.Errno_OK {
		t.Fatalf("forwarded Sync: %v %s", r.Errno, r.Message)
	}
}

func TestConcurrentWritersStayIdentical(t *testing.T) {
	ss := startServers(t, 3)
	const id, size = 9, 4 * bs
	setChunk(t, ss, id, 3, size, time.Minute)
	const writers, each = 12, 8
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for range each {
				off := r.Int64N(size - 1)
				n := r.Int64N(min(size-off, bs+500)) + 1
				req := &api.WriteRequest{Id: id, Version: 3, Offset: uint64(off),
					Data: bytes.Repeat([]byte{byte(g + 1)}, int(n)), Forward: replicas(ss[1:])}
				resp, err := ss[0].c.Write(context.Background(), req)
				if err == nil && resp.Errno != api.Errno_OK {
					err = fmt.Errorf("%v %s", resp.Errno, resp.Message)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := readAll(t, ss[0], id, 3, size)
	for _, s := range ss[1:] {
		if got := readAll(t, s, id, 3, size); !bytes.Equal(got, want) {
			t.Fatalf("replica %s differs from the primary", s.ID())
		}
	}
}

func wantErrno(t *testing.T, what string, errno api.Errno, msg string, want api.Errno, wantMsg string) {
	t.Helper()
	if errno != want || !strings.Contains(msg, wantMsg) {
		t.Fatalf("%s: %v %q, want %v containing %q", what, errno, msg, want, wantMsg)
	}
}

func TestWriteRefusals(t *testing.T) {
	ss := startServers(t, 3)
	setChunk(t, ss, 1, 5, bs, time.Minute)
	data := []byte("hello")

	r, _ := ss[1].c.Write(ctxT(t), &api.WriteRequest{Id: 1, Version: 5, Data: data})
	wantErrno(t, "write to a non-primary", r.Errno, r.Message, api.Errno_EAGAIN, "not primary")

	r = write(t, ss, &api.WriteRequest{Id: 1, Version: 4, Data: data})
	wantErrno(t, "write with an old version", r.Errno, r.Message, api.Errno_ESTALE, "version")
	r = write(t, ss, &api.WriteRequest{Id: 1, Version: 6, Data: data})
	wantErrno(t, "write with a future version", r.Errno, r.Message, api.Errno_ESTALE, "version")
	r, _ = ss[2].c.Write(ctxT(t), &api.WriteRequest{Id: 1, Version: 4, Data: data, Forwarded: true})
	wantErrno(t, "forwarded write with an old version", r.Errno, r.Message, api.Errno_ESTALE, "version")
	r = write(t, ss, &api.WriteRequest{Id: 2, Version: 5, Data: data})
	wantErrno(t, "write to a chunk without lease", r.Errno, r.Message, api.Errno_EAGAIN, "not primary")
	r = write(t, ss, &api.WriteRequest{Id: 1, Version: 5, Offset: bs - 2, Data: data})
	wantErrno(t, "write past the chunk size", r.Errno, r.Message, api.Errno_EFBIG, "beyond")
	r = write(t, ss, &api.WriteRequest{Id: 1, Version: 5, Data: data, ZeroLength: 3})
	wantErrno(t, "data and zero_length", r.Errno, r.Message, api.Errno_EINVAL, "")

	// An older version is refused; the primary keeps its chunk.
	sr, _ := ss[0].c.SetChunk(ctxT(t), &api.SetChunkRequest{Id: 1, Version: 4, Primary: ss[0].ID(), LeaseNs: int64(time.Minute)})
	wantErrno(t, "SetChunk older version", sr.Errno, sr.Message, api.Errno_ESTALE, "newer")

	rr, _ := ss[0].c.Read(ctxT(t), &api.ReadRequest{Id: 1, Version: 6, Length: 5})
	wantErrno(t, "read of a newer version", rr.Errno, rr.Message, api.Errno_ESTALE, "older")
	rr, _ = ss[0].c.Read(ctxT(t), &api.ReadRequest{Id: 99, Version: 1, Length: 5})
	wantErrno(t, "read of a missing chunk", rr.Errno, rr.Message, api.Errno_ENOENT, "")

	// Lease expiry. The lease is long enough for the first write to end
	// within it even under the race detector on a loaded machine.
	setChunk(t, ss, 1, 6, bs, 300*time.Millisecond)
	if r := write(t, ss, &api.WriteRequest{Id: 1, Version: 6, Data: data}); r.Errno != api.Errno_OK {
		t.Fatalf("write within lease: %v %s", r.Errno, r.Message)
	}
	time.Sleep(400 * time.Millisecond)
	r = write(t, ss, &api.WriteRequest{Id: 1, Version: 6, Data: data})
	wantErrno(t, "write after lease expiry", r.Errno, r.Message, api.Errno_EAGAIN, "lease expired")

	// The lease moves to another server.
	setChunk(t, ss, 1, 7, bs, time.Minute)
	for _, s := range ss[1:] {
		s.c.SetChunk(ctxT(t), &api.SetChunkRequest{Id: 1, Version: 8, Primary: ss[1].ID(), LeaseNs: int64(time.Minute)})
	}
	ss[0].c.SetChunk(ctxT(t), &api.SetChunkRequest{Id: 1, Version: 8, Primary: ss[1].ID(), LeaseNs: int64(time.Minute)})
	r = write(t, ss, &api.WriteRequest{Id: 1, Version: 8, Data: data})
	wantErrno(t, "write to the former primary", r.Errno, r.Message, api.Errno_EAGAIN, "not primary")
	r, _ = ss[1].c.Write(ctxT(t), &api.WriteRequest{Id: 1, Version: 8, Data: data, Forward: replicas([]*testServer{ss[0], ss[2]})})
	if r.Errno != api.Errno_OK {
		t.Fatalf("write to the new primary: %v %s", r.Errno, r.Message)
	}
}

func TestReplicaFailure(t *testing.T) {
	ss := startServers(t, 3)
	setChunk(t, ss, 1, 1, bs, time.Minute)
	ss[2].Close()
	req := &api.WriteRequest{Id: 1, Version: 1, Data: []byte("abc")}
	r := write(t, ss, req)
	if r.Errno != api.Errno_EIO || len(r.Failed) != 1 || r.Failed[0] != ss[2].ID() {
		t.Fatalf("write with a dead replica: %v %q failed=%v", r.Errno, r.Message, r.Failed)
	}
	// The live replica has it.
	if got := readAll(t, ss[1], 1, 1, 10); string(got) != "abc" {
		t.Fatalf("live replica holds %q", got)
	}
	// A replica that refuses (missing chunk) is reported too.
	r, _ = ss[0].c.Write(ctxT(t), &api.WriteRequest{Id: 1, Version: 1, Data: []byte("x"),
		Forward: []*api.Replica{{Server: "nobody", Addr: ""}}})
	if r.Errno != api.Errno_EIO || len(r.Failed) != 1 || r.Failed[0] != "nobody" {
		t.Fatalf("write with an addressless replica: %v %q failed=%v", r.Errno, r.Message, r.Failed)
	}
}

func TestCorruptBlockReadsEIO(t *testing.T) {
	ss := startServers(t, 1)
	setChunk(t, ss, 0x1234, 2, 4*bs, time.Minute)
	if r := write(t, ss, &api.WriteRequest{Id: 0x1234, Version: 2, Data: pattern(3*bs, 1), Sync: true}); r.Errno != api.Errno_OK {
		t.Fatal(r.Message)
	}
	ds := ss[0].Store().(*DiskStore)
	path := ds.Path(Key{ID: 0x1234})
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	at := int64(dataOffset(4*bs)) + bs + 77 // in block 1
	f.ReadAt(b, at)
	b[0] ^= 0x10
	f.WriteAt(b, at)
	f.Close()

	r, _ := ss[0].c.Read(ctxT(t), &api.ReadRequest{Id: 0x1234, Version: 2, Offset: bs + 70, Length: 10})
	wantErrno(t, "read of a flipped byte", r.Errno, r.Message, api.Errno_EIO, "block 1")
	if !strings.Contains(r.Message, path) || !strings.Contains(r.Message, "0000000000001234") {
		t.Fatalf("message %q does not name the file and chunk", r.Message)
	}
	if len(r.Data) != 0 {
		t.Fatal("corrupt read returned data")
	}
	// Other blocks still read.
	r, _ = ss[0].c.Read(ctxT(t), &api.ReadRequest{Id: 0x1234, Version: 2, Offset: 2 * bs, Length: bs})
	if r.Errno != api.Errno_OK || !bytes.Equal(r.Data, pattern(3*bs, 1)[2*bs:]) {
		t.Fatalf("read of a good block: %v %s", r.Errno, r.Message)
	}
	// A partial overwrite of the bad block is refused rather than blessed
	// with a fresh checksum; a whole-block overwrite repairs it.
	wr := write(t, ss, &api.WriteRequest{Id: 0x1234, Version: 2, Offset: bs, Data: []byte("x")})
	wantErrno(t, "partial write over a bad block", wr.Errno, wr.Message, api.Errno_EIO, "block 1")
	if wr := write(t, ss, &api.WriteRequest{Id: 0x1234, Version: 2, Offset: bs, Data: pattern(bs, 5)}); wr.Errno != api.Errno_OK {
		t.Fatal(wr.Message)
	}
	if r, _ := ss[0].c.Read(ctxT(t), &api.ReadRequest{Id: 0x1234, Version: 2, Offset: bs, Length: bs}); !bytes.Equal(r.Data, pattern(bs, 5)) {
		t.Fatalf("read after repair: %v %s", r.Errno, r.Message)
	}
}

func TestRestartKeepsDataAndVersions(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, Config{})
	id := s.ID()
	ss := []*testServer{s}
	setChunk(t, ss, 1, 4, 2*bs, time.Minute)
	setChunk(t, ss, 2, 1, 2*bs, time.Minute)
	setChunk(t, ss, 2, 9, 2*bs, time.Minute)
	data := pattern(bs+99, 3)
	write(t, ss, &api.WriteRequest{Id: 1, Version: 4, Offset: 5, Data: data, Sync: true})
	s.Close()

	s2 := startServer(t, dir, Config{})
	if s2.ID() != id {
		t.Fatalf("id changed across restart: %s -> %s", id, s2.ID())
	}
	got := readAll(t, s2, 1, 4, 2*bs)
	if !bytes.Equal(got[5:], data) || !bytes.Equal(got[:5], make([]byte, 5)) {
		t.Fatal("data changed across restart")
	}
	list, _ := s2.Store().List()
	vers := map[uint64]uint64{}
	for _, in := range list {
		vers[in.ID] = in.Version
	}
	if len(vers) != 2 || vers[1] != 4 || vers[2] != 9 {
		t.Fatalf("versions after restart: %v", vers)
	}
	// The lease did not survive: a restarted server is not primary.
	r := write(t, []*testServer{s2}, &api.WriteRequest{Id: 1, Version: 4, Data: data})
	wantErrno(t, "write after restart", r.Errno, r.Message, api.Errno_EAGAIN, "not primary")
}

func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	startServer(t, dir, Config{})
	_, err := NewServer(Config{DataDir: dir, Listen: "127.0.0.1:0", Logger: quiet})
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("second server on %s: %v", dir, err)
	}
	want := fmt.Sprintf("data %s: already in use by another dfschunk (pid %d)", dir, os.Getpid())
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	// Also with an in-memory store, which leaves locking to the server.
	_, err = NewServer(Config{DataDir: dir, Listen: "127.0.0.1:0", Logger: quiet, Store: NewMemStore()})
	if !errors.As(err, &le) {
		t.Fatalf("second server with a MemStore: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	file := t.TempDir() + "/f"
	os.WriteFile(file, nil, 0o644)
	busy := startServer(t, t.TempDir(), Config{})
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "data"},
		{Config{DataDir: file}, "not a directory"},
		{Config{DataDir: file + "/sub"}, "not a directory"},
		{Config{DataDir: t.TempDir(), Listen: busy.Addr()}, "listen " + busy.Addr() + ": bind: address already in use"},
		{Config{DataDir: t.TempDir(), Listen: "nonsense"}, "listen nonsense"},
	} {
		tc.cfg.Logger = quiet
		s, err := NewServer(tc.cfg)
		if err == nil {
			s.Close()
			t.Fatalf("NewServer(%+v) succeeded", tc.cfg)
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("NewServer(%+v): %v, want a ConfigError containing %q", tc.cfg, err, tc.want)
		}
	}
}

func TestMemStoreServer(t *testing.T) {
	ss := []*testServer{
		startServer(t, t.TempDir(), Config{Store: NewMemStore()}),
		startServer(t, t.TempDir(), Config{Store: NewMemStore()}),
	}
	setChunk(t, ss, 3, 1, bs, time.Minute)
	if r := write(t, ss, &api.WriteRequest{Id: 3, Version: 1, Offset: 10, Data: []byte("mem")}); r.Errno != api.Errno_OK {
		t.Fatal(r.Message)
	}
	if got := readAll(t, ss[1], 3, 1, 100); string(got[10:]) != "mem" {
		t.Fatalf("got %q", got)
	}
}

// A vectored write lands on every replica as the same pieces written one
// by one would, and malformed ones are refused before anything changes.
func TestVectoredWrites(t *testing.T) {
	ss := startServers(t, 3)
	const id, size = 0x99, 1 << 20
	setChunk(t, ss, id, 2, size, time.Minute)
	want := make([]byte, 300_000)
	var exts []*api.Extent
	for i, off := range []int{0, 70_000, 65_530, 4096, 250_000, 70_010} { // overlapping, out of order
		p := bytes.Repeat([]byte{byte(i + 1)}, 5000+i*1000)
		exts = append(exts, &api.Extent{Offset: uint64(off), Data: p})
		copy(want[off:], p)
	}
	end := 0
	for _, e := range exts {
		end = max(end, int(e.Offset)+len(e.Data))
	}
	want = want[:end]
	if r := write(t, ss, &api.WriteRequest{Id: id, Version: 2, Extents: exts}); r.Errno != api.Errno_OK {
		t.Fatal(r.Message)
	}
	for _, s := range ss {
		if got := readAll(t, s, id, 2, end); !bytes.Equal(got, want) {
			t.Fatalf("replica %s differs after a vectored write", s.ID())
		}
	}
	for _, bad := range []*api.WriteRequest{
		{Id: id, Version: 2, Extents: exts, Data: []byte("x")},
		{Id: id, Version: 2, Extents: []*api.Extent{{Offset: size - 1, Data: []byte("xy")}}},
		{Id: id, Version: 2, Extents: []*api.Extent{{Data: make([]byte, api.MaxWrite)}, {Offset: 1, Data: []byte("z")}}},
	} {
		if r := write(t, ss, bad); r.Errno == api.Errno_OK {
			t.Errorf("malformed vectored write accepted: %d extents", len(bad.Extents))
		}
	}
	for _, s := range ss {
		if got := readAll(t, s, id, 2, end); !bytes.Equal(got, want) {
			t.Fatalf("replica %s changed by a refused write", s.ID())
		}
	}
}
