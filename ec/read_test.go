package ec

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestFetch reads data shard ranges through Fetch with shards absent,
// failing and short (the rest reading as zeros), and checks the decoded
// data, which shards were read, and that M+1 losses fail.
func TestFetch(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, km := range [][2]int{{1, 1}, {2, 1}, {4, 2}, {6, 3}, {10, 4}} {
		c, _ := New(km[0], km[1])
		const per = 3 * CellSize
		shards := make([][]byte, c.Shards())
		for i := range shards {
			shards[i] = make([]byte, per)
			if i < c.K {
				copy(shards[i], randBytes(r, per))
			}
		}
		// The last data shard holds less: its tail is zeros on disk too.
		clear(shards[c.K-1][per-CellSize-100:])
		if err := c.Encode(shards); err != nil {
			t.Fatal(err)
		}
		for lost := 0; lost <= c.M+1; lost++ {
			down := map[int]bool{}
			for _, i := range r.Perm(c.Shards())[:lost] {
				down[i] = true
			}
			have := make([]bool, c.Shards())
			absent := -1
			for i := range have {
				have[i] = true
			}
			if lost > 0 {
				// One of the lost shards is known absent, the others fail.
				for i := range down {
					absent = i
					break
				}
				have[absent] = false
			}
			var mu sync.Mutex
			read := map[int]bool{}
			off, n := uint64(CellSize/2), uint64(2*CellSize)
			got, failed, err := c.Fetch(context.Background(), off, n, have, func(_ context.Context, i int, o, l uint64) ([]byte, error) {
				mu.Lock()
				read[i] = true
				mu.Unlock()
				if i == absent {
					t.Errorf("%v: absent shard %d was read", km, i)
				}
				if down[i] {
					return nil, errors.New("down")
				}
				// Answer short where the shard's data ends in zeros.
				b := shards[i][o : o+l]
				return bytes.TrimRight(b, "\x00"), nil
			})
			if lost > c.M {
				if !errors.Is(err, ErrTooFew) {
					t.Fatalf("%v with %d lost: %v, want ErrTooFew", km, lost, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%v with %d lost: %v", km, lost, err)
			}
			for d := range c.K {
				if !bytes.Equal(got[d], shards[d][off:off+n]) {
					t.Fatalf("%v with %v lost: data shard %d decoded wrong", km, down, d)
				}
			}
			for _, i := range failed {
				if !down[i] {
					t.Errorf("%v: shard %d reported failed", km, i)
				}
			}
			if lost == 0 {
				for i := c.K; i < c.Shards(); i++ {
					if read[i] {
						t.Errorf("%v: parity shard %d read with every data shard up", km, i)
					}
				}
			}
		}
	}
}
