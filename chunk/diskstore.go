package chunk

import (
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"dfs/api"
)

// On-disk chunk file layout:
//
//	[0, 4096)            header: two slots at 0 and 2048; the valid slot
//	                     with the higher sequence number wins, so a torn
//	                     header write loses only the update being written
//	[4096, 4096+4*N)     CRC32C of each of the N blocks, little endian;
//	                     0 means "hole": the block must read as zeros
//	[dataOff, ...)       data, dataOff a multiple of api.BlockSize; the file
//	                     ends where the chunk's written data ends, so
//	                     Length = file size - dataOff and holes stay sparse
const (
	headerSize = 4096
	slotSize   = 2048
	slotBytes  = 60 // encoded slot: fields + CRC
	magic      = "DFSCHUNK"
	format     = 1
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	zeroBlock  = make([]byte, api.BlockSize)
	zeroCRC    = crc32.Checksum(zeroBlock, castagnoli)
	blockPool  = sync.Pool{New: func() any { b := make([]byte, api.BlockSize); return &b }}
)

type header struct {
	id        uint64
	shard     uint32
	version   uint64
	chunkSize uint64
	dataOff   uint64
	seq       uint64 // bumped by each header update; picks the live slot
}

func dataOffset(chunkSize uint64) uint64 {
	n := headerSize + 4*numBlocks(chunkSize)
	return (n + api.BlockSize - 1) / api.BlockSize * api.BlockSize
}

func numBlocks(size uint64) uint64 { return (size + api.BlockSize - 1) / api.BlockSize }

func (h *header) encode() []byte {
	b := make([]byte, slotBytes)
	copy(b, magic)
	binary.LittleEndian.PutUint32(b[8:], format)
	binary.LittleEndian.PutUint32(b[12:], h.shard)
	binary.LittleEndian.PutUint64(b[16:], h.id)
	binary.LittleEndian.PutUint64(b[24:], h.version)
	binary.LittleEndian.PutUint64(b[32:], h.chunkSize)
	binary.LittleEndian.PutUint64(b[40:], h.dataOff)
	binary.LittleEndian.PutUint64(b[48:], h.seq)
	binary.LittleEndian.PutUint32(b[56:], crc32.Checksum(b[:56], castagnoli))
	return b
}

// decodeSlot returns the header in b, or a reason it is not one.
func decodeSlot(b []byte) (header, string) {
	if string(b[:8]) != magic {
		return header{}, "bad magic"
	}
	if crc32.Checksum(b[:56], castagnoli) != binary.LittleEndian.Uint32(b[56:]) {
		return header{}, "header checksum mismatch"
	}
	if f := binary.LittleEndian.Uint32(b[8:]); f != format {
		return header{}, fmt.Sprintf("unknown format %d", f)
	}
	h := header{
		shard:     binary.LittleEndian.Uint32(b[12:]),
		id:        binary.LittleEndian.Uint64(b[16:]),
		version:   binary.LittleEndian.Uint64(b[24:]),
		chunkSize: binary.LittleEndian.Uint64(b[32:]),
		dataOff:   binary.LittleEndian.Uint64(b[40:]),
		seq:       binary.LittleEndian.Uint64(b[48:]),
	}
	if h.chunkSize == 0 || h.chunkSize > MaxChunkSize || h.dataOff != dataOffset(h.chunkSize) {
		return header{}, fmt.Sprintf("implausible chunk size %d / data offset %d", h.chunkSize, h.dataOff)
	}
	return h, ""
}

// DiskStore is a Store keeping one file per chunk under DIR/chunks, fanned
// out into 256 subdirectories by the low byte of the chunk id. It holds an
// exclusive lock on DIR/LOCK until Close.
type DiskStore struct {
	dir     string
	lock    *os.File
	log     *slog.Logger
	maxOpen int

	mu     sync.Mutex // guards chunks, lru and each chunk's fd fields
	chunks map[Key]*diskChunk
	lru    list.List // chunks with an open file, most recently used first
	closed bool
}

var _ Store = (*DiskStore)(nil)

type diskChunk struct {
	key  Key
	path string

	// Guarded by DiskStore.mu.
	f      *os.File
	refs   int
	elem   *list.Element
	broken error // the file is unusable; every access returns this (set at load)

	gone atomic.Bool // deleted or replaced; read under any lock
	// unsynced: the file was created and neither it nor its directory
	// entry has been fsynced since; the chunk's first Sync does both.
	unsynced atomic.Bool

	// mu makes a write and the checksums it updates atomic to readers.
	mu        sync.RWMutex
	hdr       header
	length    int64
	diskBytes int64
}

// DiskOptions tunes a DiskStore; the zero value is fine.
type DiskOptions struct {
	Logger       *slog.Logger // where to report unreadable chunk files
	MaxOpenFiles int          // chunk files kept open; default 512
}

// OpenDisk opens (creating if needed) the store in dir. It fails with a
// *LockedError if another store holds dir. Chunk files that cannot be
// read are logged and kept aside: accesses to them fail with a
// *CorruptError naming the file, and List leaves them out.
func OpenDisk(dir string, opts DiskOptions) (*DiskStore, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxOpenFiles <= 0 {
		opts.MaxOpenFiles = 512
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &DiskStore{dir: dir, lock: lock, log: opts.Logger, maxOpen: opts.MaxOpenFiles, chunks: make(map[Key]*diskChunk)}
	if err := s.load(); err != nil {
		lock.Close()
		return nil, err
	}
	return s, nil
}

func (s *DiskStore) subdir(id uint64) string {
	return filepath.Join(s.dir, "chunks", fmt.Sprintf("%02x", id&0xff))
}

func (s *DiskStore) path(k Key) string { return ChunkFile(s.dir, k) }

// ChunkFile is where a DiskStore in dir keeps chunk k.
func ChunkFile(dir string, k Key) string {
	return filepath.Join(dir, "chunks", fmt.Sprintf("%02x", k.ID&0xff), fmt.Sprintf("%016x-%d.chunk", k.ID, k.Shard))
}

// load creates the directory tree and reads every chunk header.
func (s *DiskStore) load() error {
	for i := range 256 {
		sub := s.subdir(uint64(i))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		ents, err := os.ReadDir(sub)
		if err != nil {
			return err
		}
		for _, e := range ents {
			name := e.Name()
			p := filepath.Join(sub, name)
			if strings.HasPrefix(name, ".tmp-") {
				// An interrupted Create; it was never visible.
				os.Remove(p)
				continue
			}
			var k Key
			if _, err := fmt.Sscanf(name, "%016x-%d.chunk", &k.ID, &k.Shard); err != nil || name != filepath.Base(s.path(k)) {
				continue // not ours: a .corrupt file kept aside, or foreign
			}
			c := &diskChunk{key: k, path: p}
			if err := c.loadHeader(); err != nil {
				c.broken = err
				s.log.Warn("unreadable chunk file", "err", err)
			}
			s.chunks[k] = c
		}
	}
	return nil
}

func (c *diskChunk) corrupt(block int64, format string, args ...any) *CorruptError {
	return &CorruptError{Key: c.key, Block: block, Path: c.path, Detail: fmt.Sprintf(format, args...)}
}

// loadHeader reads and checks c's header and size from disk.
func (c *diskChunk) loadHeader() error {
	f, err := os.Open(c.path)
	if err != nil {
		return c.corrupt(-1, "%v", err)
	}
	defer f.Close()
	return c.loadHeaderFrom(f)
}

// loadHeaderFrom reads and checks c's header and size from f.
func (c *diskChunk) loadHeaderFrom(f *os.File) error {
	b := make([]byte, headerSize)
	if n, err := f.ReadAt(b, 0); n < headerSize {
		return c.corrupt(-1, "truncated file: %d of %d header bytes (%v)", n, headerSize, err)
	}
	h0, why0 := decodeSlot(b[:slotBytes])
	h1, why1 := decodeSlot(b[slotSize : slotSize+slotBytes])
	var h header
	switch {
	case why0 == "" && why1 == "":
		h = h0
		if h1.seq > h0.seq {
			h = h1
		}
	case why0 == "":
		h = h0
	case why1 == "":
		h = h1
	default:
		return c.corrupt(-1, "corrupt header: %s", why0)
	}
	if h.id != c.key.ID || h.shard != c.key.Shard {
		return c.corrupt(-1, "header names chunk %016x/%d", h.id, h.shard)
	}
	st, err := f.Stat()
	if err != nil {
		return c.corrupt(-1, "%v", err)
	}
	if uint64(st.Size()) < h.dataOff {
		return c.corrupt(-1, "truncated file: %d bytes, data starts at %d", st.Size(), h.dataOff)
	}
	if uint64(st.Size())-h.dataOff > h.chunkSize {
		return c.corrupt(-1, "file of %d bytes exceeds chunk size %d", st.Size(), h.chunkSize)
	}
	c.hdr = h
	c.length = st.Size() - int64(h.dataOff)
	c.diskBytes = diskUsage(st)
	return nil
}

func diskUsage(st os.FileInfo) int64 {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return sys.Blocks * 512
	}
	return st.Size()
}

// acquire pins k's chunk and makes sure its file is open.
func (s *DiskStore) acquire(k Key) (*diskChunk, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%v: store closed: %w", k, api.Errno_EIO)
	}
	c := s.chunks[k]
	if c == nil {
		return nil, fmt.Errorf("%v: %w", k, ErrNotFound)
	}
	if c.f == nil && c.broken == nil {
		f, err := os.OpenFile(c.path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", k, err)
		}
		c.f = f
		c.elem = s.lru.PushFront(c)
		for e := s.lru.Back(); s.lru.Len() > s.maxOpen && e != nil; {
			prev := e.Prev()
			if old := e.Value.(*diskChunk); old.refs == 0 {
				s.closeFile(old)
			}
			e = prev
		}
	} else if c.elem != nil {
		s.lru.MoveToFront(c.elem)
	}
	c.refs++
	return c, nil
}

func (s *DiskStore) closeFile(c *diskChunk) {
	c.f.Close()
	c.f = nil
	s.lru.Remove(c.elem)
	c.elem = nil
}

func (s *DiskStore) release(c *diskChunk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.refs--
	if c.refs == 0 && c.f != nil && (c.gone.Load() || s.closed) {
		s.closeFile(c)
	}
}

// with runs fn on k's chunk holding its lock, exclusive if write.
func (s *DiskStore) with(k Key, write bool, fn func(c *diskChunk) error) error {
	c, err := s.acquire(k)
	if err != nil {
		return err
	}
	defer s.release(c)
	if write {
		c.mu.Lock()
		defer c.mu.Unlock()
	} else {
		c.mu.RLock()
		defer c.mu.RUnlock()
	}
	if c.gone.Load() {
		return fmt.Errorf("%v: %w", k, ErrNotFound)
	}
	if c.broken != nil {
		return c.broken
	}
	return fn(c)
}

// Create implements Store. The chunk file is written under a temporary
// name, synced and renamed, so a crash leaves either no chunk or a whole one.
func (s *DiskStore) Create(k Key, version, chunkSize uint64) error {
	if err := checkChunkSize(k, chunkSize); err != nil {
		return err
	}
	s.mu.Lock()
	old := s.chunks[k]
	s.mu.Unlock()
	if old != nil && old.broken == nil {
		return fmt.Errorf("%v: %w", k, ErrExist)
	}
	h := header{id: k.ID, shard: k.Shard, version: version, chunkSize: chunkSize, dataOff: dataOffset(chunkSize)}
	sub := s.subdir(k.ID)
	f, err := os.CreateTemp(sub, ".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	// Allocate the header and checksum table now, so that a full disk
	// can never leave data written without its checksums.
	err = allocate(f, 0, int64(h.dataOff))
	if err == nil {
		_, err = f.WriteAt(h.encode(), 0)
	}
	// No fsync of the file or its directory here: a new chunk holds no
	// data anyone was promised would survive a power cut until its first
	// Sync (fsync, fdatasync or close on the mount), which makes both
	// durable. A crash of the process loses nothing (the page cache
	// stays), and a power cut before then leaves the file missing or
	// with a torn header, which the next start reports as a lost or
	// corrupt copy. Creates cost the disk two fsyncs less each.
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%v: create %s: %w", k, tmp, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.path(k)
	if old := s.chunks[k]; old != nil {
		if old.broken == nil {
			os.Remove(tmp)
			return fmt.Errorf("%v: %w", k, ErrExist)
		}
		// Keep the unreadable file for post-mortem rather than destroy it.
		if err := os.Rename(p, p+".corrupt"); err != nil && !errors.Is(err, os.ErrNotExist) {
			os.Remove(tmp)
			return fmt.Errorf("%v: %w", k, err)
		}
		old.gone.Store(true)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%v: %w", k, err)
	}
	c := &diskChunk{key: k, path: p, hdr: h, diskBytes: int64(headerSize)}
	c.unsynced.Store(true)
	s.chunks[k] = c
	return nil
}

// allocate makes [off, off+n) of f take disk space, extending the file.
// Where the file system cannot preallocate, it falls back to extending the
// size only (a later write may then fail with ENOSPC part-way).
func allocate(f *os.File, off, n int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		st, serr := f.Stat()
		if serr != nil {
			return serr
		}
		if st.Size() < off+n {
			return f.Truncate(off + n)
		}
		return nil
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// SetVersion implements Store. The new header goes to the slot not holding
// the live one, then fdatasync: a torn write leaves the old header valid.
func (s *DiskStore) SetVersion(k Key, version uint64) error {
	return s.with(k, true, func(c *diskChunk) error {
		if c.hdr.version > version {
			return fmt.Errorf("%v: holds version %d, newer than %d: %w", k, c.hdr.version, version, ErrStale)
		}
		if c.hdr.version == version {
			return nil
		}
		h := c.hdr
		h.version = version
		h.seq++
		if _, err := c.f.WriteAt(h.encode(), int64(h.seq%2)*slotSize); err != nil {
			return fmt.Errorf("%v: %s: %w", k, c.path, err)
		}
		if err := unix.Fdatasync(int(c.f.Fd())); err != nil {
			return fmt.Errorf("%v: %s: fdatasync: %w", k, c.path, err)
		}
		c.hdr = h
		return nil
	})
}

// readCRCs returns the stored checksums of blocks [b0, b1].
func (c *diskChunk) readCRCs(b0, b1 int64) ([]uint32, error) {
	buf := make([]byte, 4*(b1-b0+1))
	if _, err := c.f.ReadAt(buf, headerSize+4*b0); err != nil {
		return nil, c.corrupt(b0, "reading checksums: %v", err)
	}
	crcs := make([]uint32, b1-b0+1)
	for i := range crcs {
		crcs[i] = binary.LittleEndian.Uint32(buf[4*i:])
	}
	return crcs, nil
}

func (c *diskChunk) writeCRCs(b0 int64, crcs []uint32) error {
	buf := make([]byte, 4*len(crcs))
	for i, v := range crcs {
		binary.LittleEndian.PutUint32(buf[4*i:], v)
	}
	if _, err := c.f.WriteAt(buf, headerSize+4*b0); err != nil {
		return fmt.Errorf("%v: %s: writing checksums: %w", c.key, c.path, err)
	}
	return nil
}

// checkBlock compares a block's computed checksum with the stored one.
func (c *diskChunk) checkBlock(b int64, stored, got uint32) error {
	if stored == got || stored == 0 && got == zeroCRC {
		return nil
	}
	if stored == 0 {
		return c.corrupt(b, "block recorded as a hole holds data (crc32c %08x)", got)
	}
	return c.corrupt(b, "checksum mismatch: stored crc32c %08x, data has %08x", stored, got)
}

// readData reads exactly len(p) bytes of chunk data at off.
func (c *diskChunk) readData(p []byte, off int64) error {
	n, err := c.f.ReadAt(p, int64(c.hdr.dataOff)+off)
	if n < len(p) {
		if err == io.EOF {
			return c.corrupt(off/api.BlockSize, "file shorter than its data (%d bytes missing at offset %d)", len(p)-n, off+int64(n))
		}
		return fmt.Errorf("%v: %s: %w", c.key, c.path, err)
	}
	return nil
}

// oldBlock reads block b's current content (zero-padded to a whole block)
// into buf and verifies it against stored.
func (c *diskChunk) oldBlock(b int64, stored uint32, buf []byte) error {
	bs := b * api.BlockSize
	n := max(min(api.BlockSize, c.length-bs), 0)
	if err := c.readData(buf[:n], bs); err != nil {
		return err
	}
	clear(buf[n:])
	return c.checkBlock(b, stored, crc32.Checksum(buf, castagnoli))
}

// ReadAt implements Store. Data is read straight into p; only the parts
// of the first and last block outside [off, off+len(p)) are read aside to
// complete their checksums.
func (s *DiskStore) ReadAt(k Key, p []byte, off int64) (int, error) {
	var n int64
	err := s.with(k, false, func(c *diskChunk) error {
		var err error
		n, err = c.readAt(p, off, c.length)
		return err
	})
	if err != nil {
		return 0, err
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// readAt reads what the chunk holds of [off, off+len(p)) into p, given
// its data length, and verifies every block it touches.
func (c *diskChunk) readAt(p []byte, off, length int64) (int64, error) {
	if off < 0 {
		return 0, fmt.Errorf("%v: negative offset: %w", c.key, ErrInvalid)
	}
	n := min(int64(len(p)), max(length-off, 0))
	if n == 0 {
		return 0, nil
	}
	b0, b1 := off/api.BlockSize, (off+n-1)/api.BlockSize
	crcs, err := c.readCRCs(b0, b1)
	if err != nil {
		return 0, err
	}
	bufp := blockPool.Get().(*[]byte)
	defer blockPool.Put(bufp)
	buf := *bufp
	if b0 == b1 {
		// Within one block (small random reads): one read of the block,
		// checked, then copied out.
		bs := b0 * api.BlockSize
		be := min(bs+api.BlockSize, length)
		if err := c.readData(buf[:be-bs], bs); err != nil {
			return 0, err
		}
		crc := crc32.Update(crc32.Update(0, castagnoli, buf[:be-bs]), castagnoli, zeroBlock[:api.BlockSize-(be-bs)])
		if err := c.checkBlock(b0, crcs[0], crc); err != nil {
			return 0, err
		}
		return int64(copy(p[:n], buf[off-bs:be-bs])), nil
	}
	if err := c.readData(p[:n], off); err != nil {
		return 0, err
	}
	for b := b0; b <= b1; b++ {
		bs := b * api.BlockSize
		be := min(bs+api.BlockSize, length)
		ps, pe := max(bs, off), min(be, off+n)
		var crc uint32
		if ps > bs {
			if err := c.readData(buf[:ps-bs], bs); err != nil {
				return 0, err
			}
			crc = crc32.Update(crc, castagnoli, buf[:ps-bs])
		}
		crc = crc32.Update(crc, castagnoli, p[ps-off:pe-off])
		if pe < be {
			if err := c.readData(buf[:be-pe], pe); err != nil {
				return 0, err
			}
			crc = crc32.Update(crc, castagnoli, buf[:be-pe])
		}
		crc = crc32.Update(crc, castagnoli, zeroBlock[:api.BlockSize-(be-bs)])
		if err := c.checkBlock(b, crcs[b-b0], crc); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// WriteAt implements Store. p goes to disk in one pwrite from the caller's
// buffer; edge blocks that keep old data are read and verified first so
// their new checksum covers data known to be good.
func (s *DiskStore) WriteAt(k Key, p []byte, off int64) error {
	return s.with(k, true, func(c *diskChunk) error {
		if err := checkRange(k, off, int64(len(p)), c.hdr.chunkSize); err != nil {
			return err
		}
		if len(p) == 0 {
			return nil
		}
		end := off + int64(len(p))
		b0, b1 := off/api.BlockSize, (end-1)/api.BlockSize
		crcs, err := c.readCRCs(b0, b1)
		if err != nil {
			return err
		}
		bufp := blockPool.Get().(*[]byte)
		defer blockPool.Put(bufp)
		buf := *bufp
		for b := b0; b <= b1; b++ {
			bs, be := b*api.BlockSize, (b+1)*api.BlockSize
			ps, pe := max(bs, off), min(be, end)
			keepsOld := ps > bs && bs < c.length || pe < be && pe < c.length
			if keepsOld {
				if err := c.oldBlock(b, crcs[b-b0], buf); err != nil {
					return err
				}
				copy(buf[ps-bs:], p[ps-off:pe-off])
				crcs[b-b0] = crc32.Checksum(buf, castagnoli)
				continue
			}
			crc := crc32.Update(0, castagnoli, zeroBlock[:ps-bs])
			crc = crc32.Update(crc, castagnoli, p[ps-off:pe-off])
			crcs[b-b0] = crc32.Update(crc, castagnoli, zeroBlock[:be-pe])
		}
		// Reserve the space first: a write the disk cannot hold fails
		// here, before anything changes, rather than half done.
		if err := allocate(c.f, int64(c.hdr.dataOff)+off, int64(len(p))); err != nil {
			return fmt.Errorf("%v: %s: %w", k, c.path, err)
		}
		if _, err := c.f.WriteAt(p, int64(c.hdr.dataOff)+off); err != nil {
			return fmt.Errorf("%v: %s: %w", k, c.path, err)
		}
		if err := c.writeCRCs(b0, crcs); err != nil {
			return err
		}
		c.length = max(c.length, end)
		c.updateUsage()
		return nil
	})
}

func (c *diskChunk) updateUsage() {
	if st, err := c.f.Stat(); err == nil {
		c.diskBytes = diskUsage(st)
	}
}

// Zero implements Store. Whole blocks become holes (punched when the file
// system can); partial blocks are rewritten with zeros.
func (s *DiskStore) Zero(k Key, off, n int64) error {
	return s.with(k, true, func(c *diskChunk) error {
		if err := checkRange(k, off, n, c.hdr.chunkSize); err != nil {
			return err
		}
		if off >= c.length || n == 0 {
			return nil // already zeros
		}
		end := min(off+n, c.length)
		truncate := off+n >= c.length
		b0, b1 := off/api.BlockSize, (end-1)/api.BlockSize
		crcs, err := c.readCRCs(b0, b1)
		if err != nil {
			return err
		}
		bufp := blockPool.Get().(*[]byte)
		defer blockPool.Put(bufp)
		buf := *bufp
		var holeStart, holeEnd int64 = -1, -1 // whole blocks to punch
		for b := b0; b <= b1; b++ {
			bs, be := b*api.BlockSize, (b+1)*api.BlockSize
			ps, pe := max(bs, off), min(be, end)
			if ps == bs && (pe == be || pe == c.length) {
				crcs[b-b0] = 0
				if holeStart < 0 {
					holeStart = bs
				}
				holeEnd = pe
				continue
			}
			if err := c.oldBlock(b, crcs[b-b0], buf); err != nil {
				return err
			}
			clear(buf[ps-bs : pe-bs])
			crcs[b-b0] = crc32.Checksum(buf, castagnoli)
			if !truncate {
				if _, err := c.f.WriteAt(zeroBlock[:pe-ps], int64(c.hdr.dataOff)+ps); err != nil {
					return fmt.Errorf("%v: %s: %w", k, c.path, err)
				}
			}
		}
		if truncate {
			if err := c.f.Truncate(int64(c.hdr.dataOff) + off); err != nil {
				return fmt.Errorf("%v: %s: %w", k, c.path, err)
			}
			c.length = off
		} else if holeStart >= 0 {
			if err := c.punch(holeStart, holeEnd); err != nil {
				return err
			}
		}
		if err := c.writeCRCs(b0, crcs); err != nil {
			return err
		}
		c.updateUsage()
		return nil
	})
}

// punch makes [start, end) of the data a hole, or writes zeros where the
// file system cannot punch holes.
func (c *diskChunk) punch(start, end int64) error {
	at := int64(c.hdr.dataOff) + start
	err := unix.Fallocate(int(c.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, at, end-start)
	if err == nil {
		return nil
	}
	for pos := start; pos < end; pos += api.BlockSize {
		m := min(end-pos, api.BlockSize)
		if _, err := c.f.WriteAt(zeroBlock[:m], int64(c.hdr.dataOff)+pos); err != nil {
			return fmt.Errorf("%v: %s: %w", c.key, c.path, err)
		}
	}
	return nil
}

// Sync implements Store.
func (s *DiskStore) Sync(k Key) error {
	return s.with(k, false, func(c *diskChunk) error {
		unsynced := c.unsynced.Load()
		if err := c.f.Sync(); err != nil {
			return fmt.Errorf("%v: %s: fsync: %w", k, c.path, err)
		}
		if unsynced {
			if err := syncDir(filepath.Dir(c.path)); err != nil {
				return fmt.Errorf("%v: %w", k, err)
			}
			c.unsynced.Store(false)
		}
		return nil
	})
}

// Delete implements Store. Unreadable chunk files are deleted too.
func (s *DiskStore) Delete(k Key) error {
	c, err := s.acquire(k)
	if err != nil {
		return err
	}
	defer s.release(c)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone.Load() {
		return fmt.Errorf("%v: %w", k, ErrNotFound)
	}
	if err := os.Remove(c.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%v: %w", k, err)
	}
	s.mu.Lock()
	c.gone.Store(true)
	if s.chunks[k] == c {
		delete(s.chunks, k)
	}
	s.mu.Unlock()
	return nil
}

func (c *diskChunk) info() Info {
	return Info{Key: c.key, Version: c.hdr.version, ChunkSize: c.hdr.chunkSize,
		Length: uint64(c.length), DiskBytes: uint64(c.diskBytes)}
}

// Stat implements Store.
func (s *DiskStore) Stat(k Key) (Info, error) {
	s.mu.Lock()
	c := s.chunks[k]
	s.mu.Unlock()
	if c == nil {
		return Info{}, fmt.Errorf("%v: %w", k, ErrNotFound)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.gone.Load() {
		return Info{}, fmt.Errorf("%v: %w", k, ErrNotFound)
	}
	if c.broken != nil {
		return Info{}, c.broken
	}
	return c.info(), nil
}

// List implements Store.
func (s *DiskStore) List() ([]Info, error) {
	s.mu.Lock()
	all := make([]*diskChunk, 0, len(s.chunks))
	for _, c := range s.chunks {
		if c.broken == nil {
			all = append(all, c)
		}
	}
	s.mu.Unlock()
	out := make([]Info, 0, len(all))
	for _, c := range all {
		c.mu.RLock()
		if !c.gone.Load() {
			out = append(out, c.info())
		}
		c.mu.RUnlock()
	}
	return out, nil
}

// Broken lists the errors of chunk files that could not be read at open.
func (s *DiskStore) Broken() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, c := range s.chunks {
		if c.broken != nil && !c.gone.Load() {
			errs = append(errs, c.broken)
		}
	}
	return errs
}

// Path returns the file holding chunk k (whether or not it exists).
func (s *DiskStore) Path(k Key) string { return s.path(k) }

// Dir returns the store's directory.
func (s *DiskStore) Dir() string { return s.dir }

// Close closes the files, flushes everything written to the store's file
// system to stable storage (a clean stop leaves nothing for a power cut
// to lose) and releases the directory lock. Calls in flight finish;
// later calls fail.
func (s *DiskStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for e := s.lru.Front(); e != nil; {
		next := e.Next()
		if c := e.Value.(*diskChunk); c.refs == 0 {
			s.closeFile(c)
		}
		e = next
	}
	err := unix.Syncfs(int(s.lock.Fd()))
	if err != nil {
		err = fmt.Errorf("%s: syncfs: %w", s.dir, err)
	}
	return errors.Join(err, s.lock.Close())
}
