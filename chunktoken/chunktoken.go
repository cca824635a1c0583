// Package chunktoken signs and checks chunk tokens, the capabilities that
// let a client use a chunk on its chunkservers (as HDFS block tokens do).
// The master signs a token, for one chunk, an access level and a short
// time, with a cluster key it keeps in Raft; chunkservers, which learn the
// keys from heartbeat answers, check it before a call has any effect.
// Chunkservers sign tokens of their own only for the calls they make to
// each other on behalf of a call they checked (forwarded writes, repair
// copies).
package chunktoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"dfs/api"
)

// SecretSize is the length of a key's secret.
const SecretSize = 32

// mac is HMAC-SHA256 under key over the token's fields, in a fixed
// binary form with a version tag.
func mac(key *api.ChunkKey, chunk uint64, access api.ChunkToken_Access, expiry int64) []byte {
	var msg [len("dfs-chunk-token-1") + 8 + 8 + 1 + 8]byte
	n := copy(msg[:], "dfs-chunk-token-1")
	binary.BigEndian.PutUint64(msg[n:], key.Id)
	binary.BigEndian.PutUint64(msg[n+8:], chunk)
	msg[n+16] = byte(access)
	binary.BigEndian.PutUint64(msg[n+17:], uint64(expiry))
	h := hmac.New(sha256.New, key.Secret)
	h.Write(msg[:])
	return h.Sum(nil)
}

// Sign returns a token for chunk with access, valid until expiry.
func Sign(key *api.ChunkKey, chunk uint64, access api.ChunkToken_Access, expiry time.Time) *api.ChunkToken {
	e := expiry.UnixNano()
	return &api.ChunkToken{ChunkId: chunk, Access: access, ExpiryNs: e, KeyId: key.Id, Mac: mac(key, chunk, access, e)}
}

// SigningKey picks the key to sign with at now: the newest whose
// sign_from time has come, or else the oldest (the only one, for a new
// cluster). nil if there are none.
func SigningKey(keys []*api.ChunkKey, now time.Time) *api.ChunkKey {
	var ready, oldest *api.ChunkKey
	for _, k := range keys {
		if k.SignFromNs <= now.UnixNano() && (ready == nil || k.Id > ready.Id) {
			ready = k
		}
		if oldest == nil || k.Id < oldest.Id {
			oldest = k
		}
	}
	if ready != nil {
		return ready
	}
	return oldest
}

// Check reports whether t lets its bearer use chunk with access need at
// now, under one of keys. The error wraps EACCES for a token that is
// missing, for another chunk, of a lesser access or forged; EKEYEXPIRED
// for an expired one (the bearer should ask the master for another); and
// ENOKEY when keys holds none, or not the token's (the checker has not
// yet heard of it from the master: retry).
func Check(keys []*api.ChunkKey, t *api.ChunkToken, chunk uint64, need api.ChunkToken_Access, now time.Time) error {
	switch {
	case t == nil:
		return fmt.Errorf("chunk %d: no chunk token: %w", chunk, api.Errno_EACCES)
	case t.ChunkId != chunk:
		return fmt.Errorf("chunk %d: the token is for chunk %d: %w", chunk, t.ChunkId, api.Errno_EACCES)
	case t.Access < need:
		return fmt.Errorf("chunk %d: the token grants %v, the call needs %v: %w", chunk, t.Access, need, api.Errno_EACCES)
	case now.UnixNano() >= t.ExpiryNs:
		return fmt.Errorf("chunk %d: the token expired %v ago: %w", chunk, now.Sub(time.Unix(0, t.ExpiryNs)).Round(time.Millisecond), api.Errno_EKEYEXPIRED)
	case len(keys) == 0:
		return fmt.Errorf("chunk %d: no chunk keys from the master yet: %w", chunk, api.Errno_ENOKEY)
	}
	for _, k := range keys {
		if k.Id != t.KeyId {
			continue
		}
		if !hmac.Equal(t.Mac, mac(k, t.ChunkId, t.Access, t.ExpiryNs)) {
			return fmt.Errorf("chunk %d: the token's signature is not valid: %w", chunk, api.Errno_EACCES)
		}
		return nil
	}
	return fmt.Errorf("chunk %d: the token is signed with key %d, which this server does not hold: %w", chunk, t.KeyId, api.Errno_ENOKEY)
}

// Keyring holds the keys a chunkserver checks tokens with, replaced
// whole whenever the master sends them; it is safe for concurrent use
// and costs a check no lock.
type Keyring struct {
	keys atomic.Pointer[[]*api.ChunkKey]
}

// Set replaces the keys. The caller must not change them afterwards.
func (r *Keyring) Set(keys []*api.ChunkKey) { r.keys.Store(&keys) }

// Keys returns the current keys (nil before the first Set).
func (r *Keyring) Keys() []*api.ChunkKey {
	if p := r.keys.Load(); p != nil {
		return *p
	}
	return nil
}

// Check is the package's Check with the ring's keys at the current time.
func (r *Keyring) Check(t *api.ChunkToken, chunk uint64, need api.ChunkToken_Access) error {
	return Check(r.Keys(), t, chunk, need, time.Now())
}

// Sign signs a token valid for lifetime from now with the ring's signing
// key; nil if it holds none (a call made with it is then refused).
func (r *Keyring) Sign(chunk uint64, access api.ChunkToken_Access, lifetime time.Duration) *api.ChunkToken {
	now := time.Now()
	k := SigningKey(r.Keys(), now)
	if k == nil {
		return nil
	}
	return Sign(k, chunk, access, now.Add(lifetime))
}
