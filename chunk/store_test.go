package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"dfs/api"
)

const bs = api.BlockSize

// stores lists every Store implementation; each test below runs on all.
var stores = []struct {
	name string
	open func(t *testing.T) Store
}{
	{"mem", func(t *testing.T) Store { return NewMemStore() }},
	{"disk", func(t *testing.T) Store {
		s, err := OpenDisk(t.TempDir(), DiskOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

func forEachStore(t *testing.T, fn func(t *testing.T, s Store)) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) { fn(t, st.open(t)) })
	}
}

// model is the reference a store must agree with.
type model struct {
	data      []byte // len = chunk Length
	chunkSize int64
}

// patterns is never zero, so holes show; built once because per-byte
// loops are slow under -race.
var patterns, fill = func() ([]byte, []byte) {
	p := make([]byte, 10*bs+256)
	for i := range p {
		p[i] = byte(i*7+i/251) | 1
	}
	return p, bytes.Repeat([]byte{0xee}, len(p))
}()

func pattern(n int, seed byte) []byte {
	return bytes.Clone(patterns[seed : int(seed)+n])
}

func (m *model) write(off int64, p []byte) {
	if len(p) == 0 {
		return
	}
	if end := off + int64(len(p)); end > int64(len(m.data)) {
		m.data = append(m.data, make([]byte, end-int64(len(m.data)))...)
	}
	copy(m.data[off:], p)
}

func (m *model) zero(off, n int64) {
	if off >= int64(len(m.data)) {
		return
	}
	if off+n >= int64(len(m.data)) {
		m.data = m.data[:off]
		return
	}
	clear(m.data[off : off+n])
}

// check compares the store with the model: Length, the whole chunk, and
// reads of windows around the given offsets.
func (m *model) check(t *testing.T, s Store, k Key, offs ...int64) {
	t.Helper()
	info, err := s.Stat(k)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Length != uint64(len(m.data)) || info.ChunkSize != uint64(m.chunkSize) {
		t.Fatalf("Stat: length %d size %d, want %d %d", info.Length, info.ChunkSize, len(m.data), m.chunkSize)
	}
	m.checkRead(t, s, k, 0, m.chunkSize+10)
	for _, o := range offs {
		for _, w := range [][2]int64{{o - 1, 2}, {o - 100, 200}, {o - bs - 3, bs + 7}, {o, 1}, {o - 1, bs * 2}} {
			if w[0] >= 0 {
				m.checkRead(t, s, k, w[0], w[1])
			}
		}
	}
}

func (m *model) checkRead(t *testing.T, s Store, k Key, off, n int64) {
	t.Helper()
	p := make([]byte, n)
	copy(p, fill) // must be overwritten or left beyond n
	got, err := s.ReadAt(k, p, off)
	want := m.data[min(off, int64(len(m.data))):min(off+n, int64(len(m.data)))]
	if got != len(want) {
		t.Fatalf("ReadAt(%d, %d) = %d bytes, want %d (err %v)", off, n, got, len(want), err)
	}
	if got < int(n) && err != io.EOF {
		t.Fatalf("ReadAt(%d, %d) short read with err %v, want io.EOF", off, n, err)
	}
	if got == int(n) && err != nil {
		t.Fatalf("ReadAt(%d, %d): %v", off, n, err)
	}
	if !bytes.Equal(p[:got], want) {
		i := 0
		for i < got && p[i] == want[i] {
			i++
		}
		t.Fatalf("ReadAt(%d, %d): data differs first at chunk offset %d: got %#x want %#x", off, n, off+int64(i), p[i], want[i])
	}
}

type step struct {
	zero    bool
	off, n  int64
	wantErr error
}

func w(off, n int64) step      { return step{off: off, n: n} }
func z(off, n int64) step      { return step{zero: true, off: off, n: n} }
func bad(s step, e error) step { s.wantErr = e; return s }

func TestStoreDataConformance(t *testing.T) {
	const cs = 8 * bs
	cases := []struct {
		name      string
		chunkSize int64
		steps     []step
	}{
		{"empty", cs, nil},
		{"one aligned block", cs, []step{w(0, bs)}},
		{"aligned multi block", cs, []step{w(bs, 3*bs)}},
		{"tiny write", cs, []step{w(5, 1)}},
		{"unaligned spanning blocks", cs, []step{w(bs-10, 2*bs+20)}},
		{"unaligned within one block", cs, []step{w(100, 1000)}},
		{"hole before data", cs, []step{w(5*bs+17, 100)}},
		{"hole between writes", cs, []step{w(0, 10), w(3*bs+1, 10)}},
		{"overwrite middle of block", cs, []step{w(0, bs), w(10, 20)}},
		{"overlapping unaligned", cs, []step{w(100, 2*bs), w(bs-50, 100), w(50, bs)}},
		{"extend partial last block", cs, []step{w(0, 100), w(100, 100), w(150, bs)}},
		{"write to chunk end", cs, []step{w(cs-3, 3), w(0, cs)}},
		{"write past chunk end", cs, []step{bad(w(cs-3, 4), ErrTooBig), bad(w(cs, 1), ErrTooBig)}},
		{"empty write", cs, []step{w(bs, 0)}},
		{"odd chunk size", 2*bs + 333, []step{w(bs+300, bs+33), bad(w(2*bs+300, 34), ErrTooBig), w(0, 2*bs+333)}},
		{"zero interior unaligned", cs, []step{w(0, 4*bs), z(bs-5, 2*bs+10)}},
		{"zero interior whole blocks", cs, []step{w(0, 4*bs), z(bs, 2*bs)}},
		{"zero within one block", cs, []step{w(0, 4*bs), z(7, 9)}},
		{"zero to end truncates", cs, []step{w(0, 4*bs), z(bs+7, 3*bs-7)}},
		{"zero past end truncates", cs, []step{w(0, 4*bs), z(2*bs+1, 5*bs)}},
		{"zero at end aligned", cs, []step{w(0, 3*bs+5), z(2*bs, bs+5)}},
		{"zero everything", cs, []step{w(10, 3*bs), z(0, cs)}},
		{"zero beyond length is no-op", cs, []step{w(0, 100), z(200, 50)}},
		{"zero past chunk size", cs, []step{bad(z(cs-1, 2), ErrTooBig)}},
		{"write after truncate leaves zeros", cs, []step{w(0, 6*bs), z(bs+3, 7*bs-3), w(5*bs+9, 10)}},
		{"rewrite after truncate mid block", cs, []step{w(0, 2*bs), z(100, 2*bs), w(200, 50), w(50, 10)}},
		{"zero hole then write", cs, []step{w(0, 4*bs), z(bs, bs), w(bs+10, 10)}},
		{"negative offset", cs, []step{bad(w(-1, 1), ErrInvalid), bad(z(-1, 1), ErrInvalid)}},
	}
	forEachStore(t, func(t *testing.T, s Store) {
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				k := Key{ID: uint64(i + 1), Shard: uint32(i % 3)}
				if err := s.Create(k, 1, uint64(tc.chunkSize)); err != nil {
					t.Fatal(err)
				}
				m := &model{chunkSize: tc.chunkSize}
				var offs []int64
				for j, st := range tc.steps {
					var err error
					if st.zero {
						err = s.Zero(k, st.off, st.n)
					} else {
						p := pattern(int(st.n), byte(j*31))
						err = s.WriteAt(k, p, st.off)
						if err == nil {
							m.write(st.off, p)
						}
					}
					if st.zero && err == nil {
						m.zero(st.off, st.n)
					}
					if !errors.Is(err, st.wantErr) || (err != nil) != (st.wantErr != nil) {
						t.Fatalf("step %d %+v: err %v, want %v", j, st, err, st.wantErr)
					}
					offs = append(offs, st.off, st.off+st.n)
					m.check(t, s, k, offs...)
				}
				m.check(t, s, k, 0, bs, 2*bs, 3*bs)
				if err := s.Sync(k); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

// TestStoreRandom applies a seeded random mix of writes and zeroes and
// compares the whole chunk with the model after each.
func TestStoreRandom(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		const cs = 5*bs + 1234
		k := Key{ID: 77}
		if err := s.Create(k, 3, cs); err != nil {
			t.Fatal(err)
		}
		m := &model{chunkSize: cs}
		r := rand.New(rand.NewPCG(1, 2))
		for i := range 300 {
			off := r.Int64N(cs)
			n := r.Int64N(min(cs-off, 3*bs)) + 1
			if r.IntN(4) == 0 {
				if err := s.Zero(k, off, n); err != nil {
					t.Fatal(err)
				}
				m.zero(off, n)
			} else {
				p := pattern(int(n), byte(i))
				if err := s.WriteAt(k, p, off); err != nil {
					t.Fatal(err)
				}
				m.write(off, p)
			}
			m.check(t, s, k, off, off+n)
		}
	})
}

func TestStoreMetadata(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		a, b := Key{ID: 1}, Key{ID: 1, Shard: 1}
		if _, err := s.Stat(a); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Stat of missing chunk: %v", err)
		}
		for _, cs := range []uint64{0, MaxChunkSize + 1} {
			if err := s.Create(a, 1, cs); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Create size %d: %v, want EINVAL", cs, err)
			}
		}
		if err := s.Create(a, 5, 4*bs); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(a, 6, 4*bs); !errors.Is(err, ErrExist) {
			t.Fatalf("second Create: %v", err)
		}
		if err := s.Create(b, 1, 2*bs); err != nil {
			t.Fatal(err)
		}
		for _, v := range []struct {
			set     uint64
			wantErr error
			want    uint64
		}{{4, ErrStale, 5}, {5, nil, 5}, {9, nil, 9}, {8, ErrStale, 9}, {0, ErrStale, 9}} {
			err := s.SetVersion(a, v.set)
			if !errors.Is(err, v.wantErr) || (err != nil) != (v.wantErr != nil) {
				t.Fatalf("SetVersion(%d): %v, want %v", v.set, err, v.wantErr)
			}
			if api.ErrnoOf(err) != api.ErrnoOf(v.wantErr) {
				t.Fatalf("SetVersion(%d): errno %v", v.set, api.ErrnoOf(err))
			}
			if info, _ := s.Stat(a); info.Version != v.want {
				t.Fatalf("after SetVersion(%d): version %d, want %d", v.set, info.Version, v.want)
			}
		}
		if err := s.WriteAt(b, []byte("x"), 3); err != nil {
			t.Fatal(err)
		}
		list, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		got := map[Key]Info{}
		for _, in := range list {
			got[in.Key] = in
		}
		if len(got) != 2 || got[a].Version != 9 || got[b].Version != 1 || got[b].Length != 4 || got[a].ChunkSize != 4*bs {
			t.Fatalf("List = %+v", list)
		}
		if got[b].DiskBytes == 0 {
			t.Fatalf("List: chunk with data reports no disk bytes: %+v", got[b])
		}

		if err := s.Delete(a); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(a); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second Delete: %v", err)
		}
		if _, err := s.ReadAt(a, make([]byte, 1), 0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ReadAt deleted: %v", err)
		}
		for name, err := range map[string]error{
			"WriteAt":    s.WriteAt(a, []byte{1}, 0),
			"Zero":       s.Zero(a, 0, 1),
			"Sync":       s.Sync(a),
			"SetVersion": s.SetVersion(a, 10),
		} {
			if !errors.Is(err, ErrNotFound) || api.ErrnoOf(err) != api.Errno_ENOENT {
				t.Fatalf("%s of deleted chunk: %v", name, err)
			}
		}
		if list, _ := s.List(); len(list) != 1 {
			t.Fatalf("List after delete: %+v", list)
		}
		// A recreated chunk starts empty.
		if err := s.Create(b, 1, 2*bs); !errors.Is(err, ErrExist) {
			t.Fatal(err)
		}
		if err := s.Delete(b); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(b, 2, 2*bs); err != nil {
			t.Fatal(err)
		}
		if n, err := s.ReadAt(b, make([]byte, 10), 0); n != 0 || err != io.EOF {
			t.Fatalf("read of recreated chunk: %d %v", n, err)
		}
	})
}

// TestStoreConcurrent checks that readers never see a torn write (which
// the disk store would report as a checksum mismatch) and that writers to
// different chunks do not interfere. Run with -race.
func TestStoreConcurrent(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		const chunks, writes = 4, 30
		done := make(chan error, 2*chunks)
		for c := range chunks {
			k := Key{ID: uint64(c)}
			if err := s.Create(k, 1, 4*bs); err != nil {
				t.Fatal(err)
			}
			go func() {
				for i := range writes {
					if err := s.WriteAt(k, bytes.Repeat([]byte{byte(i + 1)}, bs+100), int64(i*37%bs)); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			go func() {
				p := make([]byte, 3*bs)
				for range writes {
					if _, err := s.ReadAt(k, p, 0); err != nil && err != io.EOF {
						done <- fmt.Errorf("read during writes: %w", err)
						return
					}
				}
				done <- nil
			}()
		}
		for range 2 * chunks {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	})
}
