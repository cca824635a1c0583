package master

import (
	"bytes"
	"testing"
	"time"

	"dfs/api"
	"dfs/chunktoken"
)

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, chunktoken.SecretSize) }

// TestChunkKeyRotation applies key commands: the FSM keeps the current
// and the previous key, ignores a rotation of a key already replaced (two
// leaders proposing at once), refuses bad secrets, and a snapshot keeps
// the keys.
func TestChunkKeyRotation(t *testing.T) {
	h := newHarness(t)
	newKey := func(s []byte, newest uint64) *api.MutateResponse {
		return h.apply(&api.Command{NewChunkKey: &api.NewChunkKeyCmd{Secret: s, Newest: newest, SignFromNs: 77}})
	}
	ids := func() []uint64 {
		var out []uint64
		for _, k := range h.f.chunkKeys() {
			out = append(out, k.Id)
		}
		return out
	}
	if r := newKey(secret(1), 0); r.Errno != api.Errno_OK {
		t.Fatalf("first key: %v %s", r.Errno, r.Message)
	}
	first := h.f.chunkKeys()
	if len(first) != 1 || first[0].Id != 1 || first[0].CreatedNs != h.now || !bytes.Equal(first[0].Secret, secret(1)) {
		t.Fatalf("first key: %v", first)
	}
	if r := newKey(secret(2), 0); r.Errno != api.Errno_ESTALE {
		t.Fatalf("a second 'first' key: %v, want ESTALE", r.Errno)
	}
	if r := newKey(secret(2), 1); r.Errno != api.Errno_OK {
		t.Fatalf("rotation: %v %s", r.Errno, r.Message)
	}
	if r := newKey(secret(3), 1); r.Errno != api.Errno_ESTALE {
		t.Fatalf("rotating a replaced key: %v, want ESTALE", r.Errno)
	}
	if r := newKey([]byte("short"), 2); r.Errno != api.Errno_EINVAL {
		t.Fatalf("a 5-byte secret: %v, want EINVAL", r.Errno)
	}
	if r := newKey(secret(3), 2); r.Errno != api.Errno_OK {
		t.Fatalf("second rotation: %v %s", r.Errno, r.Message)
	}
	if got := ids(); len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("keys after two rotations: %v, want [2 3]", got)
	}
	if first[0].Id != 1 || len(first) != 1 {
		t.Fatalf("a key list handed out changed: %v", first)
	}
	g, _ := restored(t, h.f)
	want, got := h.f.chunkKeys(), g.chunkKeys()
	if len(got) != len(want) {
		t.Fatalf("restored keys %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Id != want[i].Id || !bytes.Equal(got[i].Secret, want[i].Secret) || got[i].SignFromNs != want[i].SignFromNs {
			t.Fatalf("restored key %d: %v, want %v", i, got[i], want[i])
		}
	}
	// A token the old FSM's keys sign checks with the restored ones.
	tok := chunktoken.Sign(chunktoken.SigningKey(want, time.Unix(0, 100)), 5, api.ChunkToken_READ, time.Unix(1000, 0))
	if err := chunktoken.Check(got, tok, 5, api.ChunkToken_READ, time.Unix(0, 200)); err != nil {
		t.Fatalf("token after restore: %v", err)
	}
}

func TestCheckChunkTokenTimes(t *testing.T) {
	for _, c := range []struct {
		life, rot time.Duration
		ok        bool
	}{
		{0, 0, true},
		{time.Minute, 2 * time.Minute, true},
		{time.Minute, 119 * time.Second, false},
		{20 * time.Hour, 0, false},
		{-time.Second, 0, false},
		{0, -time.Second, false},
	} {
		if err := CheckChunkTokenTimes(c.life, c.rot); (err == nil) != c.ok {
			t.Errorf("CheckChunkTokenTimes(%v, %v) = %v", c.life, c.rot, err)
		}
	}
}
