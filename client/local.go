package client

import (
	"container/list"
	"context"
	"errors"
	"io"
	"io/fs"
	"sync"
	"time"

	"dfs/api"
	"dfs/chunk"
)

// localReads opens the chunk files of chunkservers on this machine and
// reads them directly (short-circuit reads, as HDFS does): no RPC, no
// copies through the chunkserver. Each chunkserver says once where its
// store is; a chunk file's header must name the chunk at the version the
// master gave or newer, and the checksums are verified as it would;
// any failure falls back to reading through the chunkserver, which also
// reports and repairs bad copies.
type localReads struct {
	bootID string // "" disables short-circuit reads

	mu     sync.Mutex
	remote map[string]bool   // chunkservers not on this machine (or refusing)
	dirs   map[string]string // chunkserver -> its chunk store directory
	files  map[localKey]*list.Element
	lru    list.List // of *localFile, most recently used first
}

type localKey struct {
	server  string
	id      uint64
	shard   uint32
	version uint64
}

type localFile struct {
	key localKey
	lc  *chunk.LocalChunk
}

// maxLocalFiles bounds the chunk files kept open.
const maxLocalFiles = 256

func newLocalReads(enabled bool) *localReads {
	l := &localReads{remote: map[string]bool{}, dirs: map[string]string{}, files: map[localKey]*list.Element{}}
	if enabled {
		l.bootID = chunk.BootID()
	}
	return l
}

// read fills dest from the chunk file of rep if rep is on this machine;
// ok is false if the caller must read through the chunkserver instead.
func (l *localReads) read(ctx context.Context, r replicated, rep *api.Replica, ch *api.Chunk, off uint64, dest []byte) (ok bool) {
	if l.bootID == "" {
		return false
	}
	k := localKey{rep.Server, ch.Id, rep.Shard, ch.Version}
	lc := l.open(ctx, r, rep, k, ch.Token)
	if lc == nil {
		l.mu.Lock()
		remote := l.remote[rep.Server]
		l.mu.Unlock()
		if remote {
			shortCircuit.WithLabelValues("remote").Inc()
		} else {
			shortCircuit.WithLabelValues("fallback").Inc()
		}
		return false
	}
	n, err := lc.ReadAt(dest, int64(off))
	if err != nil && !errors.Is(err, io.EOF) {
		l.drop(k)
		shortCircuit.WithLabelValues("fallback").Inc()
		return false
	}
	shortCircuit.WithLabelValues("local").Inc()
	shortCircuitBytes.Add(float64(n))
	clear(dest[n:])
	return true
}

func (l *localReads) open(ctx context.Context, r replicated, rep *api.Replica, k localKey, token *api.ChunkToken) *chunk.LocalChunk {
	l.mu.Lock()
	if e := l.files[k]; e != nil {
		l.lru.MoveToFront(e)
		l.mu.Unlock()
		return e.Value.(*localFile).lc
	}
	remote, dir := l.remote[rep.Server], l.dirs[rep.Server]
	l.mu.Unlock()
	if remote {
		return nil
	}
	ck := chunk.Key{ID: k.id, Shard: k.shard}
	if dir == "" {
		// Ask once per server where its store is.
		cs, err := r.chunkServer(rep.Addr)
		if err != nil {
			return nil
		}
		actx, cancel := context.WithTimeout(ctx, min(r.c.cfg.AttemptTimeout, 2*time.Second))
		resp, err := cs.LocalPath(actx, &api.LocalPathRequest{Id: k.id, Shard: k.shard, Version: k.version, Token: token})
		cancel()
		switch {
		case err != nil:
			return nil
		case resp.Errno == api.Errno_ENOTSUP || resp.Errno == api.Errno_OK && resp.BootId != l.bootID:
			l.markRemote(rep.Server)
			return nil
		case resp.Errno != api.Errno_OK || resp.StoreDir == "":
			return nil
		}
		dir = resp.StoreDir
		l.mu.Lock()
		l.dirs[rep.Server] = dir
		l.mu.Unlock()
	}
	lc, err := chunk.OpenLocal(chunk.ChunkFile(dir, ck), ck, k.version)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) { // EACCES or EPERM
			// Same machine, but files this process may not read.
			l.markRemote(rep.Server)
		}
		// Missing (another mount namespace sees other files, or the
		// chunk moved), stale or unreadable: the chunkserver answers.
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.files[k]; e != nil { // opened meanwhile by another reader
		lc.Close()
		return e.Value.(*localFile).lc
	}
	l.files[k] = l.lru.PushFront(&localFile{k, lc})
	for l.lru.Len() > maxLocalFiles {
		old := l.lru.Back().Value.(*localFile)
		l.removeLocked(old.key)
	}
	return lc
}

// mayRead says whether read could succeed for server's chunks, so that
// callers can skip preparing for it.
func (l *localReads) mayRead(server string) bool {
	if l.bootID == "" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.remote[server]
}

func (l *localReads) markRemote(server string) {
	l.mu.Lock()
	l.remote[server] = true
	l.mu.Unlock()
}

func (l *localReads) drop(k localKey) {
	l.mu.Lock()
	l.removeLocked(k)
	l.mu.Unlock()
}

// removeLocked forgets and closes k's file. A reader still using it gets
// an error and reads through the chunkserver instead.
func (l *localReads) removeLocked(k localKey) {
	if e := l.files[k]; e != nil {
		l.lru.Remove(e)
		delete(l.files, k)
		e.Value.(*localFile).lc.Close()
	}
}

// close closes every open chunk file.
func (l *localReads) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.files {
		l.removeLocked(k)
	}
}
