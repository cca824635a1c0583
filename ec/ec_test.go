package ec

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// layouts is every (K, M) the layout parser accepts: K, M >= 1, K+M <= 32.
func layouts() [][2]int {
	var out [][2]int
	for k := 1; k < MaxShards; k++ {
		for m := 1; k+m <= MaxShards; m++ {
			out = append(out, [2]int{k, m})
		}
	}
	return out
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestReconstructEveryLayout encodes random shards for every offered
// (K, M), erases up to M shards in several patterns (data only, parity
// only, mixed, the last ones) and checks that reconstruction restores
// every byte, and that M+1 erasures are refused.
func TestReconstructEveryLayout(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, km := range layouts() {
		k, m := km[0], km[1]
		c, err := New(k, m)
		if err != nil {
			t.Fatalf("New(%d, %d): %v", k, m, err)
		}
		const per = 256
		orig := make([][]byte, k+m)
		for i := range orig {
			if i < k {
				orig[i] = randBytes(r, per)
			} else {
				orig[i] = make([]byte, per)
			}
		}
		if err := c.Encode(orig); err != nil {
			t.Fatalf("%d+%d: encode: %v", k, m, err)
		}
		if ok, err := c.Verify(orig); !ok || err != nil {
			t.Fatalf("%d+%d: fresh parity does not verify: %v %v", k, m, ok, err)
		}
		patterns := [][]int{r.Perm(k + m)[:m], seq(0, min(m, k)), seq(k, m), seq(k+m-m, m)}
		for e := 1; e <= m; e++ {
			patterns = append(patterns, r.Perm(k + m)[:e])
		}
		for _, lost := range patterns {
			for _, dataOnly := range []bool{false, true} {
				got := clone(orig)
				for _, i := range lost {
					got[i] = nil
				}
				var err error
				if dataOnly {
					err = c.ReconstructData(got)
				} else {
					err = c.Reconstruct(got)
				}
				if err != nil {
					t.Fatalf("%d+%d lost %v: %v", k, m, lost, err)
				}
				for i := range got {
					if (i < k || !dataOnly) && !bytes.Equal(got[i], orig[i]) {
						t.Fatalf("%d+%d lost %v (data only %v): shard %d differs", k, m, lost, dataOnly, i)
					}
				}
			}
		}
		got := clone(orig)
		for _, i := range r.Perm(k + m)[:m+1] {
			got[i] = nil
		}
		if err := c.Reconstruct(got); !errors.Is(err, ErrTooFew) {
			t.Fatalf("%d+%d with %d shards lost: got %v, want ErrTooFew", k, m, m+1, err)
		}
		// A flipped byte in any shard makes verification fail.
		bad := clone(orig)
		bad[r.IntN(k+m)][r.IntN(per)] ^= 0x40
		if ok, _ := c.Verify(bad); ok {
			t.Fatalf("%d+%d: a flipped byte verified", k, m)
		}
	}
}

func seq(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

func clone(s [][]byte) [][]byte {
	out := make([][]byte, len(s))
	for i := range s {
		out[i] = bytes.Clone(s[i])
	}
	return out
}

func TestNewRefusesBadLayouts(t *testing.T) {
	for _, km := range [][2]int{{0, 1}, {1, 0}, {31, 2}, {-1, 3}} {
		if _, err := New(km[0], km[1]); err == nil {
			t.Errorf("New(%d, %d) accepted", km[0], km[1])
		}
	}
}

func TestShardsRefused(t *testing.T) {
	c, _ := New(4, 2)
	if err := c.Encode(make([][]byte, 5)); err == nil {
		t.Error("Encode of 5 shards for 4+2 accepted")
	}
	s := [][]byte{make([]byte, 8), make([]byte, 8), make([]byte, 8), make([]byte, 9), make([]byte, 8), make([]byte, 8)}
	if err := c.Encode(s); err == nil {
		t.Error("Encode of ragged shards accepted")
	}
}

// TestSplitJoinGeometry checks, for the layouts in use, that Split puts
// every chunk byte where DataRange says and that Join undoes Split.
func TestSplitJoinGeometry(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, km := range [][2]int{{1, 1}, {2, 1}, {3, 2}, {4, 2}, {6, 3}, {10, 4}} {
		c, _ := New(km[0], km[1])
		ss := int(c.StripeSize())
		buf := randBytes(r, 3*ss)
		shards := c.Split(buf)
		if err := c.Encode(shards); err != nil {
			t.Fatal(err)
		}
		back := make([]byte, len(buf))
		c.Join(shards, back)
		if !bytes.Equal(back, buf) {
			t.Fatalf("%v: Join(Split(b)) != b", km)
		}
		for range 200 {
			off := uint64(r.IntN(len(buf)))
			n := uint64(r.IntN(len(buf) - int(off) + 1))
			// Rebuild [off, off+n) from the data ranges alone.
			got := make([]byte, len(buf))
			total := uint64(0)
			for d := range c.K {
				so, l := c.DataRange(d, off, n)
				total += l
				for i := so; i < so+l; i++ {
					s, in := i/CellSize, i%CellSize
					got[s*c.StripeSize()+uint64(d)*CellSize+in] = shards[d][i]
				}
			}
			if total != n {
				t.Fatalf("%v [%d,+%d): data ranges hold %d bytes", km, off, n, total)
			}
			if !bytes.Equal(got[off:off+n], buf[off:off+n]) {
				t.Fatalf("%v [%d,+%d): data ranges do not hold the range", km, off, n)
			}
			first, end := c.Stripes(off, n)
			if n > 0 && (first*c.StripeSize() > off || end*c.StripeSize() < off+n || (end-first-1)*c.StripeSize() >= n+c.StripeSize()) {
				t.Fatalf("%v [%d,+%d): stripes [%d,%d) do not fit", km, off, n, first, end)
			}
		}
	}
}

func TestShardSize(t *testing.T) {
	for _, tc := range []struct {
		chunk uint64
		k     int
		want  uint64
	}{
		{64 << 20, 4, 16 << 20},
		{64 << 20, 6, 171 * CellSize},
		{64 << 20, 10, 103 * CellSize},
		{CellSize, 4, CellSize},
		{64 << 20, 1, 64 << 20},
	} {
		if got := ShardSize(tc.chunk, tc.k); got != tc.want {
			t.Errorf("ShardSize(%d, %d) = %d, want %d", tc.chunk, tc.k, got, tc.want)
		}
	}
}

// BenchmarkEncode measures encoding throughput of one core in data bytes
// per second for the layouts bench/run.sh reports.
func BenchmarkEncode(b *testing.B) {
	for _, km := range [][2]int{{4, 2}, {6, 3}, {10, 4}} {
		c, _ := New(km[0], km[1])
		buf := randBytes(rand.New(rand.NewPCG(5, 6)), int(c.StripeSize())*16)
		b.Run(fmtKM(km), func(b *testing.B) {
			shards := c.Split(buf)
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if err := c.Encode(shards); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReconstruct measures decoding with two data shards lost.
func BenchmarkReconstruct(b *testing.B) {
	for _, km := range [][2]int{{4, 2}, {6, 3}, {10, 4}} {
		c, _ := New(km[0], km[1])
		buf := randBytes(rand.New(rand.NewPCG(7, 8)), int(c.StripeSize())*16)
		shards := c.Split(buf)
		if err := c.Encode(shards); err != nil {
			b.Fatal(err)
		}
		b.Run(fmtKM(km), func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			work := make([][]byte, len(shards))
			for b.Loop() {
				copy(work, shards)
				work[0], work[1] = work[0][:0], work[1][:0]
				if err := c.ReconstructData(work); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func fmtKM(km [2]int) string { return fmt.Sprintf("%d+%d", km[0], km[1]) }

// UpdateParity from a data shard's old and new bytes at some positions
// gives the parity a whole re-encode gives, for every layout up to 6+4,
// every data shard and ranges anywhere in the cell.
func TestUpdateParityMatchesEncode(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	for k := 1; k <= 6; k++ {
		for m := 1; m <= 4; m++ {
			c, err := New(k, m)
			if err != nil {
				t.Fatal(err)
			}
			for d := range k {
				const size = 4096
				shards := make([][]byte, k+m)
				for i := range shards {
					shards[i] = make([]byte, size)
					if i < k {
						for j := range shards[i] {
							shards[i][j] = byte(rng.IntN(256))
						}
					}
				}
				if err := c.Encode(shards); err != nil {
					t.Fatal(err)
				}
				lo := rng.IntN(size)
				hi := lo + 1 + rng.IntN(size-lo)
				newData := make([]byte, hi-lo)
				for j := range newData {
					newData[j] = byte(rng.IntN(256))
				}
				parity := make([][]byte, m)
				for p := range m {
					parity[p] = append([]byte(nil), shards[k+p][lo:hi]...)
				}
				if err := c.UpdateParity(d, shards[d][lo:hi], newData, parity); err != nil {
					t.Fatal(err)
				}
				copy(shards[d][lo:], newData)
				if err := c.Encode(shards); err != nil {
					t.Fatal(err)
				}
				for p := range m {
					if !bytes.Equal(parity[p], shards[k+p][lo:hi]) {
						t.Fatalf("ec:%d+%d shard %d [%d,%d): updated parity %d differs from a re-encode", k, m, d, lo, hi, p)
					}
				}
			}
		}
	}
	c, _ := New(4, 2)
	if err := c.UpdateParity(4, make([]byte, 8), make([]byte, 8), [][]byte{make([]byte, 8), make([]byte, 8)}); err == nil {
		t.Error("UpdateParity of a parity shard's index: no error")
	}
	if err := c.UpdateParity(0, make([]byte, 4), make([]byte, 8), [][]byte{make([]byte, 8), make([]byte, 8)}); err == nil {
		t.Error("UpdateParity with old data shorter than new: no error")
	}
}
