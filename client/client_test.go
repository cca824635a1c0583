package client_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"dfs/api"
	"dfs/client"
	"dfs/client/clienttest"
)

func start(t *testing.T, masters, servers int) (*clienttest.Cluster, *client.Client) {
	t.Helper()
	cl, err := clienttest.Start(masters, servers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{Masters: cl.Masters, Name: t.Name(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return cl, c
}

func TestFollowsLeaderHint(t *testing.T) {
	cl, c := start(t, 3, 1)
	ctx := context.Background()
	cl.SetLeader(2)
	a, err := c.Mkdir(ctx, api.RootIno, "d", 0755)
	if err != nil {
		t.Fatal(err)
	}
	if a.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Errorf("mode %o", a.Mode)
	}
	// An election: nobody leads for a while, then master 1 does.
	cl.SetLeader(-1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		cl.SetLeader(1)
	}()
	if _, err := c.Lookup(ctx, api.RootIno, "d"); err != nil {
		t.Fatalf("lookup across election: %v", err)
	}
}

func TestRetryReusesSeq(t *testing.T) {
	cl, c := start(t, 3, 1)
	ctx := context.Background()
	before := cl.Applied()
	// The leader commits the create, then its answer is lost.
	cl.DropReplies(1)
	if _, err := c.Create(ctx, api.RootIno, "f", syscall.S_IFREG|0644, 0, true, false); err != nil {
		t.Fatalf("exclusive create retried after a lost reply: %v", err)
	}
	if got := cl.Applied() - before; got != 1 {
		t.Errorf("create applied %d times", got)
	}
	// A rename retried must not answer ENOENT.
	cl.DropReplies(1)
	if err := c.Rename(ctx, api.RootIno, "f", api.RootIno, "g", 0); err != nil {
		t.Fatalf("rename retried: %v", err)
	}
	if _, err := c.Lookup(ctx, api.RootIno, "g"); err != nil {
		t.Fatal(err)
	}
	// Errnos come back as errnos.
	_, err := c.Create(ctx, api.RootIno, "g", syscall.S_IFREG|0644, 0, true, false)
	if !errors.Is(err, syscall.EEXIST) {
		t.Errorf("exclusive create of existing: %v, want EEXIST", err)
	}
}

func TestSessionReopenedAfterExpiry(t *testing.T) {
	cl, err := clienttest.Start(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{Masters: cl.Masters, SessionTTL: 150 * time.Millisecond, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	old := c.Session()
	cl.ExpireSessions()
	deadline := time.Now().Add(5 * time.Second)
	for c.Session() == old && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if c.Session() == old {
		t.Fatal("no new session after expiry")
	}
	if _, err := c.Mkdir(ctx, api.RootIno, "x", 0755); err != nil {
		t.Fatal(err)
	}
}

func newFile(t *testing.T, c *client.Client, name, layout string) *client.File {
	t.Helper()
	ctx := context.Background()
	if layout != "" {
		if err := c.SetXattr(ctx, api.RootIno, "dfs.layout", []byte(layout), 0); err != nil {
			t.Fatal(err)
		}
	}
	a, err := c.Create(ctx, api.RootIno, name, syscall.S_IFREG|0644, 0, true, true)
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.OpenFile(a)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestWriteReadAcrossChunks(t *testing.T) {
	cl, c := start(t, 1, 3)
	ctx := context.Background()
	const cs = 64 << 10
	f := newFile(t, c, "f", "replicated:2,chunk=65536")
	data := make([]byte, 3*cs+1234)
	for i := range data {
		data[i] = byte(rand.N(256))
	}
	off := int64(cs - 100) // straddles chunk boundaries
	if err := f.WriteAt(ctx, data, off); err != nil {
		t.Fatal(err)
	}
	a, err := f.CommitWrite(ctx, uint64(off)+uint64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != uint64(off)+uint64(len(data)) {
		t.Errorf("size %d", a.Size)
	}
	got := make([]byte, a.Size+100)
	n, err := f.ReadAt(ctx, got, 0, a.Size)
	if err != nil {
		t.Fatal(err)
	}
	if n != int(a.Size) {
		t.Fatalf("read %d, want %d", n, a.Size)
	}
	if !bytes.Equal(got[:off], make([]byte, off)) {
		t.Error("hole before the data does not read as zeros")
	}
	if !bytes.Equal(got[off:n], data) {
		t.Error("data differs")
	}
	// Chunk 0 holds the last 100 bytes of its range, on both replicas.
	chunks, _, err := c.GetChunks(ctx, f.Ino(), 0, 10)
	if err != nil || len(chunks) != 5 {
		t.Fatalf("chunks %d, %v", len(chunks), err)
	}
	for _, r := range chunks[0].Replicas {
		d := cl.ChunkData(r.Server, chunks[0].Id)
		if len(d) != cs || !bytes.Equal(d[cs-100:], data[:100]) {
			t.Errorf("replica %s of chunk 0 holds %d bytes", r.Server, len(d))
		}
	}
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if cl.Calls("Sync") != 5 {
		t.Errorf("%d syncs, want one per chunk", cl.Calls("Sync"))
	}
}

func TestWriteRenewsLease(t *testing.T) {
	cl, c := start(t, 1, 2)
	ctx := context.Background()
	f := newFile(t, c, "f", "")
	if err := f.WriteAt(ctx, []byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	cl.ExpireLeases()
	if err := f.WriteAt(ctx, []byte("world"), 5); err != nil {
		t.Fatalf("write after lease expiry: %v", err)
	}
	if _, err := f.CommitWrite(ctx, 10); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := f.ReadAt(ctx, buf, 0, 10); err != nil || string(buf) != "helloworld" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

func TestTruncateZeroesTail(t *testing.T) {
	_, c := start(t, 1, 1)
	ctx := context.Background()
	f := newFile(t, c, "f", "replicated:1,chunk=65536")
	data := bytes.Repeat([]byte("x"), 100000)
	if err := f.WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.CommitWrite(ctx, uint64(len(data))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Truncate(ctx, 10); err != nil {
		t.Fatal(err)
	}
	a, err := f.Truncate(ctx, 100000)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, a.Size)
	if _, err := f.ReadAt(ctx, buf, 0, a.Size); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte("x"), 10), make([]byte, 100000-10)...)
	if !bytes.Equal(buf, want) {
		t.Error("bytes beyond a shrinking truncate came back")
	}
	// Punching a hole reads as zeros, size unchanged.
	if err := f.WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Zero(ctx, 5, 70000); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(ctx, buf, 0, a.Size); err != nil {
		t.Fatal(err)
	}
	want = append(append(bytes.Repeat([]byte("x"), 5), make([]byte, 70000)...), bytes.Repeat([]byte("x"), 100000-70005)...)
	if !bytes.Equal(buf, want) {
		t.Error("punched hole does not read as zeros")
	}
}
