// Package chunk is the chunkserver: it stores chunk replicas and
// erasure-coded shards on local disk with a CRC32C per 64 KiB block, serves
// them over the api.ChunkServer gRPC service (ordering and forwarding writes
// when it holds a chunk's lease), and reports its chunks to the master leader
// through heartbeats.
package chunk

import (
	"fmt"

	"dfs/api"
)

// Key names one chunk file: a chunk id and, for erasure-coded chunks, the
// shard index (0 for replicated chunks).
type Key struct {
	ID    uint64
	Shard uint32
}

func (k Key) String() string { return fmt.Sprintf("chunk %016x/%d", k.ID, k.Shard) }

// Info describes one stored chunk.
type Info struct {
	Key
	Version   uint64
	ChunkSize uint64 // most bytes the chunk may hold
	Length    uint64 // bytes up to the end of the last written data
	DiskBytes uint64 // space the chunk takes on disk, metadata included
}

// Errors a Store returns. They are api.Errno values, so api.ErrnoOf and
// errors.Is work on anything that wraps them.
var (
	ErrNotFound error = api.Errno_ENOENT // no such chunk
	ErrExist    error = api.Errno_EEXIST // Create of a chunk that exists
	ErrStale    error = api.Errno_ESTALE // SetVersion to an older version
	ErrTooBig   error = api.Errno_EFBIG  // access beyond the chunk size
	ErrInvalid  error = api.Errno_EINVAL // negative offset, bad size
)

// MaxChunkSize is the largest chunk a Store accepts.
const MaxChunkSize = 1 << 30

// Store holds chunk data. Every method is safe for concurrent use; a read
// never observes half of a concurrent write to the same chunk.
//
// Data beyond a chunk's Length, and data never written, reads as zeros.
type Store interface {
	// Create makes an empty chunk of the given size and version. It
	// returns ErrExist if the chunk exists.
	Create(k Key, version, chunkSize uint64) error
	// SetVersion adopts version; it returns ErrStale if the chunk holds a
	// newer one. The change is durable when SetVersion returns.
	SetVersion(k Key, version uint64) error
	// ReadAt reads like io.ReaderAt: n < len(p) only at the chunk's Length
	// (with io.EOF) or on error. Every block read is checksum-verified; a
	// mismatch returns a *CorruptError.
	ReadAt(k Key, p []byte, off int64) (n int, err error)
	// WriteAt writes p at off, which must end within the chunk size.
	WriteAt(k Key, p []byte, off int64) error
	// Zero makes [off, off+n) read as zeros. If the range reaches the
	// chunk's Length, Length becomes off (a truncate).
	Zero(k Key, off, n int64) error
	// Sync makes the chunk's data and metadata durable.
	Sync(k Key) error
	// Delete removes the chunk.
	Delete(k Key) error
	// Stat describes one chunk; ErrNotFound if absent.
	Stat(k Key) (Info, error)
	// List describes every chunk, in no particular order.
	List() ([]Info, error)
	// Close releases the store's resources.
	Close() error
}

// CorruptError reports a chunk block whose data does not match its
// checksum, or a chunk file whose metadata is unreadable (Block < 0).
// It unwraps to api.Errno_EIO.
type CorruptError struct {
	Key    Key
	Block  int64  // block index within the chunk, -1 for the header
	Path   string // the chunk file, "" for in-memory stores
	Detail string
}

func (e *CorruptError) Error() string {
	where := fmt.Sprintf("%v block %d", e.Key, e.Block)
	if e.Block < 0 {
		where = e.Key.String()
	}
	if e.Path != "" {
		where += " (file " + e.Path + ")"
	}
	return where + ": " + e.Detail
}

// Unwrap makes the error an EIO for api.ErrnoOf and errors.Is.
func (e *CorruptError) Unwrap() error { return api.Errno_EIO }

// checkRange validates an access of n bytes at off in a chunk of size cs.
func checkRange(k Key, off, n int64, cs uint64) error {
	if off < 0 || n < 0 {
		return fmt.Errorf("%v: negative offset or length: %w", k, ErrInvalid)
	}
	if uint64(off)+uint64(n) > cs {
		return fmt.Errorf("%v: range [%d, %d) beyond chunk size %d: %w", k, off, off+n, cs, ErrTooBig)
	}
	return nil
}

func checkChunkSize(k Key, cs uint64) error {
	if cs == 0 || cs > MaxChunkSize {
		return fmt.Errorf("%v: chunk size %d not in 1..%d: %w", k, cs, MaxChunkSize, ErrInvalid)
	}
	return nil
}
