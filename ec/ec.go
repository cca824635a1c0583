// Package ec is dfs's erasure-coding codec: the stripe geometry that maps
// the bytes of an erasure-coded chunk onto K data shards and M parity
// shards, and Reed-Solomon encoding, verification and reconstruction over
// github.com/klauspost/reedsolomon. It imports nothing from the project,
// so that chunkservers, the client and the master share one geometry.
//
// A chunk's bytes are cut into cells of CellSize; stripe s holds cells
// s*K .. s*K+K-1, and cell d of stripe s lives in data shard d at offset
// s*CellSize. Parity shard K+j holds, at offset s*CellSize, parity j of
// stripe s. Shard offsets therefore grow with the stripe number, so a
// range of stripes is one contiguous range in every shard.
package ec

import (
	"crypto/subtle"
	"fmt"
	"slices"

	"github.com/klauspost/reedsolomon"
)

// CellSize is the bytes of one shard in one stripe. It equals the
// chunkservers' checksum block, so a stripe update rewrites whole blocks.
const CellSize = 64 << 10

// MaxShards bounds K+M, as the layout parser does.
const MaxShards = 32

// Codec encodes and decodes stripes of one (K, M) layout. It is safe for
// concurrent use.
type Codec struct {
	K, M int
	enc  reedsolomon.Encoder
}

// New returns the codec of K data and M parity shards.
func New(k, m int) (*Codec, error) {
	if k < 1 || m < 1 || k+m > MaxShards {
		return nil, fmt.Errorf("ec: %d+%d: need K >= 1, M >= 1, K+M <= %d", k, m, MaxShards)
	}
	enc, err := reedsolomon.New(k, m)
	if err != nil {
		return nil, fmt.Errorf("ec: %d+%d: %w", k, m, err)
	}
	return &Codec{K: k, M: m, enc: enc}, nil
}

// Shards is K+M.
func (c *Codec) Shards() int { return c.K + c.M }

// StripeSize is the chunk bytes one stripe holds.
func (c *Codec) StripeSize() uint64 { return uint64(c.K) * CellSize }

// ShardSize is the bytes each shard of a chunk of chunkSize bytes may
// hold: whole cells, enough for every stripe the chunk has.
func ShardSize(chunkSize uint64, k int) uint64 {
	stripe := uint64(k) * CellSize
	return (chunkSize + stripe - 1) / stripe * CellSize
}

// Stripes returns the first and one-past-last stripe that the chunk
// range [off, off+n) touches.
func (c *Codec) Stripes(off, n uint64) (first, end uint64) {
	ss := c.StripeSize()
	if n == 0 {
		return off / ss, off / ss
	}
	return off / ss, (off + n + ss - 1) / ss
}

// DataRange returns the range of data shard d that holds chunk bytes in
// [off, off+n), as a shard offset and length (length 0 if none).
func (c *Codec) DataRange(d int, off, n uint64) (shardOff, length uint64) {
	end := off + n
	lo, hi := c.shardPos(d, off), c.shardPos(d, end)
	if hi <= lo {
		return lo, 0
	}
	return lo, hi - lo
}

// shardPos maps chunk offset x to the shard-d offset that splits shard d
// into the bytes before x and those at or after it.
func (c *Codec) shardPos(d int, x uint64) uint64 {
	ss := c.StripeSize()
	s, in := x/ss, x%ss
	cellStart := uint64(d) * CellSize
	switch {
	case in <= cellStart:
		return s * CellSize
	case in >= cellStart+CellSize:
		return (s + 1) * CellSize
	default:
		return s*CellSize + in - cellStart
	}
}

// Split copies chunk bytes of whole stripes (len(buf) a multiple of
// StripeSize) into K data shards, one slice per shard, each of
// len(buf)/K bytes, followed by M zeroed parity slices ready for Encode.
func (c *Codec) Split(buf []byte) [][]byte {
	ss := int(c.StripeSize())
	if len(buf)%ss != 0 {
		panic(fmt.Sprintf("ec: split of %d bytes, not whole stripes of %d", len(buf), ss))
	}
	per := len(buf) / c.K
	shards := make([][]byte, c.K+c.M)
	for i := range shards {
		shards[i] = make([]byte, per)
	}
	for s := 0; s*ss < len(buf); s++ {
		for d := 0; d < c.K; d++ {
			copy(shards[d][s*CellSize:(s+1)*CellSize], buf[s*ss+d*CellSize:])
		}
	}
	return shards
}

// Join is Split's inverse for the data shards: it copies them back into
// buf in chunk order.
func (c *Codec) Join(shards [][]byte, buf []byte) {
	ss := int(c.StripeSize())
	for s := 0; s*ss < len(buf); s++ {
		for d := 0; d < c.K; d++ {
			copy(buf[s*ss+d*CellSize:(s+1)*ss], shards[d][s*CellSize:(s+1)*CellSize])
		}
	}
}

// Encode computes the M parity shards from the K data shards; all K+M
// slices have the same length.
func (c *Codec) Encode(shards [][]byte) error {
	if err := c.check(shards, false); err != nil {
		return err
	}
	return c.enc.Encode(shards)
}

// UpdateParity changes parity, the M parity shards' bytes at some
// positions, for data shard d's bytes there changing from old to new:
// Reed-Solomon is linear, so only the difference needs encoding. All
// slices have the same length.
func (c *Codec) UpdateParity(d int, old, new []byte, parity [][]byte) error {
	if d < 0 || d >= c.K || len(parity) != c.M {
		return fmt.Errorf("ec: parity update of data shard %d with %d parity shards, want < %d and %d", d, len(parity), c.K, c.M)
	}
	n := len(new)
	if len(old) != n || slices.ContainsFunc(parity, func(p []byte) bool { return len(p) != n }) {
		return fmt.Errorf("ec: parity update of %d bytes with old data or parity of other lengths", n)
	}
	delta := make([]byte, n)
	subtle.XORBytes(delta, old, new)
	return c.enc.EncodeIdx(delta, d, parity)
}

// Verify says whether the parity shards agree with the data shards.
func (c *Codec) Verify(shards [][]byte) (bool, error) {
	if err := c.check(shards, false); err != nil {
		return false, err
	}
	return c.enc.Verify(shards)
}

// Reconstruct fills in the missing (nil or empty) shards, data and
// parity, from any K present ones.
func (c *Codec) Reconstruct(shards [][]byte) error {
	if err := c.check(shards, true); err != nil {
		return err
	}
	return c.enc.Reconstruct(shards)
}

// ReconstructData fills in the missing data shards only.
func (c *Codec) ReconstructData(shards [][]byte) error {
	if err := c.check(shards, true); err != nil {
		return err
	}
	return c.enc.ReconstructData(shards)
}

// check refuses shard sets of the wrong count, ragged lengths or, for a
// reconstruction, fewer than K present shards.
func (c *Codec) check(shards [][]byte, missingOK bool) error {
	if len(shards) != c.K+c.M {
		return fmt.Errorf("ec: %d shards, want %d", len(shards), c.K+c.M)
	}
	size, present := -1, 0
	for i, s := range shards {
		if len(s) == 0 {
			if !missingOK {
				return fmt.Errorf("ec: shard %d is missing", i)
			}
			continue
		}
		present++
		if size >= 0 && len(s) != size {
			return fmt.Errorf("ec: shard %d has %d bytes, shard sizes differ (%d)", i, len(s), size)
		}
		size = len(s)
	}
	if present < c.K {
		return fmt.Errorf("ec: %d of %d shards present, need %d: %w", present, c.K+c.M, c.K, ErrTooFew)
	}
	return nil
}

// ErrTooFew is returned when fewer than K shards are left.
var ErrTooFew = reedsolomon.ErrTooFewShards
