package chunk

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"dfs/api"
	"dfs/chunktoken"
)

// TestTokensRefused sends every call a client could make with tokens
// that do not grant it, straight to the servers, and checks that each is
// refused with the errno a client acts on and that no chunk changed.
func TestTokensRefused(t *testing.T) {
	ss := startServers(t, 3)
	const id, other = 21, 22
	bs := uint64(api.BlockSize)
	setChunk(t, ss, id, 4, 4*bs, time.Minute)
	setChunk(t, ss, other, 1, 4*bs, time.Minute)
	data := pattern(int(2*bs), 3)
	if r := write(t, ss, &api.WriteRequest{Id: id, Version: 4, Data: data, Sync: true}); r.Errno != api.Errno_OK {
		t.Fatalf("write: %v %s", r.Errno, r.Message)
	}
	key := testKeys[0]
	later := time.Now().Add(time.Hour)
	sign := func(chunk uint64, a api.ChunkToken_Access, expiry time.Time) *api.ChunkToken {
		return chunktoken.Sign(key, chunk, a, expiry)
	}
	forged := sign(id, api.ChunkToken_MASTER, later)
	forged.Mac[3] ^= 0x40
	otherKey := chunktoken.Sign(&api.ChunkKey{Id: 1, Secret: bytes.Repeat([]byte{8}, chunktoken.SecretSize)}, id, api.ChunkToken_MASTER, later)
	tokens := []struct {
		name  string
		tok   *api.ChunkToken
		write bool // the token is not enough for writes only
		errno api.Errno
	}{
		{"no token", nil, false, api.Errno_EACCES},
		{"forged", forged, false, api.Errno_EACCES},
		{"another secret", otherKey, false, api.Errno_EACCES},
		{"expired", sign(id, api.ChunkToken_MASTER, time.Now().Add(-time.Second)), false, api.Errno_EKEYEXPIRED},
		{"another chunk", sign(other, api.ChunkToken_MASTER, later), false, api.Errno_EACCES},
		{"unknown key", chunktoken.Sign(&api.ChunkKey{Id: 9, Secret: key.Secret}, id, api.ChunkToken_MASTER, later), false, api.Errno_ENOKEY},
		{"read token", sign(id, api.ChunkToken_READ, later), true, api.Errno_EACCES},
	}
	raw := make([]api.ChunkServerClient, len(ss))
	for i, s := range ss {
		raw[i] = dialTest(t, s.Addr())
	}
	zero := make([]byte, bs)
	for _, tc := range tokens {
		calls := []struct {
			name     string
			mutating bool
			call     func() (api.Errno, error)
		}{
			{"Write", true, func() (api.Errno, error) {
				r, err := raw[0].Write(ctxT(t), &api.WriteRequest{Id: id, Version: 4, Data: zero, Forward: replicas(ss), Token: tc.tok})
				return r.GetErrno(), err
			}},
			{"Write (vectored)", true, func() (api.Errno, error) {
				r, err := raw[0].Write(ctxT(t), &api.WriteRequest{Id: id, Version: 4, Extents: []*api.Extent{{Offset: 10, Data: zero[:10]}}, Forward: replicas(ss), Token: tc.tok})
				return r.GetErrno(), err
			}},
			{"Write (truncate)", true, func() (api.Errno, error) {
				r, err := raw[0].Write(ctxT(t), &api.WriteRequest{Id: id, Version: 4, ZeroLength: 4 * bs, Forward: replicas(ss), Token: tc.tok})
				return r.GetErrno(), err
			}},
			{"Write (forwarded to a replica)", true, func() (api.Errno, error) {
				r, err := raw[1].Write(ctxT(t), &api.WriteRequest{Id: id, Version: 4, Data: zero, Forwarded: true, Token: tc.tok})
				return r.GetErrno(), err
			}},
			{"SetChunk", true, func() (api.Errno, error) {
				r, err := raw[1].SetChunk(ctxT(t), &api.SetChunkRequest{Id: id, Version: 9, ChunkSize: 4 * bs, Primary: ss[1].ID(), LeaseNs: int64(time.Minute), Token: tc.tok})
				return r.GetErrno(), err
			}},
			{"Replicate", true, func() (api.Errno, error) {
				r, err := raw[2].Replicate(ctxT(t), &api.ReplicateRequest{Id: id, Version: 4, ChunkSize: 4 * bs,
					Source: &api.Replica{Server: ss[0].ID(), Addr: ss[0].Addr()}, Token: tc.tok})
				return r.GetErrno(), err
			}},
			{"Read", false, func() (api.Errno, error) {
				r, err := raw[0].Read(ctxT(t), &api.ReadRequest{Id: id, Version: 4, Length: bs, Token: tc.tok})
				if len(r.GetData()) > 0 {
					t.Errorf("%s: Read refused but answered %d bytes", tc.name, len(r.Data))
				}
				return r.GetErrno(), err
			}},
			{"Sync", false, func() (api.Errno, error) {
				r, err := raw[0].Sync(ctxT(t), &api.SyncRequest{Id: id, Forward: replicas(ss), Token: tc.tok})
				return r.GetErrno(), err
			}},
			{"LocalPath", false, func() (api.Errno, error) {
				r, err := raw[0].LocalPath(ctxT(t), &api.LocalPathRequest{Id: id, Version: 4, Token: tc.tok})
				if r.GetStoreDir() != "" || r.GetPath() != "" {
					t.Errorf("%s: LocalPath refused but named %q %q", tc.name, r.StoreDir, r.Path)
				}
				return r.GetErrno(), err
			}},
		}
		for _, c := range calls {
			if tc.write && !c.mutating {
				continue
			}
			errno, err := c.call()
			if err != nil {
				t.Fatalf("%s with %s token: %v", c.name, tc.name, err)
			}
			if errno != tc.errno {
				t.Errorf("%s with %s token: answered %v, want %v", c.name, tc.name, errno, tc.errno)
			}
		}
	}
	for _, s := range ss {
		for _, want := range []struct {
			id, version uint64
			data        []byte
		}{{id, 4, data}, {other, 1, nil}} {
			k := Key{want.id, 0}
			info, err := s.store.Stat(k)
			if err != nil || info.Version != want.version || info.Length != uint64(len(want.data)) {
				t.Errorf("%s %v after refused calls: %+v %v, want version %d, %d bytes", s.ID(), k, info, err, want.version, len(want.data))
				continue
			}
			got := make([]byte, len(want.data))
			if _, err := s.store.ReadAt(k, got, 0); err != nil || !bytes.Equal(got, want.data) {
				t.Errorf("%s %v: data changed by refused calls (%v)", s.ID(), k, err)
			}
		}
	}
	// The same calls with good tokens work, through the same raw client.
	r, err := raw[0].Read(ctxT(t), &api.ReadRequest{Id: id, Version: 4, Length: 2 * bs, Token: sign(id, api.ChunkToken_READ, later)})
	if err != nil || r.Errno != api.Errno_OK || !bytes.Equal(r.Data, data) {
		t.Fatalf("read with a good token: %v %v %s", err, r.GetErrno(), r.GetMessage())
	}
	w, err := raw[0].Write(ctxT(t), &api.WriteRequest{Id: id, Version: 4, Data: []byte("ok"), Forward: replicas(ss), Token: sign(id, api.ChunkToken_WRITE, later)})
	if err != nil || w.Errno != api.Errno_OK {
		t.Fatalf("write with a good token (forwarded with the primary's own): %v %v %s", err, w.GetErrno(), w.GetMessage())
	}
}

// TestTokensNoKeys checks that a server that has not heard from a master
// refuses everything with ENOKEY, which clients retry.
func TestTokensNoKeys(t *testing.T) {
	s := startServer(t, t.TempDir(), Config{})
	s.keys.Set(nil)
	tok := chunktoken.Sign(testKeys[0], 1, api.ChunkToken_MASTER, time.Now().Add(time.Hour))
	r, err := s.c.SetChunk(ctxT(t), &api.SetChunkRequest{Id: 1, Version: 1, ChunkSize: api.BlockSize, Token: tok})
	if err != nil || r.Errno != api.Errno_ENOKEY {
		t.Fatalf("SetChunk without keys: %v %v %s, want ENOKEY", err, r.GetErrno(), r.GetMessage())
	}
	if _, err := s.store.Stat(Key{1, 0}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetChunk without keys created the chunk: %v", err)
	}
}
