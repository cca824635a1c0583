package chunktoken

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"dfs/api"

	"google.golang.org/protobuf/proto"
)

func key(id uint64, fill byte, signFrom time.Time) *api.ChunkKey {
	return &api.ChunkKey{Id: id, Secret: bytes.Repeat([]byte{fill}, SecretSize), SignFromNs: signFrom.UnixNano()}
}

func TestCheck(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k1 := key(1, 0xa1, time.Unix(0, 0))
	k2 := key(2, 0xb2, now.Add(-time.Minute))
	keys := []*api.ChunkKey{k1, k2}
	good := Sign(k2, 42, api.ChunkToken_WRITE, now.Add(time.Minute))
	tamper := func(f func(*api.ChunkToken)) *api.ChunkToken {
		c := proto.Clone(good).(*api.ChunkToken)
		f(c)
		return c
	}
	cases := []struct {
		name  string
		keys  []*api.ChunkKey
		tok   *api.ChunkToken
		chunk uint64
		need  api.ChunkToken_Access
		want  error // nil: accepted
	}{
		{"valid write token for a write", keys, good, 42, api.ChunkToken_WRITE, nil},
		{"write token for a read", keys, good, 42, api.ChunkToken_READ, nil},
		{"previous key still accepted", keys, Sign(k1, 42, api.ChunkToken_READ, now.Add(time.Second)), 42, api.ChunkToken_READ, nil},
		{"master token for anything", keys, Sign(k1, 42, api.ChunkToken_MASTER, now.Add(time.Second)), 42, api.ChunkToken_MASTER, nil},
		{"no token", keys, nil, 42, api.ChunkToken_READ, api.Errno_EACCES},
		{"wrong chunk", keys, good, 43, api.ChunkToken_WRITE, api.Errno_EACCES},
		{"read token for a write", keys, Sign(k2, 42, api.ChunkToken_READ, now.Add(time.Minute)), 42, api.ChunkToken_WRITE, api.Errno_EACCES},
		{"write token for a master command", keys, good, 42, api.ChunkToken_MASTER, api.Errno_EACCES},
		{"expired", keys, Sign(k2, 42, api.ChunkToken_WRITE, now), 42, api.ChunkToken_WRITE, api.Errno_EKEYEXPIRED},
		{"bad MAC", keys, tamper(func(c *api.ChunkToken) { c.Mac[0] ^= 1 }), 42, api.ChunkToken_WRITE, api.Errno_EACCES},
		{"empty MAC", keys, tamper(func(c *api.ChunkToken) { c.Mac = nil }), 42, api.ChunkToken_WRITE, api.Errno_EACCES},
		{"chunk changed after signing", keys, tamper(func(c *api.ChunkToken) { c.ChunkId = 43 }), 43, api.ChunkToken_WRITE, api.Errno_EACCES},
		{"access raised after signing", keys, tamper(func(c *api.ChunkToken) { c.Access = api.ChunkToken_MASTER }), 42, api.ChunkToken_MASTER, api.Errno_EACCES},
		{"expiry extended after signing", keys, tamper(func(c *api.ChunkToken) { c.ExpiryNs += int64(time.Hour) }), 42, api.ChunkToken_WRITE, api.Errno_EACCES},
		{"key id changed after signing", keys, tamper(func(c *api.ChunkToken) { c.KeyId = 1 }), 42, api.ChunkToken_WRITE, api.Errno_EACCES},
		{"signed with another secret", keys, Sign(key(2, 0xff, now), 42, api.ChunkToken_WRITE, now.Add(time.Minute)), 42, api.ChunkToken_WRITE, api.Errno_EACCES},
		{"no keys yet", nil, good, 42, api.ChunkToken_WRITE, api.Errno_ENOKEY},
		{"key not yet known", []*api.ChunkKey{k1}, good, 42, api.ChunkToken_WRITE, api.Errno_ENOKEY},
		{"key rotated out", []*api.ChunkKey{k2, key(3, 0xc3, now)}, Sign(k1, 42, api.ChunkToken_READ, now.Add(time.Second)), 42, api.ChunkToken_READ, api.Errno_ENOKEY},
	}
	for _, c := range cases {
		err := Check(c.keys, c.tok, c.chunk, c.need, now)
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestSigningKey(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k1 := key(1, 1, time.Unix(0, 0))
	k2 := key(2, 2, now.Add(time.Second)) // not yet
	k3 := key(3, 3, now)                  // from now on
	for _, c := range []struct {
		keys []*api.ChunkKey
		want uint64
	}{
		{nil, 0},
		{[]*api.ChunkKey{k1}, 1},
		{[]*api.ChunkKey{k1, k2}, 1}, // the new key waits for chunkservers to learn it
		{[]*api.ChunkKey{k2}, 2},     // the only key, even early
		{[]*api.ChunkKey{k2, k3}, 3}, // newest ready
		{[]*api.ChunkKey{k3, k1}, 3}, // order does not matter
		{[]*api.ChunkKey{k2, key(4, 4, now.Add(time.Hour))}, 2}, // none ready: the oldest
	} {
		got := SigningKey(c.keys, now)
		if got.GetId() != c.want {
			t.Errorf("SigningKey(%v) = key %d, want %d", ids(c.keys), got.GetId(), c.want)
		}
	}
}

func ids(keys []*api.ChunkKey) []uint64 {
	var out []uint64
	for _, k := range keys {
		out = append(out, k.Id)
	}
	return out
}

func TestKeyring(t *testing.T) {
	var r Keyring
	if tok := r.Sign(7, api.ChunkToken_READ, time.Minute); tok != nil {
		t.Fatalf("an empty ring signed %v", tok)
	}
	master := key(1, 9, time.Unix(0, 0))
	tok := Sign(master, 7, api.ChunkToken_READ, time.Now().Add(time.Minute))
	if err := r.Check(tok, 7, api.ChunkToken_READ); !errors.Is(err, api.Errno_ENOKEY) {
		t.Fatalf("empty ring: %v, want ENOKEY", err)
	}
	r.Set([]*api.ChunkKey{master})
	if err := r.Check(tok, 7, api.ChunkToken_READ); err != nil {
		t.Fatalf("a master's token refused: %v", err)
	}
	own := r.Sign(7, api.ChunkToken_WRITE, time.Minute)
	if err := Check([]*api.ChunkKey{master}, own, 7, api.ChunkToken_WRITE, time.Now()); err != nil {
		t.Fatalf("a ring's own token refused by a peer with the same keys: %v", err)
	}
}

func BenchmarkCheck(b *testing.B) {
	k := key(1, 1, time.Unix(0, 0))
	keys := []*api.ChunkKey{k}
	tok := Sign(k, 1, api.ChunkToken_WRITE, time.Now().Add(time.Hour))
	now := time.Now()
	for b.Loop() {
		if err := Check(keys, tok, 1, api.ChunkToken_WRITE, now); err != nil {
			b.Fatal(err)
		}
	}
}
