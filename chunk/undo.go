package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// undoLog keeps, for each EC shard here, the old bytes of the latest
// primary write the shard took part in, so that a new primary can roll
// back a write its predecessor died in the middle of (docs/ec.md, "A
// primary that dies between shard updates"). One small file per shard
// under DATA/undo, rewritten in place (truncating would make ext4 flush
// it at close); callers hold the shard's order lock, so a shard's record
// is never used by two calls at once.
type undoLog struct {
	dir string

	mu    sync.Mutex
	heads map[Key]undoHead // records read or written since start
	files map[Key]*os.File // open record files, at most maxUndoFiles
}

const maxUndoFiles = 256

// undoRecord is one shard's record of one write: its piece of the write
// was [Off, Off+Len); it held Old at [Off, Off+len(Old)) and was
// OldLength bytes long before; Done bytes of the piece were applied.
type undoRecord struct {
	undoHead
	Off, OldLength uint64
	Old            []byte
}

// undoHead identifies a record: the write (Version, Seq), its
// participants (bit i: shard i), progress and whether a new primary
// settled it. Seq 0 means no record.
type undoHead struct {
	Version, Seq, Shards, Len, Done uint64
	State                           uint32 // undoPending, undoCommitted or undoRolledBack
	dirty                           bool   // written since its last fsync
}

const (
	undoPending    = 0
	undoCommitted  = 1
	undoRolledBack = 2
)

func (h undoHead) same(version, seq uint64) bool {
	return h.Seq != 0 && h.Version == version && h.Seq == seq
}

// The file: magic, then version, seq, shards, off, len, old length and
// len(old) (8 bytes each), a CRC-32C of those and of the old bytes, the
// state (4 bytes) and done (8 bytes), both outside the CRC and updated
// in place, then the old bytes.
const (
	undoMagic   = "DFSUNDO1"
	undoCRCAt   = 64
	undoStateAt = 68
	undoDoneAt  = 72
	undoHeader  = 80
)

var undoTable = crc32.MakeTable(crc32.Castagnoli)

func openUndo(dataDir string) (*undoLog, error) {
	dir := filepath.Join(dataDir, "undo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &undoLog{dir: dir, heads: map[Key]undoHead{}, files: map[Key]*os.File{}}, nil
}

func (u *undoLog) path(k Key) string {
	return filepath.Join(u.dir, fmt.Sprintf("%016x-%d.undo", k.ID, k.Shard))
}

func (r *undoRecord) encode() []byte {
	b := make([]byte, undoHeader+len(r.Old))
	copy(b, undoMagic)
	for i, v := range []uint64{r.Version, r.Seq, r.Shards, r.Off, r.Len, r.OldLength, uint64(len(r.Old))} {
		binary.LittleEndian.PutUint64(b[8+8*i:], v)
	}
	copy(b[undoHeader:], r.Old)
	crc := crc32.Update(crc32.Checksum(b[:undoCRCAt], undoTable), undoTable, r.Old)
	binary.LittleEndian.PutUint32(b[undoCRCAt:], crc)
	binary.LittleEndian.PutUint32(b[undoStateAt:], r.State)
	binary.LittleEndian.PutUint64(b[undoDoneAt:], r.Done)
	return b
}

func decodeUndo(b []byte) (*undoRecord, error) {
	if len(b) < undoHeader || string(b[:8]) != undoMagic {
		return nil, errors.New("not an undo record")
	}
	f := func(i int) uint64 { return binary.LittleEndian.Uint64(b[8+8*i:]) }
	r := &undoRecord{undoHead: undoHead{Version: f(0), Seq: f(1), Shards: f(2), Len: f(4),
		Done: binary.LittleEndian.Uint64(b[undoDoneAt:]), State: binary.LittleEndian.Uint32(b[undoStateAt:])},
		Off: f(3), OldLength: f(5)}
	if r.State > undoRolledBack {
		return nil, fmt.Errorf("undo record in state %d", r.State)
	}
	// A longer record written before may follow.
	if n := f(6); n > uint64(len(b)-undoHeader) || n > r.Len {
		return nil, fmt.Errorf("undo record of %d old bytes for a piece of %d in %d bytes", n, r.Len, len(b))
	} else {
		r.Old = b[undoHeader : undoHeader+n]
	}
	if crc32.Update(crc32.Checksum(b[:undoCRCAt], undoTable), undoTable, r.Old) != binary.LittleEndian.Uint32(b[undoCRCAt:]) {
		return nil, errors.New("undo record fails its checksum")
	}
	return r, nil
}

// load reads k's record; nil if there is none. An unreadable record is
// an error: the shard cannot say whether a write reached it.
func (u *undoLog) load(k Key) (*undoRecord, error) {
	var b []byte
	err := u.with(k, false, func(f *os.File) error {
		st, err := f.Stat()
		if err != nil {
			return err
		}
		b = make([]byte, st.Size())
		_, err = f.ReadAt(b, 0)
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		u.setHead(k, undoHead{})
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r, err := decodeUndo(b)
	if err != nil {
		return nil, &CorruptError{Key: k, Block: -1, Path: u.path(k), Detail: err.Error()}
	}
	u.setHead(k, r.undoHead)
	return r, nil
}

// head is k's record without its old bytes.
func (u *undoLog) head(k Key) (undoHead, error) {
	u.mu.Lock()
	h, ok := u.heads[k]
	u.mu.Unlock()
	if ok {
		return h, nil
	}
	r, err := u.load(k)
	if r == nil || err != nil {
		return undoHead{}, err
	}
	return r.undoHead, nil
}

func (u *undoLog) setHead(k Key, h undoHead) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.heads[k] = h
}

// file returns k's record file, opening it (creating it if create).
func (u *undoLog) file(k Key, create bool) (*os.File, error) {
	u.mu.Lock()
	f := u.files[k]
	u.mu.Unlock()
	if f != nil {
		return f, nil
	}
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(u.path(k), flags, 0o644)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.files) >= maxUndoFiles {
		// Any other (with reopens one closed under its user).
		for o, of := range u.files {
			if o != k {
				of.Close()
				delete(u.files, o)
				break
			}
		}
	}
	u.files[k] = f
	return f, nil
}

// with runs fn on k's record file, opening it (creating it if create).
// A file closed under fn to keep the number open down is opened again.
func (u *undoLog) with(k Key, create bool, fn func(*os.File) error) error {
	for try := 0; ; try++ {
		f, err := u.file(k, create)
		if err != nil {
			return err
		}
		err = fn(f)
		if errors.Is(err, os.ErrClosed) && try < 3 {
			continue
		}
		if err != nil {
			return fmt.Errorf("%v: undo record: %w", k, err)
		}
		return nil
	}
}

// put replaces k's record.
func (u *undoLog) put(k Key, r *undoRecord) error {
	b := r.encode()
	if err := u.with(k, true, func(f *os.File) error { _, err := f.WriteAt(b, 0); return err }); err != nil {
		return err
	}
	h := r.undoHead
	h.dirty = true
	u.setHead(k, h)
	return nil
}

// advance records that done bytes of the piece of write (version, seq)
// are applied.
func (u *undoLog) advance(k Key, version, seq, done uint64) error {
	h, err := u.head(k)
	if err != nil || !h.same(version, seq) || done <= h.Done {
		return err
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], done)
	if err := u.patch(k, b[:], undoDoneAt); err != nil {
		return err
	}
	h.Done, h.dirty = done, true
	u.setHead(k, h)
	return nil
}

// settle marks k's record, of write (version, seq), committed or rolled
// back, durably.
func (u *undoLog) settle(k Key, version, seq uint64, state uint32) error {
	h, err := u.head(k)
	if err != nil || !h.same(version, seq) {
		return err
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], state)
	if err := u.patch(k, b[:], undoStateAt); err != nil {
		return err
	}
	h.State, h.dirty = state, true
	u.setHead(k, h)
	return u.sync(k)
}

// patch overwrites b at off in k's record file.
func (u *undoLog) patch(k Key, b []byte, off int64) error {
	return u.with(k, false, func(f *os.File) error { _, err := f.WriteAt(b, off); return err })
}

// sync makes k's record durable, so that it is on disk before the data
// it can undo is (the caller syncs the chunk next).
func (u *undoLog) sync(k Key) error {
	u.mu.Lock()
	h := u.heads[k]
	u.mu.Unlock()
	if !h.dirty {
		return nil
	}
	if err := u.with(k, false, (*os.File).Sync); err != nil {
		return err
	}
	h.dirty = false
	u.setHead(k, h)
	return nil
}

// drop removes k's record.
func (u *undoLog) drop(k Key) error {
	u.mu.Lock()
	if f := u.files[k]; f != nil {
		f.Close()
		delete(u.files, k)
	}
	u.mu.Unlock()
	if err := os.Remove(u.path(k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%v: undo record: %w", k, err)
	}
	u.setHead(k, undoHead{})
	return nil
}

// prune removes the records of chunks this server no longer holds.
func (u *undoLog) prune(holds func(Key) bool) error {
	ents, err := os.ReadDir(u.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		var k Key
		name := e.Name()
		if _, err := fmt.Sscanf(name, "%016x-%d.undo", &k.ID, &k.Shard); err != nil || !strings.HasSuffix(name, ".undo") {
			continue
		}
		if !holds(k) {
			if err := u.drop(k); err != nil {
				return err
			}
		}
	}
	return nil
}
