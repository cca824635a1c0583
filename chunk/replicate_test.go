package chunk

import (
	"bytes"
	"os"
	"testing"
	"time"

	"dfs/api"
)

func TestReplicate(t *testing.T) {
	ss := startServers(t, 2)
	src, dst := ss[0], ss[1]
	const id, size = 0x77, 16 << 20
	data := make([]byte, api.MaxWrite+3*bs+5) // more than one Read's worth
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	setChunk(t, ss[:1], id, 3, size, time.Minute)
	if r := write(t, ss[:1], &api.WriteRequest{Id: id, Version: 3, Data: data[:api.MaxWrite]}); r.Errno != api.Errno_OK {
		t.Fatal(r.Message)
	}
	if r := write(t, ss[:1], &api.WriteRequest{Id: id, Version: 3, Offset: api.MaxWrite, Data: data[api.MaxWrite:]}); r.Errno != api.Errno_OK {
		t.Fatal(r.Message)
	}
	source := &api.Replica{Server: src.ID(), Addr: src.Addr()}
	// A stale copy on the target is replaced.
	setChunk(t, ss[1:], id, 1, size, 0)
	r, err := dst.c.Replicate(ctxT(t), &api.ReplicateRequest{Id: id, Version: 3, ChunkSize: size, Source: source})
	if err != nil || r.Errno != api.Errno_OK || r.Bytes != uint64(len(data)) {
		t.Fatalf("Replicate: %v %v %s, %d bytes", err, r.GetErrno(), r.GetMessage(), r.GetBytes())
	}
	var got []byte
	for len(got) < len(data) {
		r, err := dst.c.Read(ctxT(t), &api.ReadRequest{Id: id, Version: 3, Offset: uint64(len(got)), Length: api.MaxWrite})
		if err != nil || r.Errno != api.Errno_OK || len(r.Data) == 0 {
			t.Fatalf("reading the copy at %d: %v %v %s", len(got), err, r.GetErrno(), r.GetMessage())
		}
		got = append(got, r.Data...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the copy differs from the source")
	}
	if info, err := dst.Store().Stat(Key{ID: id}); err != nil || info.Version != 3 || info.Length != uint64(len(data)) {
		t.Fatalf("copy: %+v %v", info, err)
	}
	// Asking for a version the source does not have fails and leaves no
	// copy behind.
	r, _ = dst.c.Replicate(ctxT(t), &api.ReplicateRequest{Id: id, Version: 4, ChunkSize: size, Source: source})
	wantErrno(t, "replicate of a newer version", r.Errno, r.Message, api.Errno_ESTALE, "version")
	if _, err := dst.Store().Stat(Key{ID: id}); err == nil {
		t.Fatal("a failed copy left a chunk behind")
	}
	r, _ = dst.c.Replicate(ctxT(t), &api.ReplicateRequest{Id: id, Version: 3})
	wantErrno(t, "replicate without a source", r.Errno, r.Message, api.Errno_EINVAL, "source")
}

func TestScrubberReportsCorruption(t *testing.T) {
	s := startServer(t, t.TempDir(), Config{ScrubRate: 1 << 30, ScrubPause: 20 * time.Millisecond})
	ss := []*testServer{s}
	setChunk(t, ss, 0x99, 5, 4*bs, time.Minute)
	if r := write(t, ss, &api.WriteRequest{Id: 0x99, Version: 5, Data: pattern(3*bs, 2), Sync: true}); r.Errno != api.Errno_OK {
		t.Fatal(r.Message)
	}
	time.Sleep(100 * time.Millisecond) // a few clean passes
	if got := s.corruptReports(); len(got) != 0 {
		t.Fatalf("clean chunk reported corrupt: %v", got)
	}
	path := s.Store().(*DiskStore).Path(Key{ID: 0x99})
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xee}, int64(dataOffset(4*bs))+2*bs+1)
	f.Close()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.corruptReports()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the scrubber did not find the flipped byte")
		}
		time.Sleep(20 * time.Millisecond)
	}
	req, err := s.heartbeatRequest(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Corrupt) != 1 || req.Corrupt[0].Id != 0x99 || req.Corrupt[0].Version != 5 {
		t.Fatalf("heartbeat corrupt reports: %v", req.Corrupt)
	}
	// Once the master has it deleted, the report stops.
	s.applyDeletes(ctxT(t), []*api.ChunkReport{{Id: 0x99, Version: 5}})
	if got := s.corruptReports(); len(got) != 0 {
		t.Fatalf("deleted chunk still reported: %v", got)
	}
}

func TestFullServerRefusesNewChunks(t *testing.T) {
	s := startServer(t, t.TempDir(), Config{Capacity: 2 * bs})
	r, err := s.c.SetChunk(ctxT(t), &api.SetChunkRequest{Id: 1, Version: 1, ChunkSize: 4 * bs})
	if err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "new chunk on a full server", r.Errno, r.Message, api.Errno_ENOSPC, "free")
	if _, err := s.Store().Stat(Key{ID: 1}); err == nil {
		t.Fatal("a refused chunk was created")
	}
}
