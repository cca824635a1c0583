package chunk

import (
	"fmt"
	"io"
	"sync"

	"dfs/api"
)

// MemStore is a Store in memory, for tests and benchmarks. Blocks never
// written take no memory.
type MemStore struct {
	mu     sync.RWMutex
	chunks map[Key]*memChunk
}

var _ Store = (*MemStore)(nil)

type memChunk struct {
	version   uint64
	chunkSize uint64
	length    int64
	blocks    map[int64][]byte // block index -> api.BlockSize bytes
}

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore { return &MemStore{chunks: make(map[Key]*memChunk)} }

func (s *MemStore) get(k Key) (*memChunk, error) {
	c := s.chunks[k]
	if c == nil {
		return nil, fmt.Errorf("%v: %w", k, ErrNotFound)
	}
	return c, nil
}

// Create implements Store.
func (s *MemStore) Create(k Key, version, chunkSize uint64) error {
	if err := checkChunkSize(k, chunkSize); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.chunks[k] != nil {
		return fmt.Errorf("%v: %w", k, ErrExist)
	}
	s.chunks[k] = &memChunk{version: version, chunkSize: chunkSize, blocks: make(map[int64][]byte)}
	return nil
}

// SetVersion implements Store.
func (s *MemStore) SetVersion(k Key, version uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.get(k)
	if err != nil {
		return err
	}
	if c.version > version {
		return fmt.Errorf("%v: holds version %d, newer than %d: %w", k, c.version, version, ErrStale)
	}
	c.version = version
	return nil
}

// ReadAt implements Store.
func (s *MemStore) ReadAt(k Key, p []byte, off int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, err := s.get(k)
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("%v: negative offset: %w", k, ErrInvalid)
	}
	n := min(int64(len(p)), max(c.length-off, 0))
	for i := int64(0); i < n; {
		pos := off + i
		b, bo := pos/api.BlockSize, pos%api.BlockSize
		m := min(n-i, api.BlockSize-bo)
		if blk := c.blocks[b]; blk != nil {
			copy(p[i:i+m], blk[bo:])
		} else {
			clear(p[i : i+m])
		}
		i += m
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// WriteAt implements Store.
func (s *MemStore) WriteAt(k Key, p []byte, off int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.get(k)
	if err != nil {
		return err
	}
	if err := checkRange(k, off, int64(len(p)), c.chunkSize); err != nil || len(p) == 0 {
		return err
	}
	for i := int64(0); i < int64(len(p)); {
		pos := off + i
		b, bo := pos/api.BlockSize, pos%api.BlockSize
		blk := c.blocks[b]
		if blk == nil {
			blk = make([]byte, api.BlockSize)
			c.blocks[b] = blk
		}
		i += int64(copy(blk[bo:], p[i:]))
	}
	c.length = max(c.length, off+int64(len(p)))
	return nil
}

// Zero implements Store.
func (s *MemStore) Zero(k Key, off, n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.get(k)
	if err != nil {
		return err
	}
	if err := checkRange(k, off, n, c.chunkSize); err != nil {
		return err
	}
	end := off + n
	if end >= c.length {
		end = c.length
		c.length = min(c.length, off)
	}
	for pos := off; pos < end; {
		b, bo := pos/api.BlockSize, pos%api.BlockSize
		m := min(end-pos, api.BlockSize-bo)
		if bo == 0 && m == api.BlockSize {
			delete(c.blocks, b)
		} else if blk := c.blocks[b]; blk != nil {
			clear(blk[bo : bo+m])
		}
		pos += m
	}
	return nil
}

// Sync implements Store; memory has nothing to flush.
func (s *MemStore) Sync(k Key) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, err := s.get(k)
	return err
}

// Delete implements Store.
func (s *MemStore) Delete(k Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.get(k); err != nil {
		return err
	}
	delete(s.chunks, k)
	return nil
}

func (c *memChunk) info(k Key) Info {
	return Info{Key: k, Version: c.version, ChunkSize: c.chunkSize, Length: uint64(c.length),
		DiskBytes: uint64(len(c.blocks)) * api.BlockSize}
}

// Stat implements Store.
func (s *MemStore) Stat(k Key) (Info, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, err := s.get(k)
	if err != nil {
		return Info{}, err
	}
	return c.info(k), nil
}

// List implements Store.
func (s *MemStore) List() ([]Info, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Info, 0, len(s.chunks))
	for k, c := range s.chunks {
		out = append(out, c.info(k))
	}
	return out, nil
}

// Close implements Store.
func (s *MemStore) Close() error { return nil }
