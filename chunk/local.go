package chunk

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"dfs/api"
)

// BootID is the running kernel's boot id: two processes that see the same
// one run on the same machine and can share files.
func BootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// LocalChunk reads the chunk file of a chunkserver on the same machine
// directly, without the chunkserver (short-circuit reads, as in HDFS),
// verifying every block's checksum as the chunkserver does. A read that
// races with the chunkserver rewriting a block may see new data beside an
// old checksum: callers treat any error as "ask the chunkserver".
type LocalChunk struct {
	c diskChunk
}

// OpenLocal opens the chunk file at path, which must hold chunk k at
// version or newer.
func OpenLocal(path string, k Key, version uint64) (*LocalChunk, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	l := &LocalChunk{c: diskChunk{key: k, path: path, f: f}}
	if err := l.c.loadHeaderFrom(f); err != nil {
		f.Close()
		return nil, err
	}
	if l.c.hdr.version < version {
		f.Close()
		return nil, fmt.Errorf("%v: %s holds version %d, older than %d: %w", k, path, l.c.hdr.version, version, ErrStale)
	}
	return l, nil
}

// ReadAt fills p from off as the chunkserver's Read would: it returns the
// bytes the chunk holds there (fewer at its end, with io.EOF).
func (l *LocalChunk) ReadAt(p []byte, off int64) (int, error) {
	st, err := l.c.f.Stat()
	if err != nil {
		return 0, err
	}
	n, err := l.c.readAt(p, off, st.Size()-int64(l.c.hdr.dataOff))
	if err == nil && n < int64(len(p)) {
		err = io.EOF
	}
	return int(n), err
}

// Close closes the file.
func (l *LocalChunk) Close() error { return l.c.f.Close() }

// pather is a Store whose chunks are files a local client may read.
type pather interface {
	Dir() string
}

// LocalPath tells a client where a chunk's file is, for short-circuit
// reads; the client checks the boot id to know it shares the machine.
func (s *Server) LocalPath(ctx context.Context, req *api.LocalPathRequest) (*api.LocalPathResponse, error) {
	k := Key{req.Id, req.Shard}
	ps, ok := s.store.(pather)
	if !ok || s.bootID == "" {
		return &api.LocalPathResponse{Errno: api.Errno_ENOTSUP, Message: "chunks are not in local files"}, nil
	}
	err := s.authorize("LocalPath", req.Token, req.Id, api.ChunkToken_READ)
	if err == nil {
		_, err = s.readable(k, req.Version)
	}
	var dir string
	if err == nil {
		dir, err = filepath.Abs(ps.Dir())
	}
	if err != nil {
		errno, msg := answer(err)
		return &api.LocalPathResponse{Errno: errno, Message: msg}, nil
	}
	return &api.LocalPathResponse{Path: ChunkFile(dir, k), BootId: s.bootID, StoreDir: dir}, nil
}
