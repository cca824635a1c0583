package ec

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ReadFunc reads [off, off+n) of one shard. It returns the bytes the shard
// holds there (a short answer means the rest reads as zeros), or an error
// when the shard cannot serve them (server down, corrupt, stale).
type ReadFunc func(ctx context.Context, shard int, off, n uint64) ([]byte, error)

// Fetch reads the same range [off, off+n) of every data shard, in
// parallel. Shards that are absent (have[i] false) or fail are decoded
// from parity shards, which are read only then. It returns K+M slices of
// n bytes each (parity slices nil unless read) and the shards that failed
// a read, so the caller can report them. It fails only when fewer than K
// shards could be read.
func (c *Codec) Fetch(ctx context.Context, off, n uint64, have []bool, read ReadFunc) ([][]byte, []int, error) {
	shards := make([][]byte, c.K+c.M)
	errs := make([]error, c.K+c.M)
	var failed []int
	get := func(which []int) {
		var wg sync.WaitGroup
		for _, i := range which {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, err := read(ctx, i, off, n)
				if err != nil {
					errs[i] = err
					return
				}
				if uint64(len(b)) > n {
					b = b[:n]
				}
				buf := make([]byte, n)
				copy(buf, b)
				shards[i] = buf
			}()
		}
		wg.Wait()
		for _, i := range which {
			if errs[i] != nil {
				failed = append(failed, i)
			}
		}
	}
	var first []int
	for i := range c.K {
		if i < len(have) && have[i] {
			first = append(first, i)
		}
	}
	get(first)
	missing := c.K - (len(first) - len(failed))
	if missing == 0 {
		return shards, failed, nil
	}
	// Read just enough parity shards; read more if some of those fail.
	next := c.K
	for missing > 0 && next < c.K+c.M {
		var batch []int
		for ; next < c.K+c.M && len(batch) < missing; next++ {
			if next < len(have) && have[next] {
				batch = append(batch, next)
			}
		}
		if len(batch) == 0 {
			break
		}
		before := len(failed)
		get(batch)
		missing -= len(batch) - (len(failed) - before)
	}
	if missing > 0 {
		var why []error
		for i, err := range errs {
			if err != nil {
				why = append(why, fmt.Errorf("shard %d: %w", i, err))
			}
		}
		return nil, failed, fmt.Errorf("ec: %d shards short of %d to decode [%d,+%d): %w: %w", missing, c.K, off, n, ErrTooFew, errors.Join(why...))
	}
	if n == 0 {
		return shards, failed, nil
	}
	if err := c.ReconstructData(shards); err != nil {
		return nil, failed, err
	}
	return shards, failed, nil
}
