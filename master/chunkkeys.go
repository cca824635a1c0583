package master

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"dfs/api"
	"dfs/chunktoken"
)

// Chunk tokens (docs/operations.md, "Chunk tokens"). The keys live in the
// FSM, so every master signs with the same ones and a new leader goes on
// where the last one stopped: the current key and the one before it, so
// that tokens signed just before a rotation stay good until they expire.
// The leader creates the first key before it serves anything and
// replaces the current one every ChunkKeyRotation. A new key is used for
// signing only after a warm-up, once every chunkserver has heard of it
// through a heartbeat; until then the previous one signs.

// Defaults of Config.ChunkTokenLifetime and Config.ChunkKeyRotation.
const (
	DefaultChunkTokenLifetime = 10 * time.Minute
	DefaultChunkKeyRotation   = 24 * time.Hour
)

// CheckChunkTokenTimes checks a token lifetime and key rotation interval
// (0 meaning the default): a token must outlive neither of the two keys
// kept, so the rotation must be at least twice the lifetime.
func CheckChunkTokenTimes(lifetime, rotation time.Duration) error {
	switch {
	case lifetime < 0:
		return fmt.Errorf("-chunk-token-lifetime %v: must be positive", lifetime)
	case rotation < 0:
		return fmt.Errorf("-chunk-key-rotation %v: must be positive", rotation)
	}
	if lifetime == 0 {
		lifetime = DefaultChunkTokenLifetime
	}
	if rotation == 0 {
		rotation = DefaultChunkKeyRotation
	}
	if rotation < 2*lifetime {
		return fmt.Errorf("-chunk-key-rotation %v is less than twice -chunk-token-lifetime %v: "+
			"a token must stay valid while its key is kept, which is until the second rotation after it", rotation, lifetime)
	}
	return nil
}

// keyWarmup is how long a new key waits before it signs: long enough for
// every chunkserver's heartbeat (1s by default), short against the
// rotation (at most a tenth, which CheckChunkTokenTimes's bound allows).
func keyWarmup(rotation time.Duration) time.Duration {
	return min(30*time.Second, rotation/10)
}

// chunkKeys returns the keys tokens may be signed with now, oldest
// first. The slice and the keys are never changed once stored.
func (f *FSM) chunkKeys() []*api.ChunkKey {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.keys
}

// newChunkKey applies a NewChunkKeyCmd.
func (f *FSM) newChunkKey(c *api.Command) *api.MutateResponse {
	op := c.NewChunkKey
	var newest uint64
	if n := len(f.keys); n > 0 {
		newest = f.keys[n-1].Id
	}
	if op.Newest != newest {
		return errResp(api.Errno_ESTALE, fmt.Sprintf("chunk key %d was replaced already (newest: %d)", op.Newest, newest))
	}
	if len(op.Secret) != chunktoken.SecretSize {
		return errResp(api.Errno_EINVAL, fmt.Sprintf("chunk key secret of %d bytes, want %d", len(op.Secret), chunktoken.SecretSize))
	}
	k := &api.ChunkKey{Id: newest + 1, Secret: op.Secret, CreatedNs: c.NowNs, SignFromNs: op.SignFromNs}
	keys := make([]*api.ChunkKey, 0, 2)
	if n := len(f.keys); n > 0 {
		keys = append(keys, f.keys[n-1])
	}
	f.keys = append(keys, k)
	return &api.MutateResponse{}
}

// checkChunkKeys verifies a snapshot's keys.
func checkChunkKeys(keys []*api.ChunkKey) error {
	if len(keys) > 2 {
		return fmt.Errorf("%d chunk keys, at most 2 are kept", len(keys))
	}
	for i, k := range keys {
		if len(k.Secret) != chunktoken.SecretSize || (i > 0 && k.Id <= keys[i-1].Id) {
			return fmt.Errorf("chunk key %d: malformed or out of order", k.Id)
		}
	}
	return nil
}

// rotateChunkKey creates the first chunk key, or replaces the current one
// once it is ChunkKeyRotation old. The leader runs it before it serves
// and then on every tick.
func (v *service) rotateChunkKey(ctx context.Context) error {
	keys := v.fsm.chunkKeys()
	now := time.Now()
	var newest *api.ChunkKey
	if n := len(keys); n > 0 {
		newest = keys[n-1]
		if now.Sub(time.Unix(0, newest.CreatedNs)) < v.cfg.ChunkKeyRotation {
			return nil
		}
	}
	secret := make([]byte, chunktoken.SecretSize)
	rand.Read(secret)
	op := &api.NewChunkKeyCmd{Secret: secret, Newest: newest.GetId()}
	if newest != nil {
		op.SignFromNs = now.Add(keyWarmup(v.cfg.ChunkKeyRotation)).UnixNano()
	}
	resp, err := v.propose(ctx, &api.Command{NowNs: now.UnixNano(), NewChunkKey: op})
	if err == nil && resp.Errno != api.Errno_OK {
		err = fmt.Errorf("%w: %s", resp.Errno, resp.Message)
	}
	if err != nil {
		return fmt.Errorf("creating a chunk key: %w", err)
	}
	v.srv.log.Info("new chunk key", "replaces", newest.GetId(), "sign_from", time.Unix(0, op.SignFromNs))
	return nil
}

// tokenSigner returns a function that signs tokens for chunks with access
// from now for the configured lifetime; its tokens are nil when there is
// no key yet (a leader answers nothing before it has one).
func (v *service) tokenSigner(access api.ChunkToken_Access) func(id uint64) *api.ChunkToken {
	now := time.Now()
	k := chunktoken.SigningKey(v.fsm.chunkKeys(), now)
	expiry := now.Add(v.cfg.ChunkTokenLifetime)
	return func(id uint64) *api.ChunkToken {
		if k == nil {
			return nil
		}
		return chunktoken.Sign(k, id, access, expiry)
	}
}

// chunkToken signs one token.
func (v *service) chunkToken(id uint64, access api.ChunkToken_Access) *api.ChunkToken {
	return v.tokenSigner(access)(id)
}
